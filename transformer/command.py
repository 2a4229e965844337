"""The LibCST codemod command: wires metadata, site checks, node building and
import bookkeeping together; the decisions live in the modules it calls.

Usable with LibCST's own runner::

    python -m libcst.tool codemod -x vjpify.transformer.command.LowerGradToVjp src/
"""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand
from libcst.metadata import ParentNodeProvider, PositionProvider, QualifiedNameProvider, ScopeProvider

from vjpify.transformer.build import lowered_call
from vjpify.transformer.diagnostics import REWRITTEN, SKIPPED, Site
from vjpify.transformer.imports import ImportPlanner
from vjpify.transformer.modules import module_classes
from vjpify.transformer.sites import site_problem, transform_of
from vjpify.transformer.targets import EXTRACTION_HELPER, KWARGS_HELPER


class _ClassCollector(cst.CSTVisitor):
  def __init__(self) -> None:
    self.classes: list[cst.ClassDef] = []

  def visit_ClassDef(self, node: cst.ClassDef) -> None:
    self.classes.append(node)


class LowerGradToVjp(VisitorBasedCodemodCommand):
  DESCRIPTION = 'Rewrites flax.linen grad/value_and_grad calls in Modules into explicit nn.vjp code.'

  METADATA_DEPENDENCIES = (ParentNodeProvider, PositionProvider, QualifiedNameProvider, ScopeProvider)

  def __init__(self, context: CodemodContext) -> None:
    super().__init__(context)
    self.sites: list[Site] = []
    self._module_classes: frozenset[cst.ClassDef] = frozenset()
    self._planner: ImportPlanner | None = None
    self._module: cst.Module | None = None
    self._callees: set[cst.CSTNode] = set()

  def visit_Module(self, node: cst.Module) -> None:
    self._module = node
    collector = _ClassCollector()
    node.visit(collector)
    self._module_classes = module_classes(collector.classes, self._qualified_names, self._scope_of)
    scopes = {self._scope_of(n) for n in self.metadata[ScopeProvider]}
    scopes.discard(None)
    self._planner = ImportPlanner(self.context, self._scope_of(node), scopes)

  def _qualified_names(self, node: cst.CSTNode):
    return self.get_metadata(QualifiedNameProvider, node, ())

  def _scope_of(self, node: cst.CSTNode):
    return self.get_metadata(ScopeProvider, node, None)

  def _parent_of(self, node: cst.CSTNode):
    return self.get_metadata(ParentNodeProvider, node, None)

  def _record(self, node: cst.CSTNode, kind: str, action: str, reason: str) -> None:
    start = self.get_metadata(PositionProvider, node).start
    site = Site(self.context.filename or '<string>', start.line, start.column + 1, kind, action, reason)
    self.sites.append(site)
    if action != REWRITTEN:
      self.warn(site.format())

  def visit_Call(self, node: cst.Call) -> None:
    self._callees.add(node.func)

  def _check_reference(self, node: cst.Name | cst.Attribute) -> None:
    if node in self._callees:
      return
    verdict = transform_of(node, self._qualified_names)
    if verdict is None or isinstance(self._parent_of(node), (cst.Attribute, cst.ImportAlias)):
      return
    if isinstance(self._parent_of(node), cst.ImportFrom):
      return
    spelled = self._module.code_for_node(node)
    self._record(node, 'reference', SKIPPED,
                 f'{spelled} is used without being called here; left unchanged; '
                 f'call {spelled}(...) directly in a Module method to have it rewritten')

  def visit_Name(self, node: cst.Name) -> None:
    self._check_reference(node)

  def visit_Attribute(self, node: cst.Attribute) -> None:
    self._check_reference(node)

  def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
    return False

  def visit_Import(self, node: cst.Import) -> bool:
    return False

  def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
    verdict = transform_of(original_node.func, self._qualified_names)
    if verdict is None:
      return updated_node
    spelled = f'{self._module.code_for_node(original_node.func)}(...)'
    problem = site_problem(
        original_node, verdict, self._parent_of, self._module_classes,
        self._module.code_for_node)
    if problem:
      self._record(original_node, verdict.transform, SKIPPED, f'{spelled} {problem}')
      return updated_node
    site_scope = self.get_metadata(ScopeProvider, original_node)
    planner = self._planner
    vjp_func = planner.vjp_function(original_node.func, site_scope, self._qualified_names)
    kwargs_helper = (planner.runtime_helper(KWARGS_HELPER)
                     if any(a.star == '**' for a in original_node.args) else KWARGS_HELPER)
    replacement = lowered_call(
        updated_node, verdict.transform, vjp_func,
        planner.runtime_helper(EXTRACTION_HELPER[verdict.transform]), kwargs_helper)
    planner.release_grad_import(original_node.func, site_scope)
    self._record(original_node, verdict.transform, REWRITTEN, f'{spelled} rewritten to explicit nn.vjp')
    return replacement
