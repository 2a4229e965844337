"""Building the replacement for one nn.grad / nn.value_and_grad call.

``nn.grad(fn, mdl, *primals, **options)`` becomes::

    grad_from_vjp(nn.vjp(fn, mdl, *primals, **options,
                         vjp_variables=False, multi_scope=True))

A ``reduce_axes`` other than an empty literal is kept, and the call goes
through the runtime helper that reduces the gradients over those axes::

    grad_from_vjp(vjp_with_reduce_axes(nn.vjp, fn, mdl, *primals, reduce_axes=axes,
                                       vjp_variables=False, multi_scope=True))

Unless the caller opts out, ``fn`` is wrapped in the runtime's ``compiled``,
which runs it through a cached ``jax.jit`` on eager calls::

    grad_from_vjp(nn.vjp(compiled(fn), mdl, *primals, **options,
                         vjp_variables=False, multi_scope=True))

The user's argument nodes are reused as they are, so expressions, comments and
layout survive; only an empty ``reduce_axes`` is dropped and a ``**mapping``
is routed through the runtime's keyword check. The new keywords follow the
layout of the call: on one line, or one per line like the arguments before.
Comments stay where they were: one after an argument stays on that
argument's line, comment lines before the closing bracket stay before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import libcst as cst
from libcst.metadata import CodeRange

from vjpify.transformer.find.targets import VJP_KEYWORDS
from vjpify.transformer.rewrite.whitespace import merge, split_after_last, without_comment_block, without_comments

_NO_SPACE = cst.SimpleWhitespace('')


def _trailing(arg: cst.Arg) -> cst.BaseParenthesizableWhitespace:
  """What follows ``arg`` up to the next argument or the closing bracket."""
  return arg.comma.whitespace_after if isinstance(arg.comma, cst.Comma) else arg.whitespace_after_arg


def _separator(args: Sequence[cst.Arg], before_args: cst.BaseParenthesizableWhitespace) -> cst.Comma:
  """The comma-and-whitespace that separates arguments in this call."""
  if len(args) >= 2 and isinstance(args[-2].comma, cst.Comma):
    comma = args[-2].comma
    return comma.with_changes(whitespace_after=without_comments(comma.whitespace_after))
  if isinstance(before_args, cst.ParenthesizedWhitespace):
    return cst.Comma(whitespace_after=without_comments(before_args))
  return cst.Comma(whitespace_after=cst.SimpleWhitespace(' '))


def line_limit(code: str) -> int | None:
  """The line length the file keeps to: the smallest usual limit that 99% of
  its lines fit in, or None when it keeps to none."""
  lengths = [len(line) for line in code.splitlines() if line.strip()]
  for limit in (80, 88, 100, 120):
    if sum(length <= limit for length in lengths) >= 0.99 * len(lengths):
      return limit
  return None


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
  marker = code_for(_keyword(*VJP_KEYWORDS[-1]))
  # The outermost call's keywords come after any nested site's.
  index = max(i for i, line in enumerate(lines) if marker in line)
  if index == 0:
    return 0
  return indent + len(lines[index]) + (rest if index == len(lines) - 1 else 0)


def preferred_quote(module: cst.Module) -> str:
  """The quote character most of the file's one-line strings use."""
  counts = {"'": 0, '"': 0}

  class _Count(cst.CSTVisitor):

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
      if node.quote in counts:
        counts[node.quote] += 1

  module.visit(_Count())
  return '"' if counts['"'] > counts["'"] else "'"


def _keyword(name: str, value: str) -> cst.Arg:
  return cst.Arg(
      keyword=cst.Name(name),
      value=cst.Name(value),
      equal=cst.AssignEqual(whitespace_before=_NO_SPACE, whitespace_after=_NO_SPACE),
  )


def hugs_arguments(call: cst.Call) -> bool:
  """Whether the arguments start on a line of their own and share lines
  (``f(\n    a, b, c\n)``), so that new keywords could go on a line of their
  own at the arguments' indentation."""
  return (isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace)
          and not isinstance(_separator(call.args, call.whitespace_before_args).whitespace_after,
                             cst.ParenthesizedWhitespace))


def append_keywords(args: Sequence[cst.Arg], before_args: cst.BaseParenthesizableWhitespace,
                    extra: Sequence[cst.Arg], own_line: bool = False,
                    separator: cst.Comma | None = None) -> tuple[cst.Arg, ...]:
  """``args`` followed by ``extra``, laid out the way ``args`` are.

  ``before_args`` is the whitespace after the call's opening bracket;
  ``separator`` the comma between arguments, read from ``args`` if not given.
  With ``own_line``, ``extra`` starts a new line at the first argument's
  indentation, for arguments that share lines but would grow too long.
  """
  if not args:
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(' '))
    return tuple(arg.with_changes(comma=comma) for arg in extra[:-1]) + (extra[-1],)
  separator = separator or _separator(args, before_args)
  lead = separator
  if own_line and isinstance(before_args, cst.ParenthesizedWhitespace):
    lead = separator.with_changes(whitespace_after=without_comments(before_args))
  *head, last = args
  trailing = _trailing(last)
  after_last, closing = split_after_last(trailing, lead.whitespace_after)
  if isinstance(last.comma, cst.Comma):
    new_last = last.with_changes(comma=last.comma.with_changes(whitespace_after=after_last))
    final_comma = last.comma.with_changes(whitespace_after=closing)
    final_space = _NO_SPACE
  else:
    new_last = last.with_changes(comma=lead.with_changes(whitespace_after=after_last), whitespace_after_arg=_NO_SPACE)
    final_comma = cst.MaybeSentinel.DEFAULT
    final_space = closing
  middle = tuple(arg.with_changes(comma=separator) for arg in extra[:-1])
  final = extra[-1].with_changes(comma=final_comma, whitespace_after_arg=final_space)
  return (*head, new_last, *middle, final)


def _is_reduce_axes(arg: cst.Arg) -> bool:
  return arg.keyword is not None and arg.keyword.value == 'reduce_axes'


def drop_reduce_axes(args: Sequence[cst.Arg], before_args: cst.BaseParenthesizableWhitespace,
                     ) -> tuple[list[cst.Arg], cst.BaseParenthesizableWhitespace]:
  """``args`` without ``reduce_axes``, and the new whitespace after the
  opening bracket. Comments on the dropped argument's line, and the comment
  lines right above it, go with it."""
  kept = list(args)
  for index, arg in enumerate(args):
    if not _is_reduce_axes(arg):
      continue
    del kept[index]
    after = _trailing(arg)
    if index == 0:
      # The next argument moves up to where the dropped one started.
      if isinstance(before_args, cst.ParenthesizedWhitespace):
        before_args = merge(without_comment_block(before_args), after)
    elif index < len(args) - 1 or isinstance(arg.comma, cst.Comma):
      previous = kept[index - 1]
      kept[index - 1] = previous.with_changes(comma=previous.comma.with_changes(
          whitespace_after=merge(without_comment_block(previous.comma.whitespace_after), after)))
    else:
      previous = kept[index - 1]
      kept[index - 1] = previous.with_changes(
          comma=cst.MaybeSentinel.DEFAULT,
          whitespace_after_arg=merge(without_comment_block(previous.comma.whitespace_after), after))
    break
  return kept, before_args


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


def _with_vjp_first(args: Sequence[cst.Arg], before_args: cst.BaseParenthesizableWhitespace,
                    separator: cst.Comma, vjp_func: cst.BaseExpression,
                    ) -> tuple[tuple[cst.Arg, ...], cst.BaseParenthesizableWhitespace]:
  """``args`` after ``vjp_func``, and the new whitespace after the opening
  bracket: on a line of its own when each argument is, else on the first
  argument's line; comment lines above the first argument stay above it."""
  own_lines = isinstance(before_args, cst.ParenthesizedWhitespace)
  if own_lines and isinstance(separator.whitespace_after, cst.ParenthesizedWhitespace):
    kept = without_comment_block(before_args)
    block = before_args.empty_lines[len(kept.empty_lines):]
    lead = separator.with_changes(whitespace_after=separator.whitespace_after.with_changes(empty_lines=block))
    return (cst.Arg(vjp_func, comma=lead), *args), kept
  lead = separator if own_lines else cst.Comma(whitespace_after=cst.SimpleWhitespace(' '))
  return (cst.Arg(vjp_func, comma=lead), *args), before_args


def fn_argument(args: Sequence[cst.Arg]) -> int | None:
  """The index of the argument that passes ``fn``, or None when it may come
  from an unpacked ``*sequence`` or ``**mapping``."""
  for index, arg in enumerate(args):
    if arg.keyword is not None and arg.keyword.value == 'fn':
      return index
  first = args[0] if args else None
  if first is not None and not first.star and first.keyword is None:
    return 0
  return None


def _compiled_fn(args: list[cst.Arg], compile_helper: str) -> list[cst.Arg]:
  index = fn_argument(args)
  if index is None:
    return args
  fn = args[index]
  args[index] = fn.with_changes(value=cst.Call(func=cst.Name(compile_helper), args=(cst.Arg(fn.value),)))
  return args


def lowered_call(
    call: cst.Call,
    transform: str,
    vjp_func: cst.BaseExpression,
    extraction_helper: str,
    kwargs_helper: str,
    quote: str = "'",
    own_line: bool = False,
    hang: str | None = None,
    reduce_helper: str | None = None,
    compile_helper: str | None = None,
) -> cst.Call:
  """The expression that replaces ``call``; evaluation order is unchanged.

  ``quote`` is the quote character for the string literal passed to the
  keyword check; ``own_line`` puts the new keywords on a line of their own
  (see :func:`append_keywords`); ``hang``, the indentation to move the
  arguments of a one-line call to, on a line after the opening bracket.
  With ``reduce_helper``, ``reduce_axes`` is kept and the call goes through
  that helper, which takes ``vjp_func`` as its first argument; without it,
  an empty ``reduce_axes`` is dropped. With ``compile_helper``, the argument
  that passes ``fn`` is wrapped in a call to it.
  """
  if reduce_helper is None:
    args, before_args = drop_reduce_axes(call.args, call.whitespace_before_args)
  else:
    args, before_args = list(call.args), call.whitespace_before_args
  if compile_helper is not None:
    args = _compiled_fn(args, compile_helper)
  if hang is not None:
    before_args = cst.ParenthesizedWhitespace(indent=False, last_line=cst.SimpleWhitespace(hang))
  args = [
      a.with_changes(value=cst.Call(
          func=cst.Name(kwargs_helper),
          args=(
              cst.Arg(cst.SimpleString(f'{quote}{transform}{quote}'),
                      comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(' '))),
              cst.Arg(a.value),
          ),
      )) if a.star == '**' else a
      for a in args
  ]
  extra = [_keyword(name, value) for name, value in VJP_KEYWORDS]
  # The layout is read before reduce_axes goes: the keywords take its place.
  separator = _separator(call.args, call.whitespace_before_args)
  args = append_keywords(args, before_args, extra, own_line, separator)
  func = vjp_func
  if reduce_helper is not None:
    args, before_args = _with_vjp_first(args, before_args, separator, vjp_func)
    func = cst.Name(reduce_helper)
  vjp_call = call.with_changes(
      func=func,
      whitespace_before_args=before_args,
      args=args,
      lpar=(),
      rpar=(),
  )
  return cst.Call(
      func=cst.Name(extraction_helper),
      args=(cst.Arg(vjp_call),),
      lpar=call.lpar,
      rpar=call.rpar,
  )
