"""Why a file cannot be read, decoded or written, as one line for the user:
what could not be done, what was found, what vjpify did instead, and what
the user can do.
"""

from __future__ import annotations

import errno

from vjpify.transformer.codes import code

UNREADABLE = code('unreadable')

# What a path was found to be when a regular file was needed.
NOT_REGULAR = 'not a regular file but a pipe, socket or device'


class SourceProblem(Exception):
  """A file cannot be read, decoded or written; ``code`` is the reason's
  (``vjpify.transformer.codes``); ``line`` and ``column`` (1-based) point
  at the offending byte when there is one, None for the file as a whole."""

  def __init__(self, code: str, reason: str, line: int | None = None, column: int | None = None):
    super().__init__(reason)
    self.code = code
    self.reason = reason
    self.line = line
    self.column = column


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


def os_problem(error: OSError, code: str = UNREADABLE, verb: str = _READ, outcome: str = 'skipped',
               advice: str = 'check the path') -> SourceProblem:
  """Turns an OSError into a one-line reason with the code ``code``: what
  could not be done, what was found, what vjpify did instead and what the
  user can do."""
  return SourceProblem(code, _os_reason(error, verb, outcome, advice))

