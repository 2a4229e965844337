"""Fingerprints: hashable values that change whenever a Python value could make a trace differ.

A trace bakes in every Python value it reads. Two values get the same
fingerprint only if a trace reading either would compute the same thing:

- floats and complex numbers by their bits, so ``0.0`` and ``-0.0``, and
  NaNs with different payloads, differ; numbers by their type too, so
  ``1``, ``1.0`` and ``True`` differ;
- containers, user objects and dataclasses by their type and their whole
  state, walked deeply, so that a mutation anywhere inside shows;
- functions by their code, globals, defaults and what their closure cells
  hold, each closure its own (two closures of one code object with
  different cells differ however deeply nested), so that a lambda created
  anew on every call still finds its entry;
- classes, modules, jax arrays and objects of trusted libraries by
  identity; user classes also by what their namespace holds;
- numpy arrays by their bytes, up to a size.

What cannot be fingerprinted soundly (a tracer, a flax scope, a bound
module, a value too large to walk on every call) raises :class:`Unguardable`
with the reason, and the call then runs uncompiled.
"""

from __future__ import annotations

import argparse
import array
import collections
import collections.abc
import dataclasses
import enum
import fractions
import functools
import struct
import threading
import types
import weakref
from typing import Any

import jax
import numpy as np

from vjpify.runtime import internals
from vjpify.runtime.compiled import usercode

__all__ = ['Fingerprinter', 'Identity', 'Unguardable', 'fingerprint']

# How many objects one fingerprint may visit before the value counts as too
# large to check on every call.
DEFAULT_BUDGET = 20_000
# numpy arrays read by a trace are compared by their bytes, up to this size.
MAX_NUMPY_BYTES = 1 << 20
# Larger Python containers are refused at once rather than walked on every call.
MAX_CONTAINER_ITEMS = 10_000


class Unguardable(Exception):
  """A value that a trace would bake in but that cannot be checked before reuse."""


class Identity:
  """Stands for an object compared by identity; keeps it alive."""

  __slots__ = ('obj',)

  def __init__(self, obj: Any):
    self.obj = obj

  def __eq__(self, other: Any) -> bool:
    return type(other) is Identity and other.obj is self.obj

  def __hash__(self) -> int:
    return id(self.obj)

  def __repr__(self) -> str:
    return f'Identity({type(self.obj).__name__} at {id(self.obj):#x})'


_EXACT = frozenset({type(None), bool, int, str, bytes, type(Ellipsis), type(NotImplemented), range, slice})
_BY_IDENTITY = (types.ModuleType, types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType,
                types.MethodDescriptorType, types.GetSetDescriptorType, types.MemberDescriptorType, np.ufunc, enum.Enum,
                types.CodeType)
_MAPPINGS = (collections.abc.Mapping,)
_SEQUENCES = (list, tuple, collections.deque)
_SETS = (set, frozenset)
_MISSING = object()
_JITTED = type(jax.jit(lambda value: value))
# Library objects that only hold the user's data in their attributes: keyed
# by that state, not by identity. threading.local shows the calling thread's.
_DATA_HOLDERS = (types.SimpleNamespace, argparse.Namespace, threading.local)


def _float_bits(value: float) -> bytes:
  return struct.pack('<d', value)


def _is_user_type(kind: type) -> bool:
  return not usercode.is_trusted_module(getattr(kind, '__module__', None))


class Fingerprinter:
  """Fingerprints values, sharing one budget and one record of what was reached.

  Attributes:
    reached_codes: code objects of the functions reached, whose closures the
      fingerprints therefore cover.
    user_modules: user modules reached; fingerprinted by identity, their
      attributes are guarded separately, by the names the trace read.
  """

  def __init__(self, budget: int = DEFAULT_BUDGET, arrays: bool = True, places: dict | None = None):
    self.budget = budget
    # Where the scopes of the call's modules sit (root index and path), by
    # id: a module bound to one of them is keyed by its place, any other
    # bound module is refused.
    self.places = places or {}
    # Whether jax arrays are fingerprinted by identity (a global a helper
    # reads) or refused (a module field). While ``lifting`` is on (the
    # closure of fn), arrays are collected in ``lifted`` and stand in the
    # key by their abstract value: they become arguments of the compiled
    # function, never constants, so a new array of the same shape and dtype
    # on every call reuses the entry.
    self.arrays = arrays
    self.lifting = False
    self.lifted: list[jax.Array] = []
    self._lifted_ids: dict[int, int] = {}
    self.reached_codes: set[types.CodeType] = set()
    self.user_modules: dict[int, types.ModuleType] = {}
    self._path: dict[int, int] = {}
    self._classes: dict[int, Any] = {}

  def __call__(self, value: Any) -> Any:
    self.budget -= 1
    if self.budget < 0:
      raise Unguardable('a value too large to check before every call')
    kind = type(value)
    if kind in _EXACT:
      return kind, value
    if kind is float:
      return float, _float_bits(value)
    if kind is complex:
      return complex, _float_bits(value.real), _float_bits(value.imag)
    if isinstance(value, jax.core.Tracer):
      raise Unguardable(f'a {kind.__name__} (a value of another transformation)')
    if isinstance(value, np.generic):
      return kind, value.tobytes()
    if isinstance(value, (np.dtype, fractions.Fraction)):
      return kind, value
    if isinstance(value, jax.Array):
      if self.lifting:
        return self._lift(value)
      if not self.arrays:
        raise Unguardable(f'a jax array of shape {value.shape} in a module field')
      return Identity(value)  # immutable: the same object holds the same values
    if isinstance(value, np.ndarray):
      return self._numpy(value)
    if isinstance(value, types.ModuleType):
      if _is_user_module(value):
        self.user_modules[id(value)] = value
      return Identity(value)
    if isinstance(value, _BY_IDENTITY):
      return Identity(value)
    if isinstance(value, type):
      return self._class(value)
    return self._nested(kind, value)

  def _lift(self, array: jax.Array) -> Any:
    index = self._lifted_ids.get(id(array))
    if index is None:
      index = self._lifted_ids[id(array)] = len(self.lifted)
      self.lifted.append(array)
    return 'lifted', index, array.shape, array.dtype, bool(getattr(array, 'weak_type', False))

  def _nested(self, kind: type, value: Any) -> Any:
    key = id(value)
    depth = self._path.get(key)
    if depth is not None:
      return 'cycle', len(self._path) - depth
    self._path[key] = len(self._path)
    try:
      return self._composite(kind, value)
    finally:
      del self._path[key]

  def _composite(self, kind: type, value: Any) -> Any:
    if isinstance(value, internals.Module):
      return self._module(value)
    if isinstance(value, (internals.Scope, internals.Variable)):
      raise Unguardable(f'a flax {kind.__name__}')
    if isinstance(value, types.FunctionType):
      return self._function(value)
    if isinstance(value, types.MethodType):
      return 'method', self(value.__func__), self(value.__self__)
    if isinstance(value, (staticmethod, classmethod)):
      return kind, self(value.__func__)
    if isinstance(value, property):
      return kind, self(value.fget), self(value.fset), self(value.fdel)
    if isinstance(value, functools.partial):
      return kind, self(value.func), self(value.args), self(value.keywords), self._attributes(value)
    if isinstance(value, weakref.ref):
      return kind, self(value())
    if isinstance(value, (weakref.ProxyType, weakref.CallableProxyType)):
      raise Unguardable('a weakref.proxy (what it reads through its referent cannot be checked before each call)')
    if isinstance(value, bytearray):
      return kind, bytes(value)
    if isinstance(value, array.array):
      return kind, value.typecode, value.tobytes()
    if isinstance(value, memoryview):
      raise Unguardable('a memoryview (the buffer it shows can change under it)')
    if isinstance(value, (_SEQUENCES, _MAPPINGS, _SETS)) or dataclasses.is_dataclass(value):
      return self._container(kind, value)
    if _is_user_type(kind) or isinstance(value, _DATA_HOLDERS):
      return self._object(kind, value)
    wrapped = _wrapped_callables(value)
    if wrapped is not None:
      parts = tuple(self(item) for item in wrapped)
      if kind is _JITTED and all(type(part) is Identity for part in parts):
        # jax.jit calls the function it was made with, whatever its attributes
        # say later: the same object, around a library function, does the same.
        return Identity(value)
      return Identity(value), parts
    return Identity(value)

  def _container(self, kind: type, value: Any) -> Any:
    if isinstance(value, (_SEQUENCES, _MAPPINGS, _SETS)) and len(value) > MAX_CONTAINER_ITEMS:
      raise Unguardable(f'a {kind.__name__} of {len(value)} items (at most {MAX_CONTAINER_ITEMS} are checked '
                        'before every call)')
    parts: list[Any] = [self._class(kind) if _is_user_type(kind) else kind]
    if isinstance(value, _MAPPINGS):
      parts.append(tuple((self(k), self(v)) for k, v in value.items()))
      factory = getattr(value, 'default_factory', _MISSING)
      if factory is not _MISSING:
        parts.append(self(factory))
    elif isinstance(value, _SEQUENCES):
      parts.append(tuple(self(item) for item in value))
      parts.append(getattr(value, 'maxlen', None))
    elif isinstance(value, _SETS):
      parts.append(frozenset(self(item) for item in value))
    if dataclasses.is_dataclass(value) or _is_user_type(kind):
      parts.append(self._attributes(value))
    return tuple(parts)

  def _object(self, kind: type, value: Any) -> Any:
    attributes = self._attributes(value)
    if not attributes and not isinstance(getattr(value, '__dict__', None), dict):
      # An extension type keeps its state where no walk can see it.
      return self._class(kind), Identity(value)
    return self._class(kind), attributes

  def _attributes(self, value: Any) -> Any:
    state = getattr(value, '__dict__', None)
    fields = [] if not isinstance(state, dict) else [(name, self(item)) for name, item in state.items()]
    for slot_owner in type(value).__mro__:
      for slot in getattr(slot_owner, '__slots__', ()) if slot_owner.__dict__.get('__slots__') else ():
        if slot not in ('__dict__', '__weakref__'):
          fields.append((slot, self(getattr(value, slot, _MISSING))))
    return tuple(fields)

  def _function(self, fn: types.FunctionType) -> Any:
    code = fn.__code__
    if not (usercode.is_user_code(code) or usercode.is_followed_library(code)):
      # A library's wrapper (functools.wraps, flax's method wrappers) around
      # a user function: the wrapper by identity, the user function inside.
      wrapped = fn.__dict__.get('__wrapped__', _MISSING)
      return Identity(fn) if wrapped is _MISSING else ('wrapper', Identity(fn), self(wrapped))
    self.reached_codes.add(code)
    cells = []
    for cell in fn.__closure__ or ():
      try:
        cells.append(self(cell.cell_contents))
      except ValueError:  # a name the enclosing function assigns later
        cells.append('empty cell')
    return (
        'function',
        Identity(code),
        Identity(fn.__globals__),
        self(fn.__defaults__),
        self(fn.__kwdefaults__),
        tuple(cells),
        tuple((name, self(item)) for name, item in fn.__dict__.items()),
    )

  def _class(self, cls: type) -> Any:
    if not _is_user_type(cls):
      return Identity(cls)
    known = self._classes.get(id(cls))
    if known is not None:
      return known
    self._classes[id(cls)] = ('class', Identity(cls))  # for classes reached from their own namespace
    namespaces = []
    skipped = _MODULE_MACHINERY if issubclass(cls, internals.Module) else _CLASS_MACHINERY
    for owner in cls.__mro__:
      if _is_user_type(owner):
        namespaces.append(tuple(
            (name, self(item)) for name, item in vars(owner).items()
            if name not in skipped and not _generated(item)
        ))
    # A metaclass of the user's holds attributes its classes answer with.
    meta = type(cls)
    metaclass = self._class(meta) if _is_user_type(meta) else None
    registration = internals.pytree_registration(cls)
    result = self._classes[id(cls)] = ('class', Identity(cls), tuple(namespaces), metaclass,
                                       None if registration is None else Identity(registration))
    return result

  def _module(self, module: internals.Module) -> Any:
    if module.scope is not None:
      place = self.places.get(id(module.scope))
      if place is None:
        raise Unguardable(f'a bound {type(module).__name__} that is not one of the modules fn is given '
                          '(a closure over self, or a module from outside)')
      return ('bound', place) + self.module(module)
    return self.module(module)

  def module(self, module: internals.Module) -> Any:
    """A module by its type and fields; its field modules bound to the call's scopes by their place."""
    return self._class(type(module)), tuple(
        (field.name, self(getattr(module, field.name)))
        for field in dataclasses.fields(module)
        if field.init and field.name != 'parent'
    )

  def _numpy(self, array: np.ndarray) -> Any:
    if array.nbytes > MAX_NUMPY_BYTES:
      raise Unguardable(f'a numpy array of {array.nbytes} bytes (at most {MAX_NUMPY_BYTES} are compared per call)')
    if array.dtype.hasobject:
      return np.ndarray, array.shape, tuple(self(item) for item in array.ravel().tolist())
    return np.ndarray, array.dtype, array.shape, np.ascontiguousarray(array).tobytes()


# Entries of a class namespace that every class has and that no trace reads
# as values: the class is keyed by identity besides.
_CLASS_MACHINERY = frozenset({'__dict__', '__weakref__', '__doc__', '__module__', '__qualname__', '__annotations__',
                              '__firstlineno__', '__static_attributes__', '__orig_bases__', '__parameters__',
                              '__slotnames__', '__abstractmethods__', '_abc_impl', '__dataclass_fields__',
                              '__dataclass_params__', '__match_args__'})
# What flax puts in every Module subclass: class-level defaults of the
# fields every instance sets for itself, and flax's bookkeeping.
_MODULE_MACHINERY = _CLASS_MACHINERY | {'_state', 'parent', 'name', 'scope', '_parent_ref',
                                        '_compact_name_scope_methods', '_id'}


def _generated(item: Any) -> bool:
  """Whether ``item`` is a method that dataclasses generated (its fields are keyed on the instance)."""
  # flax wraps the generated __init__ and __hash__ of a Module.
  code = getattr(getattr(item, '__wrapped__', item), '__code__', None)
  return code is not None and code.co_filename.startswith('<') and code.co_name in _GENERATED_METHODS


_GENERATED_METHODS = frozenset({'__init__', '__eq__', '__hash__', '__repr__', '__setattr__', '__delattr__',
                                '__getstate__', '__setstate__', '__lt__', '__le__', '__gt__', '__ge__'})


def _is_user_module(module: types.ModuleType) -> bool:
  return not usercode.is_trusted_module(getattr(module, '__name__', None))


def _wrapped_callables(value: Any) -> tuple | None:
  """The user functions inside a library wrapper (jax.jit, custom_vjp, lru_cache, ...), or None."""
  if not callable(value):
    return None
  parts = []
  for attribute in ('__wrapped__', 'fun', 'jvp', 'fwd', 'bwd', 'nondiff_argnums'):
    inner = getattr(value, attribute, _MISSING) if attribute in _slots_or_dict(value) else _MISSING
    if inner is not _MISSING:
      parts.append(inner)
  cache_info = getattr(value, 'cache_info', None)
  if callable(cache_info) and hasattr(value, 'cache_clear'):
    info = cache_info()
    # A cleared cache recomputes with whatever its function reads now. Only
    # caches that count as functools' do (not vjpify's own ``compiled``).
    if hasattr(info, 'currsize') and hasattr(info, 'misses'):
      parts.append((info.currsize, info.misses))
  return tuple(parts) if parts else None


def _slots_or_dict(value: Any) -> Any:
  state = getattr(value, '__dict__', None)
  names = set(state) if isinstance(state, dict) else set()
  for owner in type(value).__mro__:
    names.update(getattr(owner, '__slots__', ()) or ())
  return names


def fingerprint(value: Any, budget: int = DEFAULT_BUDGET) -> Any:
  """The fingerprint of one value, with its own budget."""
  return Fingerprinter(budget)(value)
