"""Compiled evaluation of the function that a rewritten ``nn.vjp`` differentiates.

Eager ``nn.grad`` dispatches every primitive of the forward and the backward
pass one at a time. Wrapped in :func:`compiled`, the differentiated function
runs through a cached ``jax.jit`` instead: ``nn.vjp`` still lifts the module
and calls the wrapper with a clone bound to a fresh scope, and the wrapper
passes that scope's variables and rng keys into the compiled function and the
mutated collections back out. JAX differentiates the compiled call as one
primitive, so forward and backward each run as one compiled program.

Rng streams stay those of ``nn.grad``: the keys go in with their static
suffixes, and the counters that ``make_rng`` advances are the caller's own.
Anything Python-side that tracing does once and a cached call must repeat
(the counters it advanced, the module's autonaming state, the non-array
leaves of the result) is recorded with the cache entry and replayed. Entries
are keyed on stable identities only: the code object of ``fn`` and what its
closure, defaults and globals hold, the module's type and fields, the
scope's static state and rng counters.

Whatever cannot be keyed or plumbed safely is called exactly as ``nn.vjp``
calls it, which is always correct: closures over arrays or other mutable
state, modules that reach other scopes through their fields or arguments,
any outer trace other than differentiation (under ``jax.jit`` the outer
compilation already covers ``fn``, and a nested jit would only change the
program), ``nn.intercept_methods`` and ``tabulate``, and any call whose
tracing fails.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import inspect
import threading
import types
from typing import Any, NamedTuple

import flax
import jax
import numpy as np
from flax.core import scope as scope_lib
from flax.core.frozen_dict import FrozenDict
from flax.linen import module as module_lib

__all__ = ['compiled']

# Each entry holds a compiled program; old ones are dropped first.
_MAX_ENTRIES = 256
# Older flax releases run the compiled path with different results where a
# module differentiates one of its own setup methods that sows (flax 0.8.0);
# there every call takes the uncompiled path.
_OLDEST_FLAX_COMPILED = (0, 10)
_FLAX_COMPILES = tuple(int(part) for part in flax.__version__.split('.')[:2]) >= _OLDEST_FLAX_COMPILED
# flax settings that change what a trace computes: rng derivation, the types
# that variables() returns, the names of adopted submodules.
_FLAX_FLAGS = ('flax_fix_rng_separator', 'flax_return_frozendict', 'flax_preserve_adopted_names')

# Keying: a hashable value that changes whenever the keyed object could make
# a trace behave differently, or _Unkeyable.
# -----------------------------------------------------------------------------


class _Unkeyable(Exception):
  """Raised for a value that a trace would bake in although it can change."""


class _Recursive(NamedTuple):
  code: types.CodeType


_EMPTY_CELL = object()
_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
# Immutable for all practical purposes, and compared by identity.
_BY_IDENTITY = (
    types.ModuleType,
    type,
    types.BuiltinFunctionType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    np.ufunc,
)


def _key(value: Any, seen: frozenset = frozenset()) -> Any:
  """Returns a hashable stand-in for ``value``.

  Raises:
    _Unkeyable: ``value`` is or holds an array, a tracer, a bound module, a
      variable or an object whose state can change unseen.
  """
  kind = type(value)
  if kind in _SCALARS or value is _EMPTY_CELL:
    return kind, value
  if isinstance(value, (jax.Array, np.ndarray)):
    raise _Unkeyable(f'an array of shape {np.shape(value)}')
  if isinstance(value, (np.generic, np.dtype, enum.Enum)):
    return kind, value
  if isinstance(value, module_lib.Module):
    if value.scope is not None:
      raise _Unkeyable(f'a bound {kind.__name__}')
    return _module_key(value, seen)
  if isinstance(value, (scope_lib.Scope, module_lib.Variable)):
    raise _Unkeyable(f'a {kind.__name__}')
  if isinstance(value, types.FunctionType):
    return _function_key(value, seen)
  if isinstance(value, _BY_IDENTITY):
    return kind, value
  if isinstance(value, functools.partial):
    return kind, _key(value.func, seen), _key(value.args, seen), _key(value.keywords, seen)
  if isinstance(value, (tuple, list)):
    return kind, tuple(_key(item, seen) for item in value)
  if isinstance(value, (dict, FrozenDict)):
    return kind, tuple((_key(k, seen), _key(v, seen)) for k, v in value.items())
  if isinstance(value, (set, frozenset)):
    return kind, frozenset(_key(item, seen) for item in value)
  if dataclasses.is_dataclass(value) and kind.__dataclass_params__.frozen:
    return kind, tuple(
        (field.name, _key(getattr(value, field.name), seen))
        for field in dataclasses.fields(value)
    )
  if callable(value) and kind.__hash__ is object.__hash__:
    # jax.jit, custom_jvp and similar wrappers: keyed by identity, as
    # jax.jit keys the functions it compiles.
    return kind, value
  raise _Unkeyable(f'a {kind.__name__}')


@functools.lru_cache(maxsize=1024)
def _global_names(code: types.CodeType) -> tuple[str, ...]:
  names = set(code.co_names)
  for const in code.co_consts:
    if isinstance(const, types.CodeType):
      names.update(_global_names(const))
  return tuple(sorted(names))


def _function_key(fn: types.FunctionType, seen: frozenset) -> Any:
  """Keys a function by its code and by every value it can read.

  Note that functions it reads from its globals are keyed by identity, not
  followed: like ``jax.jit``, this trusts module-level functions not to read
  module-level state that changes.
  """
  code = fn.__code__
  if code in seen:
    return _Recursive(code)
  seen = seen | {code}
  cells = []
  for cell in fn.__closure__ or ():
    try:
      contents = cell.cell_contents
    except ValueError:  # a name the enclosing function assigns later
      contents = _EMPTY_CELL
    cells.append(_key(contents, seen))
  module_globals = fn.__globals__
  globals_ = []
  for name in _global_names(code):
    if name in module_globals:
      value = module_globals[name]
      if isinstance(value, types.FunctionType):
        globals_.append((name, value))
      else:
        globals_.append((name, _key(value, seen)))
  return (
      code,
      _key(fn.__defaults__, seen),
      _key(fn.__kwdefaults__, seen),
      tuple(cells),
      tuple(globals_),
  )


def _module_key(module: module_lib.Module, seen: frozenset) -> Any:
  return type(module), tuple(
      (field.name, _key(getattr(module, field.name), seen))
      for field in dataclasses.fields(module)
      if field.init and field.name != 'parent'
  )


def _filter_key(mutable: Any) -> Any:
  if isinstance(mutable, scope_lib.DenyList):
    return scope_lib.DenyList, _filter_key(mutable.deny)
  return _key(mutable)


# Rng counters: make_rng advances a nested dict shared by a scope and the
# scopes that flax's lifted transforms clone from it.
# -----------------------------------------------------------------------------


def _flat_counters(counters: dict, prefix: tuple = ()) -> tuple:
  flat = []
  for name, value in counters.items():
    if isinstance(value, dict):
      flat.append((prefix + (name,), None))
      flat.extend(_flat_counters(value, prefix + (name,)))
    else:
      flat.append((prefix + (name,), value))
  return tuple(flat)


def _restore_counters(counters: dict, flat: tuple) -> None:
  """Sets ``counters`` in place to the state that ``flat`` describes.

  Nested dicts are updated, never replaced: child scopes created earlier hold
  references to them.
  """
  wanted = collections.defaultdict(dict)
  for path, value in flat:
    wanted[path[:-1]][path[-1]] = value

  def restore(node: dict, prefix: tuple) -> None:
    names = wanted.get(prefix, {})
    for name in [name for name in node if name not in names]:
      del node[name]
    for name, value in names.items():
      if value is None:
        child = node.get(name)
        if not isinstance(child, dict):
          child = node[name] = {}
        restore(child, prefix + (name,))
      else:
        node[name] = value

  restore(counters, ())


# The compiled call.
# -----------------------------------------------------------------------------


class _Record(NamedTuple):
  """What a traced call did besides computing arrays, for cached calls to replay."""

  counters: tuple
  state: tuple
  out_tree: Any
  out_static: tuple
  updates_tree: Any
  updates_static: tuple

  def key(self) -> Any:
    """A hashable digest, or None when a constant leaf cannot be compared."""
    try:
      return (
          self.counters,
          _key(self.state),
          self.out_tree,
          _key(self.out_static),
          self.updates_tree,
          _key(self.updates_static),
      )
    except _Unkeyable:
      return None


@dataclasses.dataclass
class _Call:
  """One call of the wrapper: what the traced function needs besides arrays."""

  method: Any
  module: module_lib.Module
  counters: tuple
  record: _Record | None = None


class _Calls(threading.local):
  """The calls being traced, innermost last: the traced function's other inputs."""

  def __init__(self):
    self.stack: list[_Call] = []


_calls = _Calls()


class _Entry:
  """A cache entry: one jitted function and the record of its traces."""

  def __init__(self):
    self.record: _Record | None = None
    self.compilable = True
    self.run = jax.jit(self._trace)

  def _trace(self, variables: dict, rngs: dict, primals: tuple) -> tuple[list, list]:
    call = _calls.stack[-1]
    _stats['traces'] += 1
    outer = call.module.scope
    # Every trace starts from the counters in the key, should JAX ever trace
    # twice within one call.
    _restore_counters(outer.rng_counters, call.counters)
    scope = scope_lib.Scope(
        variables,
        rngs=rngs,
        name=outer.name,
        mutable=outer.mutable,
        path=outer.path,
        debug_path=outer.debug_path,
        flags=outer.flags,
    )
    scope.rng_counters = outer.rng_counters
    scope.reservations = collections.defaultdict(
        set, {name: set(cols) for name, cols in outer.reservations.items()}
    )
    inner = call.module.clone(parent=scope)
    object.__setattr__(inner, '_state', call.module._state.export())
    out = call.method(inner, *primals)
    updates = {
        col: collection
        for col, collection in scope._variables.items()
        if scope.is_mutable_collection(col)
    }
    out_traced, out_tree, out_static = _split(out)
    updates_traced, updates_tree, updates_static = _split(updates)
    state = inner._state
    call.record = _Record(
        counters=_flat_counters(outer.rng_counters),
        state=(
            state.in_compact_method,
            state.in_setup,
            state.is_initialized,
            tuple(state.autoname_cursor.items()),
        ),
        out_tree=out_tree,
        out_static=out_static,
        updates_tree=updates_tree,
        updates_static=updates_static,
    )
    return out_traced, updates_traced


def _split(tree: Any) -> tuple[list, Any, tuple]:
  """Splits a traced result into its traced leaves and its constant ones."""
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  traced = [leaf for leaf in leaves if isinstance(leaf, jax.core.Tracer)]
  static = tuple(
      (index, leaf)
      for index, leaf in enumerate(leaves)
      if not isinstance(leaf, jax.core.Tracer)
  )
  return traced, treedef, static


def _join(traced: list, treedef: Any, static: tuple) -> Any:
  leaves = [None] * treedef.num_leaves
  for index, leaf in static:
    leaves[index] = leaf
  traced = iter(traced)
  static_indices = {index for index, _ in static}
  for index in range(len(leaves)):
    if index not in static_indices:
      leaves[index] = next(traced)
  return treedef.unflatten(leaves)


_stats: collections.Counter = collections.Counter()
_entries: collections.OrderedDict[Any, _Entry] = collections.OrderedDict()


class CacheInfo(NamedTuple):
  """Counts since the last ``compiled.cache_clear()``.

  ``calls`` of wrapped functions; ``traces`` of them by ``jax.jit``;
  ``fallbacks``: calls that ran uncompiled; ``entries`` in the cache.
  """

  calls: int
  traces: int
  fallbacks: int
  entries: int


def _is_concrete(leaf: Any) -> bool:
  """Whether ``leaf`` is an array with a known value, maybe under autodiff tracers."""
  if isinstance(leaf, jax.core.Tracer):
    to_concrete = getattr(leaf, 'to_concrete_value', None)
    if to_concrete is not None:
      return to_concrete() is not None
    # jax before 0.4.36 has no to_concrete_value; its differentiation
    # tracers hold their primal, which is concrete when no other trace is on.
    while isinstance(leaf, jax.core.Tracer) and hasattr(leaf, 'primal'):
      leaf = leaf.primal
  # Not numpy arrays: an unchanged numpy variable would come back from the
  # compiled call as a jax.Array. Older jax counts tracers as jax.Arrays.
  return isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer)


def _compilable_now(module: Any, primals: tuple, kwargs: dict) -> bool:
  if not _FLAX_COMPILES or kwargs or not isinstance(module, module_lib.Module):
    return False
  scope = module.scope
  if not isinstance(scope, scope_lib.Scope) or scope.parent is not None:
    return False
  if len(module_lib._global_interceptor_stack) or module_lib._context.call_info_stack:
    return False
  if jax.config.jax_disable_jit:
    return False
  leaves = jax.tree_util.tree_leaves((scope._variables, scope.rngs, primals))
  return all(_is_concrete(leaf) for leaf in leaves)


def _entry_key(target: Any, module: module_lib.Module, counters: tuple) -> Any:
  scope = module.scope
  state = module._state
  capture = module_lib._context.capture_stack
  return (
      tuple(getattr(flax.config, name, None) for name in _FLAX_FLAGS),
      _key(target),
      _module_key(module, frozenset()),
      state.in_compact_method,
      state.in_setup,
      state.setup_called,
      state.is_initialized,
      tuple(state.autoname_cursor.items()),
      scope.name,
      scope.path,
      scope.debug_path,
      _filter_key(scope.mutable),
      _key(dict(scope.flags)),
      tuple((name, frozenset(cols)) for name, cols in scope.reservations.items()),
      counters,
      _key(capture[-1] if capture else None),
  )


def _entry(key: Any) -> _Entry:
  entry = _entries.get(key)
  if entry is None:
    entry = _entries[key] = _Entry()
    if len(_entries) > _MAX_ENTRIES:
      _entries.popitem(last=False)
  else:
    _entries.move_to_end(key)
  return entry


def _replay(module: module_lib.Module, record: _Record) -> None:
  _restore_counters(module.scope.rng_counters, record.counters)
  in_compact_method, in_setup, is_initialized, autoname_cursor = record.state
  # What flax re-imports from the module that ran fn into the caller's.
  state = module._state
  state.in_compact_method = in_compact_method
  state.in_setup = in_setup
  state.is_initialized = is_initialized
  state.autoname_cursor = dict(autoname_cursor)


def _call_compiled(target: Any, method: Any, module: module_lib.Module, primals: tuple) -> tuple | None:
  """Runs ``method`` compiled; a 1-tuple holding its result, or None to run it as is."""
  scope = module.scope
  counters = _flat_counters(scope.rng_counters)
  try:
    key = _entry_key(target, module, counters)
  except (_Unkeyable, RecursionError):  # RecursionError: a container holding itself
    return None
  entry = _entry(key)
  if not entry.compilable:
    return None
  call = _Call(method, module, counters)
  _calls.stack.append(call)
  try:
    out_traced, updates_traced = entry.run(scope._variables, scope.rngs, primals)
  except Exception:  # pylint: disable=broad-except
    # Tracing fails where eager evaluation works, such as Python control flow
    # on values. The uncompiled call then starts from the same state, and
    # raises whatever the original would.
    _restore_counters(scope.rng_counters, counters)
    entry.compilable = False
    return None
  finally:
    _calls.stack.pop()
  if call.record is not None:
    if entry.record is None:
      entry.record = call.record
    elif call.record.key() is None or call.record.key() != entry.record.key():
      # A retrace (new shapes) did something else Python-side: later calls
      # could not tell which record to replay.
      entry.compilable = False
  record = call.record or entry.record
  _replay(module, record)
  updates = _join(updates_traced, record.updates_tree, record.updates_static)
  for col, collection in updates.items():
    for name, value in collection.items():
      scope.put_variable(col, name, value)
  return (_join(out_traced, record.out_tree, record.out_static),)


def _unbound(fn: Any) -> types.FunctionType | None:
  """The function ``nn.vjp`` would call for ``fn``, or None when it is not a plain one."""
  if isinstance(fn, types.MethodType) and isinstance(fn.__self__, module_lib.Module):
    fn = fn.__func__
  if not isinstance(fn, types.FunctionType):
    return None
  # nn.vjp's own test, which reads through functools.wraps as Module methods
  # need; the signature is only built when the code cannot tell.
  if fn.__code__.co_argcount >= 1:
    return fn
  try:
    return fn if inspect.signature(fn).parameters else None
  except (TypeError, ValueError):
    return None


def compiled(fn: Any) -> Any:
  """Wraps the function given to ``nn.vjp`` so that it runs through a cached ``jax.jit``.

  Note that only calls with known values are compiled. Under an outer trace
  such as ``jax.jit``, for functions whose closure or globals hold arrays or
  other mutable state, for modules bound to other modules through their
  fields, and whenever tracing fails, ``fn`` is called as ``nn.vjp`` calls
  it. Python side effects of ``fn`` happen when it is traced, not on cached
  calls; functions it calls are keyed by identity, as ``jax.jit`` keys them.

  Example::

    x_grad, y_grad = grad_from_vjp(
        nn.vjp(compiled(lambda mdl, x, y: mdl(x, y)), mdl, x, y,
               vjp_variables=False, multi_scope=True))

  Args:
    fn: the function ``nn.vjp`` calls with the module and the primals.

  Returns:
    A function to pass to ``nn.vjp`` in place of ``fn``, with the same
    results, variable mutations and rng streams; or ``fn`` itself when it is
    not a plain function or a Module method.
  """
  target = _unbound(fn)
  if target is None:
    return fn
  method = module_lib.wrap_method_once(target)

  @functools.wraps(target)
  def call_compiled(module, *primals, **kwargs):
    _stats['calls'] += 1
    if _compilable_now(module, primals, kwargs):
      result = _call_compiled(target, method, module, primals)
      if result is not None:
        return result[0]
    _stats['fallbacks'] += 1
    return method(module, *primals, **kwargs)

  # nn.vjp enters the module's method context around a function it is given;
  # the wrapped method enters it itself, on whichever module runs it.
  call_compiled.method_handler_wrapped = True
  return call_compiled


def _cache_info() -> CacheInfo:
  return CacheInfo(_stats['calls'], _stats['traces'], _stats['fallbacks'], len(_entries))


def _cache_clear() -> None:
  _stats.clear()
  _entries.clear()


compiled.cache_info = _cache_info
compiled.cache_clear = _cache_clear
