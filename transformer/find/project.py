"""Where a file's project is, and where the source of a module it imports
lies, found on disk without importing anything.

The project root is found as black and ruff find theirs: the nearest folder,
from the file's own upwards, that holds a ``pyproject.toml``, ``setup.py``,
``setup.cfg`` or ``.git``. So a file given alone, from any working
directory, sees the same project as a run over the whole tree.

Absolute imports are looked up in these folders, in order:

- the project root and its ``src/`` folder (flat and ``src/`` layouts);
- the folder above the file's top package (the chain of ``__init__.py``
  folders around it), for a package below the project root;
- the file's own folder, as Python puts a script's folder first
  (``import models`` next to ``train.py``);
- the installed packages: ``sys.path`` without the working directory, so
  that the result never depends on where vjpify runs.

In each, a module is found as Python's path finder finds it: a regular
package (a folder with ``__init__.py``) or a module file in the first folder
that has one, else the folders of a namespace package across all of them.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
from collections.abc import Sequence

ROOT_MARKERS = ('pyproject.toml', 'setup.py', 'setup.cfg', '.git')


@dataclasses.dataclass(frozen=True)
class Found:
  """A module: ``file`` is its source (a package's ``__init__.py``; None
  for a namespace package), ``folders`` where its submodules are looked up
  (empty for a plain module)."""

  file: str | None
  folders: tuple[str, ...]


def project_root(path: str) -> str | None:
  """The nearest folder above ``path`` (a file) that marks a project root,
  or None when no folder up to the file system's root does."""
  start = pathlib.PurePath(os.path.abspath(path)).parent
  for folder in (start, *start.parents):
    if any(os.path.exists(os.path.join(folder, marker)) for marker in ROOT_MARKERS):
      return str(folder)
  return None


def package_top(folder: str) -> str:
  """The folder above the outermost package around ``folder``, or
  ``folder`` itself when it is not a package."""
  while os.path.isfile(os.path.join(folder, '__init__.py')):
    parent = os.path.dirname(folder)
    if parent == folder:
      break
    folder = parent
  return folder


def module_name(file: str) -> str | None:
  """The dotted name of the module in ``file``, read off the chain of
  ``__init__.py`` folders around it; None when that chain names nothing."""
  folder, name = os.path.split(os.path.abspath(file))
  name = name[:-3] if name.endswith('.py') else name
  parts = [] if name == '__init__' else [name]
  while os.path.isfile(os.path.join(folder, '__init__.py')):
    folder, package = os.path.split(folder)
    parts.insert(0, package)
  return '.'.join(parts) if parts and all(p.isidentifier() for p in parts) else None


def installed_folders() -> tuple[str, ...]:
  """The folders of ``sys.path`` that hold installed code: every existing
  one but the working directory, which would make a result depend on where
  vjpify runs."""
  here = os.getcwd()
  folders = []
  for entry in sys.path:
    if entry and os.path.isdir(entry) and os.path.abspath(entry) != here:
      folders.append(os.path.abspath(entry))
  return tuple(folders)


def search_folders(path: str, root: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """The folders absolute imports from ``path`` are looked up in: those of
  the project (its root, ``src/``, the top of the file's package, the
  file's folder), then the installed ones."""
  folder = os.path.dirname(os.path.abspath(path))
  project = [root, os.path.join(root, 'src')] if root else []
  project += [package_top(folder), folder]
  project = [f for f in dict.fromkeys(project) if os.path.isdir(f)]
  installed = [f for f in installed_folders() if f not in project]
  return tuple(project), tuple(installed)


def find_submodule(name: str, folders: Sequence[str]) -> Found | None:
  """The module ``name`` in ``folders``, as Python's path finder finds it:
  a regular package or a module file in the first folder that has one,
  else a namespace package made of every folder named ``name``."""
  portions = []
  for folder in folders:
    package = os.path.join(folder, name)
    init = os.path.join(package, '__init__.py')
    if os.path.isfile(init):
      return Found(init, (package,))
    source = package + '.py'
    if os.path.isfile(source):
      return Found(source, ())
    if os.path.isdir(package):
      portions.append(package)
  return Found(None, tuple(portions)) if portions else None
