"""Which code is the user's, whose reads and effects a trace must account for.

Every code object is of one kind (:func:`kind_of_code`):

- ``TRUSTED``: the packages ``allowlist.TRUSTED_PACKAGES`` names (jax, flax,
  numpy, vjpify's runtime): what they read is the module being traced
  (keyed), jax's own configuration (which ``jax.jit`` keys), or state that
  user code does not change;
- ``TRANSPARENT``: standard-library modules that only dispatch to what they
  are given (``allowlist.TRANSPARENT_STDLIB_MODULES``);
- ``STDLIB``: the rest of the standard library, followed like user code
  where user code calls it (directly, or through transparent code), and
  trusted where a trusted package calls it;
- ``STRING``: code compiled from a string: user code, but for the methods
  that dataclasses and namedtuple generate, recognised by the class they
  belong to (:func:`is_generated_method`);
- ``USER``: everything else, the program's files, notebooks and third-party
  libraries, always followed.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
import sysconfig
import types

from vjpify.runtime.compiled import allowlist, codecache

__all__ = ['STDLIB', 'STRING', 'TRANSPARENT', 'TRUSTED', 'USER', 'aside_codes', 'followed', 'is_followed_library',
           'is_generated_method', 'is_trusted_module', 'is_user_code', 'kind_of_code', 'module_of_code', 'module_of_file',
           'watched']

# Packages whose code is trusted (vjpify's runtime is found by its folder).
TRUSTED_PACKAGES = tuple(sorted(allowlist.TRUSTED_PACKAGES - {'vjpify'})) + ('typing_extensions',)
USER, STRING, STDLIB, TRANSPARENT, TRUSTED = 'user', 'string', 'stdlib', 'transparent', 'trusted'
_TRUSTED_TOP_NAMES = (frozenset(TRUSTED_PACKAGES) | frozenset(getattr(sys, 'stdlib_module_names', ()))
                      | {'builtins', 'vjpify'})


def _package_roots() -> list[str]:
  roots = []
  for name in TRUSTED_PACKAGES:
    if name in sys.modules and getattr(sys.modules[name], '__file__', None) is None and not hasattr(
        sys.modules[name], '__path__'):
      continue
    try:
      spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
      continue
    if spec is None:
      continue
    for location in spec.submodule_search_locations or ():
      if os.path.isdir(location):
        roots.append(os.path.join(location, ''))
    if spec.origin and not spec.submodule_search_locations:
      roots.append(spec.origin)
  return roots


def _stdlib_roots() -> list[str]:
  paths = sysconfig.get_paths()
  return sorted({os.path.join(paths[key], '') for key in ('stdlib', 'platstdlib') if key in paths})


def _site_roots() -> list[str]:
  # site-packages usually lives inside the standard library's folder.
  paths = sysconfig.get_paths()
  roots = {os.path.join(paths[key], '') for key in ('purelib', 'platlib') if key in paths}
  roots.update(os.path.join(p, '') for p in sys.path if p.rstrip(os.sep).endswith(('site-packages', 'dist-packages')))
  return sorted(roots)


# vjpify's runtime, wherever it is installed from (an editable install maps it).
_RUNTIME_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '')
_PACKAGE_ROOTS = tuple(_package_roots()) + (_RUNTIME_ROOT,)
_STDLIB_ROOTS = tuple(_stdlib_roots())
_SITE_ROOTS = tuple(_site_roots())
# Both spellings, so that symbolic links in the interpreter's paths do not matter.
_PACKAGE_ROOTS += tuple(os.path.realpath(root) + os.sep for root in _PACKAGE_ROOTS if root.endswith(os.sep))
_STDLIB_ROOTS += tuple(os.path.realpath(root) + os.sep for root in _STDLIB_ROOTS)
_SITE_ROOTS += tuple(os.path.realpath(root) + os.sep for root in _SITE_ROOTS)



@codecache.cached
def kind_of_code(code: types.CodeType) -> str:
  """What kind of code ``code`` is; see the module's docstring."""
  filename = code.co_filename
  if filename.startswith('<'):
    if filename == '<string>':
      return STRING
    if filename.startswith('<frozen '):
      # os, codecs, _collections_abc ... are frozen from Python 3.11.
      module = filename[len('<frozen '):-1]
      return TRANSPARENT if module in allowlist.TRANSPARENT_STDLIB_MODULES else STDLIB
    # Notebooks name their cells after files ('<ipython-input-...>').
    return USER
  if filename.startswith(_PACKAGE_ROOTS):
    return TRUSTED
  if filename.startswith(_STDLIB_ROOTS) and not filename.startswith(_SITE_ROOTS):
    module = module_of_file(filename)
    if module in allowlist.TRANSPARENT_STDLIB_MODULES:
      return TRANSPARENT
    return STDLIB
  return USER


def is_user_code(code: types.CodeType) -> bool:
  """Whether ``code`` is user code (not jax, flax, numpy, the stdlib or vjpify); strings count as the user's."""
  return kind_of_code(code) in (USER, STRING)


def is_followed_library(code: types.CodeType) -> bool:
  """Whether ``code`` is standard-library code that is followed where user code calls it."""
  return kind_of_code(code) == STDLIB


_generated: dict[int, tuple[types.CodeType, bool]] = {}


def is_generated_method(frame: types.FrameType) -> bool:
  """Whether ``frame`` runs a method that dataclasses or namedtuple generated from a string."""
  code = frame.f_code
  known = _generated.get(id(code))
  if known is not None and known[0] is code:
    return known[1]
  generated = _generated_method(frame)
  if len(_generated) >= codecache.MAX_CODES:
    _generated.clear()
  _generated[id(code)] = (code, generated)
  return generated


def _unwrapped_code(function: object) -> types.CodeType | None:
  for _ in range(4):  # flax wraps the generated __init__ of a Module
    inner = getattr(function, '__wrapped__', None)
    if inner is None:
      break
    function = inner
  return getattr(function, '__code__', None)


def _generated_method(frame: types.FrameType) -> bool:
  code = frame.f_code
  if code.co_argcount < 1:
    return False
  first = frame.f_locals.get(code.co_varnames[0])
  owner = first if isinstance(first, type) else type(first)
  if code.co_name in allowlist.NAMEDTUPLE_GENERATED_METHODS and isinstance(first, type):
    return (issubclass(first, tuple) and hasattr(first, '_fields')
            and str(frame.f_globals.get('__name__', '')).startswith('namedtuple_')
            and _unwrapped_code(vars(first).get('__new__')) is code)
  if code.co_name in allowlist.DATACLASS_GENERATED_METHODS and '__dataclass_fields__' in dir(owner):
    return any(_unwrapped_code(vars(base).get(code.co_name)) is code for base in owner.__mro__)
  return False


def _watched_as_user_code(frame: types.FrameType, kind: str) -> bool | None:
  """Whether ``frame`` of user or string code is watched; None for code of another kind."""
  if kind == USER:
    return True
  if kind == STRING:
    return not is_generated_method(frame)
  return None


def watched(frame: types.FrameType) -> bool:
  """Whether a trace must watch what ``frame`` reads and calls."""
  kind = kind_of_code(frame.f_code)
  answer = _watched_as_user_code(frame, kind)
  if answer is not None:
    return answer
  return kind == STDLIB and followed(frame.f_back)


def followed(frame: types.FrameType | None) -> bool:
  """Whether the nearest caller outside the standard library is watched user code."""
  for _ in range(64):
    if frame is None:
      return False
    kind = kind_of_code(frame.f_code)
    answer = _watched_as_user_code(frame, kind)
    if answer is not None:
      return answer
    if kind == TRUSTED:
      return False
    frame = frame.f_back
  return False


def module_of_code(code: types.CodeType) -> str | None:
  """The dotted module name of a standard-library or trusted package's code, or None."""
  return module_of_file(code.co_filename) or _package_module(code.co_filename)


def _package_module(filename: str) -> str | None:
  for package in TRUSTED_PACKAGES:
    root = sys.modules.get(package)
    location = os.path.dirname(getattr(root, '__file__', '') or '')
    if location and filename.startswith(location + os.sep):
      relative = os.path.relpath(filename, os.path.dirname(location))[:-3]
      return relative.replace(os.sep, '.').removesuffix('.__init__')
  return None


def is_trusted_module(name: str | None) -> bool:
  """Whether a module called ``name`` belongs to a trusted package or the stdlib."""
  if not name:
    return False
  return name.partition('.')[0] in _TRUSTED_TOP_NAMES


def module_of_file(filename: str) -> str | None:
  """The dotted module name of a standard library file, or None."""
  if filename.startswith('<frozen ') and filename.endswith('>'):
    return filename[len('<frozen '):-1]  # os, codecs, ... are frozen from Python 3.11
  for root in _STDLIB_ROOTS:
    if filename.startswith(root) and not filename.startswith(_SITE_ROOTS):
      relative = filename[len(root):]
      if relative.endswith('.py'):
        relative = relative[:-3]
      parts = relative.split(os.sep)
      if parts[-1] == '__init__':
        parts.pop()
      return '.'.join(parts)
  return None


def aside_codes() -> frozenset[types.CodeType]:
  """The code of the garbage collector's callbacks, which run wherever a collection strikes."""
  return frozenset(code for code in (getattr(callback, '__code__', None) for callback in gc.callbacks) if code)
