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

import dataclasses
from collections.abc import Sequence

import libcst as cst

from vjpify.transformer.find.arguments import fn_argument
from vjpify.transformer.find.targets import KWARGS_HELPER, VJP_KEYWORDS
from vjpify.transformer.rewrite.whitespace import merge, split_after_last, without_comment_block, without_comments

_NO_SPACE = cst.SimpleWhitespace('')


def _trailing(arg: cst.Arg) -> cst.BaseParenthesizableWhitespace:
  """What follows ``arg`` up to the next argument or the closing bracket."""
  return arg.comma.whitespace_after if isinstance(arg.comma, cst.Comma) else arg.whitespace_after_arg


@dataclasses.dataclass(frozen=True)
class Spelling:
  """How a replacement names what it calls, as the import planner chose:
  ``vjp`` is flax's vjp; the rest are names of runtime helpers, ``quote``
  the quote character of the string the keyword check takes. Without
  ``reduce_axes`` an empty ``reduce_axes`` is dropped; without ``compile``
  ``fn`` is left as it is."""

  transform: str
  vjp: cst.BaseExpression
  extraction: str
  kwargs_check: str = KWARGS_HELPER
  quote: str = "'"
  reduce_axes: str | None = None
  compile: str | None = None


def separator_of(args: Sequence[cst.Arg], before_args: cst.BaseParenthesizableWhitespace) -> cst.Comma:
  """The comma-and-whitespace that separates arguments in this call."""
  if len(args) >= 2 and isinstance(args[-2].comma, cst.Comma):
    comma = args[-2].comma
    return comma.with_changes(whitespace_after=without_comments(comma.whitespace_after))
  if isinstance(before_args, cst.ParenthesizedWhitespace):
    return cst.Comma(whitespace_after=without_comments(before_args))
  return cst.Comma(whitespace_after=cst.SimpleWhitespace(' '))


def new_keyword(name: str, value: str) -> cst.Arg:
  """``name=value``, spaced as keywords are: no space around the ``=``."""
  return cst.Arg(
      keyword=cst.Name(name),
      value=cst.Name(value),
      equal=cst.AssignEqual(whitespace_before=_NO_SPACE, whitespace_after=_NO_SPACE),
  )


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
  separator = separator or separator_of(args, before_args)
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


def _compiled_fn(args: list[cst.Arg], compile_helper: str) -> list[cst.Arg]:
  index = fn_argument(args)
  if index is None:
    return args
  fn = args[index]
  args[index] = fn.with_changes(value=cst.Call(func=cst.Name(compile_helper), args=(cst.Arg(fn.value),)))
  return args


def lowered_call(call: cst.Call, spelling: Spelling, own_line: bool = False, hang: str | None = None) -> cst.Call:
  """The expression that replaces ``call``, named as ``spelling`` says;
  evaluation order is unchanged.

  ``own_line`` puts the new keywords on a line of their own (see
  :func:`append_keywords`); ``hang``, the indentation to move the arguments
  of a one-line call to, on a line after the opening bracket.
  """
  if spelling.reduce_axes is None:
    args, before_args = drop_reduce_axes(call.args, call.whitespace_before_args)
  else:
    args, before_args = list(call.args), call.whitespace_before_args
  if spelling.compile is not None:
    args = _compiled_fn(args, spelling.compile)
  if hang is not None:
    before_args = cst.ParenthesizedWhitespace(indent=False, last_line=cst.SimpleWhitespace(hang))
  args = [
      a.with_changes(value=cst.Call(
          func=cst.Name(spelling.kwargs_check),
          args=(
              cst.Arg(cst.SimpleString(f'{spelling.quote}{spelling.transform}{spelling.quote}'),
                      comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(' '))),
              cst.Arg(a.value),
          ),
      )) if a.star == '**' else a
      for a in args
  ]
  extra = [new_keyword(name, value) for name, value in VJP_KEYWORDS]
  # The layout is read before reduce_axes goes: the keywords take its place.
  separator = separator_of(call.args, call.whitespace_before_args)
  args = append_keywords(args, before_args, extra, own_line, separator)
  func = spelling.vjp
  if spelling.reduce_axes is not None:
    args, before_args = _with_vjp_first(args, before_args, separator, spelling.vjp)
    func = cst.Name(spelling.reduce_axes)
  vjp_call = call.with_changes(
      func=func,
      whitespace_before_args=before_args,
      args=args,
      lpar=(),
      rpar=(),
  )
  return cst.Call(
      func=cst.Name(spelling.extraction),
      args=(cst.Arg(vjp_call),),
      lpar=call.lpar,
      rpar=call.rpar,
  )
