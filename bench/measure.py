"""Timing and memory measurement shared by the benchmarks.

Ratios are only meaningful when both sides see the same machine, so the
sides of a comparison run interleaved, round by round, in alternating order,
and each side is summarised by its median.
"""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

try:
  import psutil
except ImportError:  # memory then goes unmeasured, reported as 0
  psutil = None


def interleaved(calls: dict[str, Callable[[], object]], rounds: int, warmup: int = 2) -> dict[str, float]:
  """Median seconds per call of each of ``calls``, timed side by side.

  Each round calls every entry once; odd rounds go in reverse order so that
  neither side always runs first after the other.
  """
  for call in calls.values():
    for _ in range(warmup):
      call()
  times: dict[str, list[float]] = {name: [] for name in calls}
  names = list(calls)
  for index in range(rounds):
    for name in names if index % 2 == 0 else reversed(names):
      start = time.perf_counter()
      calls[name]()
      times[name].append(time.perf_counter() - start)
  return {name: statistics.median(values) for name, values in times.items()}


class _PeakRss:
  """Samples the summed resident memory of a process and its descendants."""

  def __init__(self, pid: int, interval: float = 0.05):
    self._interval = interval
    self.peak = 0
    self._done = threading.Event()
    self._thread = threading.Thread(target=self._sample, daemon=True)
    if psutil is not None:
      self._process = psutil.Process(pid)
      self._thread.start()

  def _sample(self) -> None:
    while not self._done.is_set():
      try:
        processes = [self._process, *self._process.children(recursive=True)]
      except psutil.Error:
        return
      total = 0
      for process in processes:
        try:
          total += process.memory_info().rss
        except psutil.Error:
          pass
      self.peak = max(self.peak, total)
      self._done.wait(self._interval)

  def stop(self) -> int:
    self._done.set()
    if self._thread.is_alive():
      self._thread.join()
    return self.peak


def run_command(argv: Sequence[str], cwd: str | None = None, timeout: float = 900) -> tuple[float, int, int]:
  """Runs ``argv``; wall seconds, exit status, and peak memory of its process tree in bytes."""
  start = time.perf_counter()
  process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  sampler = _PeakRss(process.pid)
  try:
    status = process.wait(timeout=timeout)
  except subprocess.TimeoutExpired:
    process.kill()
    process.wait()
    status = -9
  elapsed = time.perf_counter() - start
  return elapsed, status, sampler.stop()


def interleaved_commands(commands: dict[str, Sequence[str]], rounds: int, cwd: str | None = None,
                         warmup: int = 1) -> dict[str, dict[str, float]]:
  """Median wall seconds and peak memory of each command, run side by side.

  Returns, per command: ``seconds`` (median), ``peak_mb`` (largest over the
  rounds) and ``status`` (the last exit status).
  """
  for argv in commands.values():
    for _ in range(warmup):
      run_command(argv, cwd)
  runs: dict[str, list[tuple[float, int, int]]] = {name: [] for name in commands}
  names = list(commands)
  for index in range(rounds):
    for name in names if index % 2 == 0 else reversed(names):
      runs[name].append(run_command(commands[name], cwd))
  return {
      name: {
          'seconds': statistics.median(seconds for seconds, _, _ in results),
          'peak_mb': max(peak for _, _, peak in results) / 2**20,
          'status': results[-1][1],
      }
      for name, results in runs.items()
  }
