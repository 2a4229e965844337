"""Tiered compilation, volatile guards and the cache's bounds.

The clock is taken out of the decisions: each test fixes the estimated
compile time (zero once a site has run uncompiled once, or never reached),
so what compiles when is exact.
"""

from __future__ import annotations


import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from vjpify.runtime import compiled, explain, grad_from_vjp
from vjpify.runtime.compiled import FLAX_COMPILES, cache

pytestmark = pytest.mark.skipif(not FLAX_COMPILES, reason='the installed flax is run uncompiled')

GAIN = 1.0


class Site(nn.Module):
  scale: float = 1.0

  @nn.compact
  def __call__(self, x):
    scale = self.scale
    return grad_from_vjp(nn.vjp(compiled(lambda mdl, x: jnp.sum(mdl(x)) * scale * GAIN), nn.Dense(2), x,
                                vjp_variables=False, multi_scope=True))


@pytest.fixture
def tiered(fresh_cache, monkeypatch):
  """Tiered mode where a key has paid for compiling once it ran uncompiled once."""
  monkeypatch.setattr(fresh_cache, 'estimate', lambda site: None if site.fastest_uncompiled is None else 0.0)
  previous = compiled.set_mode('tiered')
  yield
  compiled.set_mode(previous)


def _counts():
  info = compiled.cache_info()
  return info.traces, info.fallbacks


X = jnp.ones((2, 3))


def test_a_key_compiles_once_it_has_paid(tiered):
  variables = Site().init(jax.random.key(0), X)  # init is a key of its own, seen once
  assert _counts() == (0, 1)
  for _ in range(3):
    Site().apply(variables, X)
  assert _counts() == (1, 2)  # the first apply ran uncompiled, the second compiled
  [reason] = explain().sites[0].uncompiled_reasons
  assert reason.startswith('not compiled yet')


def test_a_key_that_never_repeats_never_compiles(tiered):
  variables = Site().init(jax.random.key(0), X)
  for step in range(6):
    Site(scale=1.0 / (1 + step)).apply(variables, X)  # an annealed closure value
  assert _counts() == (0, 7)


def _apply_with_a_new_gain_each_time(site: type[nn.Module]) -> dict:
  """Applies ``site`` six times, GAIN changed before each; its variables."""
  global GAIN
  variables = site().init(jax.random.key(0), X)
  for step in range(6):
    GAIN = 1.0 + step
    site().apply(variables, X)
  return variables


def test_a_global_that_changes_on_every_call_becomes_part_of_the_key(tiered):
  global GAIN
  variables = _apply_with_a_new_gain_each_time(Site)
  traces_for_new_values = _counts()[0]
  for gain in (1.0, 2.0) * 3:  # values that repeat compile, each once
    GAIN = gain
    Site().apply(variables, X)
  GAIN = 1.0
  # fn's own global was watched while the site warmed: it joined the key on
  # its first change, so no trace was spent on a value that never came back.
  assert traces_for_new_values == 0
  assert _counts()[0] == 2


def helper_gain():
  return GAIN


class HelperSite(nn.Module):

  @nn.compact
  def __call__(self, x):
    return grad_from_vjp(nn.vjp(compiled(lambda mdl, x: jnp.sum(mdl(x)) * helper_gain()), nn.Dense(2), x,
                                vjp_variables=False, multi_scope=True))


def test_a_global_read_by_a_helper_joins_the_key_once_its_guard_fails(tiered):
  global GAIN
  _apply_with_a_new_gain_each_time(HelperSite)
  GAIN = 1.0
  # Only a trace sees what helpers read: one trace, then the failing guard
  # made GAIN part of the key.
  assert _counts()[0] == 1


def test_new_shapes_pay_for_themselves(tiered):
  variables = Site().init(jax.random.key(0), X)
  Site().apply(variables, X)
  Site().apply(variables, X)
  assert _counts()[0] == 1
  for rows in range(3, 8):  # each shape once: no trace
    Site().apply(variables, jnp.ones((rows, 3)))
  assert _counts()[0] == 1
  for _ in range(2):
    Site().apply(variables, jnp.ones((9, 3)))
  assert _counts()[0] == 2


def test_never_mode_never_compiles(fresh_cache):
  previous = compiled.set_mode('never')
  try:
    variables = Site().init(jax.random.key(0), X)
    for _ in range(3):
      Site().apply(variables, X)
    assert _counts() == (0, 4)
  finally:
    compiled.set_mode(previous)


def test_the_cache_keeps_at_most_its_limits(fresh_cache):
  previous = compiled.set_cache_limits(entries=3)
  try:
    variables = Site().init(jax.random.key(0), X)
    for step in range(6):
      Site(scale=float(step)).apply(variables, X)
    keys, _ = compiled.cache_size()
    assert keys == 3
    compiled.set_cache_limits(entries=100, bytes=1)  # one key is always kept
    assert compiled.cache_size()[0] == 1
  finally:
    compiled.set_cache_limits(*previous)


def test_bytes_are_counted_for_every_entry(fresh_cache):
  variables = Site().init(jax.random.key(0), X)
  Site().apply(variables, X)
  keys, size = compiled.cache_size()
  assert keys == 2 and size >= 2 * cache.MIN_ENTRY_BYTES


@pytest.mark.parametrize('call, message', [
    pytest.param(lambda: compiled.set_mode('sometimes'),
                 "set_mode('sometimes'): expected one of tiered, always, never", id='mode'),
    pytest.param(lambda: compiled.set_cache_limits(entries=0),
                 'set_cache_limits(entries=0): expected a positive int', id='entries'),
    pytest.param(lambda: compiled.set_cache_limits(bytes=-5),
                 'set_cache_limits(bytes=-5): expected a positive int', id='bytes'),
])
def test_bad_settings_are_refused_with_the_value(call, message):
  with pytest.raises(ValueError) as error:
    call()
  assert str(error.value) == message
