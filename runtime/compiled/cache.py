"""The cache of compiled entries: keys, guards, when to compile, and how much to keep.

Calls are first sorted by a key computed before anything runs: the code of
``fn`` and what its closure holds (captured arrays by shape and dtype), the
module's type and fields, the scopes' state and rng counters, and the
current values of the site's volatile guards (below). Each key holds a short
list of entries, each a ``jax.jit`` of the traced call with the guards its
traces recorded; a call runs the first entry whose guards all pass. A trace
that did something observable, or failed, leaves a negative entry: calls
that pass its guards run uncompiled without tracing again. Past
:data:`MAX_ENTRIES_PER_KEY` entries a key runs uncompiled (TorchDynamo's
``cache_size_limit``).

**Tiered compilation.** A key (and input signature) is compiled only once
the uncompiled calls it made would have paid for compiling it: each
uncompiled call adds its time to the key's rent, and it compiles when the
rent reaches the estimated compile time (the ski-rental rule, at most twice
the cost of the better choice in hindsight when the estimate is right). The
estimate is the site's last measured compile time, or, before any,
:data:`COMPILE_RATIO` times the fastest uncompiled call seen at the site. A
key that never repeats never compiles. A guard that fails makes its value
part of the site's key from then on (a volatile guard), so that a global
changing on every call is rented per value rather than compiled per call;
the globals ``fn``'s own code loads are watched from the site's first call,
so that one changing on every call joins the key before the first trace.

**Bounds.** At most :data:`limits` keys and bytes are kept (the bytes of an
entry: the resident memory its compilation added, and its constants),
evicting the least recently used key first. Set them with
``compiled.set_cache_limits(entries=..., bytes=...)`` or the environment
variables ``VJPIFY_CACHE_ENTRIES`` and ``VJPIFY_CACHE_BYTES``;
``VJPIFY_COMPILE`` (``tiered``, ``always``, ``never``) or
``compiled.set_mode`` choose when to compile.
"""

from __future__ import annotations

import collections
import os
import statistics
import threading
from typing import Any, NamedTuple

import jax

from vjpify.runtime.compiled import bytecode
from vjpify.runtime.compiled.fingerprint import Fingerprinter, Unguardable
from vjpify.runtime.compiled.guards import GlobalGuard, Guards, builtins_of
from vjpify.runtime.compiled.plumbing import Record

__all__ = ['Bucket', 'CacheInfo', 'Entry', 'Limits', 'MAX_ENTRIES_PER_KEY', 'SiteState', 'bucket_for', 'clear',
           'info', 'stats']

MAX_ENTRIES_PER_KEY = 8
# Compile time over the fastest uncompiled call, before a site has compiled.
COMPILE_RATIO = 10.0
# Volatile guards kept per site.
MAX_VOLATILE = 16
# The smallest size an entry is counted at: the executable and its buffers
# (an entry of an 8-layer 128-wide network holds about 3 MB, measured as the
# resident memory that stays while it is cached).
MIN_ENTRY_BYTES = 3 * 1024 * 1024
# Bytes evicted before the freed memory is handed back to the system.
TRIM_EVERY_BYTES = 16 * 1024 * 1024
MODES = ('tiered', 'always', 'never')

lock = threading.RLock()
stats: collections.Counter = collections.Counter()


class Limits(NamedTuple):
  entries: int
  bytes: int


def _env_int(name: str, default: int) -> int:
  text = os.environ.get(name)
  if text is None:
    return default
  try:
    value = int(text)
  except ValueError:
    raise ValueError(f'{name}={text!r}: expected a whole number') from None
  if value < 1:
    raise ValueError(f'{name}={text!r}: expected a positive number')
  return value


limits = Limits(_env_int('VJPIFY_CACHE_ENTRIES', 256), _env_int('VJPIFY_CACHE_BYTES', 512 * 1024 * 1024))
mode = os.environ.get('VJPIFY_COMPILE', 'tiered')
if mode not in MODES:
  raise ValueError(f'VJPIFY_COMPILE={mode!r}: expected one of {", ".join(MODES)}')


class Entry:
  """One compiled program for a key, valid while its guards pass."""

  def __init__(self, trace: Any):
    # A function of the entry's own, so that jax's trace caches, keyed on
    # the function, are never shared between entries.
    def traced_call(variables, rngs, lifted, primals):
      return trace(variables, rngs, lifted, primals)

    self.run = jax.jit(traced_call)
    self.guards = Guards()
    self.record: Record | None = None
    self.covered_codes: set = set()
    self.user_modules: dict = {}
    # Why calls that pass the guards run uncompiled (a negative entry), if they do.
    self.problem: str | None = None
    self.bytes = 0


class Bucket:
  """The entries of one key, why the key runs uncompiled (if it does), and its rent per signature."""

  def __init__(self):
    self.entries: list[Entry] = []
    self.problem: str | None = None
    self.rent: dict[Any, float] = collections.defaultdict(float)

  def add(self, entry: Entry) -> None:
    with lock:
      self.entries.append(entry)

  def find(self) -> tuple[Entry | None, GlobalGuard | None]:
    """The first entry whose guards pass, or None and the last guard that failed."""
    failure = None
    for entry in tuple(self.entries):
      failed = entry.guards.first_failure()
      if failed is None:
        return entry, None
      failure = failed
    return None, failure

  @property
  def bytes(self) -> int:
    return sum(entry.bytes for entry in self.entries)


class SiteState:
  """What a rewritten site has learnt: its volatile guards and what compiling costs there."""

  def __init__(self):
    self.volatile: list[GlobalGuard] = []
    self.compile_seconds: float | None = None
    self.fastest_uncompiled: float | None = None
    # The globals fn's own code loads, watched until the site first
    # compiles: one that changes while the site is warming joins the key
    # before any trace, so a global changing on every call never pays for
    # a compilation that its next call would throw away.
    self.own_globals: list[GlobalGuard] | None = None

  def watch_own_globals(self, target: Any) -> None:
    """Starts watching the globals ``target``'s code loads (on its first warming call)."""
    if self.own_globals is not None:
      return
    namespace = target.__globals__
    owner = namespace.get('__name__') or target.__code__.co_filename
    watched = []
    for name in bytecode.facts(target.__code__).global_names:
      try:
        watched.append(GlobalGuard(namespace, name, owner, Fingerprinter(), builtins_of(namespace)))
      except Unguardable:
        pass  # the trace's guards will refuse it, with the reason
    self.own_globals = watched

  def check_own_globals(self) -> None:
    """Makes each watched global that changed volatile."""
    for guard in self.own_globals or ():
      if not guard.check():
        self.note_failure(guard)
        self.own_globals = [g for g in self.own_globals if g is not guard]

  def stop_watching_own_globals(self) -> None:
    self.own_globals = []

  def note_failure(self, guard: GlobalGuard) -> bool:
    """Makes ``guard`` volatile; whether it was not already."""
    with lock:
      known = any(g.namespace is guard.namespace and g.name == guard.name for g in self.volatile)
      if known or len(self.volatile) >= MAX_VOLATILE:
        return False
      self.volatile.append(guard)
      return True

  def note_uncompiled(self, seconds: float) -> None:
    if self.fastest_uncompiled is None or seconds < self.fastest_uncompiled:
      self.fastest_uncompiled = seconds

  def note_compiled(self, seconds: float, uncompiled: float | None) -> None:
    self.compile_seconds = seconds
    if uncompiled:
      _ratios.append(seconds / uncompiled)
      del _ratios[:-32]

  def estimate(self) -> float | None:
    """The estimated compile time here, or None before any uncompiled call was timed."""
    if self.compile_seconds is not None:
      return self.compile_seconds
    if self.fastest_uncompiled is None:
      return None
    ratio = statistics.median(_ratios) if _ratios else COMPILE_RATIO
    return ratio * self.fastest_uncompiled


# Compile time over uncompiled call time, as measured at other sites.
_ratios: list[float] = []


def earned(bucket: Bucket, signature: Any, site: SiteState) -> bool:
  """Whether this key and signature have paid for a compilation by now."""
  if mode == 'always':
    return True
  if mode == 'never':
    return False
  # The first call of a key always runs uncompiled: a key that never
  # repeats never compiles.
  rent = bucket.rent.get(signature, 0.0)
  estimate = site.estimate()
  return rent > 0 and estimate is not None and rent >= estimate


_buckets: collections.OrderedDict[Any, Bucket] = collections.OrderedDict()
_total_bytes = 0
_sites: dict[Any, SiteState] = {}


def site_state(key: Any) -> SiteState:
  state = _sites.get(key)
  if state is None:
    with lock:
      state = _sites.setdefault(key, SiteState())
  return state


def resident_bytes() -> int | None:
  """This process's resident memory, where the system tells it cheaply (Linux), else None."""
  try:
    with open('/proc/self/statm', 'rb') as statm:
      return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
  except (OSError, ValueError, IndexError, AttributeError):
    return None


def bucket_for(key: Any) -> Bucket:
  with lock:
    bucket = _buckets.get(key)
    if bucket is None:
      bucket = _buckets[key] = Bucket()
      _evict()
    else:
      _buckets.move_to_end(key)
    return bucket


def grew(entry: Entry, size: int) -> None:
  """Counts ``size`` more bytes for ``entry``, evicting old keys past the limit."""
  global _total_bytes
  with lock:
    entry.bytes += size
    _total_bytes += size
    _evict()


def _evict() -> None:
  global _total_bytes, _untrimmed
  while _buckets and (len(_buckets) > limits.entries or (_total_bytes > limits.bytes and len(_buckets) > 1)):
    _, bucket = _buckets.popitem(last=False)
    _total_bytes -= bucket.bytes
    _untrimmed += bucket.bytes
    stats['evictions'] += 1
  if _untrimmed > TRIM_EVERY_BYTES:
    _untrimmed = 0
    _trim()


def _trim() -> None:
  """Hands memory freed by evicted entries back to the system (glibc keeps it otherwise)."""
  import gc  # pylint: disable=import-outside-toplevel
  gc.collect()
  if _malloc_trim is not None:
    _malloc_trim(0)


def _load_malloc_trim() -> Any:
  try:
    import ctypes  # pylint: disable=import-outside-toplevel
    return ctypes.CDLL('libc.so.6').malloc_trim
  except (OSError, AttributeError):  # not glibc: the allocator returns memory its own way
    return None


_malloc_trim = _load_malloc_trim()
_untrimmed = 0


def set_limits(entries: int | None = None, bytes: int | None = None) -> Limits:  # pylint: disable=redefined-builtin
  """Sets how many keys and bytes the cache keeps; returns the previous limits."""
  global limits
  for name, value in (('entries', entries), ('bytes', bytes)):
    if value is not None and (not isinstance(value, int) or value < 1):
      raise ValueError(f'set_cache_limits({name}={value!r}): expected a positive int')
  with lock:
    previous = limits
    limits = Limits(entries or limits.entries, bytes or limits.bytes)
    _evict()
  return previous


def set_mode(new_mode: str) -> str:
  """Sets when calls compile (``tiered``, ``always``, ``never``); returns the previous mode."""
  global mode
  if new_mode not in MODES:
    raise ValueError(f'set_mode({new_mode!r}): expected one of {", ".join(MODES)}')
  previous, mode = mode, new_mode
  return previous


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


def size() -> tuple[int, int]:
  """How many keys and bytes the cache holds now."""
  with lock:
    return len(_buckets), _total_bytes


def clear() -> None:
  global _total_bytes
  with lock:
    stats.clear()
    _buckets.clear()
    _sites.clear()
    _total_bytes = 0
    _ratios.clear()
