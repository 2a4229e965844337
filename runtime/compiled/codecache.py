"""A cache of facts about code objects, keyed by identity and bounded.

Code objects hash by value, recomputed at every lookup; the monitor asks
about the code of every frame of a trace (every instruction of a user frame
on Python 3.10 and 3.11), so its caches are keyed by ``id``. Each entry keeps
its code object alive, so an id cannot be reused while it is cached; past
:data:`MAX_CODES` entries the cache starts afresh, so code made anew at run
time (``exec``) cannot make it grow without bound.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ['CodeCache']

MAX_CODES = 65_536
_Value = TypeVar('_Value')


class CodeCache(Generic[_Value]):
  """``compute(code)``, remembered per code object."""

  def __init__(self, compute: Callable[[types.CodeType], _Value]):
    self._compute = compute
    self._cache: dict[int, tuple[types.CodeType, _Value]] = {}

  def __call__(self, code: types.CodeType) -> _Value:
    found = self._cache.get(id(code))
    if found is not None and found[0] is code:
      return found[1]
    value = self._compute(code)
    if len(self._cache) >= MAX_CODES:
      self._cache.clear()
    self._cache[id(code)] = (code, value)
    return value

  def clear(self) -> None:
    self._cache.clear()


def cached(compute: Callable[[types.CodeType], Any]) -> CodeCache:
  """Decorates ``compute`` with a :class:`CodeCache`."""
  return CodeCache(compute)
