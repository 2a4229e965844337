"""The compiled path must be indistinguishable from ``nn.grad`` except in speed.

Each module below computes a gradient in one of three forms, chosen by a
field: ``nn.grad`` as written, the rewritten ``nn.vjp`` form, and that form
around ``compiled(fn)``. The tests compare everything ``apply`` returns
(gradients, aux, mutated collections, rng keys drawn afterwards) across
several calls, count the traces of the cached calls, and pin the cases that
must run uncompiled.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support.comparing import COMPILED_ATOL, COMPILED_RTOL, assert_trees_identical
from vjpify.runtime import compiled, grad_from_vjp, value_and_grad_from_vjp
from vjpify.runtime.compiled import FLAX_COMPILES as _FLAX_COMPILES

# These tests count traces; on flax releases the runtime does not compile
# for, the last test here checks that every call runs uncompiled instead.
compiles = pytest.mark.skipif(not _FLAX_COMPILES, reason='the installed flax is run uncompiled')
pytestmark = pytest.mark.usefixtures('fresh_cache')

ORIGINAL, REWRITTEN, COMPILED = 'original', 'rewritten', 'compiled'
SCALE = 2.0


def grad(form, fn, mdl, *primals, has_aux=False):
  """``nn.grad`` in one of the three forms."""
  if form == ORIGINAL:
    return nn.grad(fn, mdl, *primals, has_aux=has_aux)
  if form == COMPILED:
    fn = compiled(fn)
  return grad_from_vjp(nn.vjp(fn, mdl, *primals, has_aux=has_aux, vjp_variables=False, multi_scope=True))


def value_and_grad(form, fn, mdl, *primals, has_aux=False):
  if form == ORIGINAL:
    return nn.value_and_grad(fn, mdl, *primals, has_aux=has_aux)
  if form == COMPILED:
    fn = compiled(fn)
  return value_and_grad_from_vjp(
      nn.vjp(fn, mdl, *primals, has_aux=has_aux, vjp_variables=False, multi_scope=True))


class Stack(nn.Module):
  depth: int = 3

  @nn.compact
  def __call__(self, x):
    for _ in range(self.depth):
      x = jnp.tanh(nn.Dense(x.shape[-1])(x))
    return x


class Noisy(nn.Module):
  """Dropout, BatchNorm and a fresh rng draw: everything nn.grad threads through."""

  @nn.compact
  def __call__(self, x):
    x = nn.Dense(8)(x)
    x = nn.BatchNorm(use_running_average=False)(x)
    x = nn.Dropout(0.5, deterministic=False)(x)
    x = x + 0.01 * jax.random.normal(self.make_rng('noise'), x.shape)
    return nn.Dense(1)(nn.relu(x))


class WithSetup(nn.Module):

  def setup(self):
    self.dense = nn.Dense(4)
    self.drop = nn.Dropout(0.3, deterministic=False)

  def __call__(self, x):
    return self.drop(self.dense(x))

  def loss(self, x):
    return jnp.sum(self(x) ** 2)


def noisy_loss(mdl, x):
  y = mdl(x)
  return jnp.mean(y ** 2), {'mean': y.mean(), 'calls': 1, 'tag': 'aux'}


class Site(nn.Module):
  """Two gradient sites around other rng draws, so counters must line up."""

  form: str = ORIGINAL

  @nn.compact
  def __call__(self, x):
    noisy = Noisy()
    first = grad(self.form, noisy_loss, noisy, x, has_aux=True)
    between = nn.Dropout(0.5, deterministic=False)(x)
    second = value_and_grad(self.form, noisy_loss, noisy, x, has_aux=True)
    return first, between, second, self.make_rng('dropout')


class StackSite(nn.Module):
  form: str = ORIGINAL

  @nn.compact
  def __call__(self, x):
    return grad(self.form, lambda mdl, x: mdl(x).sum(), Stack(), x)


class SetupSite(nn.Module):
  form: str = ORIGINAL

  def setup(self):
    self.inner = WithSetup()

  def __call__(self, x):
    by_function = grad(self.form, lambda mdl, x: mdl.loss(x), self.inner, x)
    by_method = grad(self.form, WithSetup.loss, self.inner, x)
    return by_function, by_method


def rngs(seed):
  keys = jax.random.split(jax.random.key(seed), 3)
  return {'params': keys[0], 'dropout': keys[1], 'noise': keys[2]}


def assert_same(expected, actual):
  assert_trees_identical(expected, actual, rtol=COMPILED_RTOL, atol=COMPILED_ATOL)


def apply_all(module_type, variables, x, seeds, **kwargs):
  """Applies the module in each form for each seed; returns {form: [outputs]}."""
  return {
      form: [
          module_type(form=form).apply(variables, x, rngs=rngs(seed), **kwargs)
          for seed in seeds
      ]
      for form in (ORIGINAL, COMPILED)
  }


X = jnp.linspace(-1.0, 1.0, 24).reshape(4, 6)


@compiles
def test_dropout_masks_batch_stats_aux_and_later_draws_match_nn_grad():
  variables = Site().init(rngs(0), X)
  outputs = apply_all(Site, variables, X, seeds=(1, 2), mutable=['batch_stats'])
  for expected, actual in zip(*outputs.values()):
    assert_same(expected, actual)
  info = compiled.cache_info()
  assert (info.calls, info.traces, info.fallbacks) == (4, 2, 0)


@compiles
def test_init_creates_the_same_variables():
  expected = Site(form=ORIGINAL).init(rngs(0), X)
  actual = Site(form=COMPILED).init(rngs(0), X)
  assert_same(expected, actual)
  assert compiled.cache_info().fallbacks == 0


@compiles
def test_cached_calls_do_not_trace_and_new_shapes_do():
  variables = StackSite().init(rngs(0), X)
  for _ in range(3):
    assert_same(StackSite().apply(variables, X), StackSite(form=COMPILED).apply(variables, X))
  assert compiled.cache_info().traces == 1
  wider = jnp.ones((7, 6))
  assert_same(StackSite().apply(variables, wider), StackSite(form=COMPILED).apply(variables, wider))
  StackSite(form=COMPILED).apply(variables, wider)
  assert tuple(compiled.cache_info()) == (5, 2, 0, 1)


@compiles
def test_setup_modules_and_methods_match_nn_grad():
  variables = SetupSite().init(rngs(0), X)
  for seed in (1, 2):
    assert_same(
        SetupSite().apply(variables, X, rngs=rngs(seed)),
        SetupSite(form=COMPILED).apply(variables, X, rngs=rngs(seed)),
    )
  info = compiled.cache_info()
  assert (info.traces, info.fallbacks) == (2, 0)


class Sowing(nn.Module):
  """The module itself as the vjp target, sowing inside the differentiated function."""

  form: str = ORIGINAL

  # setup rather than two compact methods, which flax before 0.9 rejects.
  def setup(self):
    self.embed = nn.Dense(6)
    self.hidden = nn.Dense(6)

  def __call__(self, x):
    y = self.embed(x)
    (x_grad,) = grad(self.form, lambda mdl, x: mdl.energy(x), self, y)
    return x_grad, self.energy(y)

  def energy(self, x):
    h = jnp.tanh(self.hidden(x))
    self.sow('intermediates', 'h', h)
    return jnp.sum(h ** 2)


@compiles
def test_the_module_itself_as_target_with_sown_intermediates():
  variables = Sowing().init(rngs(0), X)
  for kwargs in ({'mutable': ['intermediates']}, {'capture_intermediates': True, 'mutable': True}):
    for _ in range(2):
      assert_same(
          Sowing().apply(variables, X, **kwargs),
          Sowing(form=COMPILED).apply(variables, X, **kwargs),
      )
  info = compiled.cache_info()
  assert (info.traces, info.fallbacks) == (2, 0)


class Closure(nn.Module):
  """Sites whose fn reads what the keying must see or refuse."""

  form: str = ORIGINAL
  case: str = 'scalar'

  @nn.compact
  def __call__(self, x, offset):
    stack = Stack(depth=1)
    if self.case == 'scalar':
      scale = float(offset.sum())  # a Python value that changes between calls
      fn = lambda mdl, x: scale * mdl(x).sum()
    elif self.case == 'array':
      fn = lambda mdl, x: (mdl(x) * offset).sum()
    elif self.case == 'self':
      fn = lambda mdl, x: mdl(x).sum() * self.param('w', nn.initializers.ones_init(), ())
    elif self.case == 'global':
      fn = lambda mdl, x: SCALE * mdl(x).sum()
    elif self.case == 'value_branch':
      fn = lambda mdl, x: mdl(x).sum() if x.sum() > 0 else -mdl(x).sum()
    elif self.case == 'cyclic':
      box = [2.0]
      box.append(box)
      fn = lambda mdl, x: box[0] * mdl(x).sum()
    elif self.case == 'partial':
      fn = functools.partial(lambda k, mdl, x: k * mdl(x).sum(), 3.0)
    return grad(self.form, fn, stack, x)


@pytest.mark.parametrize(
    'case, calls, traces',
    [
        # Two values of the closure (or global) give two entries, each traced once.
        pytest.param('scalar', (4, 0), 2, id='closure-over-python-value-is-keyed'),
        pytest.param('global', (4, 0), 4, id='reassigned-global-is-keyed'),
        # The arrays are arguments of the compiled function: one trace for both.
        pytest.param('array', (4, 0), 1, id='closure-over-array-is-an-argument'),
        pytest.param('self', (4, 4), 0, id='closure-over-bound-module-runs-uncompiled'),
        pytest.param('cyclic', (4, 0), 1, id='closure-over-cyclic-list-is-keyed'),
        # Tracing fails once; the entry is then known not to compile.
        pytest.param('value_branch', (4, 4), 1, id='python-branch-on-values-runs-uncompiled'),
        pytest.param('partial', (4, 4), 0, id='partial-is-not-wrapped'),
    ],
)
@compiles
def test_closures(case, calls, traces):
  global SCALE
  offsets = (jnp.ones(6), 2 * jnp.ones(6))
  variables = Closure(case=case).init(rngs(0), X, offsets[0])
  for index, offset in enumerate(offsets * 2):
    SCALE = 2.0 + index  # a reassigned global must not be served stale
    assert_same(
        Closure(case=case).apply(variables, X, offset),
        Closure(form=COMPILED, case=case).apply(variables, X, offset),
    )
  SCALE = 2.0
  info = compiled.cache_info()
  assert ((info.calls, info.fallbacks), info.traces) == (calls, traces)


@compiles
def test_under_jit_the_program_is_the_uncompiled_one():
  variables = Site().init(rngs(0), X)

  def step(form):
    def apply(v, x, r):
      out = Site(form=form).apply(v, x, rngs=r, mutable=['batch_stats'])
      return jax.tree_util.tree_map(lambda leaf: leaf if isinstance(leaf, jax.Array) else None, out)
    return jax.jit(apply)

  rewritten = step(REWRITTEN).lower(variables, X, rngs(1)).as_text()
  compiled_ = step(COMPILED).lower(variables, X, rngs(1)).as_text()
  assert compiled_ == rewritten
  assert_same(step(ORIGINAL)(variables, X, rngs(1)), step(COMPILED)(variables, X, rngs(1)))
  info = compiled.cache_info()
  assert info.traces == 0 and info.fallbacks == info.calls > 0


@compiles
def test_under_vmap_runs_uncompiled():
  variables = StackSite().init(rngs(0), X)
  batch = jnp.stack([X, 2 * X])
  expected = jax.vmap(lambda x: StackSite().apply(variables, x))(batch)
  actual = jax.vmap(lambda x: StackSite(form=COMPILED).apply(variables, x))(batch)
  assert_same(expected, actual)
  assert compiled.cache_info().traces == 0


@compiles
def test_with_jit_disabled_runs_uncompiled():
  variables = StackSite().init(rngs(0), X)
  with jax.disable_jit():
    assert_same(StackSite().apply(variables, X), StackSite(form=COMPILED).apply(variables, X))
  info = compiled.cache_info()
  assert info.traces == 0 and info.fallbacks == info.calls == 1


@compiles
def test_under_eager_jax_grad_compiles_and_matches():
  variables = StackSite().init(rngs(0), X)

  def total(form, v):
    return StackSite(form=form).apply(v, X)[0].sum()

  assert_same(jax.grad(functools.partial(total, ORIGINAL))(variables),
              jax.grad(functools.partial(total, COMPILED))(variables))
  assert compiled.cache_info().fallbacks == 0


class Shared(nn.Module):
  """The vjp target reaches a second scope through a field: several scopes."""

  form: str = ORIGINAL

  @nn.compact
  def __call__(self, x):
    dense = nn.Dense(6)
    dense(x)
    wrapper = Wrapper(dense)
    return grad(self.form, lambda mdl, x: mdl(x).sum(), wrapper, x)


class Wrapper(nn.Module):
  inner: nn.Module

  @nn.compact
  def __call__(self, x):
    return nn.Dense(6)(self.inner(x))


@compiles
def test_modules_reaching_other_scopes_compile_with_their_scopes():
  expected = Shared().init(rngs(0), X)
  assert_same(expected, Shared(form=COMPILED).init(rngs(0), X))
  for _ in range(2):
    assert_same(Shared().apply(expected, X), Shared(form=COMPILED).apply(expected, X))
  info = compiled.cache_info()
  assert (info.calls, info.traces, info.fallbacks) == (3, 2, 0)


@compiles
def test_intercepted_methods_run_uncompiled():
  variables = StackSite().init(rngs(0), X)
  seen = []

  def interceptor(next_fun, args, kwargs, context):
    seen.append(context.method_name)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    expected = StackSite().apply(variables, X)
    calls = len(seen)
    actual = StackSite(form=COMPILED).apply(variables, X)
  assert_same(expected, actual)
  assert len(seen) == 2 * calls
  assert compiled.cache_info().traces == 0


class Failing(nn.Module):
  form: str = ORIGINAL

  @nn.compact
  def __call__(self, x):
    return grad(self.form, lambda mdl, x: mdl(x), Stack(depth=1), x)


@compiles
def test_errors_are_those_of_nn_grad():
  x = jnp.ones((2, 3))
  with pytest.raises(ValueError) as expected:
    Failing().init(rngs(0), x)
  with pytest.raises(ValueError) as actual:
    Failing(form=COMPILED).init(rngs(0), x)
  assert str(actual.value) == str(expected.value)


@compiles
def test_what_cannot_be_wrapped_is_returned_as_is():
  fn = functools.partial(noisy_loss)
  assert compiled(fn) is fn
  assert compiled(Noisy) is Noisy
  assert compiled(None) is None
  wrapped = compiled(noisy_loss)
  assert wrapped.__name__ == 'noisy_loss' and wrapped.__wrapped__ is noisy_loss


@pytest.mark.skipif(_FLAX_COMPILES, reason='the installed flax is compiled for')
def test_older_flax_always_runs_uncompiled():
  # Where the compiled path would differ (flax 0.8.0, a module sowing in its
  # own differentiated method), every call must run as nn.vjp runs it.
  compiled.cache_clear()
  variables = Sowing().init(rngs(0), X)
  kwargs = {'mutable': ['intermediates']}
  assert_same(Sowing().apply(variables, X, **kwargs), Sowing(form=COMPILED).apply(variables, X, **kwargs))
  info = compiled.cache_info()
  assert (info.traces, info.fallbacks) == (0, info.calls) and info.calls > 0
