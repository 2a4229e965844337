"""Import bookkeeping: how the new code names flax's vjp and the runtime
helpers, which imports to add, and which grad imports fall out of use.

Names are reused when the file already binds them; new ones are added through
LibCST's AddImportsVisitor / RemoveImportsVisitor (as ``import_adder`` lays
them out), never by editing import nodes by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor
from libcst.helpers import get_full_name_for_node
from libcst.metadata import ImportAssignment, QualifiedName, Scope

from vjpify.transformer.find.decide import Decision
from vjpify.transformer.find.targets import (
    COMPILE_HELPER, EXTRACTION_HELPER, GRAD_TRANSFORMS, HELPER_ALIAS_PREFIX, IMPORT_VJP_FROM, KWARGS_HELPER,
    LINEN_MODULES, LINEN_VJP, REDUCE_AXES_HELPER, RUNTIME_MODULE, VJP_ALIAS_PREFIX)
from vjpify.transformer.rewrite.nodes import Spelling


def _resolves_to(scope: Scope, name: str, targets: frozenset[str]) -> bool:
  names = {q.name for q in scope.get_qualified_names_for(name)}
  return bool(names) and names <= targets


class ImportPlanner:
  """Chooses names for one file and schedules the imports they need."""

  def __init__(self, context: CodemodContext, module_scope: Scope, all_scopes: Iterable[Scope]):
    self._context = context
    self._module_scope = module_scope
    all_scopes = list(all_scopes)
    # Names read anywhere count as taken too: one bound nowhere is a
    # NameError, or comes from a star import, and a new import must not
    # quietly give it a meaning.
    self._bound = {a.name for scope in all_scopes for a in scope.assignments}
    self._bound |= {a.node.value for scope in all_scopes for a in scope.accesses if isinstance(a.node, cst.Name)}
    # Per (module, object): the module-level names the file already binds
    # to it, and the name vjpify imports it under when none will do.
    self._existing: dict[tuple[str, str], list[str]] = {}
    self._added: dict[tuple[str, str], str] = {}
    self._linen_aliases = sorted(
        a.name for a in module_scope.assignments
        if isinstance(a, ImportAssignment) and _resolves_to(module_scope, a.name, LINEN_MODULES)
    )

  def _import_name(self, module: str, obj: str, fallback_prefix: str, site_scope: Scope) -> str:
    """A name bound to ``module.obj`` where ``site_scope`` can see it: one the
    file imports already, else a new import under a name bound nowhere."""
    qualified = frozenset({f'{module}.{obj}'})
    key = (module, obj)
    if key not in self._existing:
      self._existing[key] = sorted(
          a.name for a in self._module_scope.assignments
          if isinstance(a, ImportAssignment) and _resolves_to(self._module_scope, a.name, qualified))
    for name in (obj, *self._existing[key]):
      if name in self._existing[key] and _resolves_to(site_scope, name, qualified):
        return name
    if key not in self._added:
      name = obj
      counter = 1
      while name in self._bound:
        name = f'{fallback_prefix}_{obj}' if counter == 1 else f'{fallback_prefix}_{obj}_{counter}'
        counter += 1
      AddImportsVisitor.add_needed_import(self._context, module, obj, None if name == obj else name)
      self._bound.add(name)
      self._added[key] = name
    return self._added[key]

  def runtime_helper(self, helper: str, site_scope: Scope) -> str:
    return self._import_name(RUNTIME_MODULE, helper, HELPER_ALIAS_PREFIX, site_scope)

  def vjp_function(self, func: cst.BaseExpression, site_scope: Scope,
                   qualified_names: Callable[[cst.CSTNode], Iterable[QualifiedName]]) -> cst.BaseExpression:
    """How to spell flax's vjp at a site whose callee was ``func``."""
    if isinstance(func, cst.Attribute):
      prefix = {q.name for q in qualified_names(func.value)}
      if prefix and prefix <= LINEN_MODULES:
        return func.with_changes(attr=cst.Name('vjp'))
    for alias in self._linen_aliases:
      if _resolves_to(site_scope, alias, LINEN_MODULES):
        return cst.Attribute(value=cst.parse_expression(alias), attr=cst.Name('vjp'))
    if 'vjp' in site_scope and _resolves_to(site_scope, 'vjp', LINEN_VJP):
      return cst.Name('vjp')
    return cst.Name(self._import_name(IMPORT_VJP_FROM, 'vjp', VJP_ALIAS_PREFIX, site_scope))

  def spelling(self, call: cst.Call, decision: Decision, site_scope: Scope,
               qualified_names: Callable[[cst.CSTNode], Iterable[QualifiedName]], quote: str) -> Spelling:
    """Names for what the replacement of ``call`` calls, as ``decision``
    says it does; their imports are scheduled. ``quote``: for the string the
    keyword check takes."""
    vjp = self.vjp_function(call.func, site_scope, qualified_names)
    names = {helper: self.runtime_helper(helper, site_scope) for helper in decision.helpers}
    return Spelling(
        decision.transform, vjp, names[EXTRACTION_HELPER[decision.transform]],
        kwargs_check=names.get(KWARGS_HELPER, KWARGS_HELPER), quote=quote,
        reduce_axes=names.get(REDUCE_AXES_HELPER), compile=names.get(COMPILE_HELPER))

  def release_grad_import(self, func: cst.BaseExpression, site_scope: Scope,
                          targets: Collection[str] = GRAD_TRANSFORMS) -> None:
    """Schedules removal of a ``from flax.linen import grad [as g]`` (or of
    another of ``targets``) that the rewrite may have left unused, and for
    jax's transforms of the ``import jax`` of ``jax.grad``; the visitor keeps
    it if anything still uses it."""
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and targets is not GRAD_TRANSFORMS:
      for assignment in site_scope[func.value.value]:
        if isinstance(assignment, ImportAssignment) and isinstance(assignment.node, cst.Import):
          for alias in assignment.node.names:
            if (alias.evaluated_alias or alias.evaluated_name) == func.value.value:
              RemoveImportsVisitor.remove_unused_import(self._context, alias.evaluated_name, None,
                                                        alias.evaluated_alias)
    if not isinstance(func, cst.Name):
      return
    for assignment in site_scope[func.value]:
      if not isinstance(assignment, ImportAssignment) or not isinstance(assignment.node, cst.ImportFrom):
        continue
      module = get_full_name_for_node(assignment.node.module) if assignment.node.module else None
      for alias in assignment.node.names if not isinstance(assignment.node.names, cst.ImportStar) else ():
        bound = alias.evaluated_alias or alias.evaluated_name
        if bound == func.value and f'{module}.{alias.evaluated_name}' in targets:
          RemoveImportsVisitor.remove_unused_import(
              self._context, module, alias.evaluated_name, alias.evaluated_alias)
