"""Writing files safely: to a temporary file in the destination's folder
that is then renamed over the destination, keeping its mode.

An interrupt arriving meanwhile is held back until the rename is done, so
every file is always either entirely old or entirely new. A write whose
bytes equal what is already there does not happen, so modification times
stay put.
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


def _replace_with(target: str, fill, mode: int) -> None:
  directory, name = os.path.split(target)
  with interrupts_held():
    fd, temp = tempfile.mkstemp(prefix=f'.{name}.', suffix=_TEMP_SUFFIX, dir=directory or '.')
    try:
      with os.fdopen(fd, 'wb') as f:
        fill(f)
        f.flush()
        os.fsync(f.fileno())
      os.chmod(temp, mode)
      os.replace(temp, target)
    except BaseException:
      with contextlib.suppress(OSError):
        os.unlink(temp)
      raise


def write_atomically(path: str, data: bytes, mode: int | None = None, *, expected: bytes | None = None) -> bool:
  """Replaces the contents of ``path`` (the file a symlink points to, if it
  is one) with ``data``, unless they are already equal.

  Args:
    path: the file to write; its folder must exist.
    data: the new contents.
    mode: permission bits for the file; by default, those it has now, or the
      umask's default for a new file.
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
    raise SourceProblem('the file changed while vjpify was running; left as it is now; run vjpify again')
  try:
    if mode is None:
      try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
      except FileNotFoundError:
        mode = _default_mode()
    _replace_with(target, lambda f: f.write(data), mode)
  except OSError as error:
    raise os_problem(error, 'write the file', 'file left unchanged', 'check its permissions') from None
  return True


def copy_atomically(source: str, destination: str) -> bool:
  """Copies ``source`` over ``destination`` with its mode, unless they
  already hold the same bytes; returns whether anything was written."""
  if not os.path.isfile(source):
    raise SourceProblem(f'cannot copy the file: {NOT_REGULAR}; not copied; leave it out with --exclude')
  try:
    if os.path.exists(destination) and filecmp.cmp(source, destination, shallow=False):
      return False
    mode = stat.S_IMODE(os.stat(source).st_mode)
    with open(source, 'rb') as src:
      _replace_with(os.path.realpath(destination), lambda f: shutil.copyfileobj(src, f), mode)
  except OSError as error:
    raise os_problem(error, 'copy the file', 'not copied', 'check both paths') from None
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
    raise os_problem(error, f'create the folder {folder}', 'nothing written there', 'check the output path') from None
