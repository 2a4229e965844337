"""Benchmark module: a world model whose submodules are dataclass fields, differentiating its own loss.

The predictor and decoder are passed in as fields (``predictor: nn.Module``),
so inside the gradient they are bound to scopes of their own, and
``nn.value_and_grad(self.loss, self, state, frame, has_aux=True)`` lifts all
of them: how a published video world model calls it.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class Predictor(nn.Module):
  width: int = 128

  @nn.compact
  def __call__(self, state):
    for _ in range(3):
      state = nn.gelu(nn.Dense(self.width)(state))
    return state


class Decoder(nn.Module):
  features: int = 64

  @nn.compact
  def __call__(self, latent):
    latent = nn.LayerNorm()(latent)
    latent = nn.Dropout(0.1, deterministic=False)(latent)
    return nn.Dense(self.features)(latent)


class WorldModel(nn.Module):
  predictor: nn.Module
  decoder: nn.Module

  def loss(self, state, frame):
    latent = self.predictor(state)
    reconstruction = self.decoder(latent)
    error = jnp.mean((reconstruction - frame) ** 2)
    return error, {'latent_norm': jnp.linalg.norm(latent), 'reconstruction': reconstruction}

  @nn.compact
  def __call__(self, state, frame):
    (loss, aux), (state_grad, frame_grad) = nn.value_and_grad(self.loss, self, state, frame, has_aux=True)
    return loss, aux, state_grad, frame_grad


def case():
  """The model, its variables, and what ``apply`` takes besides them."""
  state = jax.random.normal(jax.random.key(1), (64, 32))
  frame = jax.random.normal(jax.random.key(2), (64, 64))
  model = WorldModel(predictor=Predictor(), decoder=Decoder())
  keys = {'params': jax.random.key(0), 'dropout': jax.random.key(3)}
  variables = model.init(keys, state, frame)
  return model, variables, (state, frame), {'rngs': {'dropout': jax.random.key(4)}}
