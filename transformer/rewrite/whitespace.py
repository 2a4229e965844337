"""Moving comments and line breaks when items are added to, or removed from,
a comma-separated list (call arguments, imported names).

The rule everywhere: a comment on an item's line stays with that item, and
comment lines before a closing bracket stay before it.
"""

from __future__ import annotations

import libcst as cst


def without_comments(whitespace: cst.BaseParenthesizableWhitespace) -> cst.BaseParenthesizableWhitespace:
  """The same line break and indentation, without the comments it carries."""
  if isinstance(whitespace, cst.ParenthesizedWhitespace):
    return whitespace.with_changes(
        first_line=cst.TrailingWhitespace(newline=whitespace.first_line.newline),
        empty_lines=(),
    )
  return whitespace


def split_after_last(
    trailing: cst.BaseParenthesizableWhitespace,
    separator: cst.BaseParenthesizableWhitespace,
) -> tuple[cst.BaseParenthesizableWhitespace, cst.BaseParenthesizableWhitespace]:
  """Whitespace for after the old last item and after the new last item,
  when items are appended where ``trailing`` led to the closing bracket and
  items are separated by ``separator``."""
  if isinstance(trailing, cst.ParenthesizedWhitespace) and isinstance(separator, cst.ParenthesizedWhitespace):
    return (separator.with_changes(first_line=trailing.first_line),
            trailing.with_changes(first_line=cst.TrailingWhitespace(newline=trailing.first_line.newline)))
  return separator, trailing


def merge(before: cst.BaseParenthesizableWhitespace, after: cst.BaseParenthesizableWhitespace) -> cst.BaseParenthesizableWhitespace:
  """The whitespace left when the item between ``before`` and ``after`` is
  deleted: ``before``'s comments, ``after``'s comment lines and indentation;
  a comment on the deleted item's line goes with it."""
  if isinstance(after, cst.ParenthesizedWhitespace):
    if isinstance(before, cst.ParenthesizedWhitespace):
      return after.with_changes(first_line=before.first_line, empty_lines=(*before.empty_lines, *after.empty_lines))
    return after.with_changes(first_line=cst.TrailingWhitespace(newline=after.first_line.newline))
  return before if isinstance(before, cst.ParenthesizedWhitespace) else after


def without_comment_block(whitespace: cst.BaseParenthesizableWhitespace) -> cst.BaseParenthesizableWhitespace:
  """``whitespace`` without the comment lines that end it, which describe the
  item that follows, for when that item is deleted."""
  if not isinstance(whitespace, cst.ParenthesizedWhitespace):
    return whitespace
  lines = list(whitespace.empty_lines)
  while lines and lines[-1].comment is not None:
    lines.pop()
  return whitespace.with_changes(empty_lines=lines)
