"""The settings of a run, as one immutable value.

A :class:`Settings` is built once, where the run starts: from the command
line (:meth:`Settings.from_args`), from the keyword arguments of the Python
API, or from the LibCST codemod runner's options. It then travels whole to
whatever reads it: the file walk (``exclude``), the runner (``jobs``), the
pass (``jit``). Nothing below the place it is built changes it or reads
options of its own, so a new setting (a ``[tool.vjpify]`` key, say) is one
field here and one line where settings are built.
"""

from __future__ import annotations

import os
from typing import NamedTuple


def default_jobs() -> int:
  """The cores this process may run on."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


class Settings(NamedTuple):
  """How a run transforms files.

  ``jit``: wrap each site's ``fn`` in ``vjpify.runtime.compiled`` (False is
  the command line's ``--no-jit``). ``exclude``: globs matched against each
  path and base name in folder walks. ``force_exclude``: apply them, and
  the folders walks never enter, to paths named explicitly too.
  ``respect_gitignore``: folder walks skip what ``.gitignore`` files
  ignore. ``jobs``: worker processes.
  """

  jit: bool = True
  exclude: tuple[str, ...] = ()
  jobs: int = 1
  force_exclude: bool = False
  respect_gitignore: bool = True

  @classmethod
  def from_args(cls, args) -> Settings:
    """The settings the command line's parsed arguments ask for; ``jobs``
    defaults to every core this process may run on."""
    return cls(jit=args.jit, exclude=tuple(args.exclude), jobs=args.jobs or default_jobs(),
               force_exclude=args.force_exclude, respect_gitignore=args.respect_gitignore)
