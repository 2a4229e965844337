"""``.gitignore`` rules for folder walks, as git, ruff and black apply them.

A walk of a folder inside a git repository (a folder holding ``.git``, or
below one) honours the repository's ``.git/info/exclude`` and every
``.gitignore`` from the repository's top down to each file; outside a
repository, the ``.gitignore`` files of the walked folder and below. A
deeper file's rules win over a shallower one's, and the last matching line
of a file wins within it (``!keep.py`` re-includes), as in git. A folder
that is ignored is not entered, so nothing under it can be re-included,
as in git too.

Note that git's global excludes file (``core.excludesFile``) is not read,
and that paths named on the command line are never checked against these
rules: like ruff and black, vjpify reads a file it is given, and walks a
folder it is given even when it is ignored (an ignored folder's files are
then judged by the ``.gitignore`` files inside it only).

pathspec parses the patterns; it is imported only once a walk meets a
``.gitignore``, so runs over trees without one start as fast as before.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

_GITIGNORE = '.gitignore'


def _read_lines(path: str) -> list[str] | None:
  try:
    with open(path, encoding='utf-8', errors='surrogateescape') as f:
      return f.read().splitlines()
  except OSError:  # Absent or unreadable: as git does, no rules from it.
    return None


def _spec(path: str):
  lines = _read_lines(path)
  if not lines:
    return None
  import pathspec
  return pathspec.GitIgnoreSpec.from_lines(lines)


def _repository_top(folder: str) -> str | None:
  """The nearest folder at or above ``folder`` that holds ``.git`` (a
  folder, or a file in a worktree or submodule)."""
  current = folder
  while True:
    if os.path.exists(os.path.join(current, '.git')):
      return current
    parent = os.path.dirname(current)
    if parent == current:
      return None
    current = parent


# The rules in force in one folder: (folder the patterns are relative to,
# its spec), shallowest first.
Rules = tuple[tuple[str, object], ...]


def _verdict(rules: Sequence[tuple[str, object]], path: str, is_folder: bool) -> bool:
  """Whether ``rules`` ignore ``path`` (absolute): the deepest file with a
  matching line decides, by its last matching line."""
  for base, spec in reversed(rules):
    relative = os.path.relpath(path, base).replace(os.sep, '/')
    verdict = spec.check_file(relative + '/' if is_folder else relative).include
    if verdict is not None:
      return verdict
  return False


class GitIgnore:
  """The ignore rules met while walking one folder, loaded folder by
  folder as the walk enters them."""

  def __init__(self, root: str):
    root = os.path.abspath(root)
    top = _repository_top(root)
    inherited: list[tuple[str, object]] = []
    if top is not None:
      exclude = _spec(os.path.join(top, '.git', 'info', 'exclude'))
      if exclude is not None:
        inherited.append((top, exclude))
      # The .gitignore files between the repository's top and the root;
      # the root's own is read when the walk enters it.
      relative = os.path.relpath(root, top)
      folder = top
      for part in ([] if relative == os.curdir else relative.split(os.sep)):
        inherited += self._own(folder)
        folder = os.path.join(folder, part)
        if _verdict(inherited, folder, is_folder=True):
          # The folder named is ignored, or lies in one: what is above it
          # would ignore everything it holds.
          inherited = []
          break
    self._parent_rules: Rules = tuple(inherited)
    self._rules: dict[str, Rules] = {}

  @staticmethod
  def _own(folder: str) -> list[tuple[str, object]]:
    spec = _spec(os.path.join(folder, _GITIGNORE))
    return [] if spec is None else [(folder, spec)]

  def enter(self, folder: str, filenames: Sequence[str]) -> None:
    """Loads the rules of ``folder``, which the walk has just entered,
    on top of those of the folder above it."""
    folder = os.path.abspath(folder)
    parent = self._rules.get(os.path.dirname(folder), self._parent_rules)
    own = self._own(folder) if _GITIGNORE in filenames else []
    self._rules[folder] = parent + tuple(own)

  def ignored(self, path: str, is_folder: bool) -> bool:
    """Whether ``path``, in a folder already entered, is ignored."""
    path = os.path.abspath(path)
    return _verdict(self._rules.get(os.path.dirname(path), ()), path, is_folder)
