"""Fitting each replacement into the file's layout.

Two things move when a call is rewritten. Its first line grows (the helper
and ``nn.vjp`` go in front of the arguments), so the continuation lines that
lined up with text on it move right by as much as that text did. And the
new keywords may push a line past the file's line length: where the layout
leaves room, they go on a line of their own, and a lone one-line call
breaks after its opening bracket.

All of it follows the file's :class:`~vjpify.transformer.rewrite.style.FileStyle`
and its original positions, whether the pass runs on the whole file or on
a cut-down copy.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import libcst as cst
from libcst.metadata import CodeRange

from vjpify.transformer.find.arguments import fn_argument
from vjpify.transformer.find.metadata import Metadata
from vjpify.transformer.find.sites import enclosing_fstrings
from vjpify.transformer.find.targets import VJP_KEYWORDS
from vjpify.transformer.rewrite.nodes import Spelling, new_keyword, separator_of
from vjpify.transformer.rewrite.style import FileStyle


def hanging_indent(line: str, block_indent: str, in_header: bool) -> str:
  """The indentation for arguments moved to a line of their own, below the
  ``line`` the call is on: one step in (four columns, or a tab), two in a
  statement header whose body would otherwise start at the same column."""
  leading = line[:len(line) - len(line.lstrip())]
  step = '\t' if '\t' in leading else '    '
  if in_header and block_indent.expandtabs(4) == step.expandtabs(4):
    step *= 2
  return leading + step


def keywords_line_width(lowered: cst.Call, code_for: Callable[[cst.CSTNode], str], indent: int, rest: int) -> int:
  """How long the line that ends with the new keywords is, when they are on
  a continuation line: ``indent`` columns of block indentation before it,
  and ``rest`` characters after the call if the call ends on it; 0 when
  they are on the call's first line."""
  lines = code_for(lowered).splitlines()
  marker = code_for(new_keyword(*VJP_KEYWORDS[-1]))
  # The outermost call's keywords come after any nested site's.
  index = max(i for i, line in enumerate(lines) if marker in line)
  if index == 0:
    return 0
  return indent + len(lines[index]) + (rest if index == len(lines) - 1 else 0)


def hugs_arguments(call: cst.Call) -> bool:
  """Whether the arguments start on a line of their own and share lines
  (``f(\\n    a, b, c\\n)``), so that new keywords could go on a line of their
  own at the arguments' indentation."""
  return (isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace)
          and not isinstance(separator_of(call.args, call.whitespace_before_args).whitespace_after,
                             cst.ParenthesizedWhitespace))


def shifted(node: cst.ParenthesizedWhitespace | cst.EmptyLine, columns: int) -> cst.CSTNode:
  """``node``, a line break or a comment line, with the next line's text
  moved ``columns`` further right."""
  if isinstance(node, cst.EmptyLine):
    return node.with_changes(whitespace=cst.SimpleWhitespace(node.whitespace.value + ' ' * columns))
  return node.with_changes(last_line=cst.SimpleWhitespace(node.last_line.value + ' ' * columns))


def continuation_lines(call: cst.Call, range_of: Callable[[cst.CSTNode], CodeRange | None],
                       ) -> list[tuple[cst.CSTNode, int]]:
  """The line breaks and comment lines in ``call``'s arguments that line up
  at or right of its first argument, when that argument is on the line of
  the opening bracket, each with the column it lines up at; ``range_of``
  gives source positions."""
  if not call.args or isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
    return []
  first = range_of(call.args[0])
  if first is None:
    return []
  found: list[tuple[cst.CSTNode, int]] = []

  def aligned_column(node: cst.CSTNode | None, end: bool) -> int | None:
    where = range_of(node) if node is not None else None
    if where is None:
      return None
    column = (where.end if end else where.start).column
    return column if column >= first.start.column else None

  class _Collect(cst.CSTVisitor):

    def visit_FormattedString(self, node: cst.FormattedString) -> bool:
      return False

    def visit_ParenthesizedWhitespace(self, node: cst.ParenthesizedWhitespace) -> None:
      # The break ends where the next line's text starts.
      if (column := aligned_column(node, end=True)) is not None:
        found.append((node, column))

    def visit_EmptyLine(self, node: cst.EmptyLine) -> None:
      if (column := aligned_column(node.comment, end=False)) is not None:
        found.append((node, column))

  for arg in call.args:
    arg.visit(_Collect())
  return found


def wrapped_fn_shift(column: int, fn: CodeRange, first_line: int, compile_helper: str) -> int:
  """How much further right the text at ``column`` of the call's first line
  moves once ``fn``, whose source range is given, is wrapped in
  ``compile_helper(...)``: nothing before it or at its start, the helper's
  name and bracket inside it, and the closing bracket too after it."""
  if fn.start.line != first_line or column <= fn.start.column:
    return 0
  inside = fn.end.line != first_line or column < fn.end.column
  return len(compile_helper) + (1 if inside else 2)


class Layout:
  """The layout decisions for one file: ``style`` is the file's, ``indent``
  the indentation of its blocks, ``site_lines`` how many sites start on
  each line."""

  def __init__(self, style: FileStyle, indent: str, metadata: Metadata, site_lines: collections.Counter[int]):
    self.style = style
    self._indent = indent
    self._metadata = metadata
    self._site_lines = site_lines
    # Continuation lines to move right, because the text they line up with
    # on a rewritten call's first line moved; summed over nested sites.
    self._shifts: collections.Counter[cst.CSTNode] = collections.Counter()

  def _in_statement_header(self, node: cst.CSTNode) -> bool:
    """Whether ``node`` is in the header of an if, for, with, def (its
    decorators and defaults), ..., rather than in a simple statement."""
    parent_of = self._metadata.parent_of
    while (node := parent_of(node)) is not None:
      if isinstance(node, cst.BaseCompoundStatement):
        return True
      if isinstance(node, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        return False
    return False

  def plan_shifts(self, call: cst.Call, spelling: Spelling) -> None:
    """Moves the continuation lines that line up with text on the first line
    of ``call``, to be spelled as ``spelling`` says, by as much as that text
    moves."""
    code_for, range_of = self._metadata.code_for, self._metadata.range_of
    # How much further right the first argument now starts.
    prefix = (f'{spelling.extraction}({spelling.reduce_axes}({code_for(spelling.vjp)}, ' if spelling.reduce_axes
              else f'{spelling.extraction}({code_for(spelling.vjp)}(')
    shift = len(prefix) - len(f'{code_for(call.func)}(')
    fn = None
    if spelling.compile is not None:
      fn = range_of(call.args[fn_argument(call.args)].value)
    lines = continuation_lines(call, range_of)
    # Found only when the first argument is on the opening bracket's line.
    first_line = range_of(call.args[0]).start.line if lines else 0
    for line, column in lines:
      columns = shift + (wrapped_fn_shift(column, fn, first_line, spelling.compile) if fn else 0)
      if columns > 0:
        self._shifts[line] += columns

  def shifted(self, original: cst.CSTNode, updated: cst.CSTNode) -> cst.CSTNode:
    """``updated`` (a line break or comment line, as ``original`` was), moved
    as far right as the planned shifts say."""
    columns = self._shifts.get(original)
    return shifted(updated, columns) if columns else updated

  def laid_out(self, original: cst.Call, build: Callable[..., cst.Call]) -> cst.Call:
    """The replacement of ``original`` that ``build`` makes, with its lines
    kept within the file's line length where the layout leaves room:
    keywords after hugged arguments move to a line of their own; a lone
    one-line call breaks after its bracket."""
    lowered = build()
    limit = self.style.line_limit
    where = self._metadata.range_of(original)
    if limit is None or where is None:
      return lowered
    code_for = self._metadata.code_for
    line = self.style.lines[where.end.line - 1]
    rest = len(line) - where.end.column
    if hugs_arguments(original):
      first_line = original.whitespace_before_args
      indent = 0
      if first_line.indent:
        indent = self._metadata.range_of(original.args[0]).start.column - len(first_line.last_line.value)
      return build(own_line=True) if keywords_line_width(lowered, code_for, indent, rest) > limit else lowered
    if (where.start.line != where.end.line or self._site_lines[where.start.line] > 1
        or enclosing_fstrings(original, self._metadata.parent_of)
        or where.start.column + len(code_for(lowered)) + rest <= limit):
      return lowered
    hang = hanging_indent(line, self._indent, self._in_statement_header(original))
    lowered = build(hang=hang)
    return build(hang=hang, own_line=True) if keywords_line_width(lowered, code_for, 0, rest) > limit else lowered
