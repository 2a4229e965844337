"""``vjpify.runtime.explain()`` says, per site, how calls ran and why some did not."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from vjpify.runtime import compiled, explain, grad_from_vjp
from vjpify.runtime.compiled import FLAX_COMPILES

pytestmark = [pytest.mark.skipif(not FLAX_COMPILES, reason='the installed flax is run uncompiled'),
              pytest.mark.usefixtures('fresh_cache')]

GAIN = 1.0
VERBOSE = False


def loss(mdl, x):
  if VERBOSE:
    print('loss evaluated')
  return jnp.sum(mdl(x)) * GAIN


class Site(nn.Module):

  @nn.compact
  def __call__(self, x):
    return grad_from_vjp(nn.vjp(compiled(loss), nn.Dense(2), x, vjp_variables=False, multi_scope=True))


def test_a_report_per_site_with_counts_and_reasons(capsys):
  global GAIN, VERBOSE
  x = jnp.ones((2, 3))
  variables = Site().init(jax.random.key(0), x)
  Site().apply(variables, x)
  GAIN = 2.0
  Site().apply(variables, x)
  VERBOSE = True
  Site().apply(variables, x)
  VERBOSE, GAIN = False, 1.0
  capsys.readouterr()
  report = explain().site('test_compiled_explain.py:32')
  assert report.function == 'loss'
  assert (report.calls, report.compiled, report.uncompiled) == (4, 3, 1)
  assert report.traces == 4
  [reason] = report.uncompiled_reasons
  assert reason.startswith('fn calls print() at ') and reason.endswith('test_compiled_explain.py:24 in loss')
  assert any(retrace.startswith('global GAIN of test_compiled_explain changed (was 1.0, now 2.0)')
             for retrace in report.retrace_reasons), report.retrace_reasons
  text = str(explain())
  assert 'test_compiled_explain.py:32 (loss): 4 calls, 3 compiled, 1 uncompiled, 4 traces' in text
  assert '  uncompiled 1x: fn calls print() at ' in text


def test_calls_under_an_outer_jit_are_explained():
  x = jnp.ones((2, 3))
  variables = Site().init(jax.random.key(0), x)
  jax.jit(Site().apply)(variables, x)
  report = explain().site('test_compiled_explain.py:32')
  [reason] = report.uncompiled_reasons
  assert reason.startswith('under an outer transformation')


class PartialSite(nn.Module):

  @nn.compact
  def __call__(self, x):
    fn = functools.partial(scaled_loss, 2.0)
    return grad_from_vjp(nn.vjp(compiled(fn), nn.Dense(2), x, vjp_variables=False, multi_scope=True))


def scaled_loss(scale, mdl, x):
  return scale * jnp.sum(mdl(x))


def test_a_site_whose_fn_cannot_be_wrapped_is_explained():
  x = jnp.ones((2, 3))
  variables = PartialSite().init(jax.random.key(0), x)
  PartialSite().apply(variables, x)
  report = explain().site('test_compiled_explain.py:73')
  assert (report.function, report.calls, report.compiled, report.uncompiled) == ('partial', 2, 0, 2)
  assert dict(report.uncompiled_reasons) == {
      'fn is a partial, not a function or a Module method, so it runs as nn.vjp calls it '
      '(a lambda around it can be compiled)': 2}


def test_clearing_the_cache_clears_the_report():
  x = jnp.ones((2, 3))
  Site().init(jax.random.key(0), x)
  assert explain().sites
  compiled.cache_clear()
  assert not explain().sites
  assert str(explain()) == 'no compiled site was called'


def test_an_unknown_site_is_named_in_the_error():
  with pytest.raises(KeyError, match='no compiled site at nowhere.py:1'):
    explain().site('nowhere.py:1')
