"""Reading Python sources as Python itself would, and writing files safely.

Reading decodes by PEP 263 (a BOM, a coding declaration, else UTF-8) without
translating newlines, so that encoding the text again gives back the same
bytes. Writing goes to a temporary file in the destination's folder that is
then renamed over the destination, keeping its mode; an interrupt arriving
meanwhile is held back until the rename is done, so every file is always
either entirely old or entirely new. A write whose bytes equal what is
already there does not happen, so modification times stay put.

Nothing here imports libcst: the command line reads every file before it
knows whether any needs parsing.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import io
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import tokenize
from collections.abc import Iterator

STDIN = '-'

_TEMP_SUFFIX = '.vjpify-tmp'

_NOT_REGULAR = 'not a regular file but a pipe, socket or device'


class SourceProblem(Exception):
  """A file cannot be read, decoded or written; ``line`` and ``column``
  (1-based) point at the offending byte when there is one."""

  def __init__(self, reason: str, line: int = 1, column: int = 1):
    super().__init__(reason)
    self.reason = reason
    self.line = line
    self.column = column


def _position(data: bytes, offset: int) -> tuple[int, int]:
  line_start = data.rfind(b'\n', 0, offset) + 1
  return data.count(b'\n', 0, offset) + 1, offset - line_start + 1


# Errors that no change to the file or its path can fix: the advice is
# about the file system, whatever was being done.
_FILE_SYSTEM_FULL = {
    errno.ENOSPC: 'no space left on device',
    errno.EDQUOT: 'disk quota exceeded',
}
_FREE_SPACE = 'free some space and run vjpify again'
_READ_ONLY = 'read-only file system'
_MAKE_WRITABLE = 'make the file system writable, or write elsewhere with --out-dir DIR'
_READ = 'read the file'


def _os_reason(error: OSError, verb: str, outcome: str, advice: str) -> str:
  if error.errno == errno.ENOENT:
    found = 'no such file or directory'
  elif error.errno == errno.ELOOP:
    found = 'a symbolic link loop'
  elif error.errno == errno.EISDIR:
    found = 'it is a directory'
    if verb == _READ:
      outcome, advice = 'skipped', 'add a trailing / to the path to process the files in it'
    else:
      advice = 'give the path of a file, not of a folder'
  elif error.errno in (errno.EACCES, errno.EPERM):
    found = 'permission denied'
  elif error.errno in _FILE_SYSTEM_FULL:
    found, advice = _FILE_SYSTEM_FULL[error.errno], _FREE_SPACE
  elif error.errno == errno.EROFS:
    found, advice = _READ_ONLY, _MAKE_WRITABLE
  else:
    found = error.strerror or type(error).__name__
  return f'cannot {verb}: {found}; {outcome}; {advice}'


def os_problem(error: OSError, verb: str = _READ, outcome: str = 'skipped',
               advice: str = 'check the path') -> SourceProblem:
  """Turns an OSError into a one-line reason: what could not be done, what
  was found, what vjpify did instead and what the user can do."""
  return SourceProblem(_os_reason(error, verb, outcome, advice))


def read_source(path: str) -> bytes:
  """The bytes of ``path`` (``-``: standard input)."""
  if path == STDIN:
    return sys.stdin.buffer.read()
  try:
    # Non-blocking, so that a named pipe called x.py cannot hang the run.
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
    with open(fd, 'rb') as f:
      kind = stat.S_IFMT(os.fstat(fd).st_mode)
      if kind == stat.S_IFDIR:
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
      if kind != stat.S_IFREG:
        raise SourceProblem(f'cannot read the file: {_NOT_REGULAR}; skipped; pass regular files only')
      return f.read()
  except OSError as error:
    raise os_problem(error) from None


def decode_source(data: bytes) -> tuple[str, str]:
  """Decodes ``data`` the way Python decodes a source file.

  Note that newlines are kept as they are, CRLF included, and that a UTF-8
  BOM is reported as the ``utf-8-sig`` encoding so that encoding the text
  with it restores the BOM.

  Returns:
    ``(text, encoding)``.

  Raises:
    SourceProblem: ``data`` is not Python source text.
  """
  if b'\0' in data:
    line, column = _position(data, data.index(b'\0'))
    raise SourceProblem(
        'contains a NUL byte, so it is binary data rather than Python source; '
        'skipped; check that this is the file you meant', line, column)
  try:
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
  except SyntaxError as error:
    # Undecodable bytes in the first two lines fail here, before any
    # declaration is known; say where they are.
    encoding = 'utf-8'
    declaration_error = error.msg
  else:
    declaration_error = None
  try:
    text = data.decode(encoding)
  except UnicodeDecodeError as error:
    line, column = _position(data, error.start)
    bad = data[error.start]
    if encoding in ('utf-8', 'utf-8-sig'):
      reason = (f'byte 0x{bad:02x} is not valid UTF-8 and the file declares no other encoding; '
                "skipped; save it as UTF-8 or add a '# -*- coding: <encoding> -*-' line")
    else:
      reason = (f'byte 0x{bad:02x} is not valid {encoding}, the encoding the file declares; '
                'skipped; fix the coding declaration or the bytes')
    raise SourceProblem(reason, line, column) from None
  if declaration_error:
    raise SourceProblem(f'has an unusable coding declaration ({declaration_error}); skipped; '
                        'fix or remove the coding declaration')
  return text, encoding


def encode_source(text: str, encoding: str) -> bytes:
  """Encodes text from :func:`decode_source` back into the file's encoding."""
  try:
    return text.encode(encoding)
  except UnicodeEncodeError as error:
    raise SourceProblem(
        f'the new text cannot be encoded as {encoding} ({error.reason}); '
        'file left unchanged; please report this with the file') from None


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
    raise SourceProblem(f'cannot copy the file: {_NOT_REGULAR}; not copied; leave it out with --exclude')
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
