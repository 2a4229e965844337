"""Variables, rng streams and results across the compiled call.

The compiled function takes the scope's variables and rng keys as arrays and
returns the traced leaves of ``fn``'s result and of the mutated collections.
Everything else a traced call does Python-side (the rng counters that
``make_rng`` advanced, the module's autonaming state, the non-array leaves
of the results) is recorded once, with the entry, and replayed on every
cached call. Non-array leaves made during the trace (a numpy array in
``aux``) are copied afresh for every call, as the original program makes a
new one each time.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import enum
import functools
import types
from typing import Any, NamedTuple

import jax
import numpy as np

from vjpify.runtime import internals
from vjpify.runtime.compiled import usercode
from vjpify.runtime.compiled.fingerprint import Unguardable

__all__ = ['Call', 'Record', 'Scopes', 'counters_of', 'flat_counters', 'restore_counters', 'run_traced', 'replay']


def flat_counters(counters: dict, prefix: tuple = ()) -> tuple:
  """The nested rng counters of a scope as a flat, hashable tuple."""
  flat = []
  for name, value in counters.items():
    if isinstance(value, dict):
      flat.append((prefix + (name,), None))
      flat.extend(flat_counters(value, prefix + (name,)))
    else:
      flat.append((prefix + (name,), value))
  return tuple(flat)


def restore_counters(counters: dict, flat: tuple) -> None:
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


# Leaves returned as they are: values that cannot change, and objects whose
# identity is what the program sees (the same in the original program).
_SHARED_LEAVES = (type(None), bool, int, float, complex, str, bytes, np.generic, np.dtype, type, types.ModuleType,
                  types.BuiltinFunctionType, enum.Enum, range, slice, type(Ellipsis), frozenset)


class _Fresh(NamedTuple):
  """A leaf made during the trace: every call gets its own copy."""

  pristine: Any


def _static_leaf(leaf: Any, outlives: Any) -> Any:
  if isinstance(leaf, _SHARED_LEAVES) or outlives(leaf):
    return leaf
  if isinstance(leaf, (np.ndarray, bytearray)):
    return _Fresh(copy.copy(leaf))
  if isinstance(leaf, types.FunctionType) and not usercode.is_user_code(leaf.__code__):
    return leaf  # a library function: the same object in the original program
  raise Unguardable(f'the result holds a {type(leaf).__name__} made during the trace, which a cached call '
                    'could not make afresh')


def _fresh(leaf: Any) -> Any:
  return copy.copy(leaf.pristine) if type(leaf) is _Fresh else leaf


class Record(NamedTuple):
  """What a traced call did besides computing arrays, for cached calls to replay."""

  counters: tuple
  state: tuple
  out_tree: Any
  out_static: tuple
  updates_tree: Any
  updates_static: tuple

  def same_as(self, other: Record) -> bool:
    """Whether two traces (of new shapes) did the same thing Python-side."""
    return (self.counters == other.counters and self.state == other.state and self.out_tree == other.out_tree
            and self.updates_tree == other.updates_tree
            and _same_leaves(self.out_static, other.out_static)
            and _same_leaves(self.updates_static, other.updates_static))


def _same_leaves(first: tuple, second: tuple) -> bool:
  if len(first) != len(second):
    return False
  for (index, leaf), (other_index, other) in zip(first, second):
    if index != other_index or type(leaf) is not type(other):
      return False
    if type(leaf) is _Fresh:
      leaf, other = leaf.pristine, other.pristine
      if isinstance(leaf, np.ndarray):
        if leaf.dtype != other.dtype or leaf.shape != other.shape or leaf.tobytes() != other.tobytes():
          return False
        continue
    if leaf is not other and not (isinstance(leaf, _SHARED_LEAVES) and type(leaf) is type(other)
                                  and _bits(leaf) == _bits(other)):
      return False
  return True


def _bits(leaf: Any) -> Any:
  if isinstance(leaf, float):
    return leaf.hex() if leaf == leaf else repr(leaf)
  return leaf


class Scopes(NamedTuple):
  """The scopes a call's module reaches: their distinct roots, and where each scope sits.

  ``places[i]`` is the root index and path of the i-th scope in the order
  ``set_module_scopes`` consumes them (field modules first, the module last).
  """

  roots: tuple[internals.Scope, ...]
  places: tuple[tuple[int, tuple[str, ...]], ...]
  # Where each scope the module reaches sits, by the scope's id.
  place_of: dict[int, tuple[int, tuple[str, ...]]]

  @classmethod
  def of(cls, module: internals.Module) -> Scopes | None:
    scopes = internals.module_scopes(module)
    if scopes is None:
      return None
    roots: list[internals.Scope] = []
    places = []
    place_of = {}
    for scope in scopes:
      root, path = internals.scope_place(scope)
      index = next((i for i, known in enumerate(roots) if known is root), None)
      if index is None:
        index = len(roots)
        roots.append(root)
      places.append((index, path))
      place_of[id(scope)] = (index, path)
    return cls(tuple(roots), tuple(places), place_of)


@dataclasses.dataclass
class Call:
  """One call of the wrapper: what the traced function needs besides arrays."""

  target: Any
  module: internals.Module
  scopes: Scopes
  counters: tuple
  # The jax arrays fn captures, passed to the compiled function as arguments.
  lifted: tuple = ()
  outlives: Any = None
  record: Record | None = None
  # Why the entry may serve this call but no later one, if it may not.
  run_once: str | None = None

  def arguments(self, primals: tuple) -> tuple:
    """What the compiled function takes: variables and rngs per root, captured arrays, primals (last)."""
    roots = self.scopes.roots
    return (tuple(root._variables for root in roots),  # pylint: disable=protected-access
            tuple(root.rngs for root in roots), self.lifted, primals)

  def restore_counters(self) -> None:
    for root, counters in zip(self.scopes.roots, self.counters):
      restore_counters(root.rng_counters, counters)


def counters_of(scopes: Scopes) -> tuple:
  return tuple(flat_counters(root.rng_counters) for root in scopes.roots)


def _split(tree: Any, outlives: Any) -> tuple[list, Any, tuple]:
  """Splits a traced result into its traced leaves and its constant ones."""
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  traced = [leaf for leaf in leaves if isinstance(leaf, jax.core.Tracer)]
  static = tuple(
      (index, _static_leaf(leaf, outlives))
      for index, leaf in enumerate(leaves)
      if not isinstance(leaf, jax.core.Tracer)
  )
  return traced, treedef, static


def _join(traced: list, treedef: Any, static: tuple) -> Any:
  leaves = [None] * treedef.num_leaves
  static_indices = set()
  for index, leaf in static:
    leaves[index] = _fresh(leaf)
    static_indices.add(index)
  traced = iter(traced)
  for index in range(len(leaves)):
    if index not in static_indices:
      leaves[index] = next(traced)
  return treedef.unflatten(leaves)


def _inner_root(outer: internals.Scope, variables: dict, rngs: dict) -> internals.Scope:
  scope = internals.Scope(
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
  return scope


def run_traced(call: Call, variables: tuple, rngs: tuple, lifted: tuple, primals: tuple) -> tuple[list, list]:
  """Runs fn on scopes made of traced variables and rngs, its captured arrays traced too; records the rest."""
  # Every trace starts from the counters in the key, should JAX ever trace
  # twice within one call.
  call.restore_counters()
  roots = [_inner_root(outer, v, r) for outer, v, r in zip(call.scopes.roots, variables, rngs)]
  scopes = []
  for index, path in call.scopes.places:
    scope = roots[index]
    for name in path:
      scope = scope.push(name, reuse=True)
    scopes.append(scope)
  inner = internals.set_module_scopes(call.module, scopes)
  object.__setattr__(inner, '_state', internals.module_state(call.module).export())
  target = call.target
  if lifted:
    target = substitute(target, {id(array): tracer for array, tracer in zip(call.lifted, lifted)})
  out = internals.wrap_method_once(target)(inner, *primals)
  updates = [
      {col: collection for col, collection in root._variables.items()  # pylint: disable=protected-access
       if root.is_mutable_collection(col)}
      for root in roots
  ]
  out_traced, out_tree, out_static = _split(out, call.outlives)
  updates_traced, updates_tree, updates_static = _split(updates, call.outlives)
  state = internals.module_state(inner)
  call.record = Record(
      counters=counters_of(call.scopes),
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


def replay(call: Call, record: Record, out_traced: list, updates_traced: list) -> Any:
  """Does to the caller's scopes what the traced call did; returns ``fn``'s result."""
  for root, counters in zip(call.scopes.roots, record.counters):
    restore_counters(root.rng_counters, counters)
  in_compact_method, in_setup, is_initialized, autoname_cursor = record.state
  # What flax re-imports from the module that ran fn into the caller's.
  state = internals.module_state(call.module)
  state.in_compact_method = in_compact_method
  state.in_setup = in_setup
  state.is_initialized = is_initialized
  state.autoname_cursor = dict(autoname_cursor)
  updates = _join(updates_traced, record.updates_tree, record.updates_static)
  for root, collections_ in zip(call.scopes.roots, updates):
    for col, collection in collections_.items():
      for name, value in collection.items():
        root.put_variable(col, name, value)
  return _join(out_traced, record.out_tree, record.out_static)


def substitute(value: Any, table: dict[int, Any], memo: dict[int, Any] | None = None) -> Any:
  """``value`` with the objects whose ids ``table`` holds replaced, copying what holds them.

  Functions, closures, defaults, containers, partials and bound methods that
  hold a replaced object are copied with the replacement inside; everything
  else is returned as it is. This gives the traced call a version of ``fn``
  whose captured arrays are the compiled function's arguments.
  """
  memo = {} if memo is None else memo
  key = id(value)
  if key in table:
    return table[key]
  if key in memo:
    return memo[key]
  memo[key] = value  # a cycle sees the original until its copy is made
  result = _substituted(value, table, memo)
  memo[key] = result
  return result


def _substituted(value: Any, table: dict, memo: dict) -> Any:
  if isinstance(value, types.FunctionType):
    cells = value.__closure__ or ()
    contents = [_cell_contents(cell) for cell in cells]
    new_contents = [item if item is _EMPTY else substitute(item, table, memo) for item in contents]
    defaults = substitute(value.__defaults__, table, memo)
    kwdefaults = substitute(value.__kwdefaults__, table, memo)
    if all(a is b for a, b in zip(contents, new_contents)) and defaults is value.__defaults__ and (
        kwdefaults is value.__kwdefaults__):
      return value
    closure = tuple(types.CellType() if item is _EMPTY else types.CellType(item) for item in new_contents)
    copy_ = types.FunctionType(value.__code__, value.__globals__, value.__name__, defaults, closure or None)
    copy_.__kwdefaults__ = kwdefaults
    copy_.__qualname__ = value.__qualname__
    copy_.__dict__.update(value.__dict__)
    return copy_
  if isinstance(value, types.MethodType):
    func, bound = substitute(value.__func__, table, memo), substitute(value.__self__, table, memo)
    return value if func is value.__func__ and bound is value.__self__ else types.MethodType(func, bound)
  if isinstance(value, functools.partial):
    func = substitute(value.func, table, memo)
    args = substitute(value.args, table, memo)
    keywords = substitute(value.keywords, table, memo)
    if func is value.func and args is value.args and keywords is value.keywords:
      return value
    return functools.partial(func, *args, **keywords)
  if type(value) in (tuple, list):
    items = [substitute(item, table, memo) for item in value]
    return value if all(a is b for a, b in zip(items, value)) else type(value)(items)
  if type(value) is dict:
    items = {k: substitute(v, table, memo) for k, v in value.items()}
    return value if all(items[k] is v for k, v in value.items()) else items
  return value


_EMPTY = object()


def _cell_contents(cell: Any) -> Any:
  try:
    return cell.cell_contents
  except ValueError:
    return _EMPTY
