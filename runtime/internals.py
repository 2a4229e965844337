"""The flax and jax internals that vjpify's runtime relies on, in one place.

Everything here reads state that flax and jax do not document: the context
stacks of ``flax.linen.Module`` (interceptors, call info, captured
intermediates), a module's internal state, the scope's rng counters, how jax
tells a concrete value under differentiation, and how jaxprs are walked.
Each accessor says what it assumes, and ``tests/test_internals.py`` checks
each assumption against the installed releases, so that a new flax or jax
breaks here, with a clear message, rather than somewhere in the runtime.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Hashable, Iterator
from typing import Any

import flax
import jax
from flax.core import lift
from flax.core import scope as scope_lib
from flax.linen import module as module_lib
from flax.linen import transforms as transforms_lib

__all__ = [
    'pytree_registration',
    'AxisMapping',
    'FLAX_VERSION',
    'Undetermined',
    'axis_mapping',
    'flax_pullback',
    'abstract_signature',
    'Module',
    'Scope',
    'Variable',
    'DenyList',
    'capture_filter',
    'call_info_active',
    'interceptors_active',
    'is_concrete',
    'jaxpr_as_fun',
    'jaxpr_equations',
    'lift_bwd_wrapper',
    'module_scopes',
    'module_state',
    'scope_place',
    'set_module_scopes',
    'wrap_method_once',
]

FLAX_VERSION = tuple(int(part) for part in flax.__version__.split('.')[:2])

Module = module_lib.Module
Scope = scope_lib.Scope
Variable = module_lib.Variable
DenyList = scope_lib.DenyList
wrap_method_once = module_lib.wrap_method_once
# flax's wrapper around the JAX pullback returned by nn.vjp (see gradients.py).
lift_bwd_wrapper = getattr(lift, '_bwd_wrapper', None)


def interceptors_active() -> bool:
  """Whether ``nn.intercept_methods`` is in effect on this thread."""
  return bool(len(module_lib._global_interceptor_stack))


def call_info_active() -> bool:
  """Whether ``Module.tabulate`` (or anything else recording calls) is running."""
  return bool(module_lib._context.call_info_stack)


def capture_filter() -> Any:
  """The ``capture_intermediates`` filter of the innermost ``apply`` (False when off), or None outside one."""
  capture = module_lib._context.capture_stack
  return capture[-1] if capture else None


def module_scopes(module: Module) -> list[Scope] | None:
  """The scopes a module reaches, in the order ``set_module_scopes`` consumes them; None if it cannot tell.

  Note that this follows flax's ``get_module_scopes`` (modules in dataclass
  fields, in pytrees of fields, depth first, each module once, the module
  itself last) without its shallow setup: setup would run user code outside
  the watched trace, and ``nn.vjp`` has run it on the outer modules already.
  A field holding a flax ``Variable`` is not supported (None).
  """
  scopes: list[Scope] = []
  seen: set[int] = set()

  def visit(current: Module) -> bool:
    if id(current) in seen:
      return True
    seen.add(id(current))
    # A dict, as flax builds it: its leaves come in the order of sorted keys.
    attributes = {field.name: getattr(current, field.name) for field in dataclasses.fields(current)
                  if field.name != 'parent' and field.init}
    for leaf in jax.tree_util.tree_leaves(attributes):
      if isinstance(leaf, Variable) and isinstance(leaf.scope, Scope):
        return False
      if isinstance(leaf, Module) and isinstance(leaf.scope, Scope) and not visit(leaf):
        return False
    scopes.append(current.scope)
    return True

  return scopes if isinstance(module.scope, Scope) and visit(module) else None


def scope_place(scope: Scope) -> tuple[Scope, tuple[str, ...]]:
  """The root of ``scope`` and the names that lead from the root down to it."""
  names = []
  while scope.parent is not None:
    names.append(scope.name)
    scope = scope.parent
  return scope, tuple(reversed(names))


def set_module_scopes(module: Module, scopes: list[Scope]) -> Module:
  """A clone of ``module`` with it and its field modules bound to ``scopes`` (flax's own rebinding)."""
  return transforms_lib.set_module_scopes(module, (), {}, scopes)[0]


def module_state(module: Module) -> Any:
  """The module's ``_ModuleInternalState`` (setup called, autoname cursor, ...)."""
  return module._state


def is_concrete(leaf: Any) -> bool:
  """Whether ``leaf`` is a jax array with a known value, maybe under autodiff tracers.

  Note that numpy arrays are not: an unchanged numpy variable would come back
  from a compiled call as a ``jax.Array``.
  """
  if isinstance(leaf, jax.core.Tracer):
    to_concrete = getattr(leaf, 'to_concrete_value', None)
    if to_concrete is not None:
      return to_concrete() is not None
    # jax before 0.4.36 has no to_concrete_value; its differentiation
    # tracers hold their primal, which is concrete when no other trace is on.
    while isinstance(leaf, jax.core.Tracer) and hasattr(leaf, 'primal'):
      leaf = leaf.primal
  # Older jax counts tracers as jax.Arrays.
  return isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer)


def abstract_signature(tree: Any) -> Any:
  """What ``jax.jit`` keys a call on, as far as the leaves go: structure, shapes, dtypes, weak types."""
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  avals = []
  for leaf in leaves:
    aval = getattr(leaf, 'aval', None)
    if aval is None:
      avals.append((getattr(leaf, 'shape', ()), getattr(leaf, 'dtype', type(leaf)),
                    bool(getattr(leaf, 'weak_type', False))))
    else:
      avals.append((aval.shape, aval.dtype, bool(getattr(aval, 'weak_type', False))))
  return treedef, tuple(avals)


class AxisMapping(enum.Enum):
  # Varies over the axis: its gradient stays per-example.
  MAPPED = 'mapped'
  # Broadcast and untyped (vmap, constants): the gradient is per-example
  # and has to be psum-reduced here.
  BROADCAST = 'broadcast'
  # Invariant under shard_map's varying-axes typing: JAX's own transpose of
  # the implicit broadcast already psums wherever fn's value varies.
  INVARIANT = 'invariant'


class Undetermined(Exception):
  """Why the mapping of a value over an axis cannot be told."""


def axis_mapping(value: Any, axis_name: Hashable) -> AxisMapping:
  """Tells whether ``value`` is mapped over the bound axis ``axis_name``.

  Note that this reads JAX's internal trace state (jax 0.4.36 and later keep
  an explicit chain of traces); anything it does not recognise raises
  :class:`Undetermined` rather than guessing.

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
      return AxisMapping.MAPPED if axis_name in varying else AxisMapping.INVARIANT
  except (ImportError, AttributeError) as e:
    raise Undetermined(f'this jax ({jax.__version__}) lacks the trace internals vjpify reads') from e
  if vmap_trace is None:
    if not isinstance(value, core.Tracer):
      return AxisMapping.BROADCAST
    raise Undetermined(
        'nothing here records which values are replicated over that axis '
        '(jax.pmap and jax.shard_map with check_vma=False do not)'
    )

  depth = {id(t): i for i, t in enumerate(stack)}
  vmap_depth = depth[id(vmap_trace)]
  while isinstance(value, core.Tracer):
    trace = value._trace
    if isinstance(value, batching.BatchTracer) and trace.tag is vmap_trace.tag:
      return AxisMapping.BROADCAST if value.batch_dim is None else AxisMapping.MAPPED
    trace_depth = depth.get(id(trace))
    if trace_depth is None:
      raise Undetermined(f'it is a {type(value).__name__} of a trace that is not active here')
    if trace_depth < vmap_depth:
      # Traced outside the vmap: the same value for every member of the axis.
      return AxisMapping.BROADCAST
    if isinstance(value, batching.BatchTracer):
      value = value.val
    elif isinstance(value, unwrappable):
      value = value.primal
    else:
      raise Undetermined(
          f'it is a {type(value).__name__}, traced by a staging transformation '
          '(jax.jit, lax.scan, jax.checkpoint, nn.jit, nn.remat, ...) inside the vmap, '
          'which decides the batching only after this code has run'
      )
  return AxisMapping.BROADCAST


def flax_pullback(vjp_fn: Any) -> tuple[Any, Any] | None:
  """The JAX pullback inside the pullback that ``nn.vjp`` returns, and flax's shim around it; or None.

  flax returns ``Partial(partial(_bwd_wrapper, treedef), jax_pullback)``,
  where the shim rebuilds the variables' cotangent in the tree structure of
  the lifted scopes. vjpify discards that cotangent, so it calls, or wraps,
  the JAX pullback itself when it recognises this layout.
  """
  shim = getattr(vjp_fn, 'func', None)
  if (lift_bwd_wrapper is not None and isinstance(vjp_fn, jax.tree_util.Partial)
      and getattr(shim, 'func', None) is lift_bwd_wrapper):
    (jax_pullback,) = vjp_fn.args
    return jax_pullback, shim
  return None


def _extend_core() -> Any:
  try:
    from jax.extend import core  # pylint: disable=g-import-not-at-top
    return core
  except ImportError:  # jax before jax.extend.core
    return jax.core


def jaxpr_as_fun(closed_jaxpr: Any) -> Any:
  """A Python function that evaluates ``closed_jaxpr`` on flat arguments."""
  core = _extend_core()
  as_fun = getattr(core, 'jaxpr_as_fun', None) or getattr(jax.core, 'jaxpr_as_fun')
  return as_fun(closed_jaxpr)


def _sub_jaxprs(params: dict) -> Iterator[Any]:
  for value in params.values():
    values = value if isinstance(value, (tuple, list)) else (value,)
    for item in values:
      inner = getattr(item, 'jaxpr', None)
      if inner is not None and hasattr(inner, 'eqns'):  # a ClosedJaxpr
        yield inner
      elif hasattr(item, 'eqns'):  # a Jaxpr
        yield item


def pytree_registration(cls: type) -> Any:
  """What jax's pytree registry holds for ``cls`` (None when it is a leaf), compared by identity.

  A class registered after a trace flattens differently from then on, so a
  user object's fingerprint holds its class's registration.
  """
  from jax._src import tree_util  # pylint: disable=import-outside-toplevel
  registry = getattr(tree_util, '_registry', None)
  return None if registry is None else registry.get(cls)


def jaxpr_equations(jaxpr: Any) -> Iterator[Any]:
  """Every equation of ``jaxpr`` (a Jaxpr or ClosedJaxpr), sub-jaxprs included."""
  jaxpr = getattr(jaxpr, 'jaxpr', jaxpr)
  stack = [jaxpr]
  while stack:
    current = stack.pop()
    for eqn in current.eqns:
      yield eqn
      stack.extend(_sub_jaxprs(eqn.params))
