"""Rewritten code must behave exactly like the original: run both and compare.

Every case in ``fixtures/exec/*.py`` (see the README there for the ``CASES``
convention) is initialised and applied from the original module and from the
module vjpify rewrote: ``init`` eagerly and under ``jax.jit``; ``apply``
eagerly, under ``jax.jit``, under ``jax.vmap``, differentiated with respect
to the variables by an outer ``jax.grad``, and under a method interceptor
that records every Module method call (path, class, method) in order. The two runs must agree
leaf for leaf, exactly, in values, dtypes, weak types, tree structure and
container types, including aux values and mutated collections; a run that
raises must raise the same exception type with the same message.

Each case runs against both forms of the rewrite. Plain ``nn.vjp`` code
(``jit=False``) must match bit for bit. With ``fn`` wrapped in the runtime's
``compiled`` (the default), the stages that call it eagerly run one compiled
program instead of op-by-op dispatch, so their float values may differ by
rounding, within ``COMPILED_RTOL`` or ``COMPILED_ATOL``; everything else still matches exactly,
and the stages under an outer trace, where ``compiled`` calls ``fn`` as
``nn.vjp`` would, match bit for bit.
"""

from __future__ import annotations

import functools
import inspect
import pathlib
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import FrozenDict

from support.comparing import COMPILED_ATOL, COMPILED_RTOL, Outcome, assert_same_outcome, assert_trees_identical, outcome_of
from support.loading import load_pair, load_source
from vjpify.runtime import arguments

EXEC_FIXTURES = pathlib.Path(__file__).resolve().parents[2] / 'fixtures' / 'exec'

# Stages in which compiled runs fn through jax.jit rather than as nn.vjp would.
_COMPILED_STAGES = frozenset({'init', 'apply', 'apply under grad'})


@functools.cache
def _pair(stem: str, jit: bool):
  return load_pair(str(EXEC_FIXTURES / f'{stem}.py'), stem, jit=jit)


def _case_ids() -> list:
  # Cases are listed from the sources as written, so that a fixture the
  # transformer mishandles fails its own tests rather than collection.
  params = []
  for path in sorted(EXEC_FIXTURES.glob('*.py')):
    original = load_source(path.read_text(encoding='utf-8'), f'_vjpify_exec_listing_{path.stem}', str(path))
    known = getattr(original, 'KNOWN_DIFFERENCES', {})
    for name in original.CASES:
      # strict: a difference that went away must be taken off the list.
      marks = [pytest.mark.xfail(reason=known[name], strict=True, raises=AssertionError)] if name in known else []
      for jit in (True, False):
        params.append(pytest.param(path.stem, name, jit, id=f'{path.stem}/{name}/{"jit" if jit else "no_jit"}',
                                   marks=marks))
  return params


def _default_batch(args: tuple) -> tuple:
  return jax.tree_util.tree_map(lambda a: jnp.stack([a, a * 2]), args)


def _float_sum(tree: Any) -> jax.Array:
  """A scalar that depends on every inexact leaf, for differentiating through apply."""
  leaves = [leaf for leaf in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
  return sum((jnp.sum(jnp.real(leaf)).astype(jnp.float32) for leaf in leaves), jnp.float32(0))


def _intercepted(apply: Callable[[], Any]) -> tuple[Any, list]:
  """What ``apply`` returns, and every Module method call it made, in order."""
  calls = []

  def record(next_fun, args, kwargs, context):
    calls.append((context.module.path, type(context.module).__name__, context.method_name))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    return apply(), calls


def _run(spec: dict[str, Any]) -> dict[str, Outcome]:
  """Every stage of one case, in order; apply stages use this copy's init."""
  module, args = spec['module'], spec['args']
  method = spec.get('method')
  init_rngs = spec.get('init_rngs', jax.random.key(0))
  apply_kwargs = spec.get('apply', {})
  batch = spec['batch'] if 'batch' in spec else _default_batch(args)
  vmap = functools.partial(jax.vmap, axis_name=spec.get('vmap_axis_name'))
  init: Callable[..., Any] = lambda *a: module.init(init_rngs, *a, method=method)

  outcomes = {
      'init': outcome_of(lambda: init(*args)),
      'init under jit': outcome_of(lambda: jax.jit(init)(*args)),
  }
  if outcomes['init'].error is not None:
    if batch is not None:
      outcomes['init under vmap'] = outcome_of(lambda: vmap(init)(*batch))
    return outcomes
  variables = outcomes['init'].value
  apply = lambda v, *a: module.apply(v, *a, method=method, **apply_kwargs)
  outcomes['apply'] = outcome_of(lambda: apply(variables, *args))
  outcomes['apply under jit'] = outcome_of(lambda: jax.jit(apply)(variables, *args))
  outcomes['apply intercepted'] = outcome_of(lambda: _intercepted(lambda: apply(variables, *args)))
  # Gradient penalties and meta-learning differentiate through nn.grad.
  outcomes['apply under grad'] = outcome_of(
      lambda: jax.grad(lambda v: _float_sum(apply(v, *args)), allow_int=True)(variables))
  if batch is not None:
    outcomes['apply under vmap'] = outcome_of(
        lambda: vmap(functools.partial(apply, variables))(*batch))
  return outcomes


@pytest.mark.parametrize(('stem', 'name', 'jit'), _case_ids())
def test_rewritten_behaves_like_original(stem: str, name: str, jit: bool) -> None:
  pair = _pair(stem, jit)
  original_spec = pair.original.CASES[name]()
  original = _run(original_spec)
  rewritten = _run(pair.rewritten.CASES[name]())

  # The original must do what the case says, or both copies failing alike
  # would pass unnoticed.
  for stage, outcome in original.items():
    expected = original_spec.get('error' if stage.startswith('init') else 'apply_error')
    if expected is None:
      assert outcome.error is None, f'original {stage} raised {outcome.error!r}'
    else:
      assert isinstance(outcome.error, expected), (
          f'original {stage} should raise {expected.__name__}, got {outcome.error!r}')

  assert list(original) == list(rewritten)
  for stage in original:
    compiled_stage = jit and stage in _COMPILED_STAGES
    assert_same_outcome(original[stage], rewritten[stage], f'{stem}/{name} {stage}',
                        rtol=COMPILED_RTOL if compiled_stage else 0.0, atol=COMPILED_ATOL if compiled_stage else 0.0)


def _differs(expected: Any, actual: Any) -> bool:
  try:
    assert_trees_identical(expected, actual)
  except AssertionError:
    return True
  return False


@pytest.mark.parametrize(('expected', 'actual'), [
    pytest.param((jnp.ones(2),), [jnp.ones(2)], id='tuple_vs_list'),
    pytest.param(FrozenDict(a=jnp.ones(2)), {'a': jnp.ones(2)}, id='frozendict_vs_dict'),
    pytest.param(jnp.ones(2), jnp.ones(2, jnp.float16), id='dtype'),
    pytest.param(jnp.float32(1.0), jnp.asarray(1.0), id='weak_type'),
    pytest.param(jnp.ones(2), np.ones(2, np.float32), id='array_type'),
    pytest.param(jnp.ones(2), jnp.ones(2).at[1].set(np.nextafter(np.float32(1), np.float32(2))), id='one_ulp'),
    pytest.param(jnp.ones(2), jnp.ones((1, 2)), id='shape'),
    pytest.param({'a': 1}, {'a': 1.0}, id='python_scalar_type'),
])
def test_comparison_tells_trees_apart(expected: Any, actual: Any) -> None:
  assert not _differs(expected, expected)
  assert _differs(expected, actual)


def test_comparison_tells_errors_apart() -> None:
  original = outcome_of(lambda: int('x'))
  assert_same_outcome(original, outcome_of(lambda: int('x')))
  with pytest.raises(AssertionError):
    assert_same_outcome(original, outcome_of(lambda: int('y')))
  with pytest.raises(AssertionError):
    assert_same_outcome(original, Outcome(value=0))


@pytest.mark.parametrize('transform', ['grad', 'value_and_grad'])
def test_kwargs_check_has_flax_signature(transform: str) -> None:
  # vjp_kwargs binds the mapping to stand-ins for flax's functions; they must
  # take the same parameters, or its errors would no longer be flax's.
  def parameters(fn):
    return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()]

  assert parameters(arguments.SIGNATURES[transform]) == parameters(getattr(nn, transform))


def test_tolerance_allows_rounding_and_nothing_more() -> None:
  one_ulp = jnp.ones(2).at[1].set(np.nextafter(np.float32(1), np.float32(2)))
  assert_trees_identical(jnp.ones(2), one_ulp, rtol=COMPILED_RTOL, atol=COMPILED_ATOL)
  with pytest.raises(AssertionError):
    assert_trees_identical(jnp.ones(2), jnp.ones(2) * (1 + 1e-5), rtol=COMPILED_RTOL, atol=COMPILED_ATOL)
  # Integers and booleans stay exact whatever the tolerance.
  with pytest.raises(AssertionError):
    assert_trees_identical(jnp.arange(3), jnp.arange(3).at[0].set(1), rtol=1.0, atol=1.0)
