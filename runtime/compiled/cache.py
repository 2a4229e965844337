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
``compiled.set_mode`` choose when to compile (see ``settings``).

This module holds the entries and buckets as values; the rules above are
methods of the runtime's state (``state.Runtime``), which owns every bucket
and changes them under its lock.
"""

from __future__ import annotations

import collections
import os
from typing import Any, NamedTuple

import jax

from vjpify.runtime.compiled.guards import GlobalGuard, Guards
from vjpify.runtime.compiled.plumbing import Record

__all__ = ['Bucket', 'CacheInfo', 'Entry', 'MAX_ENTRIES_PER_KEY', 'resident_bytes']

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


def resident_bytes() -> int | None:
  """This process's resident memory, where the system tells it cheaply (Linux), else None."""
  try:
    with open('/proc/self/statm', 'rb') as statm:
      return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
  except (OSError, ValueError, IndexError, AttributeError):
    return None


class CacheInfo(NamedTuple):
  """Counts since the last ``compiled.cache_clear()``.

  ``calls`` of wrapped functions; ``traces`` of them by ``jax.jit``;
  ``fallbacks``: calls that ran uncompiled; ``entries`` in the cache.
  """

  calls: int
  traces: int
  fallbacks: int
  entries: int
