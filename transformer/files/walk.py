"""Which files a run reads and where each one's result goes.

Directories are walked for ``*.py`` files, in sorted order, without following
symbolic links to directories (so a link loop cannot trap the walk), and
without entering version control folders, virtual environments, caches and
build output (``DEFAULT_EXCLUDES``, and any folder holding a ``pyvenv.cfg``).
Paths named on the command line are taken as they are: a file of any name is
read as Python (pre-commit passes extensionless scripts too), and a directory
whose name ends in ``.py`` is only walked when written with a trailing slash,
so that ``x.py`` always means a file. ``--exclude`` globs apply to both.

The default excludes can be replaced (the ``exclude`` key of
``[tool.vjpify]``) and extended (``extend-exclude``); those globs, like
ruff's, apply to the folders and files a walk meets, matched against the
base name, the path as walked and the absolute path (a configured glob with
a slash is made absolute, anchored at the configuration's folder).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import os
import re
from collections.abc import Iterable, Sequence

from vjpify.transformer.files.source import STDIN

DEFAULT_EXCLUDES = (
    '.bzr', '.direnv', '.eggs', '.git', '.hg', '.ipynb_checkpoints', '.mypy_cache', '.nox',
    '.pytest_cache', '.ruff_cache', '.svn', '.tox', '.venv', '__pycache__', '__pypackages__',
    '_build', 'buck-out', 'build', 'dist', 'node_modules', 'venv', '*.egg-info',
)

# A folder holding one of these is a virtual or conda environment, whatever its name.
_ENVIRONMENT_MARKERS = ('pyvenv.cfg', 'conda-meta')


@dataclasses.dataclass(frozen=True)
class Task:
  """One file of a run.

  ``source`` is the path read and shown (``-``: standard input);
  ``destination`` is where the result is written (``-``: standard output),
  or None when nothing is written; ``python`` is False for a file that is
  only copied; ``problem`` is a reason the file could not even be listed.
  """

  source: str
  destination: str | None
  python: bool = True
  problem: str | None = None


class PlanError(ValueError):
  """The arguments ask for something that cannot be done safely."""


@functools.lru_cache(maxsize=16)
def _matchers(patterns: tuple[str, ...]) -> tuple[re.Pattern | None, re.Pattern | None]:
  """One regular expression for ``patterns`` as fnmatch reads them, and
  one for those that are absolute paths (None where there are none)."""
  def joined(globs):
    return re.compile('|'.join(fnmatch.translate(g) for g in globs)) if globs else None
  return joined(patterns), joined([p for p in patterns if p.startswith('/')])


def _excluded(path: str, patterns: Sequence[str]) -> bool:
  if not patterns:
    return False
  every, absolute = _matchers(tuple(patterns))
  posix = path.replace(os.sep, '/')
  name = posix.rstrip('/').rsplit('/', 1)[-1]
  if every.match(name) or every.match(posix):
    return True
  return absolute is not None and absolute.match(os.path.abspath(path).replace(os.sep, '/')) is not None


def _is_environment(folder: str) -> bool:
  return any(os.path.exists(os.path.join(folder, marker)) for marker in _ENVIRONMENT_MARKERS)


def _unlisted(problems: list[OSError], folder: str) -> Iterable[tuple[str, bool, str | None]]:
  while problems:
    error = problems.pop()
    yield (os.path.normpath(error.filename or folder), True,
           f'cannot list the folder: {error.strerror}; skipped; check its permissions')


def _walk(root: str, exclude: Sequence[str], skipped: Sequence[str],
          copy_other_files: bool) -> Iterable[tuple[str, bool, str | None]]:
  """Yields ``(path, is_python, problem)`` for the files under ``root``;
  ``skipped``: the walk's own excludes (the defaults, or what replaced or
  extended them)."""
  problems: list[OSError] = []
  every = (*skipped, *exclude)
  for folder, dirnames, filenames in os.walk(root, onerror=problems.append):
    yield from _unlisted(problems, folder)
    dirnames[:] = sorted(
        d for d in dirnames
        if not _excluded(os.path.join(folder, d), every)
        and not _is_environment(os.path.join(folder, d)))
    for name in sorted(filenames):
      path = os.path.normpath(os.path.join(folder, name))
      is_python = name.endswith('.py')
      if (is_python or copy_other_files) and not _excluded(path, every):
        yield path, is_python, None
  yield from _unlisted(problems, root)


def _walks(arg: str) -> bool:
  return os.path.isdir(arg) and (not arg.endswith('.py') or arg.endswith(('/', os.sep)))


def _inside(path: str, folder: str) -> bool:
  return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_out_dir(paths: Sequence[str], out_dir: str) -> None:
  out = os.path.realpath(out_dir)
  if os.path.exists(out) and not os.path.isdir(out):
    raise PlanError(f'--out-dir {out_dir} is a file; choose a folder')
  for arg in paths:
    if arg == STDIN:
      raise PlanError("'-' (standard input) cannot be used with --out-dir; pass files or folders")
    real = os.path.realpath(arg)
    if _walks(arg) and _inside(out, real):
      raise PlanError(f'--out-dir {out_dir} is inside the input {arg}; nothing written; '
                      'choose an output folder outside the input tree')
    if _inside(real, out):
      raise PlanError(f'the input {arg} is inside --out-dir {out_dir}; nothing written; '
                      'choose an output folder outside the input tree')


def plan(paths: Sequence[str], *, out_dir: str | None = None, write: bool = True,
         exclude: Sequence[str] = (), copy_other_files: bool = False,
         default_exclude: Sequence[str] | None = None, extend_exclude: Sequence[str] = ()) -> list[Task]:
  """Lists the files a run reads, in order, and where each result goes.

  Note that a path that does not exist still gets a task, so that reading
  it reports the problem alongside every other file.

  Args:
    paths: files and folders, as given on the command line; ``-`` is stdin.
    out_dir: mirror the inputs into this folder instead of rewriting them.
    write: whether results are written at all (False for --check/--diff).
    exclude: globs matched against each path and each base name.
    copy_other_files: with ``out_dir``, also mirror files that are not ``*.py``.
    default_exclude: globs that replace ``DEFAULT_EXCLUDES`` in folder
      walks; None keeps the defaults.
    extend_exclude: globs added to those.

  Returns:
    The tasks, each source once.

  Raises:
    PlanError: the output folder overlaps an input, or two inputs would be
      written to the same output file.
  """
  if out_dir is not None:
    _check_out_dir(paths, out_dir)
  if paths.count(STDIN) > 1:
    raise PlanError("'-' (standard input) can be given only once")
  skipped = (*(DEFAULT_EXCLUDES if default_exclude is None else default_exclude), *extend_exclude)
  tasks: list[Task] = []
  seen: set[str] = set()
  written_by: dict[str, str] = {}
  for arg in paths:
    if arg == STDIN:
      tasks.append(Task(STDIN, STDIN if write else None))
      continue
    if _walks(arg):
      found = _walk(arg, exclude, skipped, copy_other_files and out_dir is not None)
      mirror_root = arg
    elif _excluded(os.path.normpath(arg), exclude):
      continue
    else:
      found = [(os.path.normpath(arg), True, None)]
      mirror_root = os.path.dirname(os.path.normpath(arg))
    for path, is_python, problem in found:
      # Mirrored, a symlink is a file of its own; otherwise it and its
      # target are one file, to be read and written once.
      key = path if out_dir is not None else os.path.realpath(path)
      if key in seen:
        continue
      seen.add(key)
      destination = None
      if write and out_dir is not None:
        destination = os.path.normpath(os.path.join(out_dir, os.path.relpath(path, mirror_root or '.')))
        real = os.path.realpath(destination)
        if real in written_by:
          raise PlanError(f'{written_by[real]} and {path} would both be written to {destination}; '
                          'nothing written; pass them in separate runs or with different --out-dir')
        written_by[real] = path
      elif write:
        destination = path
      tasks.append(Task(path, destination, is_python, problem))
  return tasks
