"""Benchmark module: forces as the negative gradient of a learned energy, with aux.

``nn.value_and_grad(..., has_aux=True)`` returns the energy, per-feature
statistics as aux, and the gradient for the positions.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class Energy(nn.Module):
  width: int = 128
  depth: int = 4

  @nn.compact
  def __call__(self, positions):
    h = positions
    for _ in range(self.depth):
      h = nn.swish(nn.Dense(self.width)(h))
    energy = jnp.sum(nn.Dense(1)(h))
    return energy, {'activation_mean': h.mean(axis=0), 'activation_norm': jnp.linalg.norm(h)}


class Forces(nn.Module):

  @nn.compact
  def __call__(self, positions):
    (energy, stats), (positions_grad,) = nn.value_and_grad(
        lambda mdl, positions: mdl(positions), Energy(), positions, has_aux=True
    )
    return energy, -positions_grad, stats


def case():
  """The model, its variables, and what ``apply`` takes besides them."""
  positions = jax.random.normal(jax.random.key(1), (256, 3))
  model = Forces()
  return model, model.init(jax.random.key(0), positions), (positions,), {}
