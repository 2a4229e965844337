"""The monitor's back end for Python 3.12 and later: ``sys.monitoring``.

Events are on only while some thread traces. ``PY_START`` and ``PY_RESUME``
fire for every code object until it answers ``DISABLE``: library code does
so at once (except the library functions that are effects, which must be
seen each time user code enters them), user code gets ``CALL`` events, with
the callable and its first argument, and ``INSTRUCTION`` events for the
offsets of its stores that need checking (every other offset is disabled
after its first event); ``EXCEPTION_HANDLED`` says when user code catches
an error. Events of other threads are ignored.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

from vjpify.runtime.compiled import bytecode, calls, usercode
from vjpify.runtime.compiled.recorder import Recorder

__all__ = ['foreign', 'start', 'stop']

_monitoring = sys.monitoring
_EVENTS = _monitoring.events
_DISABLE = _monitoring.DISABLE
_NAME = 'vjpify.runtime.compiled'
# Tool ids the runtime may take, in order of preference (0, 1 and 2 are
# debuggers, coverage and profilers by convention).
_CANDIDATE_IDS = (4, 3)

_lock = threading.Lock()
_recorders: dict[int, Recorder] = {}
# Per thread: how many gc callbacks or finalizers are running, which are not
# part of the traced function.
_suspended: dict[int, int] = {}
_asides: set[types.CodeType] = set()
_local_codes: set[types.CodeType] = set()
_tool: int | None = None
_kind = usercode.kind_of_code


def _is_finalizer(code: types.CodeType) -> bool:
  return (code in _asides or code.co_name == '__del__') and usercode.kind_of_code(code) != usercode.TRUSTED


def _on_start(code: types.CodeType, offset: int) -> Any:
  thread = threading.get_ident()
  recorder = _recorders.get(thread)
  if recorder is not None and _is_finalizer(code):
    recorder.finalizer_runs(code)
    _suspended[thread] = _suspended.get(thread, 0) + 1
    _monitoring.set_local_events(_tool, code, _EVENTS.PY_RETURN)
    _local_codes.add(code)
    return None
  if _suspended.get(thread):
    return None
  kind = _kind(code)
  if kind in (usercode.TRUSTED, usercode.TRANSPARENT):
    if calls.code_verdict(code) is None:
      return _DISABLE
    if recorder is not None:
      caller = sys._getframe(1).f_back  # pylint: disable=protected-access
      if caller is not None and usercode.watched(caller):
        recorder.enter_library(code, caller)
    return None
  if recorder is None:
    return None
  frame = sys._getframe(1)  # pylint: disable=protected-access
  if kind == usercode.STRING and usercode.is_generated_method(frame):
    return _DISABLE
  # Standard-library code is followed only where watched code called it;
  # it stays enabled, since user code may call it later in the trace.
  if kind == usercode.STDLIB and not usercode.followed(frame.f_back):
    return None
  recorder.enter(frame)
  if code not in _local_codes:
    _local_codes.add(code)
    events = _EVENTS.CALL | (_EVENTS.INSTRUCTION if bytecode.facts(code).stores else 0)
    _monitoring.set_local_events(_tool, code, events)
  return None


def _on_leave(code: types.CodeType, offset: int, value: Any) -> Any:
  thread = threading.get_ident()
  if _is_finalizer(code) and _suspended.get(thread):
    _suspended[thread] -= 1
  return None


def _watching(code: types.CodeType) -> tuple[Recorder | None, types.FrameType | None]:
  """The recorder to report to and the frame that sent the event, or Nones when the frame is not watched."""
  thread = threading.get_ident()
  recorder = _recorders.get(thread)
  if recorder is None or _suspended.get(thread):
    return None, None
  frame = sys._getframe(2)  # pylint: disable=protected-access
  if _kind(code) != usercode.USER and not usercode.watched(frame):
    return None, None
  return recorder, frame


def _on_call(code: types.CodeType, offset: int, fn: Any, first: Any) -> Any:
  recorder, frame = _watching(code)
  if recorder is not None:
    argument = calls.UNKNOWN_ARGUMENT if first is _monitoring.MISSING else first
    recorder.call(frame, fn, argument)
  return None


def _on_instruction(code: types.CodeType, offset: int) -> Any:
  store = bytecode.facts(code).stores.get(offset)
  if store is None:
    return _DISABLE
  recorder, frame = _watching(code)
  if recorder is not None:
    recorder.store(frame, store)
  return None


def _on_handled(code: types.CodeType, offset: int, error: BaseException) -> Any:
  if _kind(code) in (usercode.TRUSTED, usercode.TRANSPARENT):
    return None
  recorder, frame = _watching(code)
  if recorder is not None:
    recorder.meets_error(frame, error)
  return None


def foreign() -> str | None:
  """The tool other than this runtime that holds sys.monitoring, settrace or setprofile, or None."""
  for tool in range(6):
    if tool != _tool:
      name = _monitoring.get_tool(tool)
      if name is not None:
        return f'the sys.monitoring tool {name!r}'
  if sys.gettrace() is not None:
    return 'a sys.settrace hook (a debugger or coverage tool)'
  if sys.getprofile() is not None:
    return 'a sys.setprofile hook (a profiler)'
  return None


def _claim_tool() -> str | None:
  global _tool
  if _tool is not None:
    return None
  for candidate in _CANDIDATE_IDS:
    if _monitoring.get_tool(candidate) is None:
      _monitoring.use_tool_id(candidate, _NAME)
      _tool = candidate
      _monitoring.register_callback(candidate, _EVENTS.PY_START, _on_start)
      _monitoring.register_callback(candidate, _EVENTS.PY_RESUME, _on_start)
      _monitoring.register_callback(candidate, _EVENTS.CALL, _on_call)
      _monitoring.register_callback(candidate, _EVENTS.INSTRUCTION, _on_instruction)
      _monitoring.register_callback(candidate, _EVENTS.PY_RETURN, _on_leave)
      _monitoring.register_callback(candidate, _EVENTS.PY_UNWIND, _on_leave)
      _monitoring.register_callback(candidate, _EVENTS.EXCEPTION_HANDLED, _on_handled)
      return None
  return f'no sys.monitoring tool id is free (tried {", ".join(map(str, _CANDIDATE_IDS))})'


def start(recorder: Recorder) -> str | None:
  with _lock:
    reason = _claim_tool()
    if reason is not None:
      return reason
    if not _recorders:
      _asides.clear()
      _asides.update(usercode.aside_codes())
      # PY_UNWIND can only be global: it ends a gc callback that raised;
      # so can EXCEPTION_HANDLED, which user code catching a tracer error
      # sends.
      _monitoring.set_events(_tool, _EVENTS.PY_START | _EVENTS.PY_RESUME | _EVENTS.PY_UNWIND
                             | _EVENTS.EXCEPTION_HANDLED)
    _recorders[recorder.thread] = recorder
    _suspended[recorder.thread] = 0
  return None


def stop(recorder: Recorder) -> None:
  with _lock:
    _recorders.pop(recorder.thread, None)
    _suspended.pop(recorder.thread, None)
    if not _recorders:
      _monitoring.set_events(_tool, 0)
      for code in _local_codes:
        _monitoring.set_local_events(_tool, code, 0)
      _local_codes.clear()
