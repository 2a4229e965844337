"""What a run adds up to: the closing summary line, what a build into an
output folder wrote, the files that failed, and the JSON report of every
site (``--report FILE``, or ``--report -`` for standard output).

The report is one object::

    {"summary": {"files_scanned": 3, "files_changed": 1, "sites_rewritten": 2,
                 "sites_skipped": 1, "errors": 0},
     "sites": [{"path": "model.py", "line": 12, "col": 9, "code": "VJ990",
                "kind": "grad", "action": "rewritten", "reason": "..."}, ...]}

``code`` is the reason's stable code (``docs/diagnostics.md``); ``action``
is ``rewritten``, ``skipped``, ``reported`` (left unchanged, and not
failing ``--strict``) or ``error``; ``kind`` is ``grad``,
``value_and_grad``, ``reference``, ``file``, or ``jax.grad``,
``jax.value_and_grad`` or ``jax.vjp``; ``line`` and ``col`` are 1-based, or
null for a problem with a file as a whole (it cannot be read). Sites come
in the order the files were processed, then by position. Sites whose code
the run ignores (``ignore`` in ``[tool.vjpify]``) are left out of the
report and of its totals, as they are of the messages. A file that could
not be read is not counted as scanned.
"""

from __future__ import annotations

import dataclasses
import json

from vjpify.transformer.codes import code
from vjpify.transformer.diagnostics import ERROR, LEFT_UNCHANGED, REWRITTEN, SKIPPED, FileResult, Site


# The totals the JSON report gives.
_REPORTED = ('files_scanned', 'files_changed', 'sites_rewritten', 'sites_skipped', 'errors')

# Enough names to act on from a terminal; the error lines above, and the
# report, have every one.
_FAILED_SHOWN = 10

# Errors of files that were never read, so not scanned.
_NOT_READ = frozenset(code(name) for name in ('unreadable', 'not-a-regular-file', 'unlistable-folder'))


def no_files_line(paths) -> str:
  """The warning for a run that found nothing to read, as ruff gives it."""
  return (f'vjpify: warning: no Python files found under {", ".join(paths)}; nothing done; '
          'check the paths, the excludes and .gitignore')


def _count(n: int, noun: str) -> str:
  return f'{n} {noun}' if n == 1 else f'{n} {noun}s'


@dataclasses.dataclass
class Summary:
  """Running totals over the files of one run."""

  files_scanned: int = 0
  files_changed: int = 0
  sites_rewritten: int = 0
  sites_skipped: int = 0
  errors: int = 0
  sites: list[Site] = dataclasses.field(default_factory=list)
  # Files written to an output folder, and those it already held.
  outputs_written: int = 0
  outputs_up_to_date: int = 0
  # The codes of sites not reported (Settings.ignore).
  ignore: frozenset[str] = frozenset()

  def add(self, result: FileResult, python: bool = True) -> None:
    read = not (result.error and result.error.code in _NOT_READ)
    self.files_scanned += python and read
    self.files_changed += python and result.changed
    if result.destination is not None:
      self.outputs_written += not result.up_to_date
      self.outputs_up_to_date += result.up_to_date
    for site in self.reported(result):
      self.sites_rewritten += site.action == REWRITTEN
      self.sites_skipped += site.action in LEFT_UNCHANGED
      self.errors += site.action == ERROR
      self.sites.append(site)

  def reported(self, result: FileResult) -> list[Site]:
    """The sites of ``result`` that are reported: all but those whose code
    is ignored."""
    return [site for site in result.sites if site.code not in self.ignore]

  def line(self, would: bool, *, out_dir: str | None = None, stdin_name: str | None = None) -> str:
    """``vjpify: 3 files scanned, 1 changed, 2 sites rewritten, 0 skipped,
    0 errors``. Writing into ``out_dir``, the inputs never change, so the
    count of changed files gives way to :meth:`outputs_line`;
    ``stdin_name``: what ``--stdin-filename`` called standard input."""
    changed = 'would change' if would else 'changed'
    rewritten = 'would be rewritten' if would else 'rewritten'
    scanned = _count(self.files_scanned, 'file') + ' scanned'
    if stdin_name is not None and self.files_scanned:
      scanned += f' ({stdin_name}, from standard input)'
    files = scanned if out_dir is not None and not would else f'{scanned}, {self.files_changed} {changed}'
    return (f'vjpify: {files}, {_count(self.sites_rewritten, "site")} {rewritten}, '
            f'{self.sites_skipped} skipped, {_count(self.errors, "error")}')

  def left_unchanged(self) -> int:
    """The sites left unchanged for a reason of vjpify's own (no opt-out
    comment asked for them, their code is not ignored): what ``--strict``
    fails on."""
    return sum(site.left_unchanged for site in self.sites)

  def strict_line(self) -> str | None:
    """Why a strict run fails, if it does: ``vjpify: strict: 2 sites left unchanged``."""
    unwanted = self.left_unchanged()
    return f'vjpify: strict: {_count(unwanted, "site")} left unchanged' if unwanted else None

  def outputs_line(self, out_dir: str) -> str:
    """What a build into ``out_dir`` wrote: ``vjpify: out: 1 file written, 3 up to date``."""
    return (f'vjpify: {out_dir}: {_count(self.outputs_written, "file")} written, '
            f'{self.outputs_up_to_date} up to date')

  def failed_files(self) -> list[str]:
    """The files with an error, each once, in the order they were processed."""
    return list(dict.fromkeys(site.path for site in self.sites if site.action == ERROR))

  def failed_line(self) -> str | None:
    """Names the files with an error, if any: ``vjpify: 2 files failed: a.py, b.py``."""
    failed = self.failed_files()
    if not failed:
      return None
    shown = ', '.join(failed[:_FAILED_SHOWN])
    more = len(failed) - _FAILED_SHOWN
    if more > 0:
      shown += f' and {more} more (listed in the errors above)'
    return f'vjpify: {_count(len(failed), "file")} failed: {shown}'

  def as_json(self) -> str:
    totals = {name: getattr(self, name) for name in _REPORTED}
    sites = [site.as_dict() for site in self.sites]
    return json.dumps({'summary': totals, 'sites': sites}, indent=2) + '\n'
