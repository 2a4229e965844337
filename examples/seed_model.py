"""The example from flax's nn.grad documentation, as a user would write it.

Run ``vjpify --diff examples/seed_model.py`` to see the rewrite, or execute
this file before and after rewriting: it prints the same gradients.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class LearnScale(nn.Module):

  @nn.compact
  def __call__(self, x, y):
    p = self.param('scale', nn.initializers.ones_init(), ())
    return jnp.sum(p * x * y)


class Foo(nn.Module):

  @nn.compact
  def __call__(self, x, y):
    x_grad, y_grad = nn.grad(
        lambda mdl, x, y: mdl(x, y), LearnScale(), x, y
    )
    return x_grad, y_grad


class FooWithValue(nn.Module):

  @nn.compact
  def __call__(self, x, y):
    z, (x_grad, y_grad) = nn.value_and_grad(
        lambda mdl, x, y: mdl(x, y), LearnScale(), x, y
    )
    return z, x_grad, y_grad


if __name__ == '__main__':
  x = jax.random.uniform(jax.random.key(1), (4,))
  y = jax.random.uniform(jax.random.key(2), (4,))
  variables = Foo().init(jax.random.key(0), x, y)
  print(Foo().apply(variables, x, y))
  print(FooWithValue().apply(variables, x, y))
