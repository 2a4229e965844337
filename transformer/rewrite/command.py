"""The LibCST codemod command: wiring only. It resolves LibCST's metadata,
asks ``find`` what each call is and whether it may be rewritten, asks
``imports`` for names, ``nodes`` for the replacement and ``layout`` to fit
it into the file, and records a :class:`~vjpify.transformer.diagnostics.Site`
for every site.

Usable with LibCST's own runner::

    python -m libcst.tool codemod -x vjpify.transformer.LowerGradToVjp src/

(add ``--no-jit`` there to leave ``fn`` unwrapped).
"""

from __future__ import annotations

import argparse
import functools

import libcst as cst
from libcst.codemod import Codemod, CodemodContext, VisitorBasedCodemodCommand
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import ParentNodeProvider, PositionProvider, QualifiedNameProvider, ScopeProvider

from vjpify.transformer.codes import Reason
from vjpify.transformer.diagnostics import REWRITTEN, SKIPPED, Site
from vjpify.transformer.find.bases import BaseTracer
from vjpify.transformer.find.decide import Decision, decide, reference_reason
from vjpify.transformer.find.metadata import Metadata
from vjpify.transformer.find.opt_out import OptOuts, opt_outs
from vjpify.transformer.find.module_classes import ModuleClasses, module_classes
from vjpify.transformer.find.sites import enclosing_fstrings, is_reference, string_quote, survey, transform_of
from vjpify.transformer.rewrite.import_adder import OrderedAddImportsVisitor
from vjpify.transformer.rewrite.imports import ImportPlanner
from vjpify.transformer.rewrite.layout import Layout
from vjpify.transformer.rewrite.lifting import Lifter
from vjpify.transformer.rewrite.nodes import Spelling, lowered_call
from vjpify.transformer.rewrite.style import FileStyle
from vjpify.transformer.settings import Settings


class LowerGradToVjp(VisitorBasedCodemodCommand):
  DESCRIPTION = 'Rewrites flax.linen grad/value_and_grad calls in Modules into explicit nn.vjp code.'

  METADATA_DEPENDENCIES = (ParentNodeProvider, PositionProvider, QualifiedNameProvider, ScopeProvider)

  # This command uses no matcher decorators, so the matcher bookkeeping
  # LibCST's base class sets up per file and runs on every node is pure
  # cost: plain CSTTransformer dispatch (see __init__ too).
  on_visit = cst.CSTTransformer.on_visit
  on_leave = cst.CSTTransformer.on_leave
  on_visit_attribute = cst.CSTTransformer.on_visit_attribute
  on_leave_attribute = cst.CSTTransformer.on_leave_attribute

  @staticmethod
  def add_args(arg_parser: argparse.ArgumentParser) -> None:
    # LibCST's runner passes what these parse to __init__ as keywords.
    arg_parser.add_argument(
        '--no-jit', dest='settings', action='store_const', const=Settings(jit=False), default=Settings(),
        help="leave fn as it is rather than wrap it in vjpify.runtime's cached jax.jit")

  def __init__(self, context: CodemodContext, settings: Settings = Settings(), style: FileStyle | None = None, *,
               jit: bool | None = None) -> None:
    """``settings``: the run's. ``style``: the style of the original file,
    when the module transformed is a cut-down copy of it (see
    ``vjpify.transformer.find.reduction``); by default, the module's own.
    ``jit``, when given, replaces ``settings.jit``: the command took it alone
    before there were settings."""
    Codemod.__init__(self, context)
    cst.CSTTransformer.__init__(self)
    self._settings = settings if jit is None else settings._replace(jit=jit)
    self._style = style
    self.sites: list[Site] = []
    self._metadata: Metadata | None = None
    self._module: cst.Module | None = None
    self._module_classes = ModuleClasses(frozenset(), {})
    self._planner: ImportPlanner | None = None
    self._layout: Layout | None = None
    self._callees: set[cst.CSTNode] = set()
    self._opt_outs: OptOuts | None = None
    # Per site: what it becomes, and for a rewritten one, how it is spelled.
    self._decisions: dict[cst.Call, tuple[Decision, Spelling | None]] = {}
    self._lifter: Lifter | None = None

  def _instantiate_and_run(self, transform, tree: cst.Module) -> cst.Module:
    # LibCST merges a new name into an existing import at the front; put it
    # where a careful person would.
    if transform is AddImportsVisitor:
      transform = OrderedAddImportsVisitor
    return super()._instantiate_and_run(transform, tree)

  def visit_Module(self, node: cst.Module) -> None:
    self._module = node
    metadata = self._metadata = Metadata(
        parent_of=functools.partial(self.get_metadata, ParentNodeProvider, default=None),
        range_of=functools.partial(self.get_metadata, PositionProvider, default=None),
        scope_of=functools.partial(self.get_metadata, ScopeProvider, default=None),
        qualified_names=functools.partial(self.get_metadata, QualifiedNameProvider, default=()),
        code_for=node.code_for_node)
    classes, site_lines = survey(self.metadata[PositionProvider], metadata.qualified_names)
    path = self.context.filename or '<string>'
    tracer = BaseTracer(path, self._settings.module_bases)
    self._module_classes = module_classes(classes, metadata, tracer, path)
    scopes = {metadata.scope_of(n) for n in self.metadata[ScopeProvider]}
    scopes.discard(None)
    self._planner = ImportPlanner(self.context, metadata.scope_of(node), scopes)
    # The module's text only when a rewrite needs it: printing it costs a walk.
    style = self._style or FileStyle(lambda: node.code)
    self._opt_outs = None
    self._layout = Layout(style, node.default_indent, metadata, site_lines)
    self._lifter = Lifter(metadata, self._module_classes, self._planner, self._layout, self._settings,
                           self._requested, self._record)
    self._lifter.plan(n for n in self.metadata[PositionProvider] if isinstance(n, cst.Call))

  def _requested(self, node: cst.CSTNode, found: Reason | None = None) -> Reason | None:
    """Why an opt-out comment leaves the site ``node`` alone, or None;
    ``found``: why vjpify would, which a ``skip[CODE]`` comment may accept.
    The comments are read at the first site, so a file without any is
    never printed for them."""
    if self._opt_outs is None:
      self._opt_outs = opt_outs(self._layout.style.code)
    return self._opt_outs.problem(self._metadata.range_of(node).start.line, found)

  def _record(self, node: cst.CSTNode, kind: str, action: str, reason: Reason) -> None:
    start = self.get_metadata(PositionProvider, node).start
    site = Site(self.context.filename or '<string>', start.line, start.column + 1, kind, action, reason.text,
                reason.code)
    self.sites.append(site)
    if action != REWRITTEN:
      self.warn(site.format())

  def visit_Call(self, node: cst.Call) -> None:
    self._callees.add(node.func)
    verdict = transform_of(node.func, self._metadata.qualified_names)
    if verdict is None:
      return
    requested = self._requested(node)
    if requested:
      decision = Decision(verdict.transform, requested)
    else:
      decision = decide(node, verdict, self._metadata, self._module_classes, self._settings)
      accepted = decision.problem and self._requested(node, decision.problem)
      if accepted:
        decision = Decision(verdict.transform, accepted)
    spelling = None
    if not decision.problem:
      scope = self._metadata.scope_of(node)
      quote = self._string_quote(node) if decision.checks_kwargs else "'"
      spelling = self._planner.spelling(node, decision, scope, self._metadata.qualified_names, quote)
      self._layout.plan_shifts(node, spelling)
      self._planner.release_grad_import(node.func, scope)
    self._decisions[node] = decision, spelling

  def _string_quote(self, call: cst.Call) -> str:
    preferred = self._layout.style.quote
    return string_quote(enclosing_fstrings(call, self._metadata.parent_of), preferred) or preferred

  def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
    decision, spelling = self._decisions.get(original_node, (None, None))
    if decision is None:
      return self._lifter.leave_call(original_node, updated_node)
    reason = decision.reason(self._module.code_for_node(original_node.func))
    if spelling is None:
      self._record(original_node, decision.transform, SKIPPED, reason)
      return updated_node
    self._record(original_node, decision.transform, REWRITTEN, reason)
    return self._layout.laid_out(original_node, functools.partial(lowered_call, updated_node, spelling))

  def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
    return self._lifter.leave_name(original_node, updated_node)

  def leave_Lambda(self, original_node: cst.Lambda, updated_node: cst.Lambda) -> cst.Lambda:
    return self._lifter.leave_function(original_node, updated_node)

  def leave_FunctionDef(self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef) -> cst.FunctionDef:
    return self._lifter.leave_function(original_node, updated_node)

  def leave_SimpleStatementLine(self, original_node, updated_node):
    return self._lifter.leave_statement(original_node, updated_node)

  def leave_ParenthesizedWhitespace(self, original_node, updated_node):
    return self._layout.shifted(original_node, updated_node)

  def leave_EmptyLine(self, original_node, updated_node):
    return self._layout.shifted(original_node, updated_node)

  def _check_reference(self, node: cst.Name | cst.Attribute) -> None:
    if node in self._callees:
      return
    verdict = transform_of(node, self._metadata.qualified_names)
    if verdict is None or not is_reference(node, self._metadata.parent_of):
      return
    spelled = self._module.code_for_node(node)
    found = reference_reason(spelled)
    requested = self._requested(node, found)
    self._record(node, 'reference', SKIPPED, Reason(requested.code, f'{spelled} {requested.text}') if requested
                 else found)

  def visit_Name(self, node: cst.Name) -> None:
    self._check_reference(node)

  def visit_Attribute(self, node: cst.Attribute) -> None:
    self._check_reference(node)

  def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
    return False

  def visit_Import(self, node: cst.Import) -> bool:
    return False
