"""Objects a frame names, found without running user code.

The monitor checks a call or a store before it runs, so the objects it
looks at (the callable, its first argument, the target of a store) must be
found without running anything the program wrote: only plain loads, the
attributes that C descriptors and instance dictionaries hold, and items of
plain containers under plain keys. Anything else is :data:`UNKNOWN`.
"""

from __future__ import annotations

import types
from typing import Any

from vjpify.runtime.compiled import bytecode, calls
from vjpify.runtime.compiled.guards import builtins_of

__all__ = ['UNKNOWN', 'evaluate', 'evaluate_call', 'instance_dict', 'is_iterator']

UNKNOWN = object()
_UNKNOWN = UNKNOWN


def instance_dict(value: Any) -> dict | None:
  try:
    state = object.__getattribute__(value, '__dict__')
  except (AttributeError, TypeError):
    return None
  return state if isinstance(state, dict) else None


def evaluate(frame: types.FrameType, source: bytecode.Source) -> Any:
  """The object ``source`` names in ``frame`` now, found without running user code; or _UNKNOWN."""
  if type(source) is bytecode.Const:
    return source.value
  if source.root == 'made':
    return _UNKNOWN
  if source.root == 'global':
    value = frame.f_globals.get(source.name, _UNKNOWN)
    if value is _UNKNOWN:
      value = builtins_of(frame.f_globals).get(source.name, _UNKNOWN)
  else:
    value = frame.f_locals.get(source.name, _UNKNOWN)
  for name in source.attrs:
    if value is _UNKNOWN:
      break
    value = _static_item(frame, value, name.key) if type(name) is bytecode.Item else _static_attribute(value, name)
  return value


# Containers whose __getitem__ runs no user code, with keys whose hash and
# comparison run none either.
_PLAIN_CONTAINERS = (dict, list, tuple)
_PLAIN_KEYS = (str, int)


def _static_item(frame: types.FrameType, container: Any, key: Any) -> Any:
  """``container[key]`` where that runs no user code, else _UNKNOWN."""
  key = key.value if type(key) is bytecode.Const else evaluate(frame, key)
  if type(container) not in _PLAIN_CONTAINERS or type(key) not in _PLAIN_KEYS:
    return _UNKNOWN
  try:
    return container[key]
  except (KeyError, IndexError, TypeError):
    return _UNKNOWN


def _binds_safely(descriptor: Any) -> bool:
  """Whether ``descriptor.__get__`` runs no user code: functions and methods, in C or Python.

  A descriptor class written in Python runs its own ``__get__``; a property
  runs its getter.
  """
  if isinstance(descriptor, (types.FunctionType, classmethod, staticmethod)):
    return True
  if isinstance(descriptor, property):
    return False
  getter = getattr(type(descriptor), '__get__', None)
  return getter is not None and not isinstance(getter, types.FunctionType)


def _static_attribute(obj: Any, name: str) -> Any:
  """``getattr(obj, name)`` where that runs no user code, else _UNKNOWN."""
  if isinstance(obj, type):
    for owner in obj.__mro__:
      if name in vars(owner):
        found = vars(owner)[name]
        if _binds_safely(found):
          return found.__get__(None, obj)
        return found if not hasattr(type(found), '__get__') else _UNKNOWN
    return _UNKNOWN
  found = _UNKNOWN
  for owner in type(obj).__mro__:
    if name in vars(owner):
      found = vars(owner)[name]
      break
  descriptor = type(found)
  if found is not _UNKNOWN and (hasattr(descriptor, '__set__') or hasattr(descriptor, '__delete__')):
    if isinstance(found, (types.MemberDescriptorType, types.GetSetDescriptorType)):
      try:
        return found.__get__(obj, type(obj))
      except AttributeError:  # an empty slot
        return _UNKNOWN
    return _UNKNOWN  # a property or another data descriptor: its code would run
  state = instance_dict(obj)
  if state is not None and name in state:
    return state[name]
  if found is _UNKNOWN:
    return _UNKNOWN
  if _binds_safely(found):
    return found.__get__(obj, type(obj))
  return found if not hasattr(descriptor, '__get__') else _UNKNOWN


def evaluate_call(frame: types.FrameType, call: bytecode.Call) -> tuple[Any, Any]:
  """The callable and first argument of ``call`` as they are in ``frame`` now: (None, ...) when unknown."""
  target = call.callable
  if type(target) is bytecode.Method:
    base = _UNKNOWN if target.base is None else evaluate(frame, target.base)
    fn = _UNKNOWN if base is _UNKNOWN else _static_attribute(base, target.name)
  elif type(target) is bytecode.Source:
    fn = evaluate(frame, target)
  else:
    fn = _UNKNOWN
  if type(call.first) is bytecode.Const:
    first = call.first.value
  else:
    first = evaluate(frame, call.first) if type(call.first) is bytecode.Source else _UNKNOWN
  return (None if fn is _UNKNOWN else fn), (calls.UNKNOWN_ARGUMENT if first is _UNKNOWN else first)


def is_iterator(value: Any) -> bool:
  kind = type(value)
  return any('__next__' in vars(owner) for owner in kind.__mro__) and not isinstance(value, (list, tuple, dict))
