"""Results in the shape of ``jax.grad``, ``jax.value_and_grad`` and
``jax.vjp``, for the call sites over bound Modules that vjpify lifted to
``nn.vjp`` (``--lift-jax-transforms``).

The rewritten code differentiates ``fn(mdl, *primals)`` with flax's lifted
``nn.vjp`` (``vjp_variables=False``, so no variable is differentiated) and
hands the result to a helper here, which keeps the primals' cotangents only
and shapes them as the jax transform did: one gradient for an ``int``
``argnums``, a tuple for a tuple, ``(grad, aux)`` with ``has_aux``, and a
pullback that returns the primals' cotangents alone.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vjpify.runtime import internals

__all__ = ['jax_grad_from_vjp', 'jax_value_and_grad_from_vjp', 'jax_vjp_from_vjp']


def _primal_pullback(vjp_fn: Any) -> Any:
  """``vjp_fn`` (flax's pullback) as a function that returns the primals'
  cotangents only, as jax.vjp's pullback does; see
  ``gradients._input_cotangents`` for why flax's shim is bypassed."""
  parts = internals.flax_pullback(vjp_fn)
  pullback = parts[0] if parts is not None else vjp_fn
  return lambda cotangent: tuple(pullback(cotangent)[1:])


def _split(vjp_result: tuple) -> tuple[Any, Any, Any, bool]:
  # (out, vjp_fn) or, with a truthy has_aux, (out, vjp_fn, aux): the arity
  # says which, so that a has_aux expression is evaluated once.
  if len(vjp_result) == 3:
    out, vjp_fn, aux = vjp_result
    return out, vjp_fn, aux, True
  out, vjp_fn = vjp_result
  return out, vjp_fn, None, False


def _check_output(out: Any) -> None:
  """jax.grad's checks of the output, with its messages, made where jax makes
  them: after the forward pass, before the backward one."""
  message = 'Gradient only defined for scalar-output functions. Output {}.'.format
  shape = getattr(out, 'shape', None)
  if shape is None or getattr(out, 'dtype', None) is None:
    raise TypeError(message(f'was {out}'))
  if shape != ():
    raise TypeError(message(f'had shape: {shape}'))
  dtype = jnp.result_type(out)
  if jnp.issubdtype(dtype, jnp.complexfloating):
    raise TypeError(f'grad requires real-valued outputs (output dtype that is a sub-dtype of np.floating), '
                    f'but got {dtype.name}. For holomorphic differentiation, pass holomorphic=True. '
                    'For differentiation of non-holomorphic functions involving complex outputs, '
                    'use jax.vjp directly.')
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f'grad requires real-valued outputs (output dtype that is a sub-dtype of np.floating), '
                    f'but got {dtype.name}. For differentiation of functions with integer outputs, '
                    'use jax.vjp directly.')


def _check_inputs(grads: Any) -> None:
  # An integer or boolean primal has a float0 cotangent; jax.grad refuses it
  # before running fn, while here it is seen only after the backward pass.
  for leaf in jax.tree_util.tree_leaves(grads):
    if getattr(leaf, 'dtype', None) == jax.dtypes.float0:
      raise TypeError('grad requires real- or complex-valued inputs (input dtype that is a sub-dtype of '
                      'np.inexact), but got an integer or boolean input. If you want to use Boolean- or '
                      'integer-valued inputs, use vjp or set allow_int to True.')


def _value_aux_grads(vjp_result: tuple, argnums: int | tuple[int, ...]) -> tuple[Any, Any, Any, bool]:
  out, vjp_fn, aux, has_aux = _split(vjp_result)
  _check_output(out)
  grads = _primal_pullback(vjp_fn)(jnp.ones_like(out))
  _check_inputs(grads)
  return out, aux, grads[0] if isinstance(argnums, (int, np.integer)) else grads, has_aux


def jax_grad_from_vjp(vjp_result: tuple, argnums: int | tuple[int, ...] = 0) -> Any:
  """Turns the result of ``nn.vjp`` into what ``jax.grad`` returns.

  Note that every primal passed to ``nn.vjp`` is differentiated: vjpify
  lifts a site only when ``argnums`` names every argument, in order.

  Example::

    r_grad = jax_grad_from_vjp(
        nn.vjp(lambda mdl, r: mdl.energy(r), self, r, vjp_variables=False, multi_scope=True))

  Args:
    vjp_result: the tuple returned by ``nn.vjp`` for a scalar-valued ``fn``.
    argnums: the site's ``argnums``: an ``int`` gives one gradient, a tuple
      a tuple of them.

  Returns:
    The gradient (or tuple of gradients); with ``has_aux`` the pair
    ``(grad, aux)``.

  Raises:
    TypeError: ``fn`` did not return a real scalar, or a primal is an
      integer or boolean, with jax's messages.
  """
  _, aux, grads, has_aux = _value_aux_grads(vjp_result, argnums)
  return (grads, aux) if has_aux else grads


def jax_value_and_grad_from_vjp(vjp_result: tuple, argnums: int | tuple[int, ...] = 0) -> Any:
  """Turns the result of ``nn.vjp`` into what ``jax.value_and_grad`` returns.

  Note that every primal is differentiated, as in :func:`jax_grad_from_vjp`.

  Example::

    energy, r_grad = jax_value_and_grad_from_vjp(
        nn.vjp(lambda mdl, r: mdl.energy(r), self, r, vjp_variables=False, multi_scope=True))

  Args:
    vjp_result: the tuple returned by ``nn.vjp`` for a scalar-valued ``fn``.
    argnums: the site's ``argnums``, as in :func:`jax_grad_from_vjp`.

  Returns:
    ``(out, grad)``; with ``has_aux`` the pair ``((out, aux), grad)``.

  Raises:
    TypeError: as :func:`jax_grad_from_vjp` does.
  """
  out, aux, grads, has_aux = _value_aux_grads(vjp_result, argnums)
  return ((out, aux), grads) if has_aux else (out, grads)


def jax_vjp_from_vjp(vjp_result: tuple) -> tuple:
  """Turns the result of ``nn.vjp`` into what ``jax.vjp`` returns.

  Note that the pullback returns the primals' cotangents only, as a tuple
  with one entry per primal, never the variables' cotangent.

  Example::

    out, pullback = jax_vjp_from_vjp(
        nn.vjp(lambda mdl, p: mdl.warp(p), self, p, vjp_variables=False, multi_scope=True))
    (p_cotangent,) = pullback(jnp.ones_like(out))

  Args:
    vjp_result: the tuple returned by ``nn.vjp``.

  Returns:
    ``(out, pullback)``; with ``has_aux`` ``(out, pullback, aux)``.
  """
  out, vjp_fn, aux, has_aux = _split(vjp_result)
  pullback = _primal_pullback(vjp_fn)
  return (out, pullback, aux) if has_aux else (out, pullback)
