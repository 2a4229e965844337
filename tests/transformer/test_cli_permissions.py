"""Writing users' files as they expect, as root and as an unprivileged
user: a file without write permission is refused (exit 2, nothing
changed), and a rewritten file keeps its mode, owner, group and hard links.

The tests here run as root, whom ``os.access`` always allows, so vjpify
reads the mode bits for root; the unprivileged runs fork this process and
drop to the ``nobody`` user (``os.setuid``), so that they need nothing
from the file system that such a user could not read.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from support.cli import REWRITTEN, SOURCE, vjpify, write

from vjpify.transformer import transform_source
from vjpify.transformer.cli.main import main

try:
  _NOBODY = pwd.getpwnam('nobody')
except KeyError:
  _NOBODY = None

_AS_ROOT = hasattr(os, 'geteuid') and os.geteuid() == 0
needs_root = pytest.mark.skipif(not _AS_ROOT or _NOBODY is None,
                                reason='needs root and a nobody user, to own files as another user')

_READ_ONLY = ('model.py: VJ030 cannot write the file: it is read-only (mode 444); file left unchanged; '
              'make it writable (chmod u+w model.py) to have it rewritten')


@pytest.fixture
def shared():
  """A folder that the nobody user may enter and write (tmp_path's
  parents are root's alone)."""
  folder = Path(tempfile.mkdtemp(prefix='vjpify-permissions-'))
  folder.chmod(0o777)
  transform_source(SOURCE, 'warm.py')  # libcst loaded here, before any fork drops root
  yield folder
  shutil.rmtree(folder)


def _as_nobody(*args: str, cwd: Path) -> tuple[int, str]:
  """Runs the command line in a child of this process that is the nobody
  user; its exit status and what it printed on stderr."""
  log = cwd / '.stderr'
  pid = os.fork()
  if pid == 0:  # pragma: no cover (the child)
    status = 70
    try:
      os.chdir(cwd)
      # pytest's capture replaced sys.stderr; the child writes to a file.
      sys.stderr = open(log, 'w', encoding='utf-8')  # noqa: SIM115 (closed by the exit)
      os.setgroups([])
      os.setgid(_NOBODY.pw_gid)
      os.setuid(_NOBODY.pw_uid)
      status = main(['-j', '1', *args])
    finally:
      sys.stderr.flush()
      os._exit(status)
  _, status = os.waitpid(pid, 0)
  text = log.read_text()
  log.unlink()
  return os.waitstatus_to_exitcode(status), text


def _state(path: Path) -> tuple[bytes, int, int, int, int]:
  info = path.stat()
  return path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, info.st_ino


def test_a_read_only_file_is_refused_as_root(tmp_path):
  write(tmp_path / 'model.py', SOURCE).chmod(0o444)
  write(tmp_path / 'other.py', SOURCE)
  before = _state(tmp_path / 'model.py')
  result = vjpify('model.py', 'other.py', cwd=tmp_path)
  assert result.returncode == 2
  assert result.stderr.splitlines()[0] == _READ_ONLY
  assert _state(tmp_path / 'model.py') == before
  assert (tmp_path / 'other.py').read_text() == REWRITTEN


@needs_root
def test_a_read_only_file_is_refused_as_an_unprivileged_user(shared):
  path = write(shared / 'model.py', SOURCE)
  os.chown(path, _NOBODY.pw_uid, _NOBODY.pw_gid)
  path.chmod(0o444)
  before = _state(path)
  status, stderr = _as_nobody('model.py', cwd=shared)
  assert status == 2
  assert stderr.splitlines()[0] == _READ_ONLY
  assert _state(path) == before


@needs_root
def test_a_file_the_user_may_not_write_is_refused(shared):
  path = write(shared / 'model.py', SOURCE)  # root's, 644: others may only read it
  before = _state(path)
  status, stderr = _as_nobody('model.py', cwd=shared)
  assert status == 2
  assert stderr.splitlines()[0] == (
      'model.py: VJ030 cannot write the file: it is read-only (mode 644); file left unchanged; '
      'make it writable (chmod u+w model.py) to have it rewritten')
  assert _state(path) == before


@needs_root
def test_root_keeps_the_owner_group_and_mode(shared):
  path = write(shared / 'model.py', SOURCE)
  os.chown(path, _NOBODY.pw_uid, _NOBODY.pw_gid)
  path.chmod(0o640)
  assert vjpify('model.py', cwd=shared).returncode == 1
  data, mode, uid, gid, _ = _state(path)
  assert (data.decode(), mode, uid, gid) == (REWRITTEN, 0o640, _NOBODY.pw_uid, _NOBODY.pw_gid)


@needs_root
def test_a_user_who_cannot_give_the_file_away_writes_through_it(shared):
  # Group-writable, another user's: a new file would be nobody's, so the
  # text goes into the file itself and root stays its owner.
  path = write(shared / 'model.py', SOURCE)
  os.chown(path, 0, _NOBODY.pw_gid)
  path.chmod(0o664)
  _, _, _, _, inode = _state(path)
  status, stderr = _as_nobody('model.py', cwd=shared)
  assert status == 1, stderr
  assert _state(path) == (REWRITTEN.encode(), 0o664, 0, _NOBODY.pw_gid, inode)
  assert sorted(p.name for p in shared.iterdir()) == ['model.py']


def test_hard_links_keep_sharing_the_file(tmp_path):
  path = write(tmp_path / 'model.py', SOURCE)
  path.chmod(0o600)
  os.link(path, tmp_path / 'alias.py')
  _, _, _, _, inode = _state(path)
  assert vjpify('model.py', cwd=tmp_path).returncode == 1
  assert _state(path) == _state(tmp_path / 'alias.py') == (REWRITTEN.encode(), 0o600, *_state(path)[2:4], inode)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['alias.py', 'model.py']


def test_a_file_with_one_name_is_replaced_whole_with_its_mode(tmp_path):
  path = write(tmp_path / 'model.py', SOURCE)
  path.chmod(0o751)
  _, _, _, _, inode = _state(path)
  assert vjpify('model.py', cwd=tmp_path).returncode == 1
  data, mode, _, _, new_inode = _state(path)
  assert (data.decode(), mode) == (REWRITTEN, 0o751) and new_inode != inode
