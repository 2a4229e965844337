"""The cache of compiled entries, and the counts behind ``compiled.cache_info()``.

Calls are first sorted by a key computed before anything runs: the code
of ``fn`` and what its closure holds, the module's type and fields, the
scope's state and rng counters. Each key holds a short list of entries,
each a ``jax.jit`` of the traced call with the guards its traces recorded;
a call runs the first entry whose guards all pass. When none does, a new
entry is traced, up to :data:`MAX_ENTRIES_PER_KEY`; past that, calls with
this key run uncompiled (TorchDynamo's ``cache_size_limit``). A trace that
did something observable, or failed, leaves a negative entry: calls that
pass its guards (what it read until it stopped) run uncompiled without
tracing again. Keys are evicted least recently used first.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, NamedTuple

import jax

from vjpify.runtime.compiled.guards import Guards
from vjpify.runtime.compiled.plumbing import Record

__all__ = ['Bucket', 'CacheInfo', 'Entry', 'MAX_ENTRIES_PER_KEY', 'bucket_for', 'clear', 'info', 'stats']

MAX_KEYS = 256
MAX_ENTRIES_PER_KEY = 8

lock = threading.RLock()
stats: collections.Counter = collections.Counter()


class Entry:
  """One compiled program for a key, valid while its guards pass."""

  def __init__(self, trace: Any):
    # A function of the entry's own, so that jax's trace caches, keyed on
    # the function, are never shared between entries.
    def traced_call(variables, rngs, primals):
      return trace(variables, rngs, primals)

    self.run = jax.jit(traced_call)
    self.guards = Guards()
    self.record: Record | None = None
    self.covered_codes: set = set()
    self.user_modules: dict = {}
    # Why calls that pass the guards run uncompiled (a negative entry), if they do.
    self.problem: str | None = None


class Bucket:
  """The entries of one key, and why the key runs uncompiled, if it does."""

  def __init__(self):
    self.entries: list[Entry] = []
    self.problem: str | None = None

  def find(self) -> tuple[Entry | None, str | None]:
    """The first entry whose guards pass, or None and the last guard that failed."""
    failure = None
    for entry in self.entries:
      failed = entry.guards.first_failure()
      if failed is None:
        return entry, None
      failure = failed.failure()
    return None, failure


_buckets: collections.OrderedDict[Any, Bucket] = collections.OrderedDict()


def bucket_for(key: Any) -> Bucket:
  with lock:
    bucket = _buckets.get(key)
    if bucket is None:
      bucket = _buckets[key] = Bucket()
      if len(_buckets) > MAX_KEYS:
        _buckets.popitem(last=False)
    else:
      _buckets.move_to_end(key)
    return bucket


class CacheInfo(NamedTuple):
  """Counts since the last ``compiled.cache_clear()``.

  ``calls`` of wrapped functions; ``traces`` of them by ``jax.jit``;
  ``fallbacks``: calls that ran uncompiled; ``entries`` in the cache.
  """

  calls: int
  traces: int
  fallbacks: int
  entries: int


def info() -> CacheInfo:
  with lock:
    entries = sum(len(bucket.entries) for bucket in _buckets.values())
  return CacheInfo(stats['calls'], stats['traces'], stats['fallbacks'], entries)


def clear() -> None:
  with lock:
    stats.clear()
    _buckets.clear()
