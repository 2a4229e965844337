"""Which files the command line reads and how it writes them, through the
real CLI in subprocesses: walking and excludes, atomic writes that keep
modes, bytes and modification times, and clear errors for bad input.

Runs that many checks share are made once per module and each check is
its own test.
"""

from __future__ import annotations

import os
import re
import shutil
import sys

import pytest

from support.cli import (
    PLAIN, REWRITTEN, SOURCE, assert_no_traceback, snapshot, vjpify, write)

from vjpify.transformer import transform_source

# Running as root ignores file permissions; dropping the two capabilities
# that grant that makes permission errors real again.
if os.geteuid() != 0:
  _UNPRIVILEGED: tuple[str, ...] | None = ()
elif shutil.which('setpriv'):
  _UNPRIVILEGED = ('setpriv', '--bounding-set=-dac_override,-dac_read_search')
else:
  _UNPRIVILEGED = None

needs_permissions = pytest.mark.skipif(
    _UNPRIVILEGED is None, reason='running as root without setpriv, so permissions cannot be denied')


def _unprivileged_vjpify(*args, cwd):
  return vjpify(*args, cwd=cwd, command=(*_UNPRIVILEGED, sys.executable, '-m', 'vjpify.transformer'))


# --- walking ------------------------------------------------------------

_SKIPPED_BY_DEFAULT = (
    '.git/hooks/x.py', '.venv/lib/x.py', 'venv/x.py', 'myenv/lib/x.py', 'build/lib/x.py', 'dist/x.py',
    'node_modules/x.py', 'pkg.egg-info/x.py', '__pycache__/x.py', '.tox/py/x.py', '.mypy_cache/x.py',
)


@pytest.fixture(scope='module')
def walked(tmp_path_factory):
  root = tmp_path_factory.mktemp('walk')
  for path in ('src/a.py', 'src/sub/b.py', 'gen/generated.py', 'src/skip_me.py', *_SKIPPED_BY_DEFAULT):
    write(root / path, SOURCE)
  write(root / 'myenv/pyvenv.cfg', 'home = /usr/bin\n')
  write(root / 'src/notes.txt', SOURCE)
  write(root / 'src/script', SOURCE)
  (root / 'linked').symlink_to(root / 'src', target_is_directory=True)
  result = vjpify('--exclude', 'gen', '--exclude', '*/skip_me.py', '.', cwd=root)
  return root, result


def test_walk_rewrites_only_python_files_outside_excluded_folders(walked):
  root, result = walked
  assert result.returncode == 1
  rewriting = [line for line in result.stderr.splitlines() if line.startswith('Rewriting')]
  assert rewriting == ['Rewriting src/a.py', 'Rewriting src/sub/b.py']
  assert (root / 'src/a.py').read_text() == REWRITTEN


@pytest.mark.parametrize('path', _SKIPPED_BY_DEFAULT)
def test_walk_skips_vcs_environments_and_build_output(walked, path):
  root, _ = walked
  assert (root / path).read_text() == SOURCE


@pytest.mark.parametrize('path', ['gen/generated.py', 'src/skip_me.py', 'src/notes.txt', 'src/script'])
def test_walk_skips_excluded_and_non_python_files(walked, path):
  root, _ = walked
  assert (root / path).read_text() == SOURCE


def test_walk_does_not_follow_directory_symlinks(walked):
  _, result = walked
  assert 'linked' not in result.stderr


def test_explicit_files_are_read_whatever_their_name_or_folder(tmp_path):
  # As in ruff and black: --exclude is for walks; a file named is a file asked for.
  write(tmp_path / 'build/x.py', SOURCE)
  write(tmp_path / 'bin/tool', SOURCE)
  write(tmp_path / 'gen/y.py', SOURCE)
  result = vjpify('--exclude', 'gen/*', 'build/x.py', 'bin/tool', 'gen/y.py', cwd=tmp_path)
  assert result.returncode == 1
  assert (tmp_path / 'build/x.py').read_text() == REWRITTEN
  assert (tmp_path / 'bin/tool').read_text() == REWRITTEN
  assert (tmp_path / 'gen/y.py').read_text() == REWRITTEN


def test_file_and_symlink_to_it_are_one_file(tmp_path):
  write(tmp_path / 'real/model.py', SOURCE)
  (tmp_path / 'link.py').symlink_to(tmp_path / 'real/model.py')
  result = vjpify('.', cwd=tmp_path)
  assert result.returncode == 1, result.stderr
  assert result.stderr.count('Rewriting') == 1
  assert (tmp_path / 'link.py').is_symlink()
  assert (tmp_path / 'real/model.py').read_text() == REWRITTEN


# --- writing --------------------------------------------------------------

_OLD_NS = 1_000_000_000 * 1_000_000_000

_TABS_AND_TRAILING = (
    'import flax.linen as nn  \n'
    'x = {\t1: 2}\t\n'
    '\n'
    'class Model(nn.Module):\n'
    '\t@nn.compact\n'
    '\tdef __call__(self, x):   \n'
    '\t\ty = nn.grad(lambda mdl, x: mdl(x), nn.Dense(3), x)\t \n'
    '\t\treturn y  # done \t\n'
    '\x0c\n'
    'z = 1 \n'
)

_LATIN1 = '# -*- coding: latin-1 -*-\n# caf\xe9 \xb5\n' + SOURCE

_ONLY_SKIPPED = 'import flax.linen as nn\n\n\ndef f(m, x):\n  return nn.grad(m, m, x)\n'

_INPUTS = {
    'crlf.py': SOURCE.replace('\n', '\r\n').encode(),
    'bom.py': b'\xef\xbb\xbf' + SOURCE.encode(),
    'bom_crlf.py': b'\xef\xbb\xbf' + SOURCE.replace('\n', '\r\n').encode(),
    'tabs.py': _TABS_AND_TRAILING.encode(),
    'latin1.py': _LATIN1.encode('latin-1'),
    'no_final_newline.py': SOURCE.rstrip('\n').encode(),
}

_EXPECTED = {
    'crlf.py': REWRITTEN.replace('\n', '\r\n').encode(),
    'bom.py': b'\xef\xbb\xbf' + REWRITTEN.encode(),
    'bom_crlf.py': b'\xef\xbb\xbf' + REWRITTEN.replace('\n', '\r\n').encode(),
    'tabs.py': transform_source(_TABS_AND_TRAILING).code.encode(),
    'latin1.py': transform_source(_LATIN1).code.encode('latin-1'),
    'no_final_newline.py': REWRITTEN.rstrip('\n').encode(),
}


@pytest.fixture(scope='module')
def written(tmp_path_factory):
  root = tmp_path_factory.mktemp('written')
  for name, data in _INPUTS.items():
    write(root / name, data)
  write(root / 'mode.py', SOURCE).chmod(0o751)
  for name, content in (('plain.py', PLAIN), ('clean.py', REWRITTEN), ('only_skipped.py', _ONLY_SKIPPED)):
    write(root / name, content)
    os.utime(root / name, ns=(_OLD_NS, _OLD_NS))
  before = snapshot(root)
  result = vjpify('.', cwd=root)
  return root, before, result


@pytest.mark.parametrize('name', sorted(_INPUTS))
def test_bytes_round_trip_exactly(written, name):
  root, _, result = written
  assert result.returncode == 1, result.stderr
  assert f'Rewriting {name}' in result.stderr.splitlines()
  assert (root / name).read_bytes() == _EXPECTED[name]


def test_tabs_and_trailing_whitespace_outside_the_call_are_kept(written):
  root, _, _ = written
  lines = (root / 'tabs.py').read_bytes().split(b'\n')
  for kept in (b'import flax.linen as nn  ', b'x = {\t1: 2}\t', b'\tdef __call__(self, x):   ',
               b'\t\treturn y  # done \t', b'\x0c', b'z = 1 '):
    assert kept in lines


def test_latin1_file_keeps_its_declaration_and_bytes(written):
  root, _, _ = written
  data = (root / 'latin1.py').read_bytes()
  assert data.startswith(b'# -*- coding: latin-1 -*-\n# caf\xe9 \xb5\n')
  assert b'grad_from_vjp(nn.vjp(' in data


def test_mode_is_kept(written):
  root, _, _ = written
  assert (root / 'mode.py').stat().st_mode & 0o7777 == 0o751
  assert (root / 'mode.py').read_text() == REWRITTEN


@pytest.mark.parametrize('name', ['plain.py', 'clean.py', 'only_skipped.py'])
def test_unchanged_files_are_not_written(written, name):
  root, before, _ = written
  assert snapshot(root)[name] == before[name]
  assert (root / name).stat().st_mtime_ns == _OLD_NS


def test_no_temporary_files_are_left(written):
  root, before, _ = written
  assert sorted(p.name for p in root.iterdir()) == sorted(before)


def test_rewrite_that_does_not_compile_is_not_written(tmp_path):
  # Make the pass emit broken code, as a bug in it would.
  program = '''
import sys, types
from vjpify.transformer import LowerGradToVjp
emit = LowerGradToVjp.transform_module
LowerGradToVjp.transform_module = lambda self, tree: types.SimpleNamespace(code=emit(self, tree).code + ')')
from vjpify.transformer.cli.main import main
raise SystemExit(main(sys.argv[1:]))
'''
  write(tmp_path / 'model.py', SOURCE)
  write(tmp_path / 'plain.py', PLAIN)
  before = snapshot(tmp_path)
  result = vjpify('.', cwd=tmp_path, command=(sys.executable, '-c', program))
  assert result.returncode == 2
  assert ('model.py:8:12: VJ092 internal error: the rewritten file does not compile '
          "(unmatched ')'); file left unchanged; please report this with the file") in result.stderr
  assert snapshot(tmp_path) == before
  assert_no_traceback(result)


@needs_permissions
def test_unwritable_file_is_an_error_and_the_rest_is_written(tmp_path):
  write(tmp_path / 'locked/model.py', SOURCE)
  write(tmp_path / 'open/model.py', SOURCE)
  (tmp_path / 'locked').chmod(0o555)
  try:
    result = _unprivileged_vjpify('.', cwd=tmp_path)
  finally:
    (tmp_path / 'locked').chmod(0o755)
  assert result.returncode == 2
  assert ('locked/model.py: VJ030 cannot write the file: permission denied; file left unchanged; '
          'check its permissions') in result.stderr
  assert (tmp_path / 'locked/model.py').read_text() == SOURCE
  assert (tmp_path / 'open/model.py').read_text() == REWRITTEN
  assert_no_traceback(result)


# --- bad input ------------------------------------------------------------

_BAD = {
    'syntax.py': (SOURCE + 'def broken(:\n').encode(),
    'latin.py': b'# flax grad\n# caf\xe9\n',
    'binary.py': b'\x7fELF\x00\x00flax grad',
    'bogus_coding.py': b'# coding: bogus\nimport flax\n',
}

_MESSAGES = {
    'syntax.py': re.escape('syntax.py:13:12: VJ001 cannot parse: ') + '.+' + re.escape('; file left unchanged; fix the syntax error'),
    'latin.py': re.escape('latin.py:2:6: VJ021 byte 0xe9 is not valid UTF-8 and the file declares no other encoding; '
                          "skipped; save it as UTF-8 or add a '# -*- coding: <encoding> -*-' line"),
    'binary.py': re.escape('binary.py:1:5: VJ020 contains a NUL byte, so it is binary data rather than Python source'),
    'bogus_coding.py': re.escape('bogus_coding.py: VJ022 has an unusable coding declaration (unknown encoding: bogus)'),
    'unreadable.py': re.escape('unreadable.py: VJ010 cannot read the file: permission denied; skipped'),
    'missing.py': re.escape('missing.py: VJ010 cannot read the file: no such file or directory; skipped; check the path'),
    'loop.py': re.escape('loop.py: VJ010 cannot read the file: a symbolic link loop; skipped'),
    'fifo.py': re.escape('fifo.py: VJ011 cannot read the file: not a regular file but a pipe, socket or device'),
    'x.py': re.escape('x.py: VJ010 cannot read the file: it is a directory; skipped; '
                      'add a trailing / to the path to process the files in it'),
}


@pytest.fixture(scope='module')
def bad_run(tmp_path_factory):
  root = tmp_path_factory.mktemp('bad')
  for name, data in _BAD.items():
    write(root / name, data)
  write(root / 'good.py', SOURCE)
  write(root / 'empty.py', b'')
  write(root / 'x.py/inner.py', SOURCE)
  (root / 'loop.py').symlink_to('loop.py')
  os.mkfifo(root / 'fifo.py')  # reading it would block forever
  args = ['.', 'missing.py', 'x.py']
  if _UNPRIVILEGED is not None:
    write(root / 'unreadable.py', SOURCE).chmod(0)
    result = _unprivileged_vjpify(*args, cwd=root)
  else:
    result = vjpify(*args, cwd=root)
  return root, result


@pytest.mark.parametrize('name', sorted(_MESSAGES))
def test_bad_input_gets_one_clear_line(bad_run, name):
  root, result = bad_run
  if name == 'unreadable.py' and not (root / name).exists():
    pytest.skip('running as root without setpriv, so permissions cannot be denied')
  assert result.returncode == 2
  assert re.search(f'^{_MESSAGES[name]}', result.stderr, re.MULTILINE), result.stderr
  assert_no_traceback(result)


@pytest.mark.parametrize('name', sorted(_BAD))
def test_bad_input_is_left_alone(bad_run, name):
  root, _ = bad_run
  assert (root / name).read_bytes() == _BAD[name]


def test_every_other_file_is_still_processed(bad_run):
  root, result = bad_run
  assert (root / 'good.py').read_text() == REWRITTEN
  assert (root / 'x.py/inner.py').read_text() == REWRITTEN  # walked: a folder like any other
  walked = ['binary.py', 'bogus_coding.py', 'fifo.py', 'latin.py', 'loop.py', 'syntax.py', 'unreadable.py']
  if not (root / 'unreadable.py').exists():
    walked.remove('unreadable.py')
  failed = [*walked, 'missing.py', 'x.py']  # in the order processed: the walk, then the paths after '.'
  summary, named = result.stderr.splitlines()[-2:]
  assert summary.endswith(f', {len(failed)} errors')
  assert named == f'vjpify: {len(failed)} files failed: {", ".join(failed)}'


def test_empty_file_is_valid_python_with_nothing_to_do(bad_run):
  root, result = bad_run
  assert 'empty.py' not in result.stderr
  assert (root / 'empty.py').read_bytes() == b''
