"""The settings of a run, as one immutable value.

A :class:`Settings` is built once, where the run starts: from the command
line (:meth:`Settings.from_args`), from the keyword arguments of the Python
API, or from the LibCST codemod runner's options. It then travels whole to
whatever reads it: the file walk (``exclude``), the runner (``jobs``), the
pass (``jit``, ``module_bases``). Nothing below the place it is built
changes it or reads options of its own, so a new setting is one field here,
one key in ``config.table`` and one option where the command line is
parsed.
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
  path and base name in folder walks (``--exclude``). ``force_exclude``:
  apply the walks' excludes to paths named explicitly too. ``respect_gitignore``:
  folder walks skip what ``.gitignore`` files ignore. ``jobs``: worker
  processes. ``module_bases``: fully qualified names of further classes
  whose subclasses count as Modules (``module-bases``). ``strict``: a site
  left unchanged fails the run, unless a ``# vjpify: skip`` comment asked
  for it (``--strict``). ``default_exclude``: globs that replace the default
  excludes of folder walks (the ``exclude`` key of ``[tool.vjpify]``; None:
  the defaults). ``extend_exclude``: globs added to those
  (``--extend-exclude``). ``ignore``: codes of sites left unchanged that
  are not reported and do not fail ``--strict`` (the ``ignore`` key,
  ``--ignore``; prefixes already expanded). ``cache``: keep results between
  runs for files that have not changed (``--no-cache``; see ``engine.cache``).
  ``lift_jax_transforms``: lift jax.grad, jax.value_and_grad and jax.vjp
  over bound Modules to nn.vjp code, rather than only report them
  (``--lift-jax-transforms``). ``strict_jax_transforms``: under ``strict``,
  a jax transform reported and left unchanged fails the run too
  (``--strict-jax-transforms``).
  """

  jit: bool = True
  exclude: tuple[str, ...] = ()
  jobs: int = 1
  module_bases: tuple[str, ...] = ()
  strict: bool = False
  default_exclude: tuple[str, ...] | None = None
  extend_exclude: tuple[str, ...] = ()
  force_exclude: bool = False
  respect_gitignore: bool = True
  ignore: tuple[str, ...] = ()
  cache: bool = True
  lift_jax_transforms: bool = False
  strict_jax_transforms: bool = False

  @classmethod
  def from_args(cls, args, base: Settings | None = None) -> Settings:
    """The settings the command line's parsed arguments ask for: those of
    ``base`` (the configuration's; by default, the defaults with every core
    this process may run on as ``jobs``), with every option the command line
    gives in place of, or for the globs added to, its value."""
    base = base or cls(jobs=default_jobs())
    given = {'exclude': (*base.exclude, *getattr(args, 'exclude', ())),
             'extend_exclude': (*base.extend_exclude, *getattr(args, 'extend_exclude', ())),
             'ignore': tuple(dict.fromkeys((*base.ignore, *(c for cs in getattr(args, 'ignore', ()) for c in cs))))}
    for field in ('jit', 'jobs', 'strict', 'force_exclude', 'respect_gitignore', 'cache', 'lift_jax_transforms',
                  'strict_jax_transforms'):
      if getattr(args, field, None) is not None:
        given[field] = getattr(args, field)
    return base._replace(**given)
