"""Explicit ``reduce_axes`` for call sites that vjpify lowered to ``nn.vjp``.

flax documents ``reduce_axes`` for ``nn.grad`` and ``nn.value_and_grad``: for
every axis name listed, the gradient of a value that ``fn`` implicitly
broadcasts over that axis is ``psum``-reduced over it, while the gradient of
a value mapped over the axis stays per-example. JAX dropped the argument from
``jax.vjp`` and flax now raises ``NotImplementedError`` for it. The rewritten
code gets the documented behaviour back by calling ``nn.vjp`` through
:func:`vjp_with_reduce_axes`, which looks at each primal once, before the
forward pass, decides per leaf and per axis whether it is mapped or broadcast,
and makes the pullback ``jax.lax.psum`` the cotangents of broadcast leaves.

Whether a traced value is mapped over a named axis is not exposed by JAX's
public API, so that one question is answered from JAX's
internal trace state (``vjpify.runtime.internals.axis_mapping``); whatever it
cannot answer becomes an error that names the primal and the axis, never a
guess.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any, Callable

import jax

from vjpify.runtime import internals

__all__ = ['vjp_with_reduce_axes']


def _axis_names(reduce_axes: Any) -> tuple[Hashable, ...]:
  # flax tests `if reduce_axes:`, so None, False or 0 mean no axis at all.
  if not reduce_axes:
    return ()
  # jax.vjp accepted a single name as well as a tuple of names.
  if isinstance(reduce_axes, str):
    return (reduce_axes,)
  return tuple(reduce_axes)


def _is_bound(axis_name: Hashable) -> bool:
  try:
    # The axis-size idiom: a constant psum binds nothing, and an unbound name
    # raises NameError (jax.lax.axis_size exists only from jax 0.6.1 on).
    jax.lax.psum(1, axis_name)
  except NameError:
    return False
  return True


def _leaf_mappings(index: int, primal: Any, axis_names: tuple[Hashable, ...]) -> list[dict]:
  """Maps every leaf of one primal to ``{axis name: _Mapping}``."""
  paths_and_leaves, _ = jax.tree_util.tree_flatten_with_path(primal)
  mappings = []
  for path, leaf in paths_and_leaves:
    by_axis = {}
    for axis_name in axis_names:
      try:
        by_axis[axis_name] = internals.axis_mapping(leaf, axis_name)
      except internals.Undetermined as e:
        where = f'primal {index}' + (f' at {jax.tree_util.keystr(path)}' if path else '')
        try:
          where += f' ({jax.typeof(leaf).str_short()})'
        except TypeError:
          where += f' ({type(leaf).__name__})'
        raise ValueError(
            f'reduce_axes: cannot tell whether {where} '
            f'is mapped over axis {axis_name!r}: {e}. vjpify psums the gradient of a primal '
            'only where it knows the primal is broadcast over the axis; apply the transformation '
            'that binds the axis with jax.vmap or jax.shard_map (check_vma=True) around this code, '
            'or drop reduce_axes and call jax.lax.psum on the gradients that need it.'
        ) from None
    mappings.append(by_axis)
  return mappings


def _psum_axes(mappings: dict, out: Any) -> tuple[Hashable, ...]:
  """The axes one leaf's cotangent is summed over, now that ``out`` is known."""
  axes = []
  for axis_name, mapping in mappings.items():
    if mapping is internals.AxisMapping.BROADCAST:
      axes.append(axis_name)
    elif (mapping is internals.AxisMapping.INVARIANT
          and internals.axis_mapping(out, axis_name) is internals.AxisMapping.INVARIANT):
      # JAX psums where the broadcast meets a varying value; when fn's value
      # is itself invariant there was none, and every member contributes the
      # same gradient.
      axes.append(axis_name)
  return tuple(axes)


def _psum(cotangent: Any, axes: tuple[Hashable, ...]) -> Any:
  if not axes or cotangent.dtype == jax.dtypes.float0:
    # The cotangent of an integer primal is a symbolic zero; it sums to itself.
    return cotangent
  return jax.lax.psum(cotangent, axes)


def _reduced_pullback(pullback: Callable, primal_plans: tuple, cotangent: Any) -> tuple:
  variables_cotangent, *primal_cotangents = pullback(cotangent)
  reduced = []
  for (treedef, leaf_axes), primal_cotangent in zip(primal_plans, primal_cotangents):
    leaves = treedef.flatten_up_to(primal_cotangent)
    reduced.append(treedef.unflatten([_psum(leaf, axes) for leaf, axes in zip(leaves, leaf_axes)]))
  return (variables_cotangent, *reduced)


def _with_reduced_cotangents(vjp_fn: Callable, primal_plans: tuple) -> Callable:
  """Wraps the pullback of ``nn.vjp`` so that it psums the planned leaves.

  flax returns ``Partial(partial(_bwd_wrapper, treedef), jax_pullback)``;
  keeping that layout and wrapping only the JAX pullback lets
  ``grad_from_vjp`` keep bypassing flax's rebuilding of the variables'
  cotangent. Any other pullback is wrapped as a whole.
  """
  parts = internals.flax_pullback(vjp_fn)
  if parts is not None:
    jax_pullback, shim = parts
    return jax.tree_util.Partial(shim, functools.partial(_reduced_pullback, jax_pullback, primal_plans))
  return functools.partial(_reduced_pullback, vjp_fn, primal_plans)


def vjp_with_reduce_axes(
    vjp: Callable, fn: Callable, mdl: Any, *primals: Any, reduce_axes: Any = (), **kwargs: Any
) -> tuple:
  """Calls ``vjp`` (``nn.vjp``) with the ``reduce_axes`` that flax documents.

  For each axis name in ``reduce_axes``, the pullback ``jax.lax.psum``-reduces
  over that axis the cotangent of every primal leaf that is broadcast over it
  (a constant, a value closed over from outside the mapping, an argument
  mapped with ``in_axes=None``), so its gradient is the sum over the axis of
  the per-example gradients, the same on every member. The cotangent of a
  leaf mapped over the axis (or derived from a mapped value) stays
  per-example. Each axis name is judged on its own.

  Note that an axis name that is not bound here (at ``init``, or outside any
  mapping) reduces nothing: there is nothing to broadcast over. Under
  ``jax.shard_map`` with ``check_vma=True`` JAX's own transpose of the
  implicit broadcast already sums where ``fn``'s value varies over the axis;
  only an invariant value's gradient is psummed here. Under ``jax.pmap``,
  ``shard_map(check_vma=False)``, or behind a ``jit``/``scan``/``remat``
  inside the ``vmap``, JAX does not say whether a traced primal is mapped,
  and this raises a ``ValueError`` naming the primal and the axis before
  ``fn`` runs.

  Example::

    x_grad, y_grad = grad_from_vjp(
        vjp_with_reduce_axes(nn.vjp, fn, mdl, x, y, reduce_axes=('batch',),
                             vjp_variables=False, multi_scope=True))

  Args:
    vjp: ``flax.linen.vjp`` (or a function with its signature and result).
    fn: the function to differentiate, called as ``fn(mdl, *primals)``.
    mdl: the module whose variables ``fn`` uses.
    *primals: the values to differentiate with respect to, each evaluated once.
    reduce_axes: an axis name or a tuple of axis names; empty reduces nothing.
    **kwargs: passed on to ``vjp`` (``has_aux``, ``vjp_variables``, ...).

  Returns:
    What ``vjp`` returns, ``(out, vjp_fn)`` or with ``has_aux``
    ``(out, vjp_fn, aux)``, with ``vjp_fn`` reducing the primals' cotangents.

  Raises:
    ValueError: it cannot be told whether a primal is mapped over a bound
      axis in ``reduce_axes``.
  """
  axis_names = tuple(a for a in _axis_names(reduce_axes) if _is_bound(a))
  leaf_mappings = [_leaf_mappings(i, p, axis_names) for i, p in enumerate(primals)] if axis_names else []
  result = vjp(fn, mdl, *primals, **kwargs)
  if not axis_names:
    return result
  out, vjp_fn, *aux = result
  primal_plans = tuple(
      (jax.tree_util.tree_structure(primal), tuple(_psum_axes(m, out) for m in mappings))
      for primal, mappings in zip(primals, leaf_mappings)
  )
  return (out, _with_reduced_cotangents(vjp_fn, primal_plans), *aux)
