"""The habits users bring from ruff, black and pyupgrade, through the real
CLI: ``--report -``, ``--stdin-filename``, ``--force-exclude`` and
``.gitignore`` in folder walks, each with its exact output and exit
status. (``python -m vjpify`` is every other CLI test's command; colour
under ``FORCE_COLOR`` is with the other colour tests in ``test_cli.py``.)
"""

from __future__ import annotations

import json

import pytest

from support.cli import (  # noqa: F401 (project is a fixture)
    REWRITTEN, SKIPPED_DIAGNOSTIC, SOURCE, assert_no_traceback, project, snapshot, vjpify, write)

_SUMMARY = 'vjpify: 2 files scanned, 1 changed, 1 site rewritten, 1 skipped, 0 errors'


# --- --report - -----------------------------------------------------------

def test_report_dash_writes_the_report_to_standard_output(project):
  result = vjpify('--report', '-', 'model.py', 'plain.py', cwd=project)
  assert result.returncode == 1
  report = json.loads(result.stdout)
  assert report['summary'] == {
      'files_scanned': 2, 'files_changed': 1, 'sites_rewritten': 1, 'sites_skipped': 1, 'errors': 0}
  assert [(s['path'], s['line'], s['action']) for s in report['sites']] == [
      ('model.py', 8, 'rewritten'), ('model.py', 12, 'skipped')]
  assert result.stderr.splitlines()[-1] == _SUMMARY
  assert not (project / '-').exists()
  assert (project / 'model.py').read_text() == REWRITTEN


def test_report_dash_with_check_on_standard_input(project):
  result = vjpify('--check', '--report', '-', '-', cwd=project, stdin=SOURCE.encode())
  assert result.returncode == 1
  assert [s['path'] for s in json.loads(result.stdout)['sites']] == ['-', '-']


@pytest.mark.parametrize('args, message', [
    pytest.param(['--diff', '--report', '-', 'model.py'],
                 '--report - and --diff would both write to standard output; give --report a file', id='diff'),
    pytest.param(['--report', '-', '-'],
                 "--report - and '-' would both write to standard output; give --report a file", id='stdin'),
])
def test_report_dash_refuses_to_share_standard_output(project, args, message):
  before = snapshot(project)
  result = vjpify(*args, cwd=project)
  assert result.returncode == 2
  assert f'vjpify: error: {message}' in result.stderr
  assert result.stdout == ''
  assert snapshot(project) == before


# --- --stdin-filename ------------------------------------------------------

def test_stdin_filename_names_standard_input_in_messages(tmp_path):
  result = vjpify('--stdin-filename', 'src/model.py', '-', cwd=tmp_path, stdin=SOURCE.encode())
  assert result.returncode == 1
  assert result.stdout == REWRITTEN.encode()
  diagnostic, summary = result.stderr.splitlines()
  assert diagnostic.startswith(f'src/model.py{SKIPPED_DIAGNOSTIC}')
  assert summary == ('vjpify: 1 file scanned (src/model.py, from standard input), 1 changed, 1 site rewritten, '
                     '1 skipped, 0 errors')


def test_stdin_filename_names_the_diff_and_the_report(tmp_path):
  result = vjpify('--diff', '--stdin-filename', 'src/model.py', '--report', 'r.json', '-', cwd=tmp_path,
                  stdin=SOURCE.encode())
  assert result.returncode == 1
  assert result.stdout.startswith(b'--- src/model.py\n+++ src/model.py\n@@ ')
  assert {s['path'] for s in json.loads((tmp_path / 'r.json').read_text())['sites']} == {'src/model.py'}


def test_stdin_filename_in_an_error(tmp_path):
  result = vjpify('--stdin-filename', 'src/broken.py', '-', cwd=tmp_path, stdin=b'import flax\ngrad(\n')
  assert result.returncode == 2
  assert result.stdout == b''
  assert "src/broken.py:2:5: VJ001 cannot parse: '(' was never closed" in result.stderr
  assert 'vjpify: 1 file failed: src/broken.py' in result.stderr


def test_stdin_filename_needs_standard_input(project):
  result = vjpify('--stdin-filename', 'x.py', 'model.py', cwd=project)
  assert result.returncode == 2
  assert "vjpify: error: --stdin-filename names standard input; pass '-' as a path too" in result.stderr
  assert (project / 'model.py').read_text() == SOURCE


# --- --exclude and --force-exclude ------------------------------------------

@pytest.fixture
def named(tmp_path):
  for path in ('build/x.py', 'gen/y.py', 'src/.venv/z.py', 'src/keep.py', 'src/skip_me.py'):
    write(tmp_path / path, SOURCE)
  return tmp_path


_NAMED = ('build/x.py', 'gen/y.py', 'src/.venv/z.py', 'src/keep.py', 'src/skip_me.py')
_EXCLUDES = ('--exclude', 'gen', '--exclude', '*/skip_me.py')


def test_without_force_exclude_named_files_are_rewritten(named):
  result = vjpify(*_EXCLUDES, *_NAMED, cwd=named)
  assert result.returncode == 1
  assert [line for line in result.stderr.splitlines() if line.startswith('Rewriting')] == [
      f'Rewriting {path}' for path in _NAMED]


def test_force_exclude_skips_named_files_as_a_walk_would(named):
  result = vjpify('--force-exclude', *_EXCLUDES, *_NAMED, cwd=named)
  assert result.returncode == 1
  assert [line for line in result.stderr.splitlines() if line.startswith('Rewriting')] == ['Rewriting src/keep.py']
  assert result.stderr.splitlines()[-1] == (
      'vjpify: 1 file scanned, 1 changed, 1 site rewritten, 1 skipped, 0 errors')
  for path in ('build/x.py', 'gen/y.py', 'src/.venv/z.py', 'src/skip_me.py'):
    assert (named / path).read_text() == SOURCE


def test_force_exclude_skips_named_folders(named):
  result = vjpify('--force-exclude', *_EXCLUDES, 'gen', 'build/', cwd=named)
  assert result.returncode == 0
  assert result.stderr.splitlines() == ['vjpify: 0 files scanned, 0 changed, 0 sites rewritten, 0 skipped, 0 errors']


def test_force_exclude_passes_excluded_standard_input_through(tmp_path):
  for name in ('gen/m.py', 'build/m.py'):
    result = vjpify('--force-exclude', '--exclude', 'gen', '--stdin-filename', name, '-', cwd=tmp_path,
                    stdin=SOURCE.encode())
    assert result.returncode == 0
    assert result.stdout == SOURCE.encode()
    assert result.stderr.splitlines() == ['vjpify: 0 files scanned, 0 changed, 0 sites rewritten, 0 skipped, 0 errors']
  result = vjpify('--force-exclude', '--exclude', 'gen', '--stdin-filename', 'src/m.py', '-', cwd=tmp_path,
                  stdin=SOURCE.encode())
  assert result.returncode == 1
  assert result.stdout == REWRITTEN.encode()


# --- .gitignore -----------------------------------------------------------

@pytest.fixture
def repository(tmp_path):
  """A git repository (``.git`` is enough to mark one) with ignore rules at
  every level that git reads them from."""
  root = tmp_path / 'repo'
  (root / '.git/info').mkdir(parents=True)
  write(root / '.git/info/exclude', 'local_only.py\n')
  write(root / '.gitignore', '*_generated.py\n!keep_generated.py\n/src/vendored/\n')
  write(root / 'src/.gitignore', 'scratch.py\n')
  for path in ('src/model.py', 'src/model_generated.py', 'src/keep_generated.py', 'src/vendored/lib.py',
               'src/sub/scratch.py', 'src/sub/local_only.py', 'other/scratch.py'):
    write(root / path, SOURCE)
  return root


_KEPT = ['Rewriting src/keep_generated.py', 'Rewriting src/model.py']
_ALL = ['Rewriting src/keep_generated.py', 'Rewriting src/model.py', 'Rewriting src/model_generated.py',
        'Rewriting src/sub/local_only.py', 'Rewriting src/sub/scratch.py', 'Rewriting src/vendored/lib.py']


def _rewritten(result):
  return sorted(line for line in result.stderr.splitlines() if line.startswith('Rewriting'))


def test_walks_respect_gitignore_by_default(repository):
  result = vjpify('src', cwd=repository)
  assert result.returncode == 1
  assert _rewritten(result) == _KEPT
  assert (repository / 'src/vendored/lib.py').read_text() == SOURCE


def test_rules_above_the_walked_folder_apply(repository):
  result = vjpify('.', cwd=repository / 'src')
  assert _rewritten(result) == ['Rewriting keep_generated.py', 'Rewriting model.py']


def test_no_respect_gitignore_walks_everything(repository):
  result = vjpify('--no-respect-gitignore', 'src', cwd=repository)
  assert result.returncode == 1
  assert _rewritten(result) == _ALL


def test_an_ignored_folder_named_explicitly_is_walked(repository):
  result = vjpify('src/vendored', cwd=repository)
  assert result.returncode == 1
  assert _rewritten(result) == ['Rewriting src/vendored/lib.py']


def test_gitignored_files_named_explicitly_are_read(repository):
  result = vjpify('--force-exclude', 'src/model_generated.py', 'src/vendored/lib.py', cwd=repository)
  assert _rewritten(result) == ['Rewriting src/model_generated.py', 'Rewriting src/vendored/lib.py']


def test_outside_a_repository_the_walked_folders_gitignore_applies(tmp_path):
  write(tmp_path / 'outer/.gitignore', 'model.py\n')
  write(tmp_path / 'outer/proj/.gitignore', 'ignored.py\n')
  write(tmp_path / 'outer/proj/model.py', SOURCE)
  write(tmp_path / 'outer/proj/ignored.py', SOURCE)
  result = vjpify('.', cwd=tmp_path / 'outer/proj')
  assert result.returncode == 1
  assert _rewritten(result) == ['Rewriting model.py']
  assert_no_traceback(result)
