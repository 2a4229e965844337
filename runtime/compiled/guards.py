"""Guards: the checks that justify reusing a compiled entry.

Each guard re-reads one Python value that a trace read (a global of the
module a function ran in, an attribute of a user module) and compares its
fingerprint with the one the trace saw. Values fingerprinted by identity
(modules, builtins, jax arrays, library objects) pass on an identity check
alone; the others are fingerprinted again, so that a mutation anywhere
inside a container, a config object or a closure shows.
"""

from __future__ import annotations

import abc
import builtins as builtins_module
import types
from typing import Any

from vjpify.runtime.compiled.fingerprint import Fingerprinter, Identity, Unguardable

__all__ = ['GlobalGuard', 'Guards', 'RegistryGuard', 'builtins_of']

_MISSING = object()


def builtins_of(globals_dict: dict) -> dict:
  found = globals_dict.get('__builtins__', builtins_module)
  return found.__dict__ if isinstance(found, types.ModuleType) else found


def _describe_value(value: Any) -> str:
  if value is _MISSING:
    return 'unbound'
  text = repr(value) if isinstance(value, (int, float, complex, str, bytes, bool, type(None))) else None
  if text is not None and len(text) <= 40:
    return text
  return f'a {type(value).__name__}'


class GlobalGuard:
  """A name looked up in a namespace (and then in its builtins) still holds what the trace read."""

  __slots__ = ('namespace', 'builtins', 'name', 'owner', 'value', 'expected', 'by_identity', 'fingerprinter')

  def __init__(self, namespace: dict, name: str, owner: str, fingerprinter: Fingerprinter,
               builtins: dict | None = None):
    self.namespace = namespace
    self.builtins = builtins
    self.name = name
    self.owner = owner
    self.value = self._read()
    try:
      self.expected = fingerprinter(self.value)
    except Unguardable as error:
      raise Unguardable(f'{self.describe()} holds {error}') from None
    self.by_identity = type(self.expected) is Identity or self.value is _MISSING

  def current(self) -> Any:
    """What the name holds now."""
    return self._read()

  def _read(self) -> Any:
    value = self.namespace.get(self.name, _MISSING)
    if value is _MISSING and self.builtins is not None:
      value = self.builtins.get(self.name, _MISSING)
    return value

  def check(self) -> bool:
    value = self._read()
    if value is self.value and self.by_identity:
      return True
    try:
      return Fingerprinter()(value) == self.expected
    except Unguardable:
      return False

  def describe(self) -> str:
    return f'{"global" if self.builtins is not None else "attribute"} {self.name} of {self.owner}'

  def failure(self) -> str:
    return f'{self.describe()} changed (was {_describe_value(self.value)}, now {_describe_value(self._read())})'


class RegistryGuard:
  """No ABC registration happened since the trace: ``isinstance`` and ``issubclass`` answer as they did.

  ``abc.get_cache_token()`` changes whenever any ABC registers a class, which
  is what makes an ``isinstance`` against an ABC answer differently; a
  trace that asked such a question is reused only under the same token.
  """

  __slots__ = ('namespace', 'name', 'value')

  def __init__(self):
    self.namespace = abc
    self.name = 'ABC registrations'
    self.value = abc.get_cache_token()

  def current(self) -> Any:
    return abc.get_cache_token()

  def check(self) -> bool:
    return abc.get_cache_token() == self.value

  def describe(self) -> str:
    return 'the ABC registrations (abc.ABCMeta.register)'

  def failure(self) -> str:
    return f'{self.describe()} changed since the trace'


class Guards:
  """The guards of one cache entry, checked in the order they were made."""

  __slots__ = ('guards', '_keys')

  def __init__(self):
    self.guards: list[GlobalGuard] = []
    self._keys: set = set()

  def add(self, guard: GlobalGuard) -> None:
    key = (id(guard.namespace), guard.name)
    if key not in self._keys:
      self._keys.add(key)
      self.guards.append(guard)

  def extend(self, guards: list[GlobalGuard]) -> None:
    for guard in guards:
      self.add(guard)

  def first_failure(self) -> GlobalGuard | None:
    for guard in self.guards:
      if not guard.check():
        return guard
    return None

  def __len__(self) -> int:
    return len(self.guards)
