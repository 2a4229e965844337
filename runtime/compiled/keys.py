"""The key of a compiled call: what is known about it before anything runs.

``fn``'s code and closure (captured arrays lifted to arguments, by shape and
dtype), the module's type and fields, the places and state of the scopes it
reaches, their rng counters, flax's settings, and the current values of the
site's volatile guards. Entries under one key are told apart by their guards.
"""

from __future__ import annotations

from typing import Any

import flax

from vjpify.runtime import internals
from vjpify.runtime.compiled import plumbing
from vjpify.runtime.compiled.fingerprint import Fingerprinter
from vjpify.runtime.compiled.sites import Site

__all__ = ['call_key']

# flax settings that change what a trace computes: rng derivation, the types
# that variables() returns, the names of adopted submodules.
_FLAX_FLAGS = ('flax_fix_rng_separator', 'flax_return_frozendict', 'flax_preserve_adopted_names')


def _filter_key(fingerprinter: Fingerprinter, mutable: Any) -> Any:
  if isinstance(mutable, internals.DenyList):
    return internals.DenyList, _filter_key(fingerprinter, mutable.deny)
  return fingerprinter(mutable)


def _root_key(fingerprinter: Fingerprinter, root: Any) -> Any:
  return (
      root.name,
      root.path,
      root.debug_path,
      _filter_key(fingerprinter, root.mutable),
      fingerprinter(dict(root.flags)),
      tuple((name, frozenset(cols)) for name, cols in root.reservations.items()),
  )


def call_key(fingerprinter: Fingerprinter, target: Any, module: Any, scopes: plumbing.Scopes, counters: tuple,
             site: Site) -> Any:
  """What a call is sorted by before anything runs; see ``cache`` for what the key holds."""
  state = internals.module_state(module)
  # The values of the guards that failed at this site before: a key per value.
  volatile = tuple(Fingerprinter()(guard.current()) for guard in site.volatile)
  fingerprinter.lifting = True
  target_key = fingerprinter(target)
  fingerprinter.lifting = False
  return (
      tuple(getattr(flax.config, name, None) for name in _FLAX_FLAGS),
      target_key,
      fingerprinter.module(module),
      scopes.places,
      tuple(_root_key(fingerprinter, root) for root in scopes.roots),
      state.in_compact_method,
      state.in_setup,
      state.setup_called,
      state.is_initialized,
      tuple(state.autoname_cursor.items()),
      counters,
      fingerprinter(internals.capture_filter()),
      volatile,
  )
