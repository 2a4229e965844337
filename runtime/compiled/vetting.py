"""Checks on a traced program before its first compiled call is used.

A trace can succeed and still not be safe to run compiled:

- the program has effects that jax stages (``jax.debug.print``, callbacks):
  compiled, they run in a different order than eager ``nn.grad`` runs them,
  or not at all;
- it computes in a floating-point type narrower than 32 bits: XLA fuses and
  reorders float16 and bfloat16 arithmetic, and eager results cannot be met
  within a useful tolerance;
- it holds custom differentiation rules: their Python code (a ``custom_vjp``
  backward rule, a ``custom_jvp`` rule) runs only when the compiled call is
  differentiated, with tracers where eager ``nn.grad`` gives it arrays. The
  backward pass is therefore traced once here, watched like the forward one,
  before any result is used.

Each check returns the reason the entry must run uncompiled, or None.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vjpify.runtime import internals

__all__ = ['has_custom_rules', 'narrow_problem', 'probe_backward', 'static_problem']

_CALLBACKS = ('callback', 'debug_print', 'io_callback', 'pure_callback', 'debug_callback')
_CUSTOM_RULES = frozenset({'custom_jvp_call', 'custom_vjp_call', 'custom_vjp_call_jaxpr', 'custom_lin'})


def _narrow_float(aval: Any) -> bool:
  dtype = getattr(aval, 'dtype', None)
  if dtype is None:
    return False
  try:
    return jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32
  except (TypeError, ValueError):
    return False


def static_problem(closed_jaxpr: Any) -> str | None:
  """Why the traced program must not run compiled, found from the program alone; or None."""
  effects = getattr(closed_jaxpr, 'effects', None)
  if effects:
    names = sorted({type(effect).__name__ for effect in effects})
    return f'the traced program has effects that compiled code would order differently ({", ".join(names)})'
  jaxpr = closed_jaxpr.jaxpr
  avals = [var.aval for var in (*jaxpr.invars, *jaxpr.outvars) if hasattr(var, 'aval')]
  for eqn in internals.jaxpr_equations(jaxpr):
    name = eqn.primitive.name
    if any(marker in name for marker in _CALLBACKS):
      return f'the traced program calls back into Python ({name})'
    avals.extend(var.aval for var in eqn.outvars)
  return _narrow(avals, 'the traced program')


def _narrow(avals: list, what: str) -> str | None:
  narrow = sorted({str(aval.dtype) for aval in avals if _narrow_float(aval)})
  if narrow:
    return (f'{what} computes in {", ".join(narrow)}, where compiled and eager rounding differ '
            'beyond the promised tolerance')
  return None


def narrow_problem(closed_jaxpr: Any, what: str) -> str | None:
  """Why ``closed_jaxpr`` (``what``) must not run compiled for the floating types it computes in, or None.

  Every value counts: inputs, outputs and each equation's results, in
  sub-programs too, so a backward rule that computes in bfloat16 between
  float32 inputs and outputs is found.
  """
  jaxpr = closed_jaxpr.jaxpr
  avals = [var.aval for var in (*jaxpr.invars, *jaxpr.outvars) if hasattr(var, 'aval')]
  for eqn in internals.jaxpr_equations(jaxpr):
    avals.extend(var.aval for var in eqn.outvars)
  return _narrow(avals, what)


def has_custom_rules(closed_jaxpr: Any) -> bool:
  return any(eqn.primitive.name in _CUSTOM_RULES for eqn in internals.jaxpr_equations(closed_jaxpr))


def _cotangent(aval: Any) -> Any:
  if jnp.issubdtype(aval.dtype, jnp.inexact):
    return jnp.zeros(aval.shape, aval.dtype)
  return np.zeros(aval.shape, jax.dtypes.float0)


def probe_backward(closed_jaxpr: Any, primal_count: int) -> Any:
  """Traces the backward pass of the program, as differentiating the compiled call will, and returns it.

  Raises whatever the custom rules raise when given tracers (a
  ``TracerArrayConversionError`` from ``np.asarray(g)``, a
  ``ConcretizationTypeError`` from a branch on ``g``), or what the monitor
  raises for their effects.
  """
  fun = internals.jaxpr_as_fun(closed_jaxpr)
  in_avals = [var.aval for var in closed_jaxpr.jaxpr.invars]
  split = len(in_avals) - primal_count
  out_avals = [var.aval for var in closed_jaxpr.jaxpr.outvars]

  def backward(*args):
    constants, primals = args[:split], args[split:]
    _, pullback = jax.vjp(lambda *p: fun(*constants, *p), *primals)
    return pullback([_cotangent(aval) for aval in out_avals])

  return jax.make_jaxpr(backward)(*[jax.ShapeDtypeStruct(aval.shape, aval.dtype) for aval in in_avals])
