"""Shared helpers for the tests that check the README and the pages under
``docs/``: a page's sections and code blocks, its headings' anchors, and the
relative links it holds, as GitHub renders them.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / 'README.md'
DOCS = ROOT / 'docs'


def pages() -> list[Path]:
  """The README and every page under ``docs/``."""
  return [README, *sorted(DOCS.glob('*.md'))]


def _outside_code(text: str) -> list[tuple[bool, str]]:
  """``text``'s lines, each with whether it is outside a fenced block."""
  lines, fenced = [], False
  for line in text.splitlines(keepends=True):
    fence = line.startswith('```')
    fenced ^= fence
    lines.append((not fenced and not fence, line))
  return lines


def section(path: Path, heading: str) -> str:
  """The text of ``path`` under ``heading``, up to the next heading of any level."""
  lines, inside = [], False
  for prose, line in _outside_code(path.read_text(encoding='utf-8')):
    if prose and re.match(r'#+ ', line):
      inside = line.rstrip('\n').split(' ', 1)[1] == heading
    elif inside:
      lines.append(line)
  assert lines, f'{path.relative_to(ROOT)} has no "{heading}" section'
  return ''.join(lines)


def blocks(path: Path, heading: str, language: str) -> list[str]:
  """The ``language`` code blocks under ``heading`` (``''``: those that name none)."""
  found, current = [], None
  for line in section(path, heading).splitlines(keepends=True):
    if line.startswith('```'):
      if current is None:
        current, lines = line[3:].strip(), []
      else:
        found += [''.join(lines)] if current == language else []
        current = None
    elif current is not None:
      lines.append(line)
  return found


def anchors(path: Path) -> set[str]:
  """The anchors GitHub gives the headings of ``path``: lower case, spaces
  as hyphens, punctuation but ``-`` and ``_`` dropped, repeats numbered."""
  found, counts = set(), {}
  for prose, line in _outside_code(path.read_text(encoding='utf-8')):
    if prose and re.match(r'#+ ', line):
      slug = re.sub(r'[^\w\- ]', '', line.split(' ', 1)[1].strip().lower()).replace(' ', '-')
      repeats = counts.get(slug, 0)
      counts[slug] = repeats + 1
      found.add(f'{slug}-{repeats}' if repeats else slug)
  return found


def relative_links(path: Path) -> list[str]:
  """The targets of the links in ``path`` that are not URLs, outside code."""
  prose = ''.join(line for outside, line in _outside_code(path.read_text(encoding='utf-8')) if outside)
  prose = re.sub(r'`[^`]*`', '', prose)
  targets = re.findall(r'\[[^\]]*\]\(([^)\s]+)\)', prose)
  return [t for t in targets if not re.match(r'[a-z]+:', t)]
