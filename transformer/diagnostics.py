"""Records of what the pass did at each site, and how they are shown."""

from __future__ import annotations

import dataclasses

REWRITTEN = 'rewritten'
SKIPPED = 'skipped'
ERROR = 'error'


@dataclasses.dataclass(frozen=True)
class Site:
  """One place the pass looked at: a call it rewrote or left alone.

  ``line`` and ``column`` are 1-based, as compilers print them. ``kind`` is
  ``grad``, ``value_and_grad``, ``reference`` (named but not called) or
  ``file`` (the file itself, for example a syntax error).
  """

  path: str
  line: int
  column: int
  kind: str
  action: str
  reason: str

  def format(self) -> str:
    return f'{self.path}:{self.line}:{self.column}: {self.reason}'

  def as_dict(self) -> dict[str, object]:
    return dataclasses.asdict(self)
