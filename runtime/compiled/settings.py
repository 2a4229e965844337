"""The cache's limits and when it compiles: defaults, checks, and the environment variables that set them.

``VJPIFY_CACHE_ENTRIES`` and ``VJPIFY_CACHE_BYTES`` bound the cache,
``VJPIFY_COMPILE`` (``tiered``, ``always``, ``never``) chooses when to
compile. They are read when the runtime's state is first used, never at
import: a bad value must not make every rewritten module fail to import, so
it is a ``RuntimeWarning`` that names the variable, the value, what was
expected and the default used instead.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from typing import NamedTuple

__all__ = ['DEFAULT_LIMITS', 'DEFAULT_MODE', 'Limits', 'MODES', 'checked_limits', 'checked_mode', 'from_environment']

MODES = ('tiered', 'always', 'never')
DEFAULT_MODE = 'tiered'


class Limits(NamedTuple):
  """How many keys, and how many bytes of entries, the cache keeps."""

  entries: int
  bytes: int


DEFAULT_LIMITS = Limits(256, 512 * 1024 * 1024)

# Frames of this folder are the runtime's own: a warning about the
# environment points at the first line outside it, where the user's code
# first used the runtime.
_RUNTIME_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def checked_limits(previous: Limits, entries: int | None, bytes: int | None) -> Limits:  # pylint: disable=redefined-builtin
  """``previous`` with the limits given; a ValueError naming a limit that is not a positive int."""
  for name, value in (('entries', entries), ('bytes', bytes)):
    if value is not None and (not isinstance(value, int) or value < 1):
      raise ValueError(f'set_cache_limits({name}={value!r}): expected a positive int')
  return Limits(entries or previous.entries, bytes or previous.bytes)


def checked_mode(mode: str) -> str:
  """``mode``, or a ValueError when it is not one of :data:`MODES`."""
  if mode not in MODES:
    raise ValueError(f'set_mode({mode!r}): expected one of {", ".join(MODES)}')
  return mode


def _outside_runtime() -> int:
  """The ``stacklevel`` of the first frame outside the runtime, for a warning issued by the caller."""
  frame, level = sys._getframe(1), 1  # pylint: disable=protected-access
  while frame.f_back is not None and frame.f_code.co_filename.startswith(_RUNTIME_FOLDER):
    frame, level = frame.f_back, level + 1
  return level


def _ignored(name: str, text: str, expected: str, default: object) -> None:
  warnings.warn(f'{name}={text!r}: expected {expected}; using the default, {default}', RuntimeWarning,
                stacklevel=_outside_runtime())


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
  text = environ.get(name)
  if text is None:
    return default
  try:
    value = int(text)
  except ValueError:
    _ignored(name, text, 'a whole number', default)
    return default
  if value < 1:
    _ignored(name, text, 'a positive number', default)
    return default
  return value


def from_environment(environ: Mapping[str, str] | None = None) -> tuple[Limits, str]:
  """The limits and the mode that the environment sets, each bad value warned about and left at its default."""
  if environ is None:
    environ = os.environ
  limits = Limits(_positive(environ, 'VJPIFY_CACHE_ENTRIES', DEFAULT_LIMITS.entries),
                  _positive(environ, 'VJPIFY_CACHE_BYTES', DEFAULT_LIMITS.bytes))
  mode = environ.get('VJPIFY_COMPILE', DEFAULT_MODE)
  if mode not in MODES:
    _ignored('VJPIFY_COMPILE', mode, f'one of {", ".join(MODES)}', DEFAULT_MODE)
    mode = DEFAULT_MODE
  return limits, mode
