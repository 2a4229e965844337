"""Building the replacement for one nn.grad / nn.value_and_grad call.

``nn.grad(fn, mdl, *primals, **options)`` becomes::

    grad_from_vjp(nn.vjp(fn, mdl, *primals, **options,
                         vjp_variables=False, multi_scope=True))

The user's argument nodes are reused as they are, so expressions, comments and
layout survive; only an empty ``reduce_axes`` is dropped and a ``**mapping``
is routed through the runtime's keyword check. The new keywords follow the
layout of the call: on one line, or one per line like the arguments before.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from vjpify.transformer.targets import VJP_KEYWORDS


def _without_comments(whitespace: cst.BaseParenthesizableWhitespace) -> cst.BaseParenthesizableWhitespace:
  if isinstance(whitespace, cst.ParenthesizedWhitespace):
    return whitespace.with_changes(
        first_line=cst.TrailingWhitespace(newline=whitespace.first_line.newline),
        empty_lines=(),
    )
  return whitespace


def _separator(call: cst.Call) -> cst.Comma:
  """The comma-and-whitespace that separates arguments in this call."""
  args = call.args
  if len(args) >= 2 and isinstance(args[-2].comma, cst.Comma):
    comma = args[-2].comma
    return comma.with_changes(whitespace_after=_without_comments(comma.whitespace_after))
  if isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
    return cst.Comma(whitespace_after=_without_comments(call.whitespace_before_args))
  return cst.Comma(whitespace_after=cst.SimpleWhitespace(' '))


def _keyword(name: str, value: str) -> cst.Arg:
  return cst.Arg(
      keyword=cst.Name(name),
      value=cst.Name(value),
      equal=cst.AssignEqual(
          whitespace_before=cst.SimpleWhitespace(''),
          whitespace_after=cst.SimpleWhitespace(''),
      ),
  )


def append_keywords(call: cst.Call, args: Sequence[cst.Arg], extra: Sequence[cst.Arg]) -> tuple[cst.Arg, ...]:
  """``args`` followed by ``extra``, laid out the way ``call`` lays out its own."""
  if not args:
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(' '))
    return tuple(arg.with_changes(comma=comma) for arg in extra[:-1]) + (extra[-1],)
  separator = _separator(call)
  *head, last = args
  if isinstance(last.comma, cst.Comma):
    # A trailing comma: keep any comment after it on the last user argument,
    # but continue at the arguments' indentation rather than the bracket's.
    after = last.comma.whitespace_after
    if isinstance(after, cst.ParenthesizedWhitespace) and isinstance(separator.whitespace_after, cst.ParenthesizedWhitespace):
      after = separator.whitespace_after.with_changes(first_line=after.first_line, empty_lines=after.empty_lines)
      new_last = last.with_changes(comma=last.comma.with_changes(whitespace_after=after))
    else:
      new_last = last.with_changes(comma=separator)
    closing_comma = last.comma.with_changes(whitespace_after=_without_comments(last.comma.whitespace_after))
    closing_space = last.whitespace_after_arg
    new_last = new_last.with_changes(whitespace_after_arg=cst.SimpleWhitespace(''))
  else:
    new_last = last.with_changes(comma=separator, whitespace_after_arg=cst.SimpleWhitespace(''))
    closing_comma = cst.MaybeSentinel.DEFAULT
    closing_space = last.whitespace_after_arg
  middle = tuple(arg.with_changes(comma=separator) for arg in extra[:-1])
  final = extra[-1].with_changes(comma=closing_comma, whitespace_after_arg=closing_space)
  return (*head, new_last, *middle, final)


def _drop_empty_reduce_axes(args: Sequence[cst.Arg]) -> list[cst.Arg]:
  kept = [a for a in args if not (a.keyword is not None and a.keyword.value == 'reduce_axes')]
  if len(kept) < len(args) and kept and args[-1].keyword is not None and args[-1].keyword.value == 'reduce_axes':
    # The dropped argument was last: the new last keeps its layout.
    kept[-1] = kept[-1].with_changes(comma=args[-1].comma, whitespace_after_arg=args[-1].whitespace_after_arg)
  return kept


def lowered_call(
    call: cst.Call,
    transform: str,
    vjp_func: cst.BaseExpression,
    extraction_helper: str,
    kwargs_helper: str,
) -> cst.Call:
  """The expression that replaces ``call``; evaluation order is unchanged."""
  args = _drop_empty_reduce_axes(call.args)
  args = [
      a.with_changes(value=cst.Call(
          func=cst.Name(kwargs_helper),
          args=(cst.Arg(cst.SimpleString(repr(transform)), comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(' '))), cst.Arg(a.value)),
      )) if a.star == '**' else a
      for a in args
  ]
  extra = [_keyword(name, value) for name, value in VJP_KEYWORDS]
  vjp_call = call.with_changes(
      func=vjp_func,
      args=append_keywords(call, args, extra),
      lpar=(),
      rpar=(),
  )
  return cst.Call(
      func=cst.Name(extraction_helper),
      args=(cst.Arg(vjp_call),),
      lpar=call.lpar,
      rpar=call.rpar,
  )
