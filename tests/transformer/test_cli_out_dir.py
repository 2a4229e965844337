"""``--out-dir``, build-time generation, through the real CLI: the input
tree is mirrored into the output folder and never touched itself; writing
the outputs is success (exit 0), and a second build says which outputs
were already up to date."""

from __future__ import annotations

import os

import pytest

from support.cli import PLAIN, REWRITTEN, SOURCE, assert_no_traceback, snapshot, vjpify, write


@pytest.fixture
def tree(tmp_path):
  write(tmp_path / 'src/model.py', SOURCE).chmod(0o755)
  write(tmp_path / 'src/pkg/plain.py', PLAIN)
  write(tmp_path / 'src/pkg/broken.py', 'import flax\ngrad(\n')
  write(tmp_path / 'src/data.json', '{}\n').chmod(0o640)
  write(tmp_path / 'src/pkg/notes.txt', 'notes\n')
  write(tmp_path / 'src/.git/config', '[core]\n')
  return tmp_path


def _files(root):
  return sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file())


def test_mirrors_python_files_and_leaves_the_input_alone(tree):
  before = snapshot(tree / 'src')
  result = vjpify('src', '--out-dir', 'out', cwd=tree)
  assert result.returncode == 2  # broken.py
  assert snapshot(tree / 'src') == before
  assert _files(tree / 'out') == ['model.py', 'pkg/plain.py']
  assert (tree / 'out/model.py').read_text() == REWRITTEN
  assert (tree / 'out/pkg/plain.py').read_text() == PLAIN
  assert (tree / 'out/model.py').stat().st_mode & 0o7777 == 0o755
  assert 'Rewriting src/model.py -> out/model.py' in result.stderr.splitlines()
  assert "src/pkg/broken.py:2:5: VJ001 cannot parse: '(' was never closed" in result.stderr
  assert_no_traceback(result)


def test_copy_other_files(tree):
  (tree / 'src/pkg/broken.py').unlink()
  result = vjpify('src', '--out-dir', 'out', '--copy-other-files', cwd=tree)
  assert result.returncode == 0, result.stderr
  assert _files(tree / 'out') == ['data.json', 'model.py', 'pkg/notes.txt', 'pkg/plain.py']
  assert (tree / 'out/data.json').read_text() == '{}\n'
  assert (tree / 'out/data.json').stat().st_mode & 0o7777 == 0o640


def test_a_build_exits_0_and_says_what_it_wrote(tree):
  (tree / 'src/pkg/broken.py').unlink()
  result = vjpify('src', '--out-dir', 'out', cwd=tree)
  assert result.returncode == 0, result.stderr
  assert result.stderr.splitlines()[-3:] == [
      'Rewriting src/model.py -> out/model.py',
      'vjpify: 2 files scanned, 1 site rewritten, 1 skipped, 0 errors',
      'vjpify: out: 2 files written, 0 up to date',
  ]


def test_second_build_writes_nothing_and_says_so(tree):
  (tree / 'src/pkg/broken.py').unlink()
  vjpify('src', '--out-dir', 'out', '--copy-other-files', cwd=tree)
  for path in (tree / 'out').rglob('*'):
    if path.is_file():
      os.utime(path, ns=(10**18, 10**18))
  before = snapshot(tree / 'out')
  result = vjpify('src', '--out-dir', 'out', '--copy-other-files', cwd=tree)
  assert result.returncode == 0
  assert snapshot(tree / 'out') == before
  assert result.stderr.splitlines()[-3:] == [
      'Up to date src/model.py -> out/model.py',
      'vjpify: 2 files scanned, 1 site rewritten, 1 skipped, 0 errors',
      'vjpify: out: 0 files written, 4 up to date',
  ]


def test_a_changed_input_is_written_again(tree):
  (tree / 'src/pkg/broken.py').unlink()
  vjpify('src', '--out-dir', 'out', cwd=tree)
  write(tree / 'src/pkg/plain.py', PLAIN + 'y = 2\n')
  result = vjpify('src', '--out-dir', 'out', cwd=tree)
  assert result.returncode == 0
  assert 'Up to date src/model.py -> out/model.py' in result.stderr.splitlines()
  assert result.stderr.splitlines()[-1] == 'vjpify: out: 1 file written, 1 up to date'
  assert (tree / 'out/pkg/plain.py').read_text() == PLAIN + 'y = 2\n'


def test_file_arguments_land_at_the_top_of_the_output(tree):
  result = vjpify('src/model.py', 'src/pkg/plain.py', '--out-dir', 'out', cwd=tree)
  assert result.returncode == 0
  assert _files(tree / 'out') == ['model.py', 'plain.py']


def test_check_with_out_dir_writes_nothing(tree):
  result = vjpify('--check', 'src', '--out-dir', 'out', cwd=tree)
  assert result.returncode == 2
  assert 'Would rewrite src/model.py' in result.stderr
  assert not (tree / 'out').exists()
  (tree / 'src/pkg/broken.py').unlink()
  result = vjpify('--check', 'src', '--out-dir', 'out', cwd=tree)
  assert result.returncode == 1
  assert 'vjpify: out:' not in result.stderr
  assert not (tree / 'out').exists()


@pytest.mark.parametrize('args, message', [
    pytest.param(['src', '--out-dir', 'src/gen'],
                 '--out-dir src/gen is inside the input src; nothing written; choose an output folder outside '
                 'the input tree', id='output-inside-input'),
    pytest.param(['src', '--out-dir', 'src'], '--out-dir src is inside the input src', id='output-is-input'),
    pytest.param(['src', '--out-dir', '.'], 'the input src is inside --out-dir .', id='input-inside-output'),
    pytest.param(['src/model.py', '--out-dir', 'src'], 'the input src/model.py is inside --out-dir src',
                 id='file-inside-output'),
    pytest.param(['-', '--out-dir', 'out'], "'-' (standard input) cannot be used with --out-dir", id='stdin'),
    pytest.param(['src', '--out-dir', 'src/data.json'], '--out-dir src/data.json is a file', id='out-dir-is-a-file'),
    pytest.param(['src/model.py', 'src/pkg/model.py', '--out-dir', 'out'],
                 'src/model.py and src/pkg/model.py would both be written to out/model.py', id='collision'),
])
def test_refuses_unsafe_output_folders(tree, args, message):
  write(tree / 'src/pkg/model.py', SOURCE)
  before = snapshot(tree)
  result = vjpify(*args, cwd=tree)
  assert result.returncode == 2
  assert f'vjpify: error: {message}' in result.stderr
  assert snapshot(tree) == before
  assert_no_traceback(result)
