"""The LibCST codemod command: wires metadata, site checks, node building and
import bookkeeping together; the decisions live in the modules it calls.

Usable with LibCST's own runner::

    python -m libcst.tool codemod -x vjpify.transformer.rewrite.command.LowerGradToVjp src/

(add ``--no-jit`` there to leave ``fn`` unwrapped).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
from collections.abc import Callable

import libcst as cst
from libcst.codemod import Codemod, CodemodContext, VisitorBasedCodemodCommand
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import ParentNodeProvider, PositionProvider, QualifiedNameProvider, ScopeProvider

from vjpify.transformer.rewrite.nodes import (
    continuation_lines, fn_argument, hanging_indent, hugs_arguments, keywords_line_width, line_limit, lowered_call,
    preferred_quote, shifted, wrapped_fn_shift)
from vjpify.transformer.diagnostics import REWRITTEN, SKIPPED, Site
from vjpify.transformer.rewrite.imports import ImportPlanner, OrderedAddImportsVisitor
from vjpify.transformer.find.module_classes import ModuleClasses, module_classes
from vjpify.transformer.find.sites import (
    Verdict, enclosing_fstrings, keeps_reduce_axes, site_problem, string_quote, transform_of)
from vjpify.transformer.find.targets import COMPILE_HELPER, EXTRACTION_HELPER, KWARGS_HELPER, REDUCE_AXES_HELPER
from vjpify.transformer.settings import Settings


@dataclasses.dataclass(frozen=True)
class _Plan:
  """What one site becomes; ``problem`` set when it stays as it is."""

  verdict: Verdict
  problem: str | None = None
  vjp_func: cst.BaseExpression | None = None
  helper: str = ''
  kwargs_helper: str = KWARGS_HELPER
  quote: str = "'"
  # Set where reduce_axes is kept: the helper that reduces over its axes.
  reduce_helper: str | None = None
  # Set where fn is wrapped: the helper that compiles it.
  compile_helper: str | None = None


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
    # LibCST's runner passes what these parse as keywords to __init__.
    arg_parser.add_argument(
        '--no-jit', dest='settings', action='store_const', const=Settings(jit=False), default=Settings(),
        help="leave fn as it is rather than wrap it in vjpify.runtime's cached jax.jit")

  def __init__(self, context: CodemodContext, settings: Settings = Settings(),
               original_code: str | None = None) -> None:
    """``settings``: the run's settings (``jit``: wrap each site's ``fn`` in
    the runtime's ``compiled``). ``original_code``: the whole file, when the
    module transformed is a cut-down copy of it (see
    ``vjpify.transformer.find.reduction``); layout follows the whole file."""
    Codemod.__init__(self, context)
    cst.CSTTransformer.__init__(self)
    self._settings = settings
    self._original_code = original_code
    self.sites: list[Site] = []
    self._module_classes = ModuleClasses(frozenset(), {})
    self._planner: ImportPlanner | None = None
    self._module: cst.Module | None = None
    self._callees: set[cst.CSTNode] = set()
    self._quote: str | None = None
    # The original lines and the line length the file keeps to, read when
    # a call's layout first depends on them.
    self._lines: list[str] | None = None
    self._line_limit: int | None = None
    self._site_lines: collections.Counter[int] = collections.Counter()
    self._plans: dict[cst.Call, _Plan] = {}
    # Continuation lines to move right, because the text they line up with
    # on a rewritten call's first line moved; summed over nested sites.
    self._shifts: collections.Counter[cst.CSTNode] = collections.Counter()

  def visit_Module(self, node: cst.Module) -> None:
    self._module = node
    # One walk over the nodes the metadata already holds, rather than
    # visiting the tree again: a visit costs more than the rest of the pass.
    classes = []
    for each, where in self.metadata[PositionProvider].items():
      if isinstance(each, cst.ClassDef):
        classes.append((where.start.line, where.start.column, each))
      elif isinstance(each, cst.Call) and transform_of(each.func, self._qualified_names) is not None:
        # How many grad calls start on each line; a call that shares its
        # line keeps its layout, since the others move the line too.
        self._site_lines[where.start.line] += 1
    # In source order, as a visit would find them.
    classes.sort(key=lambda found: found[:2])
    self._module_classes = module_classes([cls for *_, cls in classes], self._qualified_names, self._scope_of)
    scopes = {self._scope_of(n) for n in self.metadata[ScopeProvider]}
    scopes.discard(None)
    self._planner = ImportPlanner(self.context, self._scope_of(node), scopes)

  def _in_statement_header(self, node: cst.CSTNode) -> bool:
    """Whether ``node`` is in the header of an if, for, with, def (its
    decorators and defaults), ..., rather than in a simple statement."""
    while (node := self._parent_of(node)) is not None:
      if isinstance(node, cst.BaseCompoundStatement):
        return True
      if isinstance(node, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        return False
    return False

  def _instantiate_and_run(self, transform, tree: cst.Module) -> cst.Module:
    # LibCST merges a new name into an existing import at the front; put it
    # where a careful person would.
    if transform is AddImportsVisitor:
      transform = OrderedAddImportsVisitor
    return super()._instantiate_and_run(transform, tree)

  def _qualified_names(self, node: cst.CSTNode):
    return self.get_metadata(QualifiedNameProvider, node, ())

  def _scope_of(self, node: cst.CSTNode):
    return self.get_metadata(ScopeProvider, node, None)

  def _parent_of(self, node: cst.CSTNode):
    return self.get_metadata(ParentNodeProvider, node, None)

  def _range_of(self, node: cst.CSTNode):
    return self.get_metadata(PositionProvider, node, None)

  def _record(self, node: cst.CSTNode, kind: str, action: str, reason: str) -> None:
    start = self.get_metadata(PositionProvider, node).start
    site = Site(self.context.filename or '<string>', start.line, start.column + 1, kind, action, reason)
    self.sites.append(site)
    if action != REWRITTEN:
      self.warn(site.format())

  def _string_quote(self, call: cst.Call) -> str:
    if self._quote is None:
      whole = self._module if self._original_code is None else cst.parse_module(self._original_code)
      self._quote = preferred_quote(whole)
    return string_quote(enclosing_fstrings(call, self._parent_of), self._quote) or self._quote

  def _plan(self, node: cst.Call, verdict: Verdict) -> _Plan:
    code_for = self._module.code_for_node
    problem = site_problem(node, verdict, self._parent_of, self._module_classes, code_for)
    if problem:
      return _Plan(verdict, problem)
    planner = self._planner
    site_scope = self._scope_of(node)
    vjp_func = planner.vjp_function(node.func, site_scope, self._qualified_names)
    helper = planner.runtime_helper(EXTRACTION_HELPER[verdict.transform], site_scope)
    plan = _Plan(verdict, None, vjp_func, helper)
    if any(a.star == '**' for a in node.args):
      plan = dataclasses.replace(
          plan, kwargs_helper=planner.runtime_helper(KWARGS_HELPER, site_scope), quote=self._string_quote(node))
    if keeps_reduce_axes(node):
      plan = dataclasses.replace(plan, reduce_helper=planner.runtime_helper(REDUCE_AXES_HELPER, site_scope))
    elif self._settings.jit and fn_argument(node.args) is not None:
      # Under vmap, where reduce_axes matters, compiled would not compile.
      plan = dataclasses.replace(plan, compile_helper=planner.runtime_helper(COMPILE_HELPER, site_scope))
    self._plan_shifts(node, plan)
    planner.release_grad_import(node.func, site_scope)
    return plan

  def _plan_shifts(self, node: cst.Call, plan: _Plan) -> None:
    """Moves the continuation lines that line up with text on the call's
    first line by as much as that text moves."""
    code_for = self._module.code_for_node
    # How much further right the first argument now starts.
    prefix = (f'{plan.helper}({plan.reduce_helper}({code_for(plan.vjp_func)}, ' if plan.reduce_helper
              else f'{plan.helper}({code_for(plan.vjp_func)}(')
    shift = len(prefix) - len(f'{code_for(node.func)}(')
    fn = None
    if plan.compile_helper is not None:
      fn = self._range_of(node.args[fn_argument(node.args)].value)
    lines = continuation_lines(node, self._range_of)
    # Found only when the first argument is on the opening bracket's line.
    first_line = self._range_of(node.args[0]).start.line if lines else 0
    for line, column in lines:
      columns = shift + (wrapped_fn_shift(column, fn, first_line, plan.compile_helper) if fn else 0)
      if columns > 0:
        self._shifts[line] += columns

  def visit_Call(self, node: cst.Call) -> None:
    self._callees.add(node.func)
    verdict = transform_of(node.func, self._qualified_names)
    if verdict is not None:
      self._plans[node] = self._plan(node, verdict)

  def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
    plan = self._plans.get(original_node)
    if plan is None:
      return updated_node
    transform = plan.verdict.transform
    spelled = f'{self._module.code_for_node(original_node.func)}(...)'
    if plan.problem:
      self._record(original_node, transform, SKIPPED, f'{spelled} {plan.problem}')
      return updated_node
    reason = f'{spelled} rewritten to explicit nn.vjp'
    if plan.reduce_helper:
      reason += (f' through {REDUCE_AXES_HELPER}, which psums the gradients of primals broadcast over '
                 'the reduce_axes as flax documents (recent flax raises NotImplementedError instead)')
    self._record(original_node, transform, REWRITTEN, reason)
    build = functools.partial(
        lowered_call, updated_node, transform, plan.vjp_func, plan.helper, plan.kwargs_helper, plan.quote,
        reduce_helper=plan.reduce_helper, compile_helper=plan.compile_helper)
    return self._laid_out(original_node, build)

  def _laid_out(self, original: cst.Call, build: Callable[..., cst.Call]) -> cst.Call:
    """The replacement, with its lines kept within the file's line length
    where the layout leaves room: keywords after hugged arguments move to a
    line of their own; a lone one-line call breaks after its bracket."""
    lowered = build()
    if self._lines is None:
      code = self._module.code if self._original_code is None else self._original_code
      self._lines = code.splitlines()
      self._line_limit = line_limit(code)
    limit = self._line_limit
    where = self._range_of(original)
    if limit is None or where is None:
      return lowered
    code_for = self._module.code_for_node
    line = self._lines[where.end.line - 1]
    rest = len(line) - where.end.column
    if hugs_arguments(original):
      first_line = original.whitespace_before_args
      indent = 0
      if first_line.indent:
        indent = self._range_of(original.args[0]).start.column - len(first_line.last_line.value)
      return build(own_line=True) if keywords_line_width(lowered, code_for, indent, rest) > limit else lowered
    if (where.start.line != where.end.line or self._site_lines[where.start.line] > 1
        or enclosing_fstrings(original, self._parent_of)
        or where.start.column + len(code_for(lowered)) + rest <= limit):
      return lowered
    hang = hanging_indent(line, self._module.default_indent, self._in_statement_header(original))
    lowered = build(hang=hang)
    return build(hang=hang, own_line=True) if keywords_line_width(lowered, code_for, 0, rest) > limit else lowered

  def leave_ParenthesizedWhitespace(self, original_node, updated_node):
    columns = self._shifts.get(original_node)
    return shifted(updated_node, columns) if columns else updated_node

  def leave_EmptyLine(self, original_node, updated_node):
    columns = self._shifts.get(original_node)
    return shifted(updated_node, columns) if columns else updated_node

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
