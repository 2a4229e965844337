"""The file's own style, read once from its original text: the line length
it keeps to and the quote character most of its strings use.

The pass may run on a cut-down copy of the file (``find.reduction``); the
style always comes from the whole original, so that a rewrite looks the
same either way. Each part is worked out when a rewrite first needs it,
and only once.

The quote is counted over the one-line string literals of the file, as
LibCST's ``SimpleString`` nodes would give them (f-strings themselves are
not counted, the literals inside their fields are), from Python's own
tokenizer rather than a second parse.
"""

from __future__ import annotations

import functools
import io
import tokenize
from collections.abc import Callable

_PREFIX_LETTERS = frozenset('rRbBuUfF')
_TRIPLE_QUOTES = ('"""', "'''")


def line_limit(code: str) -> int | None:
  """The line length the file keeps to: the smallest usual limit that 99% of
  its lines fit in, or None when it keeps to none."""
  lengths = [len(line) for line in code.splitlines() if line.strip()]
  for limit in (80, 88, 100, 120):
    if sum(length <= limit for length in lengths) >= 0.99 * len(lengths):
      return limit
  return None


def _count_literal(literal: str, counts: dict[str, int]) -> None:
  """Counts the quote of ``literal`` (a whole string literal, prefix and
  all), or of the literals in its fields when it is an f-string."""
  start = 0
  while literal[start] in _PREFIX_LETTERS:
    start += 1
  prefix, rest = literal[:start], literal[start:]
  quote = rest[:3] if rest[:3] in _TRIPLE_QUOTES else rest[0]
  if 'f' in prefix.lower():
    # Before Python 3.12 the tokenizer gives an f-string as one token.
    _count_fstring(rest[len(quote):-len(quote)], counts)
  elif len(quote) == 1:
    counts[quote] += 1


def _count_fstring(body: str, counts: dict[str, int]) -> None:
  """Counts the literals in the replacement fields of an f-string's body."""
  index = 0
  while index < len(body):
    if body.startswith('{{', index):
      index += 2
    elif body[index] == '{':
      index = _count_field(body, index + 1, counts)
    else:
      index += 1


def _count_field(body: str, index: int, counts: dict[str, int]) -> int:
  """Counts the literals in the field that starts at ``index``; returns
  where it ends. Before Python 3.12 a field holds no backslash and no
  quote of the f-string's own, and a lambda or ``:=`` only in brackets, so
  a quote starts a literal and a ``:`` outside brackets a format spec."""
  depth = 0
  while index < len(body):
    char = body[index]
    if char in '\'"':
      index = _count_nested(body, index, counts)
      continue
    if char in '([{':
      depth += 1
    elif char in ')]}':
      if depth == 0:
        return index + 1
      depth -= 1
    elif char == ':' and depth == 0:
      return _count_format_spec(body, index + 1, counts)
    index += 1
  return index


def _count_format_spec(body: str, index: int, counts: dict[str, int]) -> int:
  while index < len(body):
    if body[index] == '{':
      index = _count_field(body, index + 1, counts)
    elif body[index] == '}':
      return index + 1
    else:
      index += 1
  return index


def _count_nested(body: str, index: int, counts: dict[str, int]) -> int:
  """Counts the literal whose opening quote is at ``index`` inside a field;
  returns where it ends."""
  start = index
  while start > 0 and body[start - 1] in _PREFIX_LETTERS:
    start -= 1
  quote = body[index:index + 3] if body[index:index + 3] in _TRIPLE_QUOTES else body[index]
  end = body.find(quote, index + len(quote))
  end = len(body) if end < 0 else end + len(quote)
  _count_literal(body[start:end], counts)
  return end


def quote_counts(code: str) -> dict[str, int]:
  """How many one-line string literals in ``code`` use each quote character."""
  counts = {"'": 0, '"': 0}
  # Lines end where LibCST ends them: at a CR, an LF or both.
  tokens = tokenize.generate_tokens(io.StringIO(code, newline='').readline)
  try:
    for token in tokens:
      if token.type == tokenize.STRING:
        _count_literal(token.string, counts)
  except (tokenize.TokenError, SyntaxError):
    pass  # LibCST parsed the file, so this is near its end: what was read decides.
  return counts


def preferred_quote(code: str) -> str:
  """The quote character most of the one-line string literals in ``code``
  use; ``'`` on a tie."""
  counts = quote_counts(code)
  return '"' if counts['"'] > counts["'"] else "'"


class FileStyle:
  """The style of one file, each part worked out once, when first needed."""

  def __init__(self, read: Callable[[], str]):
    """``read`` gives the file's original text; it is called at most once."""
    self._read = read

  @classmethod
  def of(cls, code: str) -> FileStyle:
    """The style of the file whose original text is ``code``."""
    return cls(lambda: code)

  @functools.cached_property
  def code(self) -> str:
    return self._read()

  @functools.cached_property
  def lines(self) -> list[str]:
    return self.code.splitlines()

  @functools.cached_property
  def line_limit(self) -> int | None:
    return line_limit(self.code)

  @functools.cached_property
  def quote(self) -> str:
    return preferred_quote(self.code)
