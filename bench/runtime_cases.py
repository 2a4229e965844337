"""Benchmarks 1 and 2: the rewritten modules against the originals, eager and under ``jax.jit``.

Every module in ``bench/modules`` defines ``case()``, returning the model,
its variables, the positional arguments of ``apply`` and its keyword
arguments. Both forms are checked to return the same results before they are
timed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import glob
import os
import re
import time

import jax
import numpy as np

from forms import Forms, load_forms
from measure import interleaved
from support.comparing import COMPILED_ATOL, COMPILED_RTOL, assert_trees_identical
from vjpify.runtime import compiled

MODULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'modules')
# The event JAX records each time it traces a function to a jaxpr.
_TRACE_EVENT = '/jax/core/compile/jaxpr_trace_duration'


class _TraceCounter:
  """Counts JAX traces, attributed to whichever side is running."""

  def __init__(self):
    self.counts = collections.Counter()
    self.side = None
    jax.monitoring.register_event_duration_secs_listener(self._listen)

  def _listen(self, event: str, duration: float, **_) -> None:
    if event == _TRACE_EVENT and self.side is not None:
      self.counts[self.side] += 1

  @contextlib.contextmanager
  def attributed_to(self, side: str):
    self.side = side
    try:
      yield
    finally:
      self.side = None


_traces = _TraceCounter()


@dataclasses.dataclass
class EagerResult:
  module: str
  original_ms: float
  rewritten_ms: float
  jax_traces: int
  compiled_traces: int
  fallbacks: int
  # Calls of the rewritten module before it ran compiled (tiered compilation).
  warmup_calls: int

  @property
  def ratio(self) -> float:
    return self.rewritten_ms / self.original_ms


@dataclasses.dataclass
class JitResult:
  module: str
  step_original_ms: float
  step_rewritten_ms: float
  compile_original_s: float
  compile_rewritten_s: float
  hlo_ops_original: int
  hlo_ops_rewritten: int
  hlo_identical: bool
  retraces: int

  @property
  def step_ratio(self) -> float:
    return self.step_rewritten_ms / self.step_original_ms

  @property
  def compile_ratio(self) -> float:
    return self.compile_rewritten_s / self.compile_original_s


def module_paths() -> list[str]:
  return sorted(glob.glob(os.path.join(MODULES, '*.py')))


def _assert_same(expected, actual, where: str) -> None:
  assert_trees_identical(expected, actual, where, rtol=COMPILED_RTOL, atol=COMPILED_ATOL)


def _apply_calls(forms: Forms):
  model, variables, args, kwargs = forms.original.case()
  rewritten_model = forms.rewritten.case()[0]

  def call(module):
    return lambda: jax.block_until_ready(module.apply(variables, *args, **kwargs))

  return call(model), call(rewritten_model)


# Tiered compilation compiles a key once its uncompiled calls would have paid
# for it; a benchmark module is warmed up until then, within this many calls.
MAX_WARMUP_CALLS = 100


def _warm_up(rewritten) -> int:
  """Calls ``rewritten`` until a call runs compiled; how many calls that took."""
  for calls in range(1, MAX_WARMUP_CALLS + 1):
    before = compiled.cache_info()
    rewritten()
    after = compiled.cache_info()
    if after.fallbacks == before.fallbacks and after.traces == before.traces:
      return calls
  return MAX_WARMUP_CALLS


def eager(forms: Forms, rounds: int) -> EagerResult:
  """Benchmark 1: eager ``apply`` per call, after the rewritten side has compiled."""
  original, rewritten = _apply_calls(forms)
  _assert_same(original(), rewritten(), f'{forms.name}: eager results differ')
  warmup_calls = 1 + _warm_up(rewritten)
  for _ in range(2):
    original(), rewritten()
  _assert_same(original(), rewritten(), f'{forms.name}: eager results differ once compiled')
  before = compiled.cache_info()
  _traces.counts.clear()

  def traced(side, call):
    def run():
      with _traces.attributed_to(side):
        call()
    return run

  medians = interleaved(
      {'original': traced('original', original), 'rewritten': traced('rewritten', rewritten)},
      rounds=rounds,
      warmup=0,
  )
  after = compiled.cache_info()
  return EagerResult(
      module=forms.name,
      original_ms=medians['original'] * 1e3,
      rewritten_ms=medians['rewritten'] * 1e3,
      jax_traces=_traces.counts['rewritten'],
      compiled_traces=after.traces - before.traces,
      fallbacks=after.fallbacks - before.fallbacks,
      warmup_calls=warmup_calls,
  )


def _step(module, kwargs):
  rngs = kwargs.get('rngs', {})
  mutable = kwargs.get('mutable', False)

  def step(variables, args, rngs):
    return module.apply(variables, *args, rngs=rngs, mutable=mutable)

  return step, rngs


def _hlo(compiled_step) -> list[str]:
  """The instructions of the optimised HLO module, without source locations."""
  return [
      re.sub(r', metadata=\{[^}]*\}', '', line)
      for line in compiled_step.as_text().splitlines()
      if re.match(r'\s+(ROOT )?%?[\w.-]+ = ', line)
  ]


def under_jit(forms: Forms, rounds: int, compile_rounds: int) -> JitResult:
  """Benchmark 2: per step and compile time under an outer ``jax.jit``."""
  model, variables, args, kwargs = forms.original.case()
  rewritten_model = forms.rewritten.case()[0]
  step, rngs = _step(model, kwargs)
  rewritten_step, _ = _step(rewritten_model, kwargs)

  compile_seconds = {'original': [], 'rewritten': []}
  executables = {}
  for index in range(compile_rounds):
    sides = [('original', step), ('rewritten', rewritten_step)]
    for side, fn in sides if index % 2 == 0 else reversed(sides):
      # A new function object each time, so nothing is served from a cache.
      fresh = jax.jit(lambda v, a, r, fn=fn: fn(v, a, r))
      start = time.perf_counter()
      executables[side] = fresh.lower(variables, args, rngs).compile()
      compile_seconds[side].append(time.perf_counter() - start)

  jitted = {'original': jax.jit(step), 'rewritten': jax.jit(rewritten_step)}
  _assert_same(jitted['original'](variables, args, rngs), jitted['rewritten'](variables, args, rngs),
               f'{forms.name}: results under jit differ')
  sizes = {side: fn._cache_size() for side, fn in jitted.items()}
  _traces.counts.clear()

  def timed(side):
    fn = jitted[side]

    def run():
      with _traces.attributed_to(side):
        jax.block_until_ready(fn(variables, args, rngs))
    return run

  medians = interleaved({side: timed(side) for side in jitted}, rounds=rounds)
  hlo = {side: _hlo(executable) for side, executable in executables.items()}
  retraces = _traces.counts['rewritten'] + jitted['rewritten']._cache_size() - sizes['rewritten']
  return JitResult(
      module=forms.name,
      step_original_ms=medians['original'] * 1e3,
      step_rewritten_ms=medians['rewritten'] * 1e3,
      compile_original_s=float(np.median(compile_seconds['original'])),
      compile_rewritten_s=float(np.median(compile_seconds['rewritten'])),
      hlo_ops_original=len(hlo['original']),
      hlo_ops_rewritten=len(hlo['rewritten']),
      hlo_identical=hlo['original'] == hlo['rewritten'],
      retraces=retraces,
  )


def run(rounds: int, jit_rounds: int, compile_rounds: int) -> tuple[list[EagerResult], list[JitResult]]:
  eager_results, jit_results = [], []
  for path in module_paths():
    forms = load_forms(path)
    eager_results.append(eager(forms, rounds))
    jit_results.append(under_jit(forms, jit_rounds, compile_rounds))
  return eager_results, jit_results
