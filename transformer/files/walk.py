"""Which files a run reads and where each one's result goes.

Directories are walked for ``*.py`` files, in sorted order, without following
symbolic links to directories (so a link loop cannot trap the walk), and
without entering version control folders, virtual environments, caches and
build output (``DEFAULT_EXCLUDES``, and any folder holding a ``pyvenv.cfg``),
nor what ``.gitignore`` files ignore (``files.gitignore``; off with
``respect_gitignore=False``). ``--exclude`` globs apply in walks too.

The default excludes can be replaced (the ``exclude`` key of
``[tool.vjpify]``) and extended (``extend-exclude``); those globs, like
ruff's, are matched against the base name, the path as walked and the
absolute path (a configured glob with a slash is made absolute, anchored at
the configuration's folder).

Paths named on the command line are taken as they are, as ruff and black
take them: a file of any name is read as Python (pre-commit passes
extensionless scripts too), and a directory whose name ends in ``.py`` is
only walked when written with a trailing slash, so that ``x.py`` always
means a file. Only with ``force_exclude`` do the walk's excludes and the
``--exclude`` globs apply to them (and to the folders above them, up to
the current folder), so that pre-commit, which names every file, skips
what a walk would skip.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import os
import re
from collections.abc import Iterable, Sequence

from vjpify.transformer.files.gitignore import GitIgnore
from vjpify.transformer.files.source import STDIN

DEFAULT_EXCLUDES = (
    '.bzr', '.direnv', '.eggs', '.git', '.hg', '.ipynb_checkpoints', '.mypy_cache', '.nox',
    '.pytest_cache', '.ruff_cache', '.svn', '.vjpify_cache', '.tox', '.venv', '__pycache__', '__pypackages__',
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
  only copied; ``problem`` is a reason the file could not even be listed;
  ``name`` is what messages call the file, when not ``source`` (standard
  input named by ``--stdin-filename``); ``transform`` is False for standard
  input that ``force_exclude`` excludes by that name, which is passed
  through unchanged, as black passes it.
  """

  source: str
  destination: str | None
  python: bool = True
  problem: str | None = None
  name: str | None = None
  transform: bool = True

  @property
  def shown(self) -> str:
    """The path messages, diffs and the report give for this file."""
    return self.name or self.source


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


def _skipped_folder(folder: str, exclude: Sequence[str], skipped: Sequence[str] = DEFAULT_EXCLUDES) -> bool:
  """Whether a walk never enters ``folder``, whatever ``.gitignore`` says;
  ``skipped``: the walk's own excludes (the defaults, or what replaced or
  extended them)."""
  return _excluded(folder, (*skipped, *exclude)) or _is_environment(folder)


def force_excluded(path: str, exclude: Sequence[str], is_folder: bool = False, *, builtin: bool = True,
                   skipped: Sequence[str] = DEFAULT_EXCLUDES) -> bool:
  """Whether ``force_exclude`` skips ``path``, named on the command line
  (or handed over by a build backend): it, or a folder between the current
  folder and it, matches an ``exclude`` glob or, if ``builtin``, is a
  folder that a walk never enters (``skipped``, environments)."""
  if _excluded(path, (*skipped, *exclude) if builtin else exclude):
    return True
  relative = os.path.relpath(path)
  if relative == os.pardir or relative.startswith(os.pardir + os.sep):
    return False  # Outside the current folder: only its own path counts.
  parts = relative.split(os.sep)
  folders = [os.path.join(*parts[:i + 1]) for i in range(len(parts) if is_folder else len(parts) - 1)]
  if builtin:
    return any(_skipped_folder(folder, exclude, skipped) for folder in folders)
  return any(_excluded(folder, exclude) for folder in folders)


def _unlisted(problems: list[OSError], folder: str) -> Iterable[tuple[str, bool, str | None]]:
  while problems:
    error = problems.pop()
    yield (os.path.normpath(error.filename or folder), True,
           f'cannot list the folder: {error.strerror}; skipped; check its permissions')


def _walk(root: str, exclude: Sequence[str], skipped: Sequence[str], copy_other_files: bool,
          respect_gitignore: bool) -> Iterable[tuple[str, bool, str | None]]:
  """Yields ``(path, is_python, problem)`` for the files under ``root``;
  ``skipped``: the walk's own excludes (the defaults, or what replaced or
  extended them)."""
  problems: list[OSError] = []
  every = (*skipped, *exclude)
  gitignore = GitIgnore(root) if respect_gitignore else None
  for folder, dirnames, filenames in os.walk(root, onerror=problems.append):
    yield from _unlisted(problems, folder)
    if gitignore is not None:
      gitignore.enter(folder, filenames)
    dirnames[:] = sorted(
        d for d in dirnames
        if not _skipped_folder(os.path.join(folder, d), exclude, skipped)
        and not (gitignore and gitignore.ignored(os.path.join(folder, d), is_folder=True)))
    for name in sorted(filenames):
      path = os.path.normpath(os.path.join(folder, name))
      is_python = name.endswith('.py')
      if ((is_python or copy_other_files) and not _excluded(path, every)
          and not (gitignore and gitignore.ignored(path, is_folder=False))):
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
         exclude: Sequence[str] = (), copy_other_files: bool = False, force_exclude: bool = False,
         respect_gitignore: bool = True, stdin_filename: str | None = None,
         default_exclude: Sequence[str] | None = None, extend_exclude: Sequence[str] = ()) -> list[Task]:
  """Lists the files a run reads, in order, and where each result goes.

  Note that a path that does not exist still gets a task, so that reading
  it reports the problem alongside every other file.

  Args:
    paths: files and folders, as given on the command line; ``-`` is stdin.
    out_dir: mirror the inputs into this folder instead of rewriting them.
    write: whether results are written at all (False for --check/--diff).
    exclude: globs matched against each path and each base name in walks
      (and, with ``force_exclude``, against the paths given).
    copy_other_files: with ``out_dir``, also mirror files that are not ``*.py``.
    force_exclude: apply the built-in folder names and ``exclude`` to the
      paths given too (for standard input, to ``stdin_filename``).
    respect_gitignore: skip what ``.gitignore`` files ignore, in walks.
    stdin_filename: what messages call standard input.
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
      passed = (force_exclude and stdin_filename is not None
                and force_excluded(stdin_filename, exclude, skipped=skipped))
      tasks.append(Task(STDIN, STDIN if write else None, name=stdin_filename, transform=not passed))
      continue
    if force_exclude and force_excluded(os.path.normpath(arg), exclude, is_folder=_walks(arg),
                                    skipped=skipped):
      continue
    if _walks(arg):
      found = _walk(arg, exclude, skipped, copy_other_files and out_dir is not None, respect_gitignore)
      mirror_root = arg
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
