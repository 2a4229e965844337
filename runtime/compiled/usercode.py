"""Which code is the user's, whose reads and effects a trace must account for.

Code of jax, flax, numpy, the standard library and vjpify's runtime is
trusted: what it reads is either the module being traced (keyed), jax's
own configuration (which ``jax.jit`` keys), or library state that user code
does not change. Everything else is user code: the program's own files,
notebooks, and third-party libraries, whose functions are followed like the
program's own.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
import sysconfig
import types

from vjpify.runtime.compiled import codecache

__all__ = ['aside_codes', 'is_user_code', 'module_of_file', 'is_trusted_module']

# Packages whose code is trusted, besides the standard library.
TRUSTED_PACKAGES = ('jax', 'jaxlib', 'flax', 'numpy', 'ml_dtypes', 'opt_einsum', 'typing_extensions')
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



def _trusted_file(filename: str) -> bool:
  if filename.startswith('<'):
    # '<frozen importlib._bootstrap>', and '<string>': the methods that
    # dataclasses and namedtuple generate from strings. Notebooks name their
    # cells after files ('/tmp/ipykernel_.../...py', '<ipython-input-...>').
    return filename.startswith(('<frozen', '<string>'))
  if filename.startswith(_PACKAGE_ROOTS):
    return True
  return filename.startswith(_STDLIB_ROOTS) and not filename.startswith(_SITE_ROOTS)


@codecache.cached
def is_user_code(code: types.CodeType) -> bool:
  """Whether ``code`` is user code (not jax, flax, numpy, the stdlib or vjpify)."""
  return not _trusted_file(code.co_filename)


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
