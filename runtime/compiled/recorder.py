"""What one trace did in Python: the user code that ran, what it read, and whether it did anything observable.

The monitor (``monitor.py``) reports to a :class:`Recorder` while
``jax.jit`` traces the wrapped function: every user frame that starts or
resumes, every call a user frame makes, every store that may reach state
outliving the call. An observable effect stops the trace at once, before it
happens, by raising :class:`EffectFound` (a ``BaseException``, so that user
code catching ``Exception`` does not swallow it); the call then runs
uncompiled and the effect happens exactly once, as in the original program.

At the end, :meth:`Recorder.guards` turns what was read into guards: the
global names loaded by every user function that ran, and the attributes of
user modules by the names those functions mention.
"""

from __future__ import annotations

import collections
import collections.abc
import functools
import threading
import types
from typing import Any

from vjpify.runtime import internals
from vjpify.runtime.compiled import allowlist, bytecode, calls, usercode, values
from vjpify.runtime.compiled.fingerprint import Fingerprinter, Unguardable
from vjpify.runtime.compiled.guards import GlobalGuard, builtins_of

__all__ = ['EffectFound', 'Recorder']

# How many objects the search for state that outlives the call may visit;
# past it every object counts as outliving.
_REACH_BUDGET = 200_000
_UNKNOWN = values.UNKNOWN


class EffectFound(BaseException):
  """Raised inside a trace, before an observable effect would happen."""


# The in-place method an augmented assignment calls, by operator (Python
# 3.11 and later name them by symbol, 3.10 by opcode).
_INPLACE_METHODS = {
    '+=': 'add', '-=': 'sub', '*=': 'mul', '/=': 'truediv', '//=': 'floordiv', '%=': 'mod', '**=': 'pow',
    '<<=': 'lshift', '>>=': 'rshift', '&=': 'and', '|=': 'or', '^=': 'xor', '@=': 'matmul', 'add': 'add',
    'subtract': 'sub', 'multiply': 'mul', 'true_divide': 'truediv', 'floor_divide': 'floordiv', 'modulo': 'mod',
    'power': 'pow', 'lshift': 'lshift', 'rshift': 'rshift', 'and': 'and', 'or': 'or', 'xor': 'xor',
    'matrix_multiply': 'matmul',
}


def where(frame: types.FrameType) -> str:
  code = frame.f_code
  name = getattr(code, 'co_qualname', code.co_name)
  return f'{code.co_filename}:{frame.f_lineno} in {name}'


class Recorder:
  """Collects what the user code run by one trace read and did."""

  def __init__(self, roots: list[Any]):
    self.thread = threading.get_ident()
    self.effect: str | None = None
    # Stores whose target could not be followed; the state is compared after the trace.
    self.unverified: list[str] = []
    self._namespaces: dict[types.CodeType, dict[int, dict]] = {}
    self._pending: list[Any] = list(roots)
    self._reached: set[int] = set()
    self._generator_frames: set[int] = set()
    self._budget = _REACH_BUDGET
    # Whether user code asked a question that ABC registries answer
    # (isinstance, issubclass): the entry is then guarded by their version.
    self.reads_registries = False
    # A finalizer or gc callback that ran while the trace did: its effects
    # happened during the trace, and would not on a compiled call.
    self.finalized: str | None = None

  # Events from the monitor.
  # ---------------------------------------------------------------------------

  def enter(self, frame: types.FrameType) -> None:
    """A user frame starts, or a user generator resumes."""
    self._raise_if_failed()
    code = frame.f_code
    facts = bytecode.facts(code)
    if facts.is_generator and self._outlives_generator(frame):
      self.fail('resumes a generator that outlives the call', frame)
    namespaces = self._namespaces.setdefault(code, {})
    if id(frame.f_globals) not in namespaces:
      namespaces[id(frame.f_globals)] = frame.f_globals
      builtins = builtins_of(frame.f_globals)
      for name in facts.global_names:
        value = frame.f_globals.get(name, _UNKNOWN)
        if value is _UNKNOWN:
          value = builtins.get(name, _UNKNOWN)
        if value is not _UNKNOWN:
          self._pending.append(value)
    if code.co_freevars:
      values = frame.f_locals
      self._pending.extend(values[name] for name in code.co_freevars if name in values)

  def call(self, frame: types.FrameType, fn: Any, first: Any) -> None:
    """A user frame is about to call ``fn`` (``first``: its first argument, if known)."""
    self._raise_if_failed()
    verdict = calls.verdict(fn, first, self.outlives)
    if verdict is None:
      verdict = calls.keyword_verdict(fn, bytecode.facts(frame.f_code).keywords.get(frame.f_lasti, ()))
    if verdict is not None:
      self.fail(verdict, frame)
    if not self.reads_registries and calls.reads_registries(fn):
      self.reads_registries = True

  def unseen_method(self, frame: types.FrameType, name: str) -> None:
    """A user frame calls a method that changes containers on an object the bytecode cannot name."""
    self.fail(f'calls .{name}() on an object it cannot see (a method that changes containers in place)', frame)

  def unseen_call(self, frame: types.FrameType) -> None:
    """A user frame called something in C that the monitor could not see before it ran (Python 3.10, 3.11)."""
    self.fail('calls a C function through a computed value (it ran before it could be checked against the '
              'allow-list)', frame)

  def finalizer_runs(self, code: types.CodeType) -> None:
    """A finalizer or gc callback starts while the trace runs."""
    if self.finalized is None and not calls.times_collections(code):
      name = getattr(code, 'co_qualname', code.co_name)
      self.finalized = (f'a finalizer or gc callback ({name} at {code.co_filename}:{code.co_firstlineno}) ran during '
                        'the trace; a compiled call would not run it')

  def meets_error(self, frame: types.FrameType, error: BaseException) -> None:
    """An error reaches a user frame that may catch it."""
    if self.effect is None:
      verdict = calls.caught_tracer_error(error)
      if verdict is not None:
        self.fail(verdict, frame)

  def enter_library(self, code: types.CodeType, caller: types.FrameType) -> None:
    """A user frame enters library function ``code`` (found impure by the monitor)."""
    self._raise_if_failed()
    verdict = calls.code_verdict(code)
    if verdict is not None:
      self.fail(verdict, caller)

  def store(self, frame: types.FrameType, store: bytecode.Store) -> None:
    """A user frame is about to run ``store``."""
    self._raise_if_failed()
    if store.kind == 'global':
      self.fail(f'assigns the global {store.name}', frame)
    if store.kind == 'nonlocal':
      self.fail(f'assigns the nonlocal {store.name}', frame)
    if store.kind == 'import':
      if not usercode.is_trusted_module(store.name):
        self.fail(f'imports {store.name or "a module"} (what fn reads from a module it imports cannot be guarded)',
                  frame)
      return
    target = _UNKNOWN if store.target is None else values.evaluate(frame, store.target)
    if store.kind in ('inplace', 'with'):
      if target is not _UNKNOWN:
        self._check_special(frame, store, target)
      return
    if target is _UNKNOWN:
      # A loop over what a call returned (range(n), zip(...)) iterates over
      # something new; only stores are compared after the trace.
      if store.kind != 'iter':
        self.unverified.append(where(frame))
      return
    if isinstance(target, internals.Module):
      return  # flax itself decides which module attributes may be set, and when
    if store.kind == 'iter':
      if values.is_iterator(target) and self.outlives(target):
        self.fail(f'advances a {type(target).__name__} that outlives the call', frame)
    elif self.outlives(target):
      what = f'sets the attribute {store.name} of' if store.kind == 'attr' else 'sets an item of'
      self.fail(f'{what} a {type(target).__name__} that outlives the call', frame)

  def _check_special(self, frame: types.FrameType, store: bytecode.Store, target: Any) -> None:
    """An augmented assignment or a with statement, whose C method no call event shows."""
    kind = type(target)
    if isinstance(target, allowlist.IMMUTABLE_TYPES) or isinstance(target, internals.Module):
      return
    if store.kind == 'with':
      enter = getattr(kind, '__enter__', None)
      if isinstance(enter, types.FunctionType) or usercode.is_trusted_module(kind.__module__) and (
          kind.__module__.partition('.')[0] in allowlist.TRUSTED_PACKAGES):
        return  # watched where it runs, or a trusted package's
      self.fail(f'enters a {kind.__name__} (a context manager written in C, {calls.NOT_LISTED})', frame)
    method = getattr(kind, f'__i{_INPLACE_METHODS.get(store.name, "")}__', None)
    if method is None or isinstance(method, types.FunctionType):
      return  # a new object, or a method written in Python, watched where it runs
    if self.outlives(target):
      self.fail(f'changes a {kind.__name__} that outlives the call in place ({store.name})', frame)

  def fail(self, reason: str, frame: types.FrameType | None) -> None:
    self.effect = reason if frame is None else f'{reason} at {where(frame)}'
    raise EffectFound(self.effect)

  def _raise_if_failed(self) -> None:
    # User code that catches BaseException goes on after an effect was
    # found; every later event stops it again.
    if self.effect is not None:
      raise EffectFound(self.effect)

  # State that outlives the call.
  # ---------------------------------------------------------------------------

  def outlives(self, obj: Any) -> bool:
    """Whether ``obj`` is reachable from what the trace read (globals, closures, fields)."""
    if id(obj) in self._reached:
      return True
    self._reach()
    return self._budget < 0 or id(obj) in self._reached

  def _outlives_generator(self, frame: types.FrameType) -> bool:
    self._reach()
    return self._budget < 0 or id(frame) in self._generator_frames

  def _reach(self) -> None:
    stack, self._pending = self._pending, []
    reached = self._reached
    while stack and self._budget >= 0:
      value = stack.pop()
      if id(value) in reached:
        continue
      reached.add(id(value))
      self._budget -= 1
      stack.extend(_references(value, self._generator_frames))

  # Guards.
  # ---------------------------------------------------------------------------

  def ran(self) -> dict[types.CodeType, dict[int, dict]]:
    return self._namespaces

  def guards(self, covered_codes: set[types.CodeType], user_modules: dict[int, types.ModuleType]) -> list[GlobalGuard]:
    """Guards on every global the user code read; raises Unguardable for closures nothing covers.

    Args:
      covered_codes: code objects whose closures the entry's key or its
        guards fingerprint (updated here with the closures the guards reach).
      user_modules: user modules reached by fingerprints (updated likewise).
    """
    guards = []
    names: set[str] = set()
    fingerprinter = Fingerprinter()
    for code, namespaces in self._namespaces.items():
      facts = bytecode.facts(code)
      if '__dict__' in facts.names:
        # An object's namespace read as a dict: which entries matter is data.
        raise Unguardable(f'{getattr(code, "co_qualname", code.co_name)} ({code.co_filename}:{code.co_firstlineno}) '
                          'reads a __dict__ (values read through a namespace cannot be guarded)')
      names |= facts.names
      for namespace in namespaces.values():
        owner = namespace.get('__name__') or code.co_filename
        builtins = builtins_of(namespace)
        for name in facts.global_names:
          fingerprinter.budget = Fingerprinter().budget
          guards.append(GlobalGuard(namespace, name, owner, fingerprinter, builtins))
        guards.extend(_module_attribute_guards(namespace, facts.attribute_chains, fingerprinter))
    covered_codes |= fingerprinter.reached_codes
    user_modules.update(fingerprinter.user_modules)
    created_here = _nested_codes(self._namespaces)
    for code in self._namespaces:
      if code.co_freevars and code not in covered_codes and code not in created_here:
        raise Unguardable(
            f'the closure of {getattr(code, "co_qualname", code.co_name)} ({code.co_filename}:'
            f'{code.co_firstlineno}) ran but is not reachable from the function or its module'
        )
    for module in list(user_modules.values()):
      for name in sorted(names & module.__dict__.keys()):
        fingerprinter.budget = Fingerprinter().budget
        guards.append(GlobalGuard(module.__dict__, name, module.__name__, fingerprinter))
    return guards


def _module_attribute_guards(namespace: dict, chains: tuple, fingerprinter: Fingerprinter) -> list[GlobalGuard]:
  """Guards on the attributes of modules that ``chains`` read: ``jnp.tanh`` is the attribute tanh of jax.numpy."""
  guards = []
  for global_name, *names in chains:
    value = namespace.get(global_name)
    for name in names:
      if not isinstance(value, types.ModuleType):
        break
      fingerprinter.budget = Fingerprinter().budget
      guards.append(GlobalGuard(value.__dict__, name, value.__name__, fingerprinter))
      value = value.__dict__.get(name)
  return guards


def _nested_codes(namespaces: dict) -> set[types.CodeType]:
  nested = set()
  stack = list(namespaces)
  while stack:
    for const in stack.pop().co_consts:
      if isinstance(const, types.CodeType) and const not in nested:
        nested.add(const)
        stack.append(const)
  return nested


def _references(value: Any, generator_frames: set[int]) -> list[Any]:
  """The objects ``value`` holds that user code could reach and change."""
  if isinstance(value, (str, bytes, int, float, complex, bool, type(None))):
    return []
  if isinstance(value, dict):
    return [*value.keys(), *value.values()]
  if isinstance(value, (list, tuple, set, frozenset)):
    return list(value)
  if isinstance(value, types.GeneratorType):
    if value.gi_frame is not None:
      generator_frames.add(id(value.gi_frame))
    return []
  if isinstance(value, types.FunctionType):
    cells = []
    for cell in value.__closure__ or ():
      try:
        cells.append(cell.cell_contents)
      except ValueError:
        pass
    return [*cells, value.__defaults__, value.__kwdefaults__, value.__dict__]
  if isinstance(value, types.MethodType):
    return [value.__func__, value.__self__]
  if isinstance(value, (types.BuiltinMethodType, types.MethodWrapperType)):
    # A C method bound to its object (``log = TERMS.append``) holds that object.
    bound = value.__self__
    return [] if bound is None or isinstance(bound, types.ModuleType) else [bound]
  if isinstance(value, functools.partial):
    return [value.func, value.args, value.keywords]
  if isinstance(value, internals.Module):
    return [getattr(value, name, None) for name in getattr(value, '__dataclass_fields__', {}) if name != 'parent']
  if isinstance(value, types.ModuleType):
    return list(vars(value).values()) if not usercode.is_trusted_module(value.__name__) else []
  kind = type(value)
  if isinstance(value, type):
    return list(vars(value).values()) if not usercode.is_trusted_module(value.__module__) else []
  if usercode.is_trusted_module(kind.__module__) and not isinstance(value, (types.SimpleNamespace, threading.local)):
    # Library containers (deque, FrozenDict ...) are walked; other library
    # objects are leaves.
    if isinstance(value, collections.abc.Mapping):
      return [*value.keys(), *value.values()]
    return list(value) if isinstance(value, collections.deque) else []
  state = values.instance_dict(value)
  # The namespace itself, which code can reach as obj.__dict__ or vars(obj).
  return [kind] if state is None else [state, kind]
