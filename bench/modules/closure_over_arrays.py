"""Benchmark module: forces from an energy whose closure captures an array argument of the caller.

``nn.value_and_grad(lambda mdl, r: mdl(r, species), self.energy, positions)``
closes over ``species``, an array the caller was given: how force fields
write it. The array changes from call to call in real use.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class PairEnergy(nn.Module):
  width: int = 64

  @nn.compact
  def __call__(self, positions, species):
    embedding = nn.Embed(8, self.width)(species)
    distances = jnp.linalg.norm(positions[:, None, :] - positions[None, :, :] + 1e-3, axis=-1)
    features = jnp.tanh(nn.Dense(self.width)(distances))
    return jnp.sum(features * embedding)


class ForceField(nn.Module):

  def setup(self):
    self.energy = PairEnergy()

  def __call__(self, positions, species):
    energy, (positions_grad,) = nn.value_and_grad(lambda mdl, r: mdl(r, species), self.energy, positions)
    return energy, -positions_grad


def case():
  """The model, its variables, and what ``apply`` takes besides them."""
  positions = jax.random.normal(jax.random.key(1), (64, 3))
  species = jax.random.randint(jax.random.key(2), (64,), 0, 8)
  model = ForceField()
  return model, model.init(jax.random.key(0), positions, species), (positions, species), {}
