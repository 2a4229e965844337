"""End to end: a Module that calls ``nn.grad`` with ``reduce_axes``, rewritten
by the pass and executed, computes the gradients flax documents.

Under ``jax.vmap(..., axis_name='batch')`` the gradient of a primal broadcast
into the per-example computation is the sum over the batch of the
per-example gradients, the same on every member; the gradient of a mapped
primal stays per-example. At ``init`` and outside any mapping nothing is
reduced and nothing raises. The references are ``jax.grad`` of the same
arithmetic, written out by hand.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support.loading import load_source
from vjpify.transformer import transform_source

SOURCE = '''
import flax.linen as nn
import jax.numpy as jnp


def loss(mdl, w, x):
  return jnp.sum(mdl(w * x) + 0.1 * w**2)


def loss_with_aux(mdl, w, x):
  value = loss(mdl, w, x)
  return value, {'double': 2 * value}


class Scale(nn.Module):

  @nn.compact
  def __call__(self, x):
    k = self.param('k', nn.initializers.normal(1.0), (3,))
    return jnp.tanh(k * x)


class Model(nn.Module):
  axes: object = ('batch',)

  @nn.compact
  def __call__(self, w, x):
    scale = Scale()
    scale(x)
    literal = nn.grad(loss, scale, w, x, reduce_axes=('batch',))
    named = nn.grad(
        loss,
        scale,
        w,
        x,
        reduce_axes=self.axes,
    )
    (value, aux), with_aux = nn.value_and_grad(loss_with_aux, scale, w, x, reduce_axes='batch', has_aux=True)
    return literal, named, with_aux, value, aux
'''

W = jnp.array([0.5, -1.0, 2.0])
XS = jnp.arange(12.0).reshape(4, 3) / 10


@pytest.fixture(scope='module')
def rewritten():
  result = transform_source(SOURCE, 'model.py')
  assert [s.action for s in result.sites] == ['rewritten'] * 3
  # The reduction is explicit at every site.
  assert result.code.count('vjp_with_reduce_axes(') == 3
  return load_source(result.code, '_vjpify_reduce_axes_rewrite')


def _reference(k, w, x):
  return jnp.sum(jnp.tanh(k * (w * x)) + 0.1 * w**2)


def _per_example(k):
  """The per-example (w, x) gradients and values, w broadcast, x mapped."""
  grads = jax.vmap(jax.grad(_reference, argnums=(1, 2)), in_axes=(None, None, 0))(k, W, XS)
  values = jax.vmap(_reference, in_axes=(None, None, 0))(k, W, XS)
  return grads, values


def _init(model):
  return model.init(jax.random.key(0), W, XS[0])


@pytest.mark.parametrize('compile_outside', [False, True], ids=['eager', 'jit-around-vmap'])
def test_broadcast_primal_is_summed_and_mapped_primal_is_per_example(rewritten, compile_outside):
  model = rewritten.Model()
  variables = _init(model)
  k = variables['params']['Scale_0']['k']
  (w_grads, x_grads), values = _per_example(k)
  summed = jnp.broadcast_to(w_grads.sum(0), w_grads.shape)

  apply = jax.vmap(lambda x: model.apply(variables, W, x), axis_name='batch')
  if compile_outside:
    apply = jax.jit(apply)
  literal, named, with_aux, value, aux = apply(XS)
  for w_grad, x_grad in (literal, named, with_aux):
    np.testing.assert_allclose(w_grad, summed, rtol=1e-6)
    np.testing.assert_allclose(x_grad, x_grads, rtol=1e-6)
  np.testing.assert_allclose(value, values, rtol=1e-6)
  np.testing.assert_allclose(aux['double'], 2 * values, rtol=1e-6)


def test_init_and_unmapped_apply_reduce_nothing(rewritten):
  model = rewritten.Model()
  variables = _init(model)
  k = variables['params']['Scale_0']['k']
  expected = jax.grad(_reference, argnums=(1, 2))(k, W, XS[0])
  # Outside any mapping the axis is unbound: plain gradients, no error.
  for grads in model.apply(variables, W, XS[0])[:3]:
    for got, want in zip(grads, expected):
      np.testing.assert_allclose(got, want, rtol=1e-6)


def test_mapped_over_another_axis_name_reduces_nothing(rewritten):
  model = rewritten.Model()
  variables = _init(model)
  k = variables['params']['Scale_0']['k']
  (w_grads, x_grads), _ = _per_example(k)
  apply = jax.vmap(lambda x: model.apply(variables, W, x), axis_name='other')
  for w_grad, x_grad in apply(XS)[:3]:
    np.testing.assert_allclose(w_grad, w_grads, rtol=1e-6)
    np.testing.assert_allclose(x_grad, x_grads, rtol=1e-6)


@pytest.mark.parametrize('axes', [
    pytest.param((), id='empty-tuple'),
    pytest.param([], id='empty-list'),
    pytest.param(None, id='none'),
    pytest.param(False, id='false'),
])
def test_empty_non_literal_reduce_axes_reduces_nothing(rewritten, axes):
  model = rewritten.Model(axes=axes)
  variables = _init(model)
  k = variables['params']['Scale_0']['k']
  (w_grads, x_grads), _ = _per_example(k)
  apply = jax.vmap(lambda x: model.apply(variables, W, x), axis_name='batch')
  # Only the named site follows the field; the others still reduce.
  w_grad, x_grad = apply(XS)[1]
  np.testing.assert_allclose(w_grad, w_grads, rtol=1e-6)
  np.testing.assert_allclose(x_grad, x_grads, rtol=1e-6)
