"""Benchmark module: the input gradient of an 8-layer tanh network over 128x128 inputs.

Eager ``nn.grad`` is slow here: every one of the network's primitives, forward
and backward, is dispatched on its own.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class TanhStack(nn.Module):
  depth: int = 8

  @nn.compact
  def __call__(self, x):
    for _ in range(self.depth):
      x = jnp.tanh(nn.Dense(x.shape[-1])(x))
    return x


class InputGradient(nn.Module):

  @nn.compact
  def __call__(self, x):
    (x_grad,) = nn.grad(lambda mdl, x: mdl(x).sum(), TanhStack(), x)
    return x_grad


def case():
  """The model, its variables, and what ``apply`` takes besides them."""
  x = jax.random.normal(jax.random.key(1), (128, 128))
  model = InputGradient()
  return model, model.init(jax.random.key(0), x), (x,), {}
