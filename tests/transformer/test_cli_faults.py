"""Faults outside the files themselves, through the real CLI: a worker
process that dies, a full disk, a read-only file system. Each file ends
either as it was or fully rewritten, no temporary file is left, the other
files are still processed, and the closing lines name the files that failed.

The faults are made by patching the command's process before it starts
(see ``cli_support.patched``): running as root, a folder cannot be made
read-only, and a disk cannot be filled on purpose.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from support.cli import (
    PLAIN, REWRITTEN, SOURCE, TIMEOUT_S, assert_no_traceback, cli_env, patched, snapshot, vjpify, write)

def _names(root) -> list[str]:
  return sorted(snapshot(root))


# fsync fails for the temporary file of any file named *full*: a disk that
# fills up while the new contents are written.
_DISK_FULL = '''
import errno, os

fsync = os.fsync


def full_fsync(fd):
  if 'full' in os.path.basename(os.readlink(f'/proc/self/fd/{fd}')):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  return fsync(fd)


os.fsync = full_fsync
'''

_NO_SPACE = 'no space left on device; file left unchanged; free some space and run vjpify again'


def test_disk_full_in_place(tmp_path):
  for name in ('a.py', 'full.py', 'z.py'):
    write(tmp_path / name, SOURCE)
  result = vjpify('.', cwd=tmp_path, command=patched(_DISK_FULL))
  assert result.returncode == 2
  assert f'full.py: VJ030 cannot write the file: {_NO_SPACE}' in result.stderr.splitlines()
  assert result.stderr.splitlines()[-1] == 'vjpify: 1 file failed: full.py'
  assert [(tmp_path / name).read_text() for name in ('a.py', 'full.py', 'z.py')] == [REWRITTEN, SOURCE, REWRITTEN]
  assert _names(tmp_path) == ['a.py', 'full.py', 'z.py']
  assert_no_traceback(result)


def test_disk_full_out_dir_and_report(tmp_path):
  write(tmp_path / 'src/a.py', SOURCE)
  write(tmp_path / 'src/pkg/full.py', SOURCE)
  write(tmp_path / 'src/pkg/plain.py', PLAIN)
  before = snapshot(tmp_path / 'src')
  result = vjpify('src', '--out-dir', 'out', '--report', 'full-report.json', cwd=tmp_path, command=patched(_DISK_FULL))
  assert result.returncode == 2
  assert f'src/pkg/full.py: VJ030 cannot write the file: {_NO_SPACE}' in result.stderr.splitlines()
  assert f'vjpify: error: --report full-report.json: cannot write the file: {_NO_SPACE}' in result.stderr
  assert result.stderr.splitlines()[-1] == 'vjpify: 1 file failed: src/pkg/full.py'
  assert snapshot(tmp_path / 'src') == before
  assert _names(tmp_path / 'out') == ['a.py', 'pkg/plain.py']
  assert (tmp_path / 'out/a.py').read_text() == REWRITTEN
  assert not (tmp_path / 'full-report.json').exists()
  assert_no_traceback(result)


# Creating anything under a folder named ro-mount fails as on a file system
# mounted read-only.
_READ_ONLY = '''
import errno, os

os_open, os_mkdir = os.open, os.mkdir


def refused(path):
  return 'ro-mount' in os.path.abspath(path).split(os.sep)


def read_only_open(path, flags, *args, **kwargs):
  if flags & os.O_CREAT and refused(path):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
  return os_open(path, flags, *args, **kwargs)


def read_only_mkdir(path, *args, **kwargs):
  if refused(path):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
  return os_mkdir(path, *args, **kwargs)


os.open, os.mkdir = read_only_open, read_only_mkdir
'''

def _read_only(outcome: str) -> str:
  return f'read-only file system; {outcome}; make the file system writable, or write elsewhere with --out-dir DIR'


def test_read_only_file_system_in_place(tmp_path):
  write(tmp_path / 'ro-mount/model.py', SOURCE)
  write(tmp_path / 'rw/model.py', SOURCE)
  result = vjpify('.', cwd=tmp_path, command=patched(_READ_ONLY))
  assert result.returncode == 2
  assert (f'ro-mount/model.py: VJ030 cannot write the file: {_read_only("file left unchanged")}'
          in result.stderr.splitlines())
  assert result.stderr.splitlines()[-1] == 'vjpify: 1 file failed: ro-mount/model.py'
  assert (tmp_path / 'ro-mount/model.py').read_text() == SOURCE
  assert (tmp_path / 'rw/model.py').read_text() == REWRITTEN
  assert _names(tmp_path) == ['ro-mount/model.py', 'rw/model.py']
  assert_no_traceback(result)


def test_read_only_file_system_under_out_dir(tmp_path):
  write(tmp_path / 'src/model.py', SOURCE)
  write(tmp_path / 'src/ro-mount/model.py', SOURCE)
  write(tmp_path / 'src/ro-mount/data.json', '{}\n')
  write(tmp_path / 'src/ro-mount/sub/plain.py', PLAIN)
  (tmp_path / 'out/ro-mount').mkdir(parents=True)  # the mount point
  result = vjpify('src', '--out-dir', 'out', '--copy-other-files', cwd=tmp_path, command=patched(_READ_ONLY))
  assert result.returncode == 2
  lines = result.stderr.splitlines()
  assert f'src/ro-mount/data.json: VJ032 cannot copy the file: {_read_only("not copied")}' in lines
  assert f'src/ro-mount/model.py: VJ030 cannot write the file: {_read_only("file left unchanged")}' in lines
  assert ('src/ro-mount/sub/plain.py: VJ033 cannot create the folder out/ro-mount/sub: '
          f'{_read_only("nothing written there")}') in lines
  assert lines[-1] == ('vjpify: 3 files failed: src/ro-mount/data.json, src/ro-mount/model.py, '
                       'src/ro-mount/sub/plain.py')
  assert _names(tmp_path / 'out') == ['model.py']
  assert (tmp_path / 'out/model.py').read_text() == REWRITTEN
  assert_no_traceback(result)


def test_many_failed_files_are_named_up_to_ten(tmp_path):
  for i in range(12):
    write(tmp_path / f'broken{i:02}.py', 'import flax\ngrad(\n')
  result = vjpify('--jobs=1', '.', cwd=tmp_path)
  assert result.returncode == 2
  assert result.stderr.splitlines()[-1] == (
      f'vjpify: 12 files failed: {", ".join(f"broken{i:02}.py" for i in range(10))} '
      'and 2 more (listed in the errors above)')


# In worker processes only (the first file is transformed in the command's
# own process): a file named *crash_<how>* ends its process (SIGKILL,
# SIGTERM or exit status 3) once a file named *slow* is held by another
# worker, so that the pool is sure to lose more than the file at fault;
# *slow* and *victim* block the first time they are transformed, *victim*
# after saying which process holds it.
_WORKER_FAULTS = '''
import functools, multiprocessing, os, pathlib, signal, time
import vjpify.transformer.engine.runner as runner

FLAGS = pathlib.Path({flags!r})
transform = runner.transform_one


def wait_for(flag):
  deadline = time.monotonic() + {timeout}
  while not flag.exists() and time.monotonic() < deadline:
    time.sleep(0.01)


def first_time(name):
  flag = FLAGS / name
  if flag.exists():
    return False
  (FLAGS / 'tmp').write_text(str(os.getpid()))
  (FLAGS / 'tmp').rename(flag)
  return True


@functools.wraps(transform)
def transform_one(path, data, *args):
  if multiprocessing.parent_process() is not None:
    name = pathlib.Path(path).stem
    if 'crash' in name:
      wait_for(FLAGS / 'slow')
      if name.endswith('exit'):
        os._exit(3)
      os.kill(os.getpid(), signal.SIGTERM if name.endswith('term') else signal.SIGKILL)
    for blocking in ('slow', 'victim'):
      if blocking in name and first_time(blocking):
        time.sleep({timeout})
  return transform(path, data, *args)


runner.transform_one = transform_one
'''


def _worker_faults(flags) -> tuple[str, ...]:
  flags.mkdir()
  return patched(_WORKER_FAULTS.format(flags=str(flags), timeout=TIMEOUT_S))


_REPORT_IT = 'please report this with the file'


@pytest.mark.parametrize('how, ended, advice', [
    pytest.param('kill', 'killed by SIGKILL', 'if memory is short (the out-of-memory killer sends SIGKILL), '
                 f'free some and run vjpify again; otherwise {_REPORT_IT}', id='SIGKILL'),
    pytest.param('term', 'killed by SIGTERM', _REPORT_IT, id='SIGTERM'),
    pytest.param('exit', 'exited with status 3', _REPORT_IT, id='exit-status'),
])
def test_worker_that_dies_on_a_file_fails_that_file_only(tmp_path, how, ended, advice):
  tree, flags = tmp_path / 'tree', tmp_path / 'flags'
  crash = f'm2_crash_{how}.py'
  names = ['m0.py', 'm1_slow.py', crash, *(f'm{i}.py' for i in range(3, 9))]
  for name in names:
    write(tree / name, SOURCE)
  result = vjpify('--jobs=2', '--report', '../report.json', '.', cwd=tree, command=_worker_faults(flags))
  assert result.returncode == 2, result.stderr
  assert (f'{crash}: VJ091 the worker process transforming this file died, also when run again with this '
          f'file alone ({ended}); file left unchanged; {advice}') in result.stderr.splitlines()
  assert result.stderr.splitlines()[-2:] == [
      'vjpify: 9 files scanned, 8 changed, 8 sites rewritten, 8 skipped, 1 error',
      f'vjpify: 1 file failed: {crash}']
  assert (flags / 'slow').exists()  # the pool held m1_slow.py too when it broke
  assert {name: (tree / name).read_text() for name in names} == {
      name: SOURCE if name == crash else REWRITTEN for name in names}
  assert _names(tree) == names  # no temporary files
  report = json.loads((tmp_path / 'report.json').read_text())
  assert report['summary']['errors'] == 1
  assert [(s['path'], s['kind']) for s in report['sites'] if s['action'] == 'error'] == [(crash, 'file')]
  assert_no_traceback(result)


def _parent(pid: int) -> int:
  with open(f'/proc/{pid}/stat') as f:
    return int(f.read().rsplit(')', 1)[1].split()[1])


def _wait_for_pid(flag, process) -> int:
  deadline = time.monotonic() + TIMEOUT_S
  while not flag.exists():
    assert process.poll() is None and time.monotonic() < deadline, 'no worker took the file'
    time.sleep(0.01)
  return int(flag.read_text())


def test_worker_killed_from_outside_costs_no_file(tmp_path):
  tree, flags = tmp_path / 'tree', tmp_path / 'flags'
  names = ['m0.py', 'm1_victim.py', 'm2.py', 'm3.py', 'm4.py']
  for name in names:
    write(tree / name, SOURCE)
  process = subprocess.Popen([*_worker_faults(flags), '--jobs=2', '.'], cwd=tree, env=cli_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    worker = _wait_for_pid(flags / 'victim', process)
    assert _parent(worker) == process.pid
    os.kill(worker, signal.SIGKILL)  # as the out-of-memory killer would
    _, stderr = process.communicate(timeout=TIMEOUT_S)
  finally:
    process.kill()
  assert process.returncode == 1, stderr
  assert stderr.splitlines()[-1] == 'vjpify: 5 files scanned, 5 changed, 5 sites rewritten, 5 skipped, 0 errors'
  assert all((tree / name).read_text() == REWRITTEN for name in names)
  assert _names(tree) == names
  assert 'Traceback' not in stderr
