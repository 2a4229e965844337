"""Rewriting the Python files a build hands over into the build's own
output, for the setuptools command and the hatchling hook alike.

Each file is read from the source tree and its result written to the
destination the backend chose (setuptools' ``build/lib``, a folder of the
hatchling hook's own), unless that already holds the same bytes; the
source tree itself is never written. The settings are the project's
``[tool.vjpify]``: files matching its ``exclude`` and ``extend-exclude``
globs are shipped as they are, ``no-jit`` and ``module-bases`` apply as on
the command line. Every site left unchanged is reported in the build log,
as the command line reports it; a file that cannot be transformed (or,
under ``strict``, a site left unchanged) fails the build with its
``file:line:col`` message, once every file has been tried.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

from vjpify.transformer.cli.report import Summary
from vjpify.transformer.config.load import ConfigError, settings_for
from vjpify.transformer.engine.runner import run
from vjpify.transformer.diagnostics import ERROR, LEFT_UNCHANGED, FileResult
from vjpify.transformer.files.walk import Task, force_excluded
from vjpify.transformer.settings import Settings


def _project_settings(root: str) -> Settings:
  """The settings for building the project whose ``pyproject.toml`` is in
  ``root``: its ``[tool.vjpify]`` table (or the nearest above it), so that
  a build rewrites exactly as ``vjpify`` run in ``root`` does; one worker
  process, as a build backend runs its steps.

  Raises:
    BuildFailed: the configuration cannot be used; the message is the one
      ``path:line:col: CODE ...`` line that says where and why.
  """
  try:
    return settings_for(root, defaults=Settings(jobs=1))
  except ConfigError as error:
    raise BuildFailed(error.format()) from None


class Output(NamedTuple):
  """One Python file of a build: ``source`` is read, the result written to
  ``destination``; messages call them ``name`` and ``shown``."""

  source: str
  destination: str
  name: str
  shown: str


class BuildFailed(Exception):
  """Files could not be transformed; the message has one
  ``file:line:col: ...`` line for each."""


# Where the build log goes: (message, whether it is a warning).
Log = Callable[[str, bool], None]


class Generation:
  """The rewriting of one build's files, handed over in one or more
  batches, with the totals of them all."""

  def __init__(self, root: str, log: Log):
    self._root = os.path.abspath(root)
    self._settings = _project_settings(root)
    # A build ships what its backend selected; only the project's own globs
    # (not the folders a walk never enters) keep a file as it is.
    settings = self._settings
    self._shipped_as_is = (*settings.exclude, *(settings.default_exclude or ()), *settings.extend_exclude)
    self._log = log
    self._summary = Summary(ignore=frozenset(settings.ignore))

  def _task(self, output: Output) -> Task:
    shipped_as_is = force_excluded(os.path.join(self._root, output.name), self._shipped_as_is, builtin=False)
    return Task(output.source, output.destination, name=output.name, transform=not shipped_as_is)

  def _report(self, output: Output, result: FileResult) -> None:
    for site in self._summary.reported(result):
      if site.action in (ERROR, *LEFT_UNCHANGED):
        self._log(f'vjpify: {site.format()}', True)
    if result.changed and not result.error:
      done = 'Up to date' if result.up_to_date else 'Rewriting'
      self._log(f'vjpify: {done} {output.name} -> {output.shown}', False)

  def generate(self, outputs: Sequence[Output]) -> list[FileResult]:
    """Writes each output; returns their results, in order."""
    tasks = [self._task(output) for output in outputs]
    results = []
    for output, (task, result) in zip(outputs, run(tasks, self._settings)):
      self._summary.add(result, task.transform)
      self._report(output, result)
      results.append(result)
    return results

  def finish(self) -> None:
    """Logs the totals; raises :class:`BuildFailed` if any file failed."""
    self._log(self._summary.line(would=False), False)
    failed = [site.format() for site in self._summary.sites if site.action == ERROR]
    if failed:
      raise BuildFailed('vjpify could not transform these files, so the build stops:\n' + '\n'.join(failed))
    left = [site.format() for site in self._summary.sites if site.left_unchanged]
    if self._settings.strict and left:
      sites = '1 site' if len(left) == 1 else f'{len(left)} sites'
      raise BuildFailed(f'vjpify left {sites} unchanged and [tool.vjpify] has strict = true, so the build '
                        'stops:\n' + '\n'.join(left))
