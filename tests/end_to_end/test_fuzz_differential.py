"""Bounded differential fuzzing: random small Flax modules run before and
after the rewrite give the same variables, outputs, mutations and errors.

The generator and runner are in ``scripts/fuzz_modules.py``, whose command
line is the longer run by hand; here a few derandomized examples run, so CI
stays quick and repeatable.
"""

from __future__ import annotations

import dataclasses

import fuzz_modules
import jax.numpy as jnp
import pytest
from fuzz_modules import Spec, assert_same, check, render, specs
from hypothesis import HealthCheck, given, settings
from support.comparing import COMPILED_RTOL


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs())
def test_random_modules_behave_the_same_after_rewriting(tmp_path_factory, spec):
  check(spec, tmp_path_factory.mktemp('fuzz'))


BASE = Spec(layers=(('dense', 2),), batch=2, features=3, transform='grad', has_aux='False',
            loss='sum_squares', holder='inline', primals='one', variables=None, rngs=None,
            call_after=False, mutable=(), jit=False)


@pytest.mark.parametrize('spec', [
    pytest.param(BASE, id='dense'),
    pytest.param(dataclasses.replace(BASE, layers=(('dropout', 1), ('batchnorm', 1)), transform='value_and_grad', has_aux='dict',
                               holder='attribute', primals='two', mutable=('batch_stats',)), id='dropout_batchnorm_aux'),
    pytest.param(dataclasses.replace(BASE, layers=(('counter', 1), ('noise', 1)), holder='self', rngs="'dropout'"),
                 id='rng_filter_excludes_noise'),
    pytest.param(dataclasses.replace(BASE, loss='vector', holder='setup'), id='non_scalar_loss'),
    pytest.param(dataclasses.replace(BASE, layers=(('dropout', 1), ('batchnorm', 1)), mutable=('batch_stats',),
                                     compiled=False), id='plain_vjp_bit_for_bit'),
])
def test_chosen_modules_behave_the_same_after_rewriting(tmp_path, spec):
  check(spec, tmp_path)


def test_comparison_catches_a_differing_leaf():
  # The fuzzer is only as strong as its comparison.
  same = {'a': jnp.ones(2), 'b': ('raised', 'ValueError: x')}
  assert_same(same, {'a': jnp.ones(2), 'b': ('raised', 'ValueError: x')})
  with pytest.raises(AssertionError):
    assert_same(same, {'a': jnp.array([1.0, 1.5]), 'b': same['b']})
  with pytest.raises(AssertionError):
    assert_same(same, {'a': jnp.ones(2), 'b': ('raised', 'TypeError: x')})
  with pytest.raises(AssertionError):
    assert_same(same, {'a': jnp.ones((2,)), 'b': same['b'], 'c': 1})
  assert_same(same, {'a': jnp.ones(2) * (1 + 1e-7), 'b': same['b']}, tolerance=COMPILED_RTOL)
  with pytest.raises(AssertionError):
    assert_same(same, {'a': jnp.ones(2) * (1 + 1e-5), 'b': same['b']}, tolerance=COMPILED_RTOL)


def test_rendered_programs_compile():
  compile(render(BASE), 'fuzz.py', 'exec', dont_inherit=True)
  assert fuzz_modules.LAYERS.keys() >= {'dense', 'dropout', 'batchnorm'}
