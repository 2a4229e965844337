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


def load_pair(path: str, name: str, jit: bool = True) -> LoadedPair:
  """Loads ``path`` as written and rewritten (with ``jit`` passed on to the
  transformer), under two distinct module names.

  Fails when vjpify rewrote nothing or left a site unchanged: a differential
  fixture is only worth running if every site in it went through the rewrite.
  """
  with open(path, encoding='utf-8') as f:
    code = f.read()
  result = transform_source(code, path, jit=jit)
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


def _assert_values(want: Any, got: Any, at: str, rtol: float, atol: float) -> None:
  want, got = _comparable(want), _comparable(got)
  if (rtol or atol) and np.issubdtype(want.dtype, np.inexact):
    # Also relative to the leaf's largest magnitude, so that entries near
    # zero may differ by float rounding of the others.
    scale = float(np.max(np.abs(want), initial=0.0))
    # assert_allclose takes strict= only from NumPy 2, which old jax predates.
    assert (got.shape, got.dtype) == (want.shape, want.dtype), at
    np.testing.assert_allclose(got, want, rtol=rtol, atol=max(atol, rtol * scale), err_msg=at)
  else:
    np.testing.assert_array_equal(got, want, err_msg=at, strict=True)


def assert_trees_identical(expected: Any, actual: Any, where: str = '', rtol: float = 0.0,
                           atol: float = 0.0) -> None:
  """Asserts two pytrees are the same: structure, containers, leaf types,
  dtypes, shapes, weak types and values, exactly; with ``rtol`` or ``atol``,
  floating point values may differ by ``rtol`` relative to themselves or to
  their leaf's largest magnitude, or by ``atol`` (compiled and eager
  programs round differently).

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
    _assert_values(want, got, at, rtol, atol)


def assert_same_outcome(expected: Outcome, actual: Outcome, where: str = '', rtol: float = 0.0,
                        atol: float = 0.0) -> None:
  """Both returned identical trees (up to ``rtol`` and ``atol``, see
  :func:`assert_trees_identical`), or both raised the same type and message."""
  assert expected.describe_error() == actual.describe_error(), (
      f'{where}: outcomes differ:\n  original:  {expected.describe_error()!r}\n'
      f'  rewritten: {actual.describe_error()!r}')
  if expected.error is None:
    assert_trees_identical(expected.value, actual.value, where, rtol, atol)
