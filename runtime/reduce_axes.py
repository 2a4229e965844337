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
public API, so that one question is answered by :func:`_mapping` from JAX's
internal trace state; whatever it cannot answer becomes an error that names
the primal and the axis, never a guess.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Hashable
from typing import Any, Callable

import jax
from flax.core import lift

__all__ = ['vjp_with_reduce_axes']


class _Mapping(enum.Enum):
  # Varies over the axis: its gradient stays per-example.
  MAPPED = 'mapped'
  # Broadcast and untyped (vmap, constants): the gradient is per-example
  # and has to be psum-reduced here.
  BROADCAST = 'broadcast'
  # Invariant under shard_map's varying-axes typing: JAX's own transpose of
  # the implicit broadcast already psums wherever fn's value varies.
  INVARIANT = 'invariant'


class _Undetermined(Exception):
  """Why the mapping of a value over an axis cannot be told."""


def _mapping(value: Any, axis_name: Hashable) -> _Mapping:
  """Tells whether ``value`` is mapped over the bound axis ``axis_name``.

  Note that this reads JAX's internal trace state (jax 0.4.36 and later keep
  an explicit chain of traces); anything it does not recognise raises
  :class:`_Undetermined` rather than guessing.

  A ``jax.vmap`` binds its axis with a batching trace: a value is mapped iff,
  looking through the transformations applied inside that vmap (autodiff,
  other vmaps), it is a batched tracer of that trace. Values of traces
  outside the vmap, and constants, are broadcast. A staging transformation
  (jit, scan, remat) inside the vmap hides the batching until later, so its
  tracers are undetermined. A ``jax.shard_map`` with ``check_vma=True``
  types every value with the manual axes it varies over; ``jax.pmap`` and
  ``check_vma=False`` do not, so only constants are known there.
  """
  try:
    from jax._src import config as jax_config
    from jax._src import core
    from jax._src.interpreters import ad, batching

    stack = core.unsafe_get_trace_stack(core.trace_ctx.trace)
    unwrappable = (ad.JVPTracer, ad.LinearizeTracer)
    # The innermost binding of a name is the one psum refers to.
    vmap_trace = next(
        (t for t in reversed(stack) if isinstance(t, batching.BatchTrace) and t.axis_data.name == axis_name),
        None,
    )
    typed = vmap_trace is None and jax_config._check_vma.value and (
        axis_name in jax.sharding.get_abstract_mesh().manual_axes
    )
    if typed:
      # jax 0.10 keeps the varying axes in ``aval.mat``, earlier ones in ``aval.vma``.
      aval = jax.typeof(value)
      varying = aval.mat.varying if hasattr(aval, 'mat') else aval.vma
      return _Mapping.MAPPED if axis_name in varying else _Mapping.INVARIANT
  except (ImportError, AttributeError) as e:
    raise _Undetermined(f'this jax ({jax.__version__}) lacks the trace internals vjpify reads') from e
  if vmap_trace is None:
    if not isinstance(value, core.Tracer):
      return _Mapping.BROADCAST
    raise _Undetermined(
        'nothing here records which values are replicated over that axis '
        '(jax.pmap and jax.shard_map with check_vma=False do not)'
    )

  depth = {id(t): i for i, t in enumerate(stack)}
  vmap_depth = depth[id(vmap_trace)]
  while isinstance(value, core.Tracer):
    trace = value._trace
    if isinstance(value, batching.BatchTracer) and trace.tag is vmap_trace.tag:
      return _Mapping.BROADCAST if value.batch_dim is None else _Mapping.MAPPED
    trace_depth = depth.get(id(trace))
    if trace_depth is None:
      raise _Undetermined(f'it is a {type(value).__name__} of a trace that is not active here')
    if trace_depth < vmap_depth:
      # Traced outside the vmap: the same value for every member of the axis.
      return _Mapping.BROADCAST
    if isinstance(value, batching.BatchTracer):
      value = value.val
    elif isinstance(value, unwrappable):
      value = value.primal
    else:
      raise _Undetermined(
          f'it is a {type(value).__name__}, traced by a staging transformation '
          '(jax.jit, lax.scan, jax.checkpoint, nn.jit, nn.remat, ...) inside the vmap, '
          'which decides the batching only after this code has run'
      )
  return _Mapping.BROADCAST


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
        by_axis[axis_name] = _mapping(leaf, axis_name)
      except _Undetermined as e:
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
    if mapping is _Mapping.BROADCAST:
      axes.append(axis_name)
    elif mapping is _Mapping.INVARIANT and _mapping(out, axis_name) is _Mapping.INVARIANT:
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
  shim = getattr(vjp_fn, 'func', None)
  if isinstance(vjp_fn, jax.tree_util.Partial) and getattr(shim, 'func', None) is lift._bwd_wrapper:
    (jax_pullback,) = vjp_fn.args
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
