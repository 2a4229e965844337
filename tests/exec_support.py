"""Shared helpers for differential tests: load a module from source as written
and after vjpify rewrote it, run both, and compare what came out.

A module is executed from source into a fresh module object registered in
``sys.modules`` (dataclasses, and so flax Modules, look their module up there),
so the original and the rewritten copy never share classes or state.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from vjpify.transformer import TransformResult, transform_source


def load_source(code: str, name: str, path: str = '<exec>') -> types.ModuleType:
  """Executes ``code`` as a fresh module called ``name`` and returns it."""
  module = types.ModuleType(name)
  module.__file__ = path
  sys.modules[name] = module
  try:
    exec(compile(code, path, 'exec', dont_inherit=True), module.__dict__)
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


def load_pair(path: str, name: str) -> LoadedPair:
  """Loads ``path`` as written and rewritten, under two distinct module names.

  Fails when vjpify rewrote nothing or left a site unchanged: a differential
  fixture is only worth running if every site in it went through the rewrite.
  """
  with open(path, encoding='utf-8') as f:
    code = f.read()
  result = transform_source(code, path)
  rewritten = [s for s in result.sites if s.action == 'rewritten']
  others = [s.format() for s in result.sites if s.action != 'rewritten']
  assert rewritten, f'{path}: vjpify rewrote no site'
  assert not others, f'{path}: sites not rewritten:\n' + '\n'.join(others)
  assert result.changed
  return LoadedPair(
      original=load_source(code, f'_vjpify_exec_original_{name}', path),
      rewritten=load_source(result.code, f'_vjpify_exec_rewritten_{name}', path),
      result=result,
  )


@dataclasses.dataclass(frozen=True)
class Outcome:
  """What calling a function did: returned ``value`` or raised ``error``."""

  value: Any = None
  error: BaseException | None = None

  def describe_error(self) -> tuple[type, str] | None:
    if self.error is None:
      return None
    return type(self.error), str(self.error)


def outcome_of(fn: Callable[[], Any]) -> Outcome:
  """Runs ``fn`` and records its result or the exception it raised."""
  try:
    return Outcome(value=fn())
  except Exception as error:  # noqa: BLE001 - the error itself is compared
    return Outcome(error=error)


def _leaf_summary(leaf: Any) -> tuple[Any, ...]:
  if isinstance(leaf, jax.Array):
    return (type(leaf), leaf.dtype, leaf.shape, leaf.weak_type)
  if isinstance(leaf, np.ndarray):
    return (type(leaf), leaf.dtype, leaf.shape)
  return (type(leaf),)


def _comparable(leaf: Any) -> Any:
  if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
    return np.asarray(jax.random.key_data(leaf))
  return np.asarray(leaf)


def assert_trees_identical(expected: Any, actual: Any, where: str = '') -> None:
  """Asserts two pytrees are the same: structure, containers, leaf types,
  dtypes, shapes, weak types and values, exactly.

  ``tree_structure`` equality already tells a tuple from a list and a
  FrozenDict from a dict, since each is its own node type.
  """
  expected_structure = jax.tree_util.tree_structure(expected)
  actual_structure = jax.tree_util.tree_structure(actual)
  assert expected_structure == actual_structure, (
      f'{where}: tree structure differs:\n  {expected_structure}\n  {actual_structure}')
  paths_and_leaves = jax.tree_util.tree_leaves_with_path(expected)
  for (path, want), got in zip(paths_and_leaves, jax.tree_util.tree_leaves(actual)):
    at = f'{where}{jax.tree_util.keystr(path)}'
    assert _leaf_summary(want) == _leaf_summary(got), (
        f'{at}: leaf differs: {_leaf_summary(want)} != {_leaf_summary(got)}')
    np.testing.assert_array_equal(_comparable(got), _comparable(want), err_msg=at, strict=True)


def assert_same_outcome(expected: Outcome, actual: Outcome, where: str = '') -> None:
  """Both returned identical trees, or both raised the same type and message."""
  assert expected.describe_error() == actual.describe_error(), (
      f'{where}: outcomes differ:\n  original:  {expected.describe_error()!r}\n'
      f'  rewritten: {actual.describe_error()!r}')
  if expected.error is None:
    assert_trees_identical(expected.value, actual.value, where)
