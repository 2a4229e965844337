"""Warnings a trace would show: held back, and Python's record of having shown them undone.

A trace that would show a warning is not cached: the call runs uncompiled
and shows it there, where the original shows it. Holding it back must not
change what Python shows later. ``warnings.catch_warnings`` would: entering
and leaving it tells every module's ``__warningregistry__`` to forget the
warnings it has shown once, so a ``default``-action warning anywhere in the
program would be shown again after each trace. So the warnings machinery is
left as it is, and only the display of a warning issued on the tracing
thread is intercepted, at ``warnings._showwarnmsg`` (which the C
implementation calls for every warning it shows, in Python 3.10 to 3.13).
The registry entries that deciding to show it added are then removed, so the
uncompiled call finds the registries as the original would. A warning that
cannot be traced back to its registry is shown at once instead (the
registry then keeps the uncompiled call from showing it twice). Warnings of
other threads, and warnings that a ``catch_warnings(record=True)`` inside
the trace records, pass through untouched.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ['held']


class _Hook:
  """The display hook, installed while any thread holds warnings back."""

  def __init__(self):
    self.lock = threading.Lock()
    self.holders = 0
    self.shown_by_python: Any = None  # warnings._showwarnmsg while the hook is installed


_hook = _Hook()
_thread = threading.local()
# The keys each action adds to the module's registry before the warning is
# shown, by the C implementation in every supported Python: the place, and
# for 'module' and 'once' the text (neither can have been there, or the
# warning would not be shown).
_REGISTERED = {'default': ('place',), 'module': ('place', 'text'), 'once': ('place', 'text'), 'always': ()}


def _matches(pattern: Any, text: Any) -> bool:
  if pattern is None:
    return True
  if type(pattern) is str:
    return pattern == text
  return bool(pattern.match(text))


def _action(text: str, category: type, lineno: int, module: str | None) -> str | None:
  """The action ``warnings.filters`` choose for a warning, as the C implementation chooses it.

  None when that depends on the module, and the module is not known.
  """
  for action, message, kind, module_pattern, line in warnings.filters:
    if not (_matches(message, text) and issubclass(category, kind) and (line == 0 or line == lineno)):
      continue
    if module_pattern is not None and module is None:
      return None
    if _matches(module_pattern, module):
      return action
  return warnings.defaultaction


def _globals_of(filename: str, lineno: int) -> dict | None:
  """The globals whose ``__warningregistry__`` recorded the warning: the frame it was attributed to."""
  if filename == 'sys':  # a stack level past the outermost frame
    return sys.__dict__
  frame = sys._getframe(2)  # pylint: disable=protected-access
  while frame is not None:
    if frame.f_code.co_filename == filename and frame.f_lineno == lineno:
      return frame.f_globals
    frame = frame.f_back
  return None


def _forget(message: warnings.WarningMessage) -> bool:
  """Removes what showing ``message`` added to the registries; False when that cannot be known."""
  namespace = _globals_of(message.filename, message.lineno) or {}
  registry = namespace.get('__warningregistry__')
  module = namespace.get('__name__')
  module = module if isinstance(module, str) else None
  text, category = str(message.message), message.category
  try:
    added = _REGISTERED.get(_action(text, category, message.lineno, module))
  except Exception:  # pylint: disable=broad-except  (a filter that cannot match this text)
    return False
  if added == ():  # 'always' registers nothing
    return True
  if added is None or module is None or not isinstance(registry, dict):
    return False
  for entry in added:
    registry.pop((text, category, message.lineno) if entry == 'place' else (text, category), None)
  return True


def _display() -> tuple[Any, Any]:
  """How Python displays a warning now: replaced inside a ``catch_warnings`` block."""
  return warnings._showwarnmsg_impl, warnings.showwarning  # pylint: disable=protected-access


def _show(message: warnings.WarningMessage) -> None:
  holding = getattr(_thread, 'holding', None)
  # A catch_warnings(record=True) entered inside the trace records the
  # warning, as it does in the original: nothing is shown.
  if holding is None or _display() != holding[1]:
    _hook.shown_by_python(message)
    return
  holding[0].append(message)
  if not _forget(message):
    _hook.shown_by_python(message)


@contextlib.contextmanager
def held() -> Iterator[list[warnings.WarningMessage]]:
  """Holds back the warnings this thread would show inside the block; yields the list they go to."""
  with _hook.lock:
    if _hook.holders == 0:
      _hook.shown_by_python = warnings._showwarnmsg  # pylint: disable=protected-access
      warnings._showwarnmsg = _show  # pylint: disable=protected-access
    _hook.holders += 1
  outer = getattr(_thread, 'holding', None)
  caught: list[warnings.WarningMessage] = []
  _thread.holding = (caught, _display())
  try:
    yield caught
  finally:
    _thread.holding = outer
    with _hook.lock:
      _hook.holders -= 1
      if _hook.holders == 0:
        if warnings._showwarnmsg is _show:  # pylint: disable=protected-access
          warnings._showwarnmsg = _hook.shown_by_python  # pylint: disable=protected-access
        _hook.shown_by_python = None
