"""The runtime's one home for mutable state: the cache, every site's record, the counts, limits and mode.

A :class:`Runtime` owns the buckets of compiled entries (least recently used
first), one record per rewritten site (what it learnt and its report), the
counts ``compiled.cache_info()`` gives, the limits and the mode, the compile
time ratios measured so far, and what eviction has freed; it changes them
under its lock, and the cache's rules (``cache`` describes them) are its
methods. :func:`state` creates it on first use, reading the environment
then (``settings``), never at import. No module of the runtime rebinds a
global: this state is the one place that changes.
"""

from __future__ import annotations

import collections
import gc
import statistics
import threading
from typing import Any

from vjpify.runtime.compiled import cache, plumbing, settings, sites
from vjpify.runtime.compiled.guards import GlobalGuard
from vjpify.runtime.compiled.reports import Explanation
from vjpify.runtime.compiled.settings import Limits

__all__ = ['Runtime', 'state']

# Compile time ratios kept, the most recent ones.
_RATIOS_KEPT = 32


def _load_malloc_trim() -> Any:
  try:
    import ctypes  # pylint: disable=import-outside-toplevel
    return ctypes.CDLL('libc.so.6').malloc_trim
  except (OSError, AttributeError):  # not glibc: the allocator returns memory its own way
    return None


class Runtime:
  """The cache of compiled entries and what every site learnt and reports, behind one lock."""

  def __init__(self, limits: Limits = settings.DEFAULT_LIMITS, mode: str = settings.DEFAULT_MODE):
    self.lock = threading.RLock()
    self.limits = limits
    self.mode = settings.checked_mode(mode)
    self.stats: collections.Counter = collections.Counter()
    self._buckets: collections.OrderedDict[Any, cache.Bucket] = collections.OrderedDict()
    self._bytes = 0
    self._sites: dict[tuple[str, int, str], sites.Site] = {}
    # Compile time over uncompiled call time, as measured at the sites.
    self._ratios: list[float] = []
    # Bytes evicted since memory was last handed back to the system.
    self._untrimmed = 0
    self._malloc_trim: Any = None
    self._malloc_trim_loaded = False

  @classmethod
  def from_environment(cls) -> Runtime:
    """A runtime with the limits and mode the environment sets (a bad value warns, and keeps the default)."""
    limits, mode = settings.from_environment()
    return cls(limits, mode)

  # Sites and counts.

  def site(self, filename: str, line: int, function: str) -> sites.Site:
    """The record of the site at ``filename:line`` wrapping ``function``, made on its first call."""
    key = (filename, line, function)
    site = self._sites.get(key)
    if site is None:
      with self.lock:
        site = self._sites.setdefault(key, sites.Site(self.lock, filename, line, function))
    return site

  def count(self, name: str) -> None:
    with self.lock:
      self.stats[name] += 1

  def ran(self, site: sites.Site, reason: str | None) -> None:
    """Counts a call at ``site``: compiled (``reason`` None) or uncompiled, and why."""
    with self.lock:
      site.report.ran(reason)
      if reason is not None:
        self.stats['fallbacks'] += 1

  # When to compile.

  def estimate(self, site: sites.Site) -> float | None:
    """The estimated compile time at ``site``, or None before any uncompiled call there was timed."""
    if site.compile_seconds is not None:
      return site.compile_seconds
    if site.fastest_uncompiled is None:
      return None
    with self.lock:
      ratio = statistics.median(self._ratios) if self._ratios else cache.COMPILE_RATIO
    return ratio * site.fastest_uncompiled

  def earned(self, bucket: cache.Bucket, signature: Any, site: sites.Site) -> bool:
    """Whether this key and signature have paid for a compilation by now."""
    if self.mode == 'always':
      return True
    if self.mode == 'never':
      return False
    # The first call of a key always runs uncompiled: a key that never
    # repeats never compiles.
    rent = bucket.rent.get(signature, 0.0)
    estimate = self.estimate(site)
    return rent > 0 and estimate is not None and rent >= estimate

  def warmed(self, site: sites.Site, bucket: cache.Bucket, signature: Any, seconds: float) -> None:
    """Counts an uncompiled call that took ``seconds`` towards compiling its key and signature."""
    with self.lock:
      bucket.rent[signature] += seconds
      if site.fastest_uncompiled is None or seconds < site.fastest_uncompiled:
        site.fastest_uncompiled = seconds

  def compiled_at(self, site: sites.Site, entry: cache.Entry, seconds: float, resident: int | None) -> None:
    """Notes that ``entry`` compiled at ``site`` in ``seconds``, from ``resident`` bytes of memory before."""
    with self.lock:
      uncompiled = site.fastest_uncompiled
      site.compile_seconds = seconds
      if uncompiled:
        self._ratios.append(seconds / uncompiled)
        del self._ratios[:-_RATIOS_KEPT]
      site.own_globals = []
    grown = cache.resident_bytes()
    self.grew(entry, max(cache.MIN_ENTRY_BYTES, grown - resident if grown and resident else 0))

  # Volatile guards: a global whose value joins the site's key.

  def make_volatile(self, site: sites.Site, guard: GlobalGuard) -> bool:
    """Makes ``guard`` volatile at ``site``; whether it was not already."""
    with self.lock:
      known = any(g.namespace is guard.namespace and g.name == guard.name for g in site.volatile)
      if known or len(site.volatile) >= cache.MAX_VOLATILE:
        return False
      site.volatile.append(guard)
      return True

  def watch_own_globals(self, site: sites.Site, target: Any) -> None:
    """Starts watching the globals ``target``'s code loads (on the site's first warming call)."""
    if site.own_globals is None:
      watched = sites.own_globals_of(target)
      with self.lock:
        if site.own_globals is None:
          site.own_globals = watched

  def check_own_globals(self, site: sites.Site) -> None:
    """Makes each watched global of ``site`` that changed volatile."""
    for guard in site.own_globals or ():
      if not guard.check():
        self.make_volatile(site, guard)
        with self.lock:
          site.own_globals = [g for g in site.own_globals or () if g is not guard]

  # The buckets and their entries.

  def bucket(self, key: Any) -> cache.Bucket:
    """The bucket of ``key``, made (and old keys evicted) if it is new, and now the most recently used."""
    with self.lock:
      bucket = self._buckets.get(key)
      if bucket is None:
        bucket = self._buckets[key] = cache.Bucket()
        self._evict()
      else:
        self._buckets.move_to_end(key)
      return bucket

  def refuse(self, bucket: cache.Bucket, problem: str) -> str:
    """Makes every call of ``bucket``'s key run uncompiled, for ``problem``; returns it."""
    with self.lock:
      bucket.problem = problem
    return problem

  def guard(self, entry: cache.Entry, guards: list[GlobalGuard]) -> None:
    with self.lock:
      entry.guards.extend(guards)

  def refuse_entry(self, bucket: cache.Bucket, entry: cache.Entry, problem: str) -> None:
    """Keeps why a trace of ``entry`` cannot run compiled."""
    with self.lock:
      if entry.record is None:
        # A negative entry: while its guards pass, calls run uncompiled
        # without tracing again.
        entry.problem = problem
        bucket.entries.append(entry)
      else:
        bucket.problem = problem  # new shapes of a compiled entry

  def admit(self, bucket: cache.Bucket, entry: cache.Entry, call: plumbing.Call) -> None:
    """Keeps what ``call``'s trace (if it traced) did in Python, and adds a new entry to its bucket."""
    with self.lock:
      if call.record is not None:
        if entry.record is None:
          entry.record = call.record
          # Only now may other threads find it: an entry without its record
          # could not replay what the trace did.
          bucket.entries.append(entry)
        elif not call.record.same_as(entry.record):
          # A retrace (new shapes) did something else Python-side: later calls
          # could not tell which record to replay.
          bucket.problem = 'a trace for new shapes did something else in Python than the first'
      if call.run_once is not None:
        bucket.problem = call.run_once

  def grew(self, entry: cache.Entry, size: int) -> None:
    """Counts ``size`` more bytes for ``entry``, evicting old keys past the limit."""
    with self.lock:
      entry.bytes += size
      self._bytes += size
      self._evict()

  def _evict(self) -> None:
    limits = self.limits
    while self._buckets and (len(self._buckets) > limits.entries or
                             (self._bytes > limits.bytes and len(self._buckets) > 1)):
      _, bucket = self._buckets.popitem(last=False)
      self._bytes -= bucket.bytes
      self._untrimmed += bucket.bytes
      self.stats['evictions'] += 1
    if self._untrimmed > cache.TRIM_EVERY_BYTES:
      self._untrimmed = 0
      self._trim()

  def _trim(self) -> None:
    """Hands memory freed by evicted entries back to the system (glibc keeps it otherwise)."""
    gc.collect()
    if not self._malloc_trim_loaded:
      self._malloc_trim, self._malloc_trim_loaded = _load_malloc_trim(), True
    if self._malloc_trim is not None:
      self._malloc_trim(0)

  # What ``compiled``'s methods do.

  def set_limits(self, entries: int | None = None, bytes: int | None = None) -> Limits:  # pylint: disable=redefined-builtin
    """Sets how many keys and bytes the cache keeps; returns the previous limits."""
    with self.lock:
      previous = self.limits
      self.limits = settings.checked_limits(previous, entries, bytes)
      self._evict()
    return previous

  def set_mode(self, mode: str) -> str:
    """Sets when calls compile (``tiered``, ``always``, ``never``); returns the previous mode."""
    with self.lock:
      previous, self.mode = self.mode, settings.checked_mode(mode)
    return previous

  def info(self) -> cache.CacheInfo:
    with self.lock:
      entries = sum(len(bucket.entries) for bucket in self._buckets.values())
      return cache.CacheInfo(self.stats['calls'], self.stats['traces'], self.stats['fallbacks'], entries)

  def size(self) -> tuple[int, int]:
    """How many keys and bytes the cache holds now."""
    with self.lock:
      return len(self._buckets), self._bytes

  def explain(self) -> Explanation:
    """Every called site's report, in the order the sites were first used."""
    with self.lock:
      return Explanation([site.report for site in self._sites.values() if site.report.calls])

  def clear(self) -> None:
    """Empties the cache, the sites' records and the counts; the limits and the mode stay."""
    with self.lock:
      self.stats.clear()
      self._buckets.clear()
      self._sites.clear()
      self._bytes = 0
      self._ratios.clear()


class _Current:
  """Where the state is kept once :func:`state` has made it."""

  def __init__(self):
    self.runtime: Runtime | None = None
    self.lock = threading.Lock()


_current = _Current()


def state() -> Runtime:
  """The runtime's state, made from the environment on first use."""
  runtime = _current.runtime
  if runtime is None:
    with _current.lock:
      if _current.runtime is None:
        _current.runtime = Runtime.from_environment()
      runtime = _current.runtime
  return runtime

