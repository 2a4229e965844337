"""What a lambda or nested def under a jax transform does with its Module:
whether it uses ``self`` or creates submodules inline (so that the transform
is over a bound Module), which names it reads from the method around it,
whether it draws random numbers, and the parameter the lifted form gives it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator

import libcst as cst
from libcst.metadata import GlobalScope, Scope

from vjpify.transformer.find.metadata import Metadata
from vjpify.transformer.find.module_classes import ModuleClasses
from vjpify.transformer.find.targets import LIFTED_MODULE_PARAMETER, RNG_METHOD

# Where a Module class's qualified name starts: nn.Dense, nn.BatchNorm, ...
_LINEN = 'flax.linen.'


@dataclasses.dataclass(frozen=True)
class LiftedFunction:
  """``node``: the lambda or def; ``renames``: the names in it that read the
  method's ``self``, which become ``parameter``; ``captured``: the names it
  reads from the functions around it, in source order; ``shared``: a def
  that is decorated or used other than by the site; ``arity``: how many
  positional arguments it takes one by one (-1: it takes others too)."""

  node: cst.Lambda | cst.FunctionDef
  renames: frozenset[cst.Name]
  parameter: str
  captured: tuple[str, ...]
  draws_rng: bool
  shared: bool
  arity: int


def subtree(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
  """``node`` and every node below it, in source order."""
  yield node
  for child in node.children:
    yield from subtree(child)


def draws_rng(nodes: Iterable[cst.CSTNode]) -> bool:
  """Whether any of ``nodes`` calls for random numbers by name (``make_rng``)."""
  return any(isinstance(n, cst.Attribute) and n.attr.value == RNG_METHOD for n in nodes)


def _outer_scopes(scope: Scope | None) -> set[Scope]:
  """The function scopes around a definition that sits in ``scope``."""
  found = set()
  while scope is not None and not isinstance(scope, GlobalScope):
    found.add(scope)
    scope = scope.parent
  return found


def _creates_module(call: cst.Call, metadata: Metadata, classes: ModuleClasses) -> bool:
  for name in metadata.qualified_names(call.func):
    last = name.name.rsplit('.', 1)[-1]
    if name.name.startswith(_LINEN) and last[:1].isupper():
      return True
  if isinstance(call.func, cst.Name):
    scope = metadata.scope_of(call.func)
    bound = scope[call.func.value] if scope is not None else ()
    return any(getattr(a, 'node', None) in classes for a in bound)
  return False


def _arity(params: cst.Parameters) -> int:
  positional = [*params.posonly_params, *params.params]
  if (any(p.default is not None for p in positional) or params.kwonly_params or params.star_kwarg
      or not isinstance(params.star_arg, cst.MaybeSentinel)):
    return -1
  return len(positional)


def _parameter(names: set[str]) -> str:
  for n in itertools.count(1):
    candidate = LIFTED_MODULE_PARAMETER if n == 1 else f'{LIFTED_MODULE_PARAMETER}_{n}'
    if candidate not in names:
      return candidate
  raise AssertionError('unreachable')


def _shared(node: cst.FunctionDef, fn: cst.BaseExpression, metadata: Metadata) -> bool:
  if node.decorators:
    return True
  scope = metadata.scope_of(node)
  assignments = list(scope[node.name.value]) if scope is not None else []
  references = [r for a in assignments for r in a.references]
  return len(assignments) != 1 or len(references) != 1 or references[0].node is not fn


def lifted_function(node: cst.Lambda | cst.FunctionDef, fn: cst.BaseExpression,
                    is_self: Callable[[cst.CSTNode], bool], metadata: Metadata,
                    classes: ModuleClasses) -> LiftedFunction | None:
  """What ``node``, the function ``fn`` names, does; None when it uses no
  ``self`` and creates no submodule, so that the transform is not over a
  bound Module."""
  nodes = list(subtree(node))
  inside = set(nodes)
  renames = frozenset(n for n in nodes if is_self(n))
  creates = any(isinstance(n, cst.Call) and _creates_module(n, metadata, classes) for n in nodes)
  if not renames and not creates:
    return None
  outer = _outer_scopes(metadata.scope_of(node))
  captured: dict[str, None] = {}
  scopes = {metadata.scope_of(n) for n in nodes} - {None}
  for scope in scopes:
    for access in scope.accesses:
      if access.node not in inside or access.node in renames:
        continue
      if any(a.scope in outer for a in access.referents):
        captured[metadata.code_for(access.node)] = None
  names = {n.value for n in nodes if isinstance(n, cst.Name)}
  shared = isinstance(node, cst.FunctionDef) and _shared(node, fn, metadata)
  ordered = tuple(sorted(captured, key=lambda name: min(
      (metadata.range_of(n).start.line, metadata.range_of(n).start.column)
      for n in nodes if isinstance(n, cst.Name) and n.value == name and metadata.range_of(n))))
  return LiftedFunction(node, renames, _parameter(names), ordered, draws_rng(nodes), shared, _arity(node.params))
