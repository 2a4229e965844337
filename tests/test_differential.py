"""Rewritten code must behave exactly like the original: run both and compare.

Every case in ``fixtures/exec/*.py`` (see the README there for the ``CASES``
convention) is initialised and applied from the original module and from the
module vjpify rewrote: ``init`` eagerly and under ``jax.jit``; ``apply``
eagerly, under ``jax.jit`` and under ``jax.vmap``. The two runs must agree
leaf for leaf, exactly, in values, dtypes, weak types, tree structure and
container types, including aux values and mutated collections; a run that
raises must raise the same exception type with the same message.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import pytest

from exec_support import Outcome, assert_same_outcome, load_pair, outcome_of

EXEC_FIXTURES = pathlib.Path(__file__).resolve().parent.parent / 'fixtures' / 'exec'


@functools.cache
def _pair(stem: str):
  return load_pair(str(EXEC_FIXTURES / f'{stem}.py'), stem)


def _case_ids() -> list:
  params = []
  for path in sorted(EXEC_FIXTURES.glob('*.py')):
    for name in _pair(path.stem).original.CASES:
      params.append(pytest.param(path.stem, name, id=f'{path.stem}/{name}'))
  return params


def _default_batch(args: tuple) -> tuple:
  return jax.tree_util.tree_map(lambda a: jnp.stack([a, a * 2]), args)


def _run(spec: dict[str, Any]) -> dict[str, Outcome]:
  """Every stage of one case, in order; apply stages use this copy's init."""
  module, args = spec['module'], spec['args']
  method = spec.get('method')
  init_rngs = spec.get('init_rngs', jax.random.key(0))
  apply_kwargs = spec.get('apply', {})
  batch = spec['batch'] if 'batch' in spec else _default_batch(args)
  init: Callable[..., Any] = lambda *a: module.init(init_rngs, *a, method=method)

  outcomes = {
      'init': outcome_of(lambda: init(*args)),
      'init under jit': outcome_of(lambda: jax.jit(init)(*args)),
  }
  if outcomes['init'].error is not None:
    if batch is not None:
      outcomes['init under vmap'] = outcome_of(lambda: jax.vmap(init)(*batch))
    return outcomes
  variables = outcomes['init'].value
  apply = lambda v, *a: module.apply(v, *a, method=method, **apply_kwargs)
  outcomes['apply'] = outcome_of(lambda: apply(variables, *args))
  outcomes['apply under jit'] = outcome_of(lambda: jax.jit(apply)(variables, *args))
  if batch is not None:
    outcomes['apply under vmap'] = outcome_of(
        lambda: jax.vmap(functools.partial(apply, variables))(*batch))
  return outcomes


@pytest.mark.parametrize(('stem', 'name'), _case_ids())
def test_rewritten_behaves_like_original(stem: str, name: str) -> None:
  pair = _pair(stem)
  original_spec = pair.original.CASES[name]()
  original = _run(original_spec)
  rewritten = _run(pair.rewritten.CASES[name]())

  expected_error = original_spec.get('error')
  init_error = original['init'].error
  if expected_error is None:
    # A case that is meant to run must run, or both copies failing alike
    # would pass unnoticed.
    assert init_error is None, f'original init raised {init_error!r}'
    for stage, outcome in original.items():
      assert outcome.error is None, f'original {stage} raised {outcome.error!r}'
  else:
    assert isinstance(init_error, expected_error), (
        f'original init should raise {expected_error.__name__}, got {init_error!r}')

  assert list(original) == list(rewritten)
  for stage in original:
    assert_same_outcome(original[stage], rewritten[stage], f'{stem}/{name} {stage}')
