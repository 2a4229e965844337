"""``compiled``: the callable that rewritten code imports, with the cache's controls as its methods.

``compiled(fn)`` wraps ``fn``; ``compiled.cache_info()``,
``compiled.cache_clear()``, ``compiled.cache_size()``,
``compiled.set_cache_limits(...)``, ``compiled.set_mode(...)`` and
``compiled.explain()`` read and set the runtime's state. ``compiled`` is the
one instance of :class:`Compiled`, so that each of these is a typed method
rather than an attribute set on a function.
"""

from __future__ import annotations

import sys
from typing import Any

from vjpify.runtime.compiled import wrapper
from vjpify.runtime.compiled.cache import CacheInfo
from vjpify.runtime.compiled.reports import Explanation
from vjpify.runtime.compiled.settings import Limits
from vjpify.runtime.compiled.state import state

__all__ = ['Compiled', 'compiled', 'explain']


class Compiled:
  """Compiled evaluation of the functions given to ``nn.vjp``, and the controls of its cache."""

  def __call__(self, fn: Any) -> Any:
    """Wraps the function given to ``nn.vjp`` so that eager calls run through a cached ``jax.jit``.

    Note that a call runs compiled only when that cannot change what the
    program does: with concrete values (under an outer ``jax.jit``, ``vmap``
    or lifted transform the outer compilation already covers ``fn``), when
    every Python value the trace read can be guarded, and when the trace did
    nothing observable (print, I/O, clocks, Python or numpy randomness,
    mutation of state that outlives the call). Everything else runs ``fn`` as
    ``nn.vjp`` would. ``vjpify.runtime.explain()`` says which calls ran
    compiled, and why the others did not.

    Example::

      x_grad, y_grad = grad_from_vjp(
          nn.vjp(compiled(lambda mdl, x, y: mdl(x, y)), mdl, x, y,
                 vjp_variables=False, multi_scope=True))

    Args:
      fn: the function ``nn.vjp`` calls with the module and the primals.

    Returns:
      A function to pass to ``nn.vjp`` in place of ``fn``, with the same
      results, variable mutations, rng streams and Python effects; or ``fn``
      itself when it is not a plain function or a Module method.
    """
    # The site is the line that called compiled(fn).
    return wrapper.wrap(fn, sys._getframe(1))  # pylint: disable=protected-access

  def cache_info(self) -> CacheInfo:
    """Counts of calls, traces, uncompiled calls and entries since the last :meth:`cache_clear`."""
    return state().info()

  def cache_clear(self) -> None:
    """Empties the cache and the reports (the limits and the mode stay)."""
    state().clear()

  def cache_size(self) -> tuple[int, int]:
    """How many keys and bytes the cache holds now."""
    return state().size()

  def set_cache_limits(self, entries: int | None = None, bytes: int | None = None) -> Limits:  # pylint: disable=redefined-builtin
    """Sets how many keys and bytes the cache keeps (a limit left None stays); returns the previous limits."""
    return state().set_limits(entries, bytes)

  def set_mode(self, mode: str) -> str:
    """Sets when calls compile (``tiered``, ``always``, ``never``); returns the previous mode."""
    return state().set_mode(mode)

  def explain(self) -> Explanation:
    """Reports, per rewritten site, how its calls ran since the last :meth:`cache_clear`."""
    return state().explain()

  def __repr__(self) -> str:
    return '<vjpify.runtime.compiled>'


compiled = Compiled()


def explain() -> Explanation:
  """Reports, per rewritten site, how its calls ran since the last ``compiled.cache_clear()``."""
  return state().explain()
