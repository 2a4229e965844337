"""The comments with which users opt code out of the pass.

``# vjpify: skip`` on the line where a call starts (the line its diagnostic
names) leaves that call as it is; ``# vjpify: skip-file`` among the
comments that open a file (before its first statement, blank lines and a
shebang or coding line included) leaves every call in the file as it is.
Each call so left is reported as skipped at the user's request (``VJ901``,
``VJ902``), so that a report still lists every site, and ``--strict`` does
not count it.

``# vjpify: skip[VJ205]`` (or ``skip[VJ205,VJ212]``), as ruff's
``# noqa: CODE``, accepts only those reasons: a site on that line left
unchanged for one of them is reported as accepted (``VJ903``) rather than
as left unchanged, and one that vjpify could rewrite is still rewritten.
An entry that is not a code of a site left unchanged matches nothing;
``skip-file`` takes no codes.

Only real comments count: the text in a string does not. Files without
``vjpify:`` in their text are not tokenized at all.
"""

from __future__ import annotations

import dataclasses
import io
import re
import tokenize
from collections.abc import Mapping

from vjpify.transformer.codes import BY_CODE, REQUESTED, Reason, reason

SKIP = '# vjpify: skip'
SKIP_FILE = '# vjpify: skip-file'

_DIRECTIVE = re.compile(r'#\s*vjpify:\s*(skip-file|skip)(?:\[([^\]]*)\])?(?![\w-])')
# Tokens that may come before a file's first statement.
_HEADER = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENCODING})


@dataclasses.dataclass(frozen=True)
class OptOuts:
  """``file_line``: the line of a ``# vjpify: skip-file`` comment that
  opts the whole file out (None: none does); ``lines``: the lines holding a
  ``# vjpify: skip`` comment; ``codes``: the codes a ``# vjpify:
  skip[CODE,...]`` comment accepts, by line."""

  file_line: int | None = None
  lines: frozenset[int] = frozenset()
  codes: Mapping[int, frozenset[str]] = dataclasses.field(default_factory=dict)

  def problem(self, line: int, found: Reason | None = None) -> Reason | None:
    """Why the site starting on ``line`` is left alone at the user's
    request, to follow its callee in a diagnostic; None when it is not.
    ``found``: why vjpify itself would leave it unchanged, if it would."""
    if self.file_line is not None:
      return reason('skip-file-comment', f"is in a file marked '{SKIP_FILE}' (line {self.file_line}); "
                    f'{REQUESTED}; remove the comment to have the file rewritten')
    if line in self.lines:
      return reason('skip-comment', f"is marked '{SKIP}'; {REQUESTED}; remove the comment to have it rewritten")
    if found is not None and found.code in self.codes.get(line, ()):
      name = BY_CODE[found.code].name
      return reason('skip-code-comment', f"is marked '{SKIP}[{found.code}]', which accepts {found.code} "
                    f'({name}); {REQUESTED}; remove {found.code} from the comment to see why')
    return None


NONE = OptOuts()


def opt_outs(code: str) -> OptOuts:
  """The opt-out comments of ``code``."""
  if 'vjpify:' not in code:
    return NONE
  file_line = None
  lines = set()
  codes: dict[int, frozenset[str]] = {}
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
      if found.group(1) == 'skip' and found.group(2) is not None:
        line = token.start[0]
        codes[line] = codes.get(line, frozenset()) | {c.strip() for c in found.group(2).split(',')}
      elif found.group(1) == 'skip':
        lines.add(token.start[0])
      elif in_header and file_line is None:
        file_line = token.start[0]
  except (tokenize.TokenError, SyntaxError):
    pass  # The pass parsed the file, so this is near its end: what was read decides.
  return OptOuts(file_line, frozenset(lines), codes)
