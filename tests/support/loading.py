"""Running a source as a module: as written, and as vjpify rewrote it.

A module is executed from source into a fresh module object registered in
``sys.modules`` (dataclasses, and so flax Modules, look their module up
there), so the original and the rewritten copy never share classes or state.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import sys
import types

from vjpify.transformer import TransformResult, transform_source

__all__ = ['LoadedPair', 'load_file', 'load_pair', 'load_source']


def load_source(code: str, name: str, path: str = '<exec>') -> types.ModuleType:
  """Executes ``code`` as a fresh module called ``name`` and returns it."""
  module = types.ModuleType(name)
  module.__file__ = path
  sys.modules[name] = module
  try:
    exec(compile(code, path, 'exec', dont_inherit=True), module.__dict__)  # pylint: disable=exec-used
  except BaseException:
    del sys.modules[name]
    raise
  return module


def load_file(path: str | pathlib.Path, name: str) -> types.ModuleType:
  """Imports the file at ``path`` as a fresh module called ``name``, as Python imports files."""
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    del sys.modules[name]
    raise
  return module


@dataclasses.dataclass(frozen=True)
class LoadedPair:
  """One source file loaded twice: as written and as vjpify rewrote it."""

  original: types.ModuleType
  rewritten: types.ModuleType
  result: TransformResult


def load_pair(path: str, name: str, jit: bool = True, lift_jax_transforms: bool = False) -> LoadedPair:
  """Loads ``path`` as written and rewritten (with ``jit`` and
  ``lift_jax_transforms`` passed on to the transformer), under two distinct
  module names.

  Fails when vjpify rewrote nothing or left a site unchanged: a differential
  check is only worth running if every site in it went through the rewrite.
  """
  with open(path, encoding='utf-8') as f:
    code = f.read()
  result = transform_source(code, path, jit=jit, lift_jax_transforms=lift_jax_transforms)
  rewritten = [s for s in result.sites if s.action == 'rewritten']
  others = [s.format() for s in result.sites if s.action != 'rewritten']
  assert rewritten, f'{path}: vjpify rewrote no site'
  assert not others, f'{path}: sites not rewritten:\n' + '\n'.join(others)
  assert result.changed
  return LoadedPair(
      original=load_source(code, f'_vjpify_exec_original_{name}', path),
      rewritten=load_source(result.code, f'_vjpify_exec_rewritten_{"jit" if jit else "nojit"}_{name}', path),
      result=result,
  )
