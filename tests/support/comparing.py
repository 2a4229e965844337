"""Comparing what a program did before and after the rewrite: trees of results, and outcomes.

What the compiled lowering promises is defined here once: float values within
``COMPILED_RTOL`` relative or ``COMPILED_ATOL`` absolute of ``nn.grad``'s
(``README.md``, "Precision, per dtype"). Plain ``nn.vjp`` code, and every
non-float leaf, must match exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = ['COMPILED_ATOL', 'COMPILED_RTOL', 'Outcome', 'assert_arrays_close', 'assert_same_outcome',
           'assert_trees_identical', 'outcome_of']

# What the compiled lowering promises: nn.grad's values within 1e-6 relative.
COMPILED_RTOL = 1e-6
# Where a result is a difference of much larger terms (the input gradient of
# a sum through BatchNorm is 0 up to rounding noise of about 1e-4), no order
# of float operations can promise relative accuracy; the noise itself may
# differ by a few float32 roundings of the terms, which are of order 1.
COMPILED_ATOL = 1e-6


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
    # Arrays of PRNG keys have no weak type.
    return (type(leaf), leaf.dtype, leaf.shape, getattr(leaf, 'weak_type', None))
  if isinstance(leaf, np.ndarray):
    return (type(leaf), leaf.dtype, leaf.shape)
  return (type(leaf),)


def _comparable(leaf: Any) -> Any:
  if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
    return np.asarray(jax.random.key_data(leaf))
  return np.asarray(leaf)


def assert_arrays_close(want: Any, got: Any, at: str, rtol: float = 0.0, atol: float = 0.0) -> None:
  """Same shape and dtype; values equal, or within ``rtol`` (relative to themselves or to the
  array's largest magnitude) or ``atol`` for floats when either is given."""
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
    assert_arrays_close(want, got, at, rtol, atol)


def assert_same_outcome(expected: Outcome, actual: Outcome, where: str = '', rtol: float = 0.0,
                        atol: float = 0.0) -> None:
  """Both returned identical trees (up to ``rtol`` and ``atol``, see
  :func:`assert_trees_identical`), or both raised the same type and message."""
  assert expected.describe_error() == actual.describe_error(), (
      f'{where}: outcomes differ:\n  original:  {expected.describe_error()!r}\n'
      f'  rewritten: {actual.describe_error()!r}')
  if expected.error is None:
    assert_trees_identical(expected.value, actual.value, where, rtol, atol)
