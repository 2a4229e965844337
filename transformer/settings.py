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
  path and base name. ``jobs``: worker processes.
  """

  jit: bool = True
  exclude: tuple[str, ...] = ()
  jobs: int = 1
  module_bases: tuple[str, ...] = ()

  @classmethod
  def from_args(cls, args) -> Settings:
    """The settings the command line's parsed arguments ask for; ``jobs``
    defaults to every core this process may run on."""
    return cls(jit=args.jit, exclude=tuple(args.exclude), jobs=args.jobs or default_jobs())
