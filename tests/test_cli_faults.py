"""Faults outside the files themselves, through the real CLI: a full disk,
a read-only file system. Each file ends either as it was or fully
rewritten, no temporary file is left, the other files are still processed,
and the closing lines name the files that failed.

The faults are made by patching the command's process before it starts
(see ``cli_support.patched``): running as root, a folder cannot be made
read-only, and a disk cannot be filled on purpose.
"""

from __future__ import annotations

from cli_support import PLAIN, REWRITTEN, SOURCE, assert_no_traceback, patched, snapshot, vjpify, write

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
  assert f'full.py:1:1: cannot write the file: {_NO_SPACE}' in result.stderr.splitlines()
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
  assert f'src/pkg/full.py:1:1: cannot write the file: {_NO_SPACE}' in result.stderr.splitlines()
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
  assert (f'ro-mount/model.py:1:1: cannot write the file: {_read_only("file left unchanged")}'
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
  assert f'src/ro-mount/data.json:1:1: cannot copy the file: {_read_only("not copied")}' in lines
  assert f'src/ro-mount/model.py:1:1: cannot write the file: {_read_only("file left unchanged")}' in lines
  assert ('src/ro-mount/sub/plain.py:1:1: cannot create the folder out/ro-mount/sub: '
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
