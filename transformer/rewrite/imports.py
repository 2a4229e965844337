"""Import bookkeeping: how the new code names flax's vjp and the runtime
helpers, which imports to add, and which grad imports fall out of use.

Names are reused when the file already binds them; new ones are added through
LibCST's AddImportsVisitor / RemoveImportsVisitor, never by editing import
nodes by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor
from libcst.metadata import ImportAssignment, QualifiedName, Scope

from vjpify.transformer.find.targets import (
    GRAD_TRANSFORMS, HELPER_ALIAS_PREFIX, IMPORT_VJP_FROM, LINEN_MODULES, LINEN_VJP, RUNTIME_MODULE, VJP_ALIAS_PREFIX)
from vjpify.transformer.rewrite.whitespace import split_after_last, without_comments


def _sort_key(names: Sequence[str]) -> Callable[[str], str] | None:
  """The order ``names`` are kept in (ASCII or ignoring case), if any."""
  for key in (str, str.lower):
    if list(names) == sorted(names, key=key):
      return key
  return None


def _separator(node: cst.ImportFrom) -> cst.Comma:
  """The comma-and-whitespace between two names of this import."""
  names = node.names
  for alias in names[:-1]:
    if isinstance(alias.comma, cst.Comma):
      return alias.comma.with_changes(whitespace_after=without_comments(alias.comma.whitespace_after))
  if node.lpar is not None and isinstance(node.lpar.whitespace_after, cst.ParenthesizedWhitespace):
    return cst.Comma(whitespace_after=without_comments(node.lpar.whitespace_after))
  return cst.Comma(whitespace_after=cst.SimpleWhitespace(' '))


def _is_docstring(statement: cst.CSTNode) -> bool:
  return (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
          and isinstance(statement.body[0], cst.Expr)
          and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))


def _is_import(statement: cst.CSTNode) -> bool:
  return (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
          and isinstance(statement.body[0], (cst.Import, cst.ImportFrom)))


class OrderedAddImportsVisitor(AddImportsVisitor):
  """LibCST's AddImportsVisitor, except that a name merged into an existing
  ``from m import ...`` goes where sorting puts it (or last, when the names
  are not sorted), with the import's own commas and line breaks, and that a
  docstring in several pieces stays first.

  It also skips the parts of the file that cannot change: LibCST looks only
  at the imports that open the file and merges names only into those, so
  walking every function and class body is wasted time."""

  def visit_Module(self, node: cst.Module) -> None:
    # LibCST gathers the opening imports by visiting the whole module; the
    # opening statements (and the one that ends them) are all it reads.
    end = 1
    while end < len(node.body) and _is_import(node.body[end]):
      end += 1
    super().visit_Module(node.with_changes(body=node.body[:end + 1]))

  def visit_IndentedBlock(self, node: cst.IndentedBlock) -> bool:
    return False

  def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> bool:
    return False

  def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
    return any(isinstance(statement, cst.ImportFrom) for statement in node.body)

  def leave_ImportFrom(self, original_node: cst.ImportFrom, updated_node: cst.ImportFrom) -> cst.ImportFrom:
    merged = super().leave_ImportFrom(original_node, updated_node)
    if merged is updated_node or isinstance(updated_node.names, cst.ImportStar):
      return merged
    added = list(merged.names[:len(merged.names) - len(updated_node.names)])
    names = list(updated_node.names)
    separator = _separator(updated_node)
    key = _sort_key([get_full_name_for_node(a.name) for a in names])
    for alias in added:
      name = get_full_name_for_node(alias.name)
      index = len(names)
      if key is not None:
        index = next((i for i, a in enumerate(names) if key(get_full_name_for_node(a.name)) > key(name)), len(names))
      if index < len(names):
        names.insert(index, alias.with_changes(comma=separator))
      elif isinstance(names[-1].comma, cst.Comma):
        # A trailing comma stays trailing, after the new last name.
        last = names[-1]
        after_last, closing = split_after_last(last.comma.whitespace_after, separator.whitespace_after)
        names[-1] = last.with_changes(comma=separator.with_changes(whitespace_after=after_last))
        names.append(alias.with_changes(comma=last.comma.with_changes(whitespace_after=closing)))
      else:
        names[-1] = names[-1].with_changes(comma=separator)
        names.append(alias)
    return updated_node.with_changes(names=names)

  def _split_module(self, orig_module: cst.Module, updated_module: cst.Module):
    # LibCST only keeps new imports below a docstring written as one string;
    # "a" "b" is a docstring too, and a __future__ import must stay first.
    before, block, after = super()._split_module(orig_module, updated_module)
    if before or not orig_module.body or not _is_docstring(orig_module.body[0]):
      return before, block, after
    body = list(updated_module.body)
    end = 1
    while end < len(body) and _is_import(orig_module.body[end]):
      end += 1
    return body[:1], body[1:end], body[end:]


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

  def release_grad_import(self, func: cst.BaseExpression, site_scope: Scope) -> None:
    """Schedules removal of a ``from flax.linen import grad [as g]`` that the
    rewrite may have left unused; the visitor keeps it if anything still uses it."""
    if not isinstance(func, cst.Name):
      return
    for assignment in site_scope[func.value]:
      if not isinstance(assignment, ImportAssignment) or not isinstance(assignment.node, cst.ImportFrom):
        continue
      module = get_full_name_for_node(assignment.node.module) if assignment.node.module else None
      for alias in assignment.node.names if not isinstance(assignment.node.names, cst.ImportStar) else ():
        bound = alias.evaluated_alias or alias.evaluated_name
        if bound == func.value and f'{module}.{alias.evaluated_name}' in GRAD_TRANSFORMS:
          RemoveImportsVisitor.remove_unused_import(
              self._context, module, alias.evaluated_name, alias.evaluated_alias)
