"""Gradient extraction for call sites that vjpify lowered to ``nn.vjp``.

``flax.linen.grad`` and ``flax.linen.value_and_grad`` are conveniences over
the lifted vector-Jacobian product: they run ``fn`` forward, seed the pullback
with ones, drop nothing but the variables' cotangent and shape the result
around ``has_aux``. The rewritten code calls ``nn.vjp`` itself and hands its
result to the helpers here, which do exactly the rest.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from vjpify.runtime import internals

__all__ = ['grad_from_vjp', 'value_and_grad_from_vjp']


def _input_cotangents(vjp_fn: Any, cotangent: Any) -> Any:
  """Calls the pullback and keeps only the primals' cotangents.

  flax's ``nn.vjp`` wraps the JAX pullback so that it rebuilds the variables'
  cotangent in the tree structure of the scopes it lifted. With
  ``multi_scope=True`` and submodules adopted from attributes, that structure
  does not match (``Too few leaves for PyTreeDef``), although
  ``nn.value_and_grad`` never builds it at all. vjpify discards that cotangent,
  so it calls the JAX pullback underneath directly when it can recognise it.
  """
  parts = internals.flax_pullback(vjp_fn)
  if parts is not None:
    jax_pullback, _ = parts
    return jax_pullback(cotangent)[1:]
  return vjp_fn(cotangent)[1:]


def _value_aux_grads(vjp_result: tuple) -> tuple[Any, Any, Any, bool]:
  # nn.vjp returns (out, vjp_fn) or, when has_aux is truthy, (out, vjp_fn, aux);
  # reading the arity keeps a has_aux expression from being evaluated twice.
  if len(vjp_result) == 3:
    out, vjp_fn, aux = vjp_result
    has_aux = True
  else:
    out, vjp_fn = vjp_result
    aux = None
    has_aux = False
  grads = _input_cotangents(vjp_fn, jnp.ones_like(out))
  # flax checks the shape only after the backward pass, so an error raised
  # by the pullback itself wins, as it does in nn.value_and_grad.
  if out.shape != ():
    raise ValueError(
        'grad can only work on functions with '
        f'scalar-valued outputs. out shape={out.shape}'
    )
  return out, aux, grads, has_aux


def grad_from_vjp(vjp_result: tuple) -> Any:
  """Turns the result of ``nn.vjp`` into what ``nn.grad`` returns.

  Note that the variables' cotangent is dropped: like ``nn.grad``, the result
  holds gradients for the primals only. Pass ``vjp_variables=False`` to
  ``nn.vjp`` so that no variable is differentiated in the first place.

  Example::

    x_grad, y_grad = grad_from_vjp(
        nn.vjp(fn, mdl, x, y, vjp_variables=False, multi_scope=True))

  Args:
    vjp_result: the tuple returned by ``nn.vjp`` for a scalar-valued ``fn``.

  Returns:
    The gradients for the primals, a tuple with one entry per primal; with
    ``has_aux`` the pair ``(grads, aux)``.

  Raises:
    ValueError: ``fn`` did not return a scalar, with flax's message.
  """
  _, aux, grads, has_aux = _value_aux_grads(vjp_result)
  if has_aux:
    return grads, aux
  return grads


def value_and_grad_from_vjp(vjp_result: tuple) -> Any:
  """Turns the result of ``nn.vjp`` into what ``nn.value_and_grad`` returns.

  Note that the variables' cotangent is dropped, as in
  :func:`grad_from_vjp`.

  Example::

    z, (x_grad, y_grad) = value_and_grad_from_vjp(
        nn.vjp(fn, mdl, x, y, vjp_variables=False, multi_scope=True))

  Args:
    vjp_result: the tuple returned by ``nn.vjp`` for a scalar-valued ``fn``.

  Returns:
    ``(out, grads)``; with ``has_aux`` the pair ``((out, aux), grads)``.

  Raises:
    ValueError: ``fn`` did not return a scalar, with flax's message.
  """
  out, aux, grads, has_aux = _value_aux_grads(vjp_result)
  if has_aux:
    return (out, aux), grads
  return out, grads
