"""Writing files safely, as a careful person would by hand: never a
half-written file, and the file's mode, owner, group and links as they were.

A file with one name is replaced: the new bytes go to a temporary file in
its folder, are flushed to disk, given the file's mode, owner and group,
and renamed over it. A file with several hard links (or whose owner this
user cannot give to a new file) is written through its own inode instead,
so that every name sees the new text: the bytes first go to a temporary
file beside it, flushed to disk, then into the file in one write and a
truncate, flushed again, and the temporary file is removed. An interrupt
arriving meanwhile is held back until the write is done, so every file is
always either entirely old or entirely new; only a crash of the machine in
the moment of that one write could leave such a file half written, and the
temporary file then still holds the whole new text.

A file without write permission is not written, as ruff refuses it: for
root, whom ``os.access`` always allows, a file with no write bit in its
mode counts as read-only too. A write whose bytes equal what is already
there does not happen, so modification times stay put.
"""

from __future__ import annotations

import contextlib
import filecmp
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator

from vjpify.transformer.codes import code
from vjpify.transformer.files.problems import NOT_REGULAR, SourceProblem, os_problem

_TEMP_SUFFIX = '.vjpify-tmp'


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
  """Delays Ctrl-C until the block is done, then delivers it to whatever
  handled it before (where signals can be caught: the main thread)."""
  if (threading.current_thread() is not threading.main_thread()
      or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
    yield
    return
  received: list[int] = []
  previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, previous)
    if received:
      signal.raise_signal(signal.SIGINT)


def _default_mode() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return 0o666 & ~mask


def _same_bytes(path: str, data: bytes) -> bool:
  try:
    if os.path.getsize(path) != len(data):
      return False
    with open(path, 'rb') as f:
      return f.read() == data
  except OSError:
    return False


def _keeps_owner(temp: str, existing: os.stat_result | None) -> bool:
  """Gives ``temp`` the owner and group of the file it replaces; False when
  this user cannot (only root may give a file away)."""
  if existing is None:
    return True
  try:
    os.chown(temp, existing.st_uid, existing.st_gid)
  except PermissionError:
    now = os.stat(temp)
    return (now.st_uid, now.st_gid) == (existing.st_uid, existing.st_gid)
  return True


def _write_through(target: str, temp: str) -> None:
  """Copies the bytes of ``temp`` into ``target``'s own inode."""
  with open(temp, 'rb') as f:
    data = f.read()
  fd = os.open(target, os.O_WRONLY)
  try:
    view = memoryview(data)
    while view:
      view = view[os.write(fd, view):]
    os.ftruncate(fd, len(data))
    os.fsync(fd)
  finally:
    os.close(fd)


def _replace_with(target: str, fill, mode: int) -> None:
  directory, name = os.path.split(target)
  try:
    existing = os.stat(target)
  except FileNotFoundError:
    existing = None
  with interrupts_held():
    fd, temp = tempfile.mkstemp(prefix=f'.{name}.', suffix=_TEMP_SUFFIX, dir=directory or '.')
    try:
      with os.fdopen(fd, 'wb') as f:
        fill(f)
        f.flush()
        os.fsync(f.fileno())
      os.chmod(temp, mode)
      if (existing is None or existing.st_nlink == 1) and _keeps_owner(temp, existing):
        os.replace(temp, target)
      else:
        _write_through(target, temp)
        os.unlink(temp)
    except BaseException:
      with contextlib.suppress(OSError):
        os.unlink(temp)
      raise


def _read_only(path: str, existing: os.stat_result) -> SourceProblem | None:
  """Why ``path`` may not be written, as ruff would refuse it; None when
  it may."""
  mode = stat.S_IMODE(existing.st_mode)
  if getattr(os, 'geteuid', lambda: None)() == 0:
    writable = bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
  else:
    writable = os.access(path, os.W_OK)
  if writable:
    return None
  return SourceProblem(code('unwritable'), f'cannot write the file: it is read-only (mode {mode:o}); '
                       f'file left unchanged; make it writable (chmod u+w {path}) to have it rewritten')


def write_atomically(path: str, data: bytes, mode: int | None = None, *, expected: bytes | None = None) -> bool:
  """Replaces the contents of ``path`` (the file a symlink points to, if it
  is one) with ``data``, unless they are already equal.

  Args:
    path: the file to write; its folder must exist.
    data: the new contents.
    mode: permission bits for the file, chosen by the caller (an output
      folder's copy of a source), whatever the file's own say; by default,
      those it has now (and a file without write permission is refused),
      or the umask's default for a new file.
    expected: what the file must still hold, to catch an edit made since it
      was read; None to write whatever it holds.

  Returns:
    Whether the file was written.

  Raises:
    SourceProblem: the file could not be written; it is as it was.
  """
  target = os.path.realpath(path)
  if _same_bytes(target, data):
    return False
  if expected is not None and not _same_bytes(target, expected):
    raise SourceProblem(code('changed-while-running'),
                        'the file changed while vjpify was running; left as it is now; run vjpify again')
  try:
    if mode is None:
      try:
        existing = os.stat(target)
      except FileNotFoundError:
        mode = _default_mode()
      else:
        refused = _read_only(path, existing)
        if refused:
          raise refused
        mode = stat.S_IMODE(existing.st_mode)
    _replace_with(target, lambda f: f.write(data), mode)
  except OSError as error:
    raise os_problem(error, code('unwritable'), 'write the file', 'file left unchanged',
                     'check its permissions') from None
  return True


def copy_atomically(source: str, destination: str) -> bool:
  """Copies ``source`` over ``destination`` with its mode, unless they
  already hold the same bytes; returns whether anything was written."""
  if not os.path.isfile(source):
    raise SourceProblem(code('not-copied'),
                        f'cannot copy the file: {NOT_REGULAR}; not copied; leave it out with --exclude')
  try:
    if os.path.exists(destination) and filecmp.cmp(source, destination, shallow=False):
      return False
    mode = stat.S_IMODE(os.stat(source).st_mode)
    with open(source, 'rb') as src:
      _replace_with(os.path.realpath(destination), lambda f: shutil.copyfileobj(src, f), mode)
  except OSError as error:
    raise os_problem(error, code('not-copied'), 'copy the file', 'not copied', 'check both paths') from None
  return True


def source_mode(path: str) -> int | None:
  """The permission bits of ``path``, or None when it has none to give."""
  try:
    return stat.S_IMODE(os.stat(path).st_mode)
  except OSError:
    return None


def ensure_folder(path: str) -> None:
  """Creates the folder that will hold ``path``."""
  folder = os.path.dirname(path)
  if not folder:
    return
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError as error:
    raise os_problem(error, code('no-output-folder'), f'create the folder {folder}', 'nothing written there',
                     'check the output path') from None
