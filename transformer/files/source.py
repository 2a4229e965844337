"""Reading Python sources as Python itself would.

Reading decodes by PEP 263 (a BOM, a coding declaration, else UTF-8) without
translating newlines, so that encoding the text again gives back the same
bytes.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
import tokenize

from vjpify.transformer.codes import code
from vjpify.transformer.files.problems import NOT_REGULAR, SourceProblem, os_problem

# The path that stands for standard input (and, as a destination, output).
STDIN = '-'


def _position(data: bytes, offset: int) -> tuple[int, int]:
  line_start = data.rfind(b'\n', 0, offset) + 1
  return data.count(b'\n', 0, offset) + 1, offset - line_start + 1


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
        raise SourceProblem(code('not-a-regular-file'),
                            f'cannot read the file: {NOT_REGULAR}; skipped; pass regular files only')
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
        code('binary-file'), 'contains a NUL byte, so it is binary data rather than Python source; '
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
    raise SourceProblem(code('undecodable'), reason, line, column) from None
  if declaration_error:
    raise SourceProblem(code('bad-coding-declaration'),
                        f'has an unusable coding declaration ({declaration_error}); skipped; '
                        'fix or remove the coding declaration')
  return text, encoding


def encode_source(text: str, encoding: str) -> bytes:
  """Encodes text from :func:`decode_source` back into the file's encoding."""
  try:
    return text.encode(encoding)
  except UnicodeEncodeError as error:
    raise SourceProblem(
        code('unencodable-rewrite'), f'the new text cannot be encoded as {encoding} ({error.reason}); '
        'file left unchanged; please report this with the file') from None

