"""Compiled evaluation of the function that a rewritten ``nn.vjp`` differentiates.

Eager ``nn.grad`` dispatches every primitive of the forward and the backward
pass one at a time. Wrapped in :func:`compiled`, the differentiated function
runs through a cached ``jax.jit`` instead: ``nn.vjp`` still lifts the module
and calls the wrapper with a clone bound to a fresh scope, and the wrapper
passes that scope's variables and rng keys into the compiled function and the
mutated collections back out. JAX differentiates the compiled call as one
primitive, so forward and backward each run as one compiled program.

A cached program is reused only when that cannot change what the program
does, which the modules here establish by concern:

- ``fingerprint`` and ``keys``: keys and guard values that differ whenever a Python value
  could change a trace;
- ``bytecode``, ``usercode``, ``monitor`` (with ``monitor_settrace`` and
  ``monitor_events``), ``recorder``, ``effects``: watching the user code a
  trace runs, for the values it reads (they become ``guards``) and for
  anything observable it would do (then nothing is cached, and the effect
  never happens during the trace); ``heldwarnings``: warnings a trace
  would show, held back without touching what Python has shown before;
- ``vetting``: checks on the traced program, including tracing its backward
  pass before it is used;
- ``plumbing``: variables, rng counters and results across the compiled call;
- ``cache`` (entries and buckets), ``sites`` (each site's record),
  ``reports`` (why calls ran as they did) and ``settings`` (limits and mode,
  from the environment on first use), all owned by ``state``: one object,
  made on first use, that keeps them behind its lock;
- ``wrapper``: the path of one call; ``controls``: :data:`compiled` itself,
  with the cache's controls as its methods.
"""

from vjpify.runtime.compiled.cache import CacheInfo
from vjpify.runtime.compiled.controls import Compiled, compiled, explain
from vjpify.runtime.compiled.reports import Explanation, SiteReport
from vjpify.runtime.compiled.wrapper import FLAX_COMPILES

__all__ = ['CacheInfo', 'Compiled', 'Explanation', 'FLAX_COMPILES', 'SiteReport', 'compiled', 'explain']
