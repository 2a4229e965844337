"""The comments with which users opt code out of the pass.

``# vjpify: skip`` on the line where a call starts (the line its diagnostic
names) leaves that call as it is; ``# vjpify: skip-file`` among the
comments that open a file (before its first statement, blank lines and a
shebang or coding line included) leaves every call in the file as it is.
Each call so left is reported as skipped at the user's request, so that a
report still lists every site, and ``--strict`` does not count it.

Only real comments count: the text in a string does not. Files without
``vjpify:`` in their text are not tokenized at all.
"""

from __future__ import annotations

import dataclasses
import io
import re
import tokenize

from vjpify.transformer.diagnostics import REQUESTED

SKIP = '# vjpify: skip'
SKIP_FILE = '# vjpify: skip-file'

_DIRECTIVE = re.compile(r'#\s*vjpify:\s*(skip-file|skip)(?![\w-])')
# Tokens that may come before a file's first statement.
_HEADER = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENCODING})


@dataclasses.dataclass(frozen=True)
class OptOuts:
  """``file_line``: the line of a ``# vjpify: skip-file`` comment that
  opts the whole file out (None: none does); ``lines``: the lines holding a
  ``# vjpify: skip`` comment."""

  file_line: int | None = None
  lines: frozenset[int] = frozenset()

  def problem(self, line: int) -> str | None:
    """Why the site starting on ``line`` is left alone at the user's
    request, to follow its callee in a diagnostic; None when it is not."""
    if self.file_line is not None:
      return (f"is in a file marked '{SKIP_FILE}' (line {self.file_line}); {REQUESTED}; "
              'remove the comment to have the file rewritten')
    if line in self.lines:
      return f"is marked '{SKIP}'; {REQUESTED}; remove the comment to have it rewritten"
    return None


NONE = OptOuts()


def opt_outs(code: str) -> OptOuts:
  """The opt-out comments of ``code``."""
  if 'vjpify:' not in code:
    return NONE
  file_line = None
  lines = set()
  in_header = True
  try:
    for token in tokenize.generate_tokens(io.StringIO(code, newline='').readline):
      if token.type not in _HEADER:
        in_header = False
      if token.type != tokenize.COMMENT:
        continue
      found = _DIRECTIVE.search(token.string)
      if found is None:
        continue
      if found.group(1) == 'skip':
        lines.add(token.start[0])
      elif in_header and file_line is None:
        file_line = token.start[0]
  except (tokenize.TokenError, SyntaxError):
    pass  # The pass parsed the file, so this is near its end: what was read decides.
  return OptOuts(file_line, frozenset(lines))
