"""One rewritten site's record: what it has learnt about compiling there, and its report.

A site is the place of one ``compiled(fn)`` call (file, line, and the name
of ``fn``). Its record holds the site's volatile guards (globals whose
values join its key), what compiling costs there, the globals ``fn``'s own
code loads while they are watched, and the :class:`SiteReport` that
``explain()`` shows. The runtime's state keeps one record per site and
changes it under its lock; the rules that change it are the state's methods.
"""

from __future__ import annotations

import threading
from typing import Any

from vjpify.runtime.compiled import bytecode
from vjpify.runtime.compiled.fingerprint import Fingerprinter, Unguardable
from vjpify.runtime.compiled.guards import GlobalGuard, builtins_of
from vjpify.runtime.compiled.reports import SiteReport

__all__ = ['Site', 'own_globals_of']


class Site:
  """What one rewritten site has learnt, and what happened there."""

  def __init__(self, lock: threading.RLock, filename: str, line: int, function: str):
    self._lock = lock
    self.report = SiteReport(f'{filename}:{line}', function)
    self.volatile: list[GlobalGuard] = []
    self.compile_seconds: float | None = None
    self.fastest_uncompiled: float | None = None
    # The globals fn's own code loads, watched until the site first
    # compiles: one that changes while the site is warming joins the key
    # before any trace, so a global changing on every call never pays for
    # a compilation that its next call would throw away.
    self.own_globals: list[GlobalGuard] | None = None

  def retraced(self, why: str | None) -> None:
    """Counts a trace of ``fn`` here, and why an entry was traced again (the guard that failed)."""
    with self._lock:
      self.report.retraced(why)


def own_globals_of(target: Any) -> list[GlobalGuard]:
  """Guards on the globals ``target``'s own code loads, as they are now."""
  namespace = target.__globals__
  owner = namespace.get('__name__') or target.__code__.co_filename
  watched = []
  for name in bytecode.facts(target.__code__).global_names:
    try:
      watched.append(GlobalGuard(namespace, name, owner, Fingerprinter(), builtins_of(namespace)))
    except Unguardable:
      pass  # the trace's guards will refuse it, with the reason
  return watched
