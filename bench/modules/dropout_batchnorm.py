"""Benchmark module: a loss and its input gradient through an MLP with Dropout and BatchNorm.

The gradient site must draw the dropout masks ``nn.grad`` draws and update
``batch_stats`` as ``nn.grad`` does, and the draw after it must not shift.
The logits come out of the same forward pass, as aux.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
  features: tuple = (256, 256)

  @nn.compact
  def __call__(self, x):
    for width in self.features:
      x = nn.Dense(width)(x)
      x = nn.BatchNorm(use_running_average=False)(x)
      x = nn.relu(x)
      x = nn.Dropout(0.2, deterministic=False)(x)
    return nn.Dense(10)(x)


def energy(mdl, x):
  logits = mdl(x)
  return jnp.sum(jax.nn.logsumexp(logits, axis=-1)), logits


class GradientPenalty(nn.Module):

  @nn.compact
  def __call__(self, x):
    (x_grad,), logits = nn.grad(energy, MLP(), x, has_aux=True)
    logits = nn.Dropout(0.1, deterministic=False)(logits)
    return logits, jnp.mean(x_grad ** 2)


def case():
  """The model, its variables, and what ``apply`` takes besides them."""
  x = jax.random.normal(jax.random.key(1), (128, 64))
  model = GradientPenalty()
  keys = {'params': jax.random.key(0), 'dropout': jax.random.key(2)}
  variables = model.init(keys, x)
  return model, variables, (x,), {'rngs': {'dropout': jax.random.key(3)}, 'mutable': ['batch_stats']}
