"""Calls that do something a cached trace could not repeat.

A compiled entry replays arrays, so anything else a call does must not
happen while it is traced: printing, reading a clock, drawing from Python's
or numpy's random generators, any I/O, changing the environment or global
configuration, starting threads, and mutating state that outlives the call
(a list held by a global, a config object). The monitor asks
:func:`classify_call` about every call user code makes, before the call runs,
and :func:`classify_code` about every library function user code enters.

jax's own staged effects (``jax.debug.print``, callbacks) are not calls into
Python at trace time; they are found in the traced program instead.
"""

from __future__ import annotations

import builtins
import collections
import datetime
import importlib
import io
import os
import random
import socket
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from vjpify.runtime.compiled import codecache, usercode

__all__ = ['classify_call', 'classify_code', 'caught_tracer_error', 'UNKNOWN_ARGUMENT']

# Stands for an argument the monitor cannot see (Python before 3.12).
UNKNOWN_ARGUMENT = object()

_IMPURE_NAMES = {
    'builtins': ('print', 'input', 'open', 'breakpoint', 'exit', 'quit', 'help'),
    '_warnings': ('warn', 'warn_explicit'),
    'warnings': ('warn', 'warn_explicit', 'showwarning', 'simplefilter', 'filterwarnings', 'resetwarnings'),
    'sys': ('exit', 'settrace', 'setprofile', 'setrecursionlimit', 'setswitchinterval', 'displayhook', 'excepthook'),
    '_pickle': ('dump', 'load'),
    'pickle': ('dump', 'load'),
    'marshal': ('dump', 'load'),
    'numpy': ('save', 'savez', 'savez_compressed', 'load', 'loadtxt', 'savetxt', 'genfromtxt', 'fromfile',
              'set_printoptions', 'seterr', 'seterrcall', 'setbufsize'),
    'jax': ('clear_caches',),
}
# Whole modules of C functions that are system calls, clocks or randomness.
_IMPURE_MODULES = ('time', 'posix', 'nt', 'select', 'signal', 'atexit', 'faulthandler', '_thread', 'gc', 'fcntl',
                   'resource', 'mmap', 'termios', '_random', 'numpy.random', '_socket', '_ssl', '_posixsubprocess',
                   '_locale', 'locale')
_PURE_IN_IMPURE_MODULES = frozenset({'fspath', 'get_ident', 'get_native_id', 'isenabled', 'getrecursionlimit',
                                     'mktime', 'struct_time', 'strptime', 'get_clock_info', 'localeconv'})
_MISSING = object()
_IN_MEMORY_FILES = (io.StringIO, io.BytesIO)
# Objects whose every method is an effect when user code calls it.
_IMPURE_SELF_TYPES: tuple[type, ...] = (
    random.Random,
    np.random.RandomState,
    np.random.Generator,
    np.random.BitGenerator,
    np.random.SeedSequence,
    io.IOBase,
    socket.socket,
    threading.Thread,
    type(os.environ),
)
# Library files whose Python functions are effects (I/O, environment,
# randomness, logging), by module; None means every function.
_IMPURE_FILES: dict[str, frozenset[str] | None] = {
    'random': None, 'logging': None, 'pprint': frozenset({'pprint', 'pp', '_safe_repr'}), 'traceback': None,
    'subprocess': None, 'shutil': None, 'tempfile': None, 'socket': None, 'uuid': None, 'secrets': None,
    'getpass': None, 'pdb': None, 'bdb': None, 'webbrowser': None, 'os': None, 'warnings': None, 'glob': None,
    '_pyio': None, 'io': None, 'sqlite3': None, 'http': None, 'urllib': None, 'smtplib': None, 'ftplib': None,
    'asyncio': None, 'multiprocessing': None, 'concurrent': None, 'sched': None, 'code': None, 'cmd': None,
    'threading': frozenset({'start', 'run', 'join', 'wait', 'set', 'clear', 'acquire', 'release', 'notify',
                            'notify_all', 'put', 'get'}),
    'json': frozenset({'dump', 'load'}),
    'pickle': frozenset({'dump', 'load'}),
    'pathlib': frozenset({'open', 'read_text', 'read_bytes', 'write_text', 'write_bytes', 'exists', 'is_dir',
                          'is_file', 'is_symlink', 'stat', 'lstat', 'mkdir', 'rmdir', 'unlink', 'iterdir', 'glob',
                          'rglob', 'touch', 'rename', 'replace', 'resolve', 'samefile', 'expanduser', 'home', 'cwd',
                          'owner', 'group', 'chmod', 'readlink', 'symlink_to', 'hardlink_to', 'absolute', 'walk'}),
    'posixpath': frozenset({'exists', 'lexists', 'isfile', 'isdir', 'islink', 'ismount', 'getsize', 'getmtime',
                            'getatime', 'getctime', 'samefile', 'realpath', 'expanduser', 'abspath'}),
    'genericpath': frozenset({'exists', 'isfile', 'isdir', 'getsize', 'getmtime', 'getatime', 'getctime',
                              'samefile', 'samestat'}),
    'datetime': frozenset({'now', 'today', 'utcnow'}), '_pydatetime': frozenset({'now', 'today', 'utcnow'}),
    'numpy.lib._npyio_impl': None, 'numpy.lib.npyio': None,
    'numpy._core.arrayprint': frozenset({'set_printoptions'}), 'numpy.core.arrayprint': frozenset({'set_printoptions'}),
    'jax._src.config': frozenset({'update', 'config_with_absl', 'parse_flags_with_absl'}),
    'flax.configurations': frozenset({'update', 'temp_flip_flag'}),
}
# Methods that change a container in place, by the container's type.
_MUTATING = {
    list: frozenset({'append', 'extend', 'insert', 'pop', 'remove', 'clear', 'sort', 'reverse', '__setitem__',
                     '__delitem__', '__iadd__', '__imul__'}),
    dict: frozenset({'update', 'pop', 'popitem', 'setdefault', 'clear', '__setitem__', '__delitem__', '__ior__'}),
    set: frozenset({'add', 'discard', 'remove', 'pop', 'clear', 'update', 'difference_update', 'intersection_update',
                    'symmetric_difference_update', '__ior__', '__iand__', '__isub__', '__ixor__'}),
    bytearray: frozenset({'append', 'extend', 'insert', 'pop', 'remove', 'clear', 'reverse', '__setitem__',
                          '__delitem__', '__iadd__'}),
    collections.deque: frozenset({'append', 'appendleft', 'extend', 'extendleft', 'pop', 'popleft', 'remove',
                                  'rotate', 'clear', 'insert', '__setitem__', '__delitem__', '__iadd__'}),
    np.ndarray: frozenset({'fill', 'sort', 'put', 'itemset', 'resize', 'setfield', 'setflags', 'partition',
                           'byteswap', '__setitem__', '__iadd__', '__isub__', '__imul__', '__itruediv__'}),
}
# Functions that change their first argument (or consume it, for next).
_MUTATE_FIRST_ARGUMENT = {
    'next', 'setattr', 'delattr', 'heappush', 'heappop', 'heapify', 'heapreplace', 'heappushpop', 'insort',
    'insort_left', 'insort_right', 'copyto', 'put', 'place', 'putmask', 'put_along_axis', 'fill_diagonal', 'shuffle',
}


def _resolve(module_name: str, name: str) -> Any:
  try:
    return getattr(importlib.import_module(module_name), name)
  except (ImportError, AttributeError):
    return None


def _impure_by_identity() -> dict[int, tuple[Any, str]]:
  found = {}
  for module_name, names in _IMPURE_NAMES.items():
    for name in names:
      value = _resolve(module_name, name)
      if value is not None:
        found[id(value)] = (value, f'{module_name.strip("_")}.{name}' if module_name != 'builtins' else name)
  return found


_BY_IDENTITY = _impure_by_identity()

# Builtins through which code reads a module's namespace by computed names:
# what it reads there is no name in any code, so no guard can cover it.
_NAMESPACE_READERS = {id(f): f for f in (builtins.globals, builtins.vars, builtins.getattr, builtins.hasattr)}


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


def _describe(fn: Any) -> str:
  name = getattr(fn, '__qualname__', None) or getattr(fn, '__name__', None) or type(fn).__name__
  module = getattr(fn, '__module__', None)
  if module in (None, 'builtins'):
    return f'{name}()'
  return f'{module}.{name}()'


def _owner_type(bound_self: Any) -> type:
  return bound_self if isinstance(bound_self, type) else type(bound_self)


def classify_call(fn: Any, first: Any, outlives: Callable[[Any], bool]) -> str | None:
  """Says why calling ``fn`` from user code is an effect, or None when it is not.

  Args:
    fn: the callable about to be called.
    first: its first argument, or ``UNKNOWN_ARGUMENT``.
    outlives: tells whether an object existed before the trace and is
      reachable after it (a global, a closure cell, a module field...).
  """
  known = _BY_IDENTITY.get(id(fn))
  if known is not None and known[0] is fn:
    return f'calls {known[1]}()'
  if _NAMESPACE_READERS.get(id(fn)) is fn:
    return _namespace_read(fn, first)
  name = getattr(fn, '__name__', '')
  # Python 3.12 and later report a method call as the function and its self.
  if first is not UNKNOWN_ARGUMENT and _is_method_of(fn, first) and _impure_self(first, outlives):
    return f'calls {type(first).__name__}.{name}()'

  if isinstance(fn, types.MethodType):
    bound = fn.__self__
    if _impure_self(bound, outlives):
      return f'calls {_describe(fn)} of a {type(bound).__name__}'
    return classify_code(fn.__func__.__code__) if isinstance(fn.__func__, types.FunctionType) else None
  if isinstance(fn, types.FunctionType):
    verdict = classify_code(fn.__code__)
    if verdict is None and name in _MUTATE_FIRST_ARGUMENT and not usercode.is_user_code(fn.__code__):
      verdict = _changes_argument(fn, first, outlives)
    return verdict
  bound = getattr(fn, '__self__', None)
  if isinstance(fn, (types.BuiltinMethodType, types.MethodWrapperType)) and bound is not None and not isinstance(
      bound, types.ModuleType):
    owner = _owner_type(bound)
    if _impure_self(bound, outlives) or isinstance(bound, type) and issubclass(bound, _IMPURE_SELF_TYPES):
      return f'calls {owner.__name__}.{name}()'
    if issubclass(owner, datetime.date) and name in ('now', 'today', 'utcnow'):
      return f'calls {owner.__name__}.{name}() (reads the clock)'
    return _mutation(owner, name, bound, outlives)
  if isinstance(fn, types.MethodDescriptorType):  # list.append(xs, x)
    owner = fn.__objclass__
    return None if first is UNKNOWN_ARGUMENT else _mutation(owner, name, first, outlives)
  module = getattr(fn, '__module__', None) or ''
  if isinstance(fn, type):
    if issubclass(fn, _IMPURE_SELF_TYPES) and not issubclass(fn, _IN_MEMORY_FILES + (io.IOBase,)):
      return f'creates a {fn.__name__}'
    return None
  if callable(fn):
    if _in_modules(module, _IMPURE_MODULES) and name not in _PURE_IN_IMPURE_MODULES:
      return f'calls {_describe(fn)}'
    if name in _MUTATE_FIRST_ARGUMENT and usercode.is_trusted_module(module):
      return _changes_argument(fn, first, outlives)
  return None


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


def _is_method_of(fn: Any, obj: Any) -> bool:
  if isinstance(fn, (types.MethodDescriptorType, types.WrapperDescriptorType)):
    return isinstance(obj, fn.__objclass__)
  if isinstance(fn, types.FunctionType):
    return any(vars(owner).get(fn.__name__) is fn for owner in type(obj).__mro__)
  return False


def _in_modules(module: str, names: tuple[str, ...]) -> bool:
  return any(module == name or module.startswith(name + '.') for name in names)


def _impure_self(bound: Any, outlives: Callable[[Any], bool]) -> bool:
  if isinstance(bound, _IN_MEMORY_FILES):
    return outlives(bound)  # writing to a buffer made during the call is not observable
  return isinstance(bound, _IMPURE_SELF_TYPES)


def _changes_argument(fn: Any, first: Any, outlives: Callable[[Any], bool]) -> str | None:
  if first is UNKNOWN_ARGUMENT:
    # Without the argument (Python before 3.12) only next() is let through:
    # generators are checked when they resume.
    return None if getattr(fn, '__name__', '') == 'next' else f'calls {_describe(fn)} on an object it cannot see'
  if outlives(first):
    return f'calls {_describe(fn)} on a {type(first).__name__} that outlives the call'
  return None


def _mutation(owner: type, name: str, target: Any, outlives: Callable[[Any], bool]) -> str | None:
  for kind in owner.__mro__:
    mutating = _MUTATING.get(kind)
    if mutating is not None:
      if name in mutating and outlives(target):
        return f'calls {kind.__name__}.{name}() on a {owner.__name__} that outlives the call'
      return None
  return None


@codecache.cached
def classify_code(code: types.CodeType) -> str | None:
  """Says why entering library function ``code`` from user code is an effect, or None."""
  if usercode.is_user_code(code):
    return None
  return _code_verdict(code)


def _code_verdict(code: types.CodeType) -> str | None:
  module = usercode.module_of_file(code.co_filename) or _package_module(code.co_filename)
  if module is None:
    return None
  parts = module.split('.')
  for length in range(len(parts), 0, -1):
    names = _IMPURE_FILES.get('.'.join(parts[:length]), _MISSING)
    if names is _MISSING:
      continue
    if names is None or code.co_name in names:
      return f'calls {module}.{code.co_name}()'
    return None
  return None


def _package_module(filename: str) -> str | None:
  """The module name of a file of numpy, jax or flax, or None."""
  for package in ('numpy', 'jax', 'flax'):
    root = sys.modules.get(package)
    location = os.path.dirname(getattr(root, '__file__', '') or '')
    if location and filename.startswith(location + os.sep):
      relative = os.path.relpath(filename, os.path.dirname(location))[:-3]
      return relative.replace(os.sep, '.').removesuffix('.__init__')
  return None


# Referenced so that the modules whose functions are classified are loaded.
_LOADED = (builtins, time, os, threading)
