"""The monitor's back end for Python 3.10 and 3.11: ``sys.settrace``.

The hook is per thread, so only the tracing thread is watched. It sees every
new frame: user frames are reported and get opcode events, library frames
entered straight from user code are classified. An opcode event comes
before its instruction runs, which is when a store, or a call of a C
function such as ``print``, can still be stopped (an ``exception`` event,
when an error reaches a user frame that has try blocks); the callable of a call is
found by following the stack back to the loads that pushed it
(``bytecode.Call``).

``sys.setprofile`` would hand over C callables directly, but on these
Pythons every profile event copies the locals of the frame out and back,
which crashes CPython 3.11 inside jax's tracing; it is not used.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from vjpify.runtime.compiled import allowlist, bytecode, calls, usercode
from vjpify.runtime.compiled.recorder import Recorder
from vjpify.runtime.compiled.values import evaluate_call

__all__ = ['foreign', 'start', 'stop']


class _Hooks:

  def __init__(self, recorder: Recorder):
    self.recorder = recorder
    self.asides = usercode.aside_codes()
    self.suspended = 0
    # A watched frame that made a call whose callable the bytecode could
    # not name: if the next event is in that frame again, no Python frame
    # started, so a C function ran unchecked.
    self.pending: types.FrameType | None = None

  def trace(self, frame: types.FrameType, event: str, arg: Any) -> Any:
    if self.suspended:
      return None
    code = frame.f_code
    if (code in self.asides or code.co_name == '__del__') and usercode.kind_of_code(code) != usercode.TRUSTED:
      # A gc callback or a finalizer, run wherever the collector struck:
      # not part of the traced function, and not run by a compiled call.
      self.recorder.finalizer_runs(code)
      self.suspended += 1
      return self.aside
    if self.pending is not None and frame.f_back is self.pending:
      self.pending = None  # the callable was written in Python
    if usercode.watched(frame):
      self.recorder.enter(frame)
      facts = bytecode.facts(code)
      if facts.stores or facts.calls or facts.handles_exceptions:
        frame.f_trace_lines = False
        frame.f_trace_opcodes = True
        return self.opcode
      return None
    if calls.code_verdict(code) is not None:
      caller = frame.f_back
      if caller is not None and usercode.watched(caller):
        self.recorder.enter_library(code, caller)
    return None

  def aside(self, frame: types.FrameType, event: str, arg: Any) -> Any:
    if event == 'return':
      self.suspended -= 1
    return self.aside

  def opcode(self, frame: types.FrameType, event: str, arg: Any) -> Any:
    if self.suspended:
      return self.opcode
    if self.pending is frame and event in ('opcode', 'exception'):
      self.pending = None
      self.recorder.unseen_call(frame)
    if event == 'exception' and bytecode.facts(frame.f_code).handles_exceptions:
      self.recorder.meets_error(frame, arg[1])
    if event == 'opcode':
      facts = bytecode.facts(frame.f_code)
      offset = frame.f_lasti
      store = facts.stores.get(offset)
      if store is not None:
        self.recorder.store(frame, store)
      call = facts.calls.get(offset)
      if call is not None:
        fn, first = evaluate_call(frame, call)
        if fn is not None:
          self.recorder.call(frame, fn, first)
        elif _changing_method(call):
          self.recorder.unseen_method(frame, call.callable.name)
        elif call.callable is not bytecode.MADE and not _pure_object_method(call):
          self.pending = frame
    return self.opcode


def _pure_object_method(call: bytecode.Call) -> bool:
  """A method looked up on a value the bytecode cannot name, whose name only object's pure methods have
  (``super().__init__()``)."""
  target = call.callable
  return type(target) is bytecode.Method and target.name in allowlist.OBJECT_METHODS[0]


# Method names that change a built-in container in place.
_CHANGING_NAMES = frozenset().union(*(changes for _, changes in allowlist.CONTAINER_METHODS.values()))


def _changing_method(call: bytecode.Call) -> bool:
  """A method looked up on a value the bytecode cannot name, by a name that changes containers
  (``vars(obj).update(...)``): refused before it runs, since no later event could stop it."""
  target = call.callable
  return type(target) is bytecode.Method and target.base is None and target.name in _CHANGING_NAMES


def foreign() -> str | None:
  """The hook other than this runtime's that holds settrace or setprofile on this thread, or None."""
  hook = sys.gettrace()
  if hook is not None and not isinstance(getattr(hook, '__self__', None), _Hooks):
    return 'a sys.settrace hook (a debugger or coverage tool)'
  if sys.getprofile() is not None:
    return 'a sys.setprofile hook (a profiler)'
  return None


def start(recorder: Recorder) -> str | None:
  if sys.gettrace() is not None:
    return 'a debugger, profiler or coverage tool holds sys.settrace on this thread'
  sys.settrace(_Hooks(recorder).trace)
  return None


def stop(recorder: Recorder) -> None:
  del recorder
  # Only this runtime's own hook is removed, never one the program set.
  if isinstance(getattr(sys.gettrace(), '__self__', None), _Hooks):
    sys.settrace(None)
