"""How a run shows itself on a terminal: unified diffs, coloured when
wanted, and a progress bar for long runs.

Colour follows ``--color``: ``auto`` colours a terminal, or any output when
``FORCE_COLOR`` is set (https://force-color.org), but nothing when
``NO_COLOR`` is set (https://no-color.org), which wins over ``FORCE_COLOR``
as in Python's own tracebacks and pytest; ``always`` and ``never`` override
all three.
The progress bar appears only on a terminal, never in pipes, under
``--quiet`` or under pre-commit (which sets ``PRE_COMMIT=1``), and only once
a run has lasted a second (tqdm's own ``TQDM_DELAY`` changes that); tqdm
is imported only then, to keep start-up fast. A run of one long file (a
megabyte or more) shows, under the same rules, the file and the time spent
on it, ticking while the pass runs.
"""

from __future__ import annotations

import difflib
import io
import os
import sys
import threading
from typing import IO

_RESET = '\033[0m'
_STYLES = (('+++', '\033[1m'), ('---', '\033[1m'), ('@@', '\033[36m'), ('+', '\033[32m'), ('-', '\033[31m'))

# A bar is not worth its import for a run this short.
_MIN_FILES_FOR_PROGRESS = 2
_PROGRESS_DELAY_S = 1.0
# A single file this long is worth a line that shows the run is alive.
_LONG_FILE_BYTES = 2**20
_TICK_S = 0.2


def color_wanted(choice: str, stream: IO) -> bool:
  """Whether to colour what goes to ``stream``, for ``--color=choice``."""
  if choice != 'auto':
    return choice == 'always'
  if os.environ.get('NO_COLOR'):
    return False
  if os.environ.get('FORCE_COLOR'):
    return True
  return stream.isatty()


def _lines(text: str) -> list[str]:
  # str.splitlines would also split at form feeds and other separators
  # that are not line breaks in Python source.
  return io.StringIO(text, newline='').readlines()


def unified_diff(path: str, old: str, new: str, *, color: bool = False) -> str:
  """A unified diff of one file, as ``patch -p0`` applies it."""
  lines = []
  for line in difflib.unified_diff(_lines(old), _lines(new), path, path):
    body = line.rstrip('\r\n')
    ending = line[len(body):] or '\n\\ No newline at end of file\n'
    style = next((s for prefix, s in _STYLES if body.startswith(prefix)), None)
    if color and style:
      body = f'{style}{body}{_RESET}'
    lines.append(body + ending)
  return ''.join(lines)


def _delay() -> float:
  try:
    return float(os.environ.get('TQDM_DELAY', _PROGRESS_DELAY_S))
  except ValueError:
    return _PROGRESS_DELAY_S


def progress_wanted(quiet: bool, stream: IO) -> bool:
  return not quiet and not os.environ.get('PRE_COMMIT') and stream.isatty()


class Console:
  """Writes messages to stderr and output to stdout without tearing the
  progress bar, if there is one."""

  def __init__(self, total: int, progress: bool, long_file: tuple[str, int] | None = None):
    """``long_file``: the name and size of the run's only file, if it has one."""
    self._bar = None
    self._ticking: threading.Event | None = None
    long_file = long_file if total == 1 and long_file and long_file[1] >= _LONG_FILE_BYTES else None
    if progress and (total >= _MIN_FILES_FOR_PROGRESS or long_file):
      try:
        import tqdm
      except ImportError:  # The bar is a nicety; an install without it still works.
        return
      # The monitor thread would be copied into forked workers for nothing.
      tqdm.tqdm.monitor_interval = 0
      if long_file is None:
        self._bar = tqdm.tqdm(total=total, unit='file', delay=_delay(), leave=False, file=sys.stderr)
        return
      name, size = long_file
      self._bar = tqdm.tqdm(total=None, desc=f'vjpify: {name} ({size / 2**20:.1f} MB)', bar_format='{desc}: {elapsed}',
                            delay=_delay(), leave=False, file=sys.stderr)
      # One file never starts worker processes, so no fork copies this thread.
      self._ticking = threading.Event()
      threading.Thread(target=self._tick, daemon=True).start()

  def _tick(self) -> None:
    while not self._ticking.wait(_TICK_S):
      self._bar.refresh()

  def __enter__(self) -> Console:
    return self

  def __exit__(self, *exc_info) -> None:
    if self._ticking is not None:
      self._ticking.set()
    if self._bar is not None:
      self._bar.close()

  def advance(self) -> None:
    if self._bar is not None:
      self._bar.update()

  def message(self, text: str) -> None:
    if self._bar is not None:
      self._bar.write(text, file=sys.stderr)
    else:
      print(text, file=sys.stderr, flush=True)

  def output(self, data: bytes) -> None:
    if self._bar is not None:
      with self._bar.external_write_mode(file=sys.stderr):
        self._write(data)
    else:
      self._write(data)

  @staticmethod
  def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
