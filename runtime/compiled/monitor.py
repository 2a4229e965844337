"""Watching the user code that runs while a function is traced.

:func:`watching` reports to a :class:`~vjpify.runtime.compiled.recorder.Recorder`
every user frame that starts or resumes, every call a user frame makes (with
the callable, before it runs), every library function a user frame enters,
and every store instruction of a user frame that may change outliving state.
Python 3.12 and later have ``sys.monitoring``, whose events can be limited to
user code objects and switched off for library code after its first event;
Python 3.10 and 3.11 use ``sys.settrace`` and ``sys.setprofile`` on the
tracing thread only.

Nothing is watched outside a trace, and library code costs one event per
code object (3.12+) or per frame (3.10, 3.11) while a trace runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from vjpify.runtime.compiled.recorder import Recorder

__all__ = ['MonitorUnavailable', 'foreign_hook', 'watching']


class MonitorUnavailable(Exception):
  """The trace cannot be watched (another tool holds the hooks); it must not be cached."""


if sys.version_info >= (3, 12):
  from vjpify.runtime.compiled import monitor_events as _backend
else:
  from vjpify.runtime.compiled import monitor_settrace as _backend


@contextlib.contextmanager
def watching(recorder: Recorder) -> Iterator[None]:
  """Reports what user code does to ``recorder`` until the block ends.

  Raises:
    MonitorUnavailable: a debugger, profiler or coverage tool holds the hooks
      this Python offers.
  """
  reason = _backend.start(recorder)
  if reason is not None:
    raise MonitorUnavailable(reason)
  try:
    yield
  finally:
    _backend.stop(recorder)


def foreign_hook() -> str | None:
  """The debugger, profiler, coverage or monitoring tool other than this runtime that is active now, or None.

  A compiled call runs none of fn's Python code, so such a tool would see
  other events than the original program gives it: the call then runs
  uncompiled, and the tool's hook is left as it is.
  """
  return _backend.foreign()
