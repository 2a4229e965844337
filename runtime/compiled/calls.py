"""Whether a call that user code makes during a trace is on the allow-list.

The monitor asks :func:`verdict` about every call a watched frame makes,
before the call runs. Python functions of user code (and of the standard
library, which is followed like user code) are allowed: the monitor watches
them where they run. Everything else is looked up in the tables of
``allowlist``; a callable that none of them allows is refused, with the
reason that ``explain()`` shows. :func:`code_verdict` answers the same for a
trusted package's function entered without a call the monitor saw (through
a descriptor, or from C).
"""

from __future__ import annotations

import builtins
import io
import sys
import types
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from vjpify.runtime.compiled import allowlist, codecache, usercode

__all__ = ['NOT_LISTED', 'UNKNOWN_ARGUMENT', 'caught_tracer_error', 'code_verdict', 'keyword_verdict', 'reads_registries',
           'verdict']

# Stands for an argument the monitor cannot see (Python before 3.12).
UNKNOWN_ARGUMENT = object()
NOT_LISTED = 'which is not on the allow-list'
_REGISTRY_FUNCTIONS = (builtins.isinstance, builtins.issubclass)
_PRIVATE_WHEN_CREATED = (io.StringIO, io.BytesIO)
_WEAK_REFERENCES = (weakref.ref, weakref.ProxyType, weakref.CallableProxyType)
Outlives = Callable[[Any], bool]


def reads_registries(fn: Any) -> bool:
  """Whether ``fn``'s answer depends on ABC registries (the entry is then guarded by their version)."""
  return any(fn is registry for registry in _REGISTRY_FUNCTIONS)


def _top(module: str | None) -> str:
  return (module or '').partition('.')[0]


def _in_trusted_package(module: str | None) -> bool:
  return _top(module) in allowlist.TRUSTED_PACKAGES


def _trusted_exception(module: str | None, name: str) -> bool:
  """Whether ``module.name`` is one of the trusted packages' listed exceptions."""
  parts = (module or '').split('.')
  for length in range(len(parts), 0, -1):
    names = allowlist.TRUSTED_EXCEPTIONS.get('.'.join(parts[:length]), ())
    if names is None or name in names:
      return True
  return False


def _describe(fn: Any) -> str:
  name = getattr(fn, '__qualname__', None) or getattr(fn, '__name__', None) or type(fn).__name__
  module = getattr(fn, '__module__', None)
  if module in (None, 'builtins'):
    return f'{name}()'
  return f'{module.strip("_")}.{name}()'


def _changes_argument(what: str, target: Any, outlives: Outlives) -> str | None:
  if target is UNKNOWN_ARGUMENT:
    return f'calls {what} on an object it cannot see'
  if outlives(target):
    return f'calls {what} on a {type(target).__name__} that outlives the call'
  return None


def _mutator(fn: Any, name: str, first: Any, outlives: Outlives) -> str | None:
  position = allowlist.ARGUMENT_MUTATORS.get(name)
  if position is None:
    return None
  return _changes_argument(_describe(fn), first, outlives) or ''


def _callable_argument(first: Any, outlives: Outlives) -> str | None:
  """The verdict on a callable that C code will call: allowed only if calling it directly would be."""
  if first is UNKNOWN_ARGUMENT or not callable(first):
    return None
  inner = verdict(first, UNKNOWN_ARGUMENT, outlives)
  return None if inner is None else f'{inner} (passed to be called from C code)'


def verdict(fn: Any, first: Any, outlives: Outlives) -> str | None:
  """Why calling ``fn`` from user code must not run in a cached trace, or None when it may.

  Note that of the arguments only the first is seen: a C function that
  consumes an iterator or calls a callable given later (``map(f, it)``,
  ``sorted(xs, key=k)``) is judged by its first argument alone.

  Args:
    fn: the callable about to be called.
    first: its first argument (``self`` for a method looked up on an object),
      or ``UNKNOWN_ARGUMENT``.
    outlives: whether an object existed before the trace and is reachable
      after it (a global, a closure cell, a module field...).
  """
  found = _verdict(fn, first, outlives)
  if found is None and first is not UNKNOWN_ARGUMENT and _consumes(fn) and _is_iterator(first) and outlives(first):
    return (f'calls {_describe(fn)} on a {type(first).__name__} that outlives the call (it advances the '
            'iterator)')
  return found


def keyword_verdict(fn: Any, keywords: tuple[str, ...]) -> str | None:
  """Why passing ``keywords`` to ``fn`` must not run in a cached trace (``out=`` writes into an array), or None."""
  for keyword in keywords:
    if keyword in allowlist.WRITING_KEYWORDS and not isinstance(fn, (types.FunctionType, types.MethodType)):
      return f'calls {_describe(fn)} with {keyword}= (it writes into an object it is given)'
  return None


def _consumes(fn: Any) -> bool:
  if isinstance(fn, (types.FunctionType, types.MethodType)):
    return False  # Python code: its own loops and next() calls are watched
  return getattr(fn, '__name__', None) in allowlist.ITERATOR_CONSUMERS


def _is_iterator(value: Any) -> bool:
  return hasattr(type(value), '__next__')


def _verdict(fn: Any, first: Any, outlives: Outlives) -> str | None:
  if isinstance(fn, types.FunctionType):
    return _python_function(fn, first, outlives)
  if isinstance(fn, types.MethodType):
    if isinstance(fn.__func__, types.FunctionType):
      return _python_function(fn.__func__, fn.__self__, outlives)
    return verdict(fn.__func__, fn.__self__, outlives)
  if isinstance(fn, type):
    return _constructor(fn, first, outlives)
  if isinstance(fn, types.BuiltinFunctionType):
    bound = fn.__self__
    if bound is None or isinstance(bound, types.ModuleType):
      return _c_function(fn, first, outlives)
    return _c_method(bound, fn.__name__, first, outlives)
  if isinstance(fn, types.MethodWrapperType):
    return _c_method(fn.__self__, fn.__name__, first, outlives)
  if isinstance(fn, (types.MethodDescriptorType, types.WrapperDescriptorType, types.ClassMethodDescriptorType)):
    # list.append(xs, x): the object is the first argument.
    return _c_method(first, fn.__name__, UNKNOWN_ARGUMENT, outlives, owner=fn.__objclass__)
  return _callable_object(fn, first, outlives)


@codecache.cached
def code_verdict(code: types.CodeType) -> str | None:
  """Why a trusted package's function ``code`` must not run in a cached trace, or None."""
  if usercode.is_user_code(code):
    return None
  module = usercode.module_of_code(code)
  if module is not None and _in_trusted_package(module) and _trusted_exception(module, code.co_name):
    return f'calls {module}.{code.co_name}()'
  return None


def times_collections(code: types.CodeType) -> bool:
  """Whether ``code`` is a garbage-collector callback that only times collections."""
  filename = code.co_filename.replace('\\', '/')
  return any(filename.endswith(path) and code.co_name == name for path, name in allowlist.TIMING_GC_CALLBACKS)


def _python_function(fn: types.FunctionType, first: Any, outlives: Outlives) -> str | None:
  code = fn.__code__
  state = allowlist.PROCESS_STATE_TYPES.get(type(first)) if first is not UNKNOWN_ARGUMENT else None
  if state is not None:
    return f'calls {type(first).__name__}.{fn.__name__}() (reads {state})'
  if usercode.is_user_code(code) or usercode.is_followed_library(code):
    return None  # watched where it runs
  found = code_verdict(code)
  if found is not None:
    return found
  mutated = _mutator(fn, fn.__name__, first, outlives)
  if mutated:
    return mutated
  if fn.__name__ in allowlist.TRUSTED_HIGHER_ORDER:
    return _callable_argument(first, outlives)
  return None


def _has_user_finalizer(cls: type) -> bool:
  return any('__del__' in vars(owner) and not usercode.is_trusted_module(owner.__module__)
             for owner in cls.__mro__[:-1])


def _constructor(cls: type, first: Any, outlives: Outlives) -> str | None:
  module = getattr(cls, '__module__', None)
  if _has_user_finalizer(cls):
    return f'creates a {cls.__name__}, whose __del__ would run when it is collected'
  if issubclass(cls, _WEAK_REFERENCES) or cls is weakref.finalize:
    return f'creates a {cls.__name__} (a callback could run when its referent dies)'
  if module == 'builtins':
    if cls.__name__ in allowlist.HIGHER_ORDER:
      return _callable_argument(first, outlives)
    if cls.__name__ in allowlist.PURE_BUILTINS or cls.__name__ in allowlist.REGISTRY_BUILTINS:
      return None
    if issubclass(cls, BaseException):
      return None  # an error object; raising it is what the trace reports
    return f'creates a {cls.__name__}, {NOT_LISTED}'
  if not usercode.is_trusted_module(module):
    return None  # a user class: its __new__ and __init__ are watched where they run
  if _in_trusted_package(module):
    return f'creates a {cls.__name__}' if _trusted_exception(module, cls.__name__) else None
  if module in allowlist.PURE_C_MODULES or issubclass(cls, tuple(allowlist.CONTAINER_METHODS)):
    if cls.__name__ in allowlist.HIGHER_ORDER:
      return _callable_argument(first, outlives)
    return None
  if isinstance(vars(cls).get('__init__'), types.FunctionType) or any(
      isinstance(vars(owner).get('__init__'), types.FunctionType) for owner in cls.__mro__[:-1]):
    return None  # a standard-library class written in Python: followed
  if issubclass(cls, _PRIVATE_WHEN_CREATED + (BaseException,)):
    return None
  return f'creates a {module.strip("_")}.{cls.__name__}, {NOT_LISTED}'


def _c_function(fn: Any, first: Any, outlives: Outlives) -> str | None:
  name = fn.__name__
  module = getattr(fn, '__module__', None) or getattr(fn.__self__, '__name__', None)
  if module == 'builtins':
    if name in allowlist.NAMESPACE_READERS:
      return _namespace_read(fn, first)
    mutated = _mutator(fn, name, first, outlives)
    if mutated is not None:
      return mutated or None
    if name in allowlist.HIGHER_ORDER:
      return _callable_argument(first, outlives)
    if name in allowlist.PURE_BUILTINS or name in allowlist.REGISTRY_BUILTINS:
      return None
    return f'calls {name}()'
  if module in allowlist.PURE_C_MODULES:
    mutated = _mutator(fn, name, first, outlives)
    if mutated is not None:
      return mutated or None
    if name in allowlist.HIGHER_ORDER:
      return _callable_argument(first, outlives)
    return None
  if _in_trusted_package(module):
    if _trusted_exception(module, name):
      return f'calls {_describe(fn)}'
    mutated = _mutator(fn, name, first, outlives)
    return mutated or None
  return f'calls {_describe(fn)}, {NOT_LISTED}'


def _c_method(bound: Any, name: str, first: Any, outlives: Outlives, owner: type | None = None) -> str | None:
  """The verdict on method ``name`` of ``bound`` (a type for a class method), implemented in C."""
  if isinstance(bound, type) and owner is None:
    module = bound.__module__
    if module == 'builtins' or (_in_trusted_package(module) and not _trusted_exception(module, bound.__name__)):
      return None  # dict.fromkeys, int.from_bytes, np.float32.fromhex
    return f'calls {bound.__name__}.{name}(), {NOT_LISTED}'
  kind = owner or type(bound)
  if bound is UNKNOWN_ARGUMENT:
    return _unseen_method(kind, name)
  if isinstance(bound, allowlist.IMMUTABLE_TYPES):
    return None
  if isinstance(bound, np.ufunc):
    return _changes_argument(f'{bound.__name__}.{name}()', first, outlives) if name == 'at' else None
  if isinstance(bound, _PRIVATE_WHEN_CREATED):
    return f'calls {type(bound).__name__}.{name}() on a buffer that outlives the call' if outlives(bound) else None
  for base in kind.__mro__:
    listed = allowlist.CONTAINER_METHODS.get(base)
    if listed is None:
      continue
    reads, changes = listed
    if name in changes:
      return _changes_argument(f'{base.__name__}.{name}()', bound, outlives)
    if name in reads or base in allowlist.OPEN_CONTAINERS:
      return None
    return f'calls {base.__name__}.{name}(), {NOT_LISTED}'
  module = type(bound).__module__
  if _in_trusted_package(module):
    return f'calls {type(bound).__name__}.{name}()' if _trusted_exception(module, type(bound).__name__) else None
  if module in allowlist.PURE_C_MODULES and type(bound).__name__ not in allowlist.PURE_C_TYPES_EXCEPTIONS:
    return None
  reads, changes = allowlist.OBJECT_METHODS
  if name in reads:
    return None
  if name in changes:
    return _changes_argument(f'object.{name}()', bound, outlives)
  return f'calls {type(bound).__name__}.{name}(), {NOT_LISTED}'


def _unseen_method(kind: type, name: str) -> str | None:
  """A method of an object the monitor cannot see (Python 3.10 and 3.11): allowed only if it cannot change it."""
  if issubclass(kind, allowlist.IMMUTABLE_TYPES):
    return None
  for base in kind.__mro__:
    listed = allowlist.CONTAINER_METHODS.get(base)
    if listed is None:
      continue
    if name in listed[0] or (base in allowlist.OPEN_CONTAINERS and name not in listed[1]):
      return None
    return f'calls {base.__name__}.{name}() on an object it cannot see'
  module = kind.__module__
  if _in_trusted_package(module) and not _trusted_exception(module, kind.__name__):
    return None
  if module in allowlist.PURE_C_MODULES or name in allowlist.OBJECT_METHODS[0]:
    return None
  return f'calls {kind.__name__}.{name}() on an object it cannot see'


def _callable_object(fn: Any, first: Any, outlives: Outlives) -> str | None:
  kind = type(fn)
  module = kind.__module__
  bound = getattr(fn, '__self__', None)
  name = getattr(fn, '__name__', None)
  if isinstance(name, str) and _in_trusted_package(getattr(fn, '__module__', None)):
    # numpy's dispatchers and Cython functions: judged by the function they stand for.
    if bound is not None and not isinstance(bound, types.ModuleType):
      return _c_method(bound, name, first, outlives)
    if _trusted_exception(fn.__module__, name):
      return f'calls {_describe(fn)}'
    return _mutator(fn, name, first, outlives) or None
  if isinstance(name, str) and bound is not None and not isinstance(bound, types.ModuleType) and (
      _in_trusted_package(type(bound).__module__)):
    return _c_method(bound, name, first, outlives)
  if kind.__name__ == 'partial' and module == 'functools':
    inner_first = fn.args[0] if fn.args else first
    return verdict(fn.func, inner_first, outlives)
  if isinstance(fn, (staticmethod, classmethod)):
    return verdict(fn.__func__, first, outlives)
  call = getattr(kind, '__call__', None)
  if not usercode.is_trusted_module(module):
    if isinstance(call, types.FunctionType):
      return None  # a user class's __call__, watched where it runs
    return f'calls a {kind.__name__} object, {NOT_LISTED}'
  if _in_trusted_package(module) or isinstance(fn, np.ufunc):
    return f'calls a {kind.__name__}' if _trusted_exception(module, kind.__name__) else None
  if kind.__name__ in allowlist.PURE_C_TYPES or (
      module in allowlist.PURE_C_MODULES and kind.__name__ not in allowlist.PURE_C_TYPES_EXCEPTIONS):
    return None
  if isinstance(call, types.FunctionType):
    return None  # a standard-library class written in Python: followed
  return f'calls a {module.strip("_")}.{kind.__name__} object, {NOT_LISTED}'


def _namespace_read(fn: Any, first: Any) -> str | None:
  """Why ``fn(first, ...)`` reads values no guard covers, or None when it does not."""
  if fn is builtins.globals:
    return 'calls globals() (values read through a namespace cannot be guarded)'
  if first is UNKNOWN_ARGUMENT:
    return f'calls {fn.__name__}() on an object it cannot see (values read through a namespace cannot be guarded)'
  if isinstance(first, types.ModuleType) and not usercode.is_trusted_module(first.__name__):
    return (f'calls {fn.__name__}() on the module {first.__name__} (values read through a namespace cannot be '
            'guarded)')
  return None


def _tracer_errors() -> tuple[type, ...]:
  import jax  # pylint: disable=import-outside-toplevel
  names = ('ConcretizationTypeError', 'TracerArrayConversionError', 'TracerBoolConversionError',
           'TracerIntegerConversionError', 'NonConcreteBooleanIndexError', 'UnexpectedTracerError')
  return tuple(getattr(jax.errors, name) for name in names if hasattr(jax.errors, name))


# The errors jax raises where Python needs the value of a traced array:
# eagerly that line runs, so a program that catches one would take another
# path under a trace than it takes eagerly.
_TRACER_ERRORS = _tracer_errors()


def caught_tracer_error(error: BaseException) -> str | None:
  """Why user code meeting ``error`` inside a try block must not be compiled, or None."""
  if isinstance(error, _TRACER_ERRORS):
    return (f'meets a {type(error).__name__} inside a try block (eagerly the value is concrete there, and the '
            'code takes another path)')
  return None


# Referenced so that the modules whose functions are classified are loaded.
_LOADED = (sys,)
