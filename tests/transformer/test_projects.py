"""Multi-file fixture projects, run through the command line as users run it.

Each ``fixtures/projects/<case>/`` holds:

- ``tree/``: the files of the run (a project with its own
  ``pyproject.toml``, sometimes beside other folders: installed packages,
  a folder to run from), copied to a temporary folder before each run;
- ``run.txt``: ``args:`` the command line (paths relative to ``cwd``),
  ``cwd:`` where it runs, relative to the copy of ``tree/`` (default: its
  top), ``pythonpath:`` a folder of the copy put on ``PYTHONPATH`` (what is
  installed), ``exit:`` the exit status;
- ``expected/``: the new text of every file the run rewrites, at the same
  path as in ``tree/``; a file not there must come out unchanged;
- ``stderr.txt``: everything the run prints on stderr, exactly.

Run with ``VJPIFY_OVERWRITE=1`` to regenerate ``expected/`` and
``stderr.txt`` from the current transformer, then review the diff by eye.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

from support.cli import cli_env, vjpify

PROJECTS = pathlib.Path(__file__).resolve().parents[2] / 'fixtures' / 'projects'
CASES = sorted(p.parent for p in PROJECTS.glob('*/run.txt'))
OVERWRITE = os.environ.get('VJPIFY_OVERWRITE') == '1'


def read_run(case: pathlib.Path) -> dict[str, str]:
  """The settings of ``run.txt``, one ``key: value`` a line."""
  settings = {'cwd': '.', 'pythonpath': '', 'exit': '0'}
  for line in (case / 'run.txt').read_text().splitlines():
    key, _, value = line.partition(':')
    settings[key.strip()] = value.strip()
  return settings


def files_under(root: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def test_there_are_projects():
  assert len(CASES) >= 15


@pytest.mark.parametrize('case', CASES, ids=lambda p: p.name)
def test_project(case: pathlib.Path, tmp_path: pathlib.Path):
  run = read_run(case)
  tree = tmp_path / 'tree'
  shutil.copytree(case / 'tree', tree)
  env = cli_env()
  if run['pythonpath']:
    env['PYTHONPATH'] = str(tree / run['pythonpath'])
  result = vjpify(*run['args'].split(), cwd=tree / run['cwd'], env=env)
  stderr = result.stderr.replace(str(tmp_path), '<tmp>')
  before, after = files_under(case / 'tree'), files_under(tree)
  changed = {path: text for path, text in after.items() if before.get(path) != text}
  if OVERWRITE:
    shutil.rmtree(case / 'expected', ignore_errors=True)
    for path, text in changed.items():
      (case / 'expected' / path).parent.mkdir(parents=True, exist_ok=True)
      (case / 'expected' / path).write_bytes(text)
    (case / 'stderr.txt').write_text(stderr)
  assert 'Traceback' not in stderr, stderr
  assert changed == files_under(case / 'expected') if (case / 'expected').exists() else changed == {}
  assert stderr == (case / 'stderr.txt').read_text()
  assert result.returncode == int(run['exit']), stderr
  assert set(after) == set(before), 'the run added or removed files'
