"""Benchmarks 6 and 7: call patterns from start to finish, and the cache's memory.

Benchmark 1 times the steady state. Here nothing is left out as warm-up:
each pattern runs in full on both sides, the rewritten side from an empty
cache, so that what tiered compilation pays before it compiles (or instead of
compiling) is in the figure. The first call in a fresh process is timed in
new processes, one per round and side.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import statistics
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp

from forms import Forms, load_source
from measure import interleaved
from vjpify.runtime import compiled
from vjpify.runtime.compiled import cache
from vjpify.transformer import transform_source

PROGRAM = textwrap.dedent('''
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    SCALE = 1.0
    TABLE = list(range(200_000))


    class Stack(nn.Module):

      @nn.compact
      def __call__(self, x):
        for _ in range(6):
          x = jnp.tanh(nn.Dense(64)(x))
        return x


    class Plain(nn.Module):

      @nn.compact
      def __call__(self, x):
        return nn.grad(lambda mdl, x: jnp.sum(mdl(x)), Stack(), x)


    class Annealed(nn.Module):
      step: int = 0

      @nn.compact
      def __call__(self, x):
        temperature = 1.0 / (1 + self.step)
        return nn.grad(lambda mdl, x: jnp.sum(mdl(x)) / temperature, Stack(), x)


    class Scaled(nn.Module):

      @nn.compact
      def __call__(self, x):
        return nn.grad(lambda mdl, x: jnp.sum(mdl(x)) * SCALE, Stack(), x)


    class LargeList(nn.Module):

      @nn.compact
      def __call__(self, x):
        table = TABLE
        return nn.grad(lambda mdl, x: jnp.sum(mdl(x)) * len(table), Stack(), x)
''')

CALLS = 30


@dataclasses.dataclass
class PatternResult:
  name: str
  original_s: float
  rewritten_s: float
  goal: float

  @property
  def ratio(self) -> float:
    return self.rewritten_s / self.original_s


@dataclasses.dataclass
class MemoryResult:
  limit_mb: float
  keys: int
  counted_mb: float
  resident_growth_mb: float


def _forms() -> Forms:
  result = transform_source(PROGRAM, 'patterns.py')
  return Forms('patterns', load_source(PROGRAM, '_bench_patterns_original', 'patterns.py'),
               load_source(result.code, '_bench_patterns_rewritten', 'patterns.py'), len(result.sites))


def _patterns(module, variables, x, calls_to_compile: int) -> dict:
  def run(pattern):
    return lambda: jax.block_until_ready(pattern())

  def annealed():
    return [module.Annealed(step).apply(variables, x) for step in range(CALLS)]

  def changing_global():
    out = []
    for step in range(CALLS):
      module.SCALE = 1.0 + step
      out.append(module.Scaled().apply(variables, x))
    return out

  def many_shapes():
    return [module.Plain().apply(variables, x[:8 + step]) for step in range(CALLS)]

  def large_list():
    return [module.LargeList().apply(variables, x) for _ in range(CALLS)]

  def worst_case():
    # Keys that each stop repeating right when they would compile.
    return [module.Annealed(1000 + key).apply(variables, x) for key in range(6) for _ in range(calls_to_compile)]

  return {'annealed closure value': (run(annealed), 1.25), 'global changed on every call': (run(changing_global), 1.25),
          'a new batch size on every call': (run(many_shapes), 1.25),
          '200,000-item list in the closure': (run(large_list), 1.25),
          f'keys used {calls_to_compile} times each, until they would compile': (run(worst_case), 2.0)}


def _calls_to_compile(module, variables, x) -> int:
  """How many calls a fresh key takes to compile under tiering."""
  compiled.cache_clear()
  for calls in range(1, 200):
    before = compiled.cache_info().traces
    jax.block_until_ready(module.Plain().apply(variables, x))
    if compiled.cache_info().traces > before:
      return calls
  return 200


def patterns(rounds: int) -> list[PatternResult]:
  forms = _forms()
  x = jax.random.normal(jax.random.key(1), (64, 64))
  variables = forms.original.Plain().init(jax.random.key(0), x)
  calls_to_compile = _calls_to_compile(forms.rewritten, variables, x)
  original = _patterns(forms.original, variables, x, calls_to_compile)
  rewritten = _patterns(forms.rewritten, variables, x, calls_to_compile)
  results = []
  for name, (run_original, goal) in original.items():
    run_rewritten = rewritten[name][0]

    def from_empty_cache(run=run_rewritten):
      compiled.cache_clear()
      run()

    medians = interleaved({'original': run_original, 'rewritten': from_empty_cache}, rounds=rounds, warmup=1)
    results.append(PatternResult(name, medians['original'], medians['rewritten'], goal))
  return results


_FIRST_CALL = '''
import gc, time
import jax
from forms import load_forms
forms = load_forms({path!r})
module = forms.{side}
model, variables, args, kwargs = module.case()
# The collector's debt from import and init, which are not timed, would
# otherwise fall due inside the timed call on whichever side crosses the
# threshold first: a full collection here costs more than the call.
gc.collect()
started = time.perf_counter()
jax.block_until_ready(model.apply(variables, *args, **kwargs))
print(time.perf_counter() - started)
'''


def first_call(path: str, rounds: int) -> PatternResult:
  """The first ``apply`` in a fresh process: import, build and init excluded."""
  bench = os.path.dirname(os.path.abspath(__file__))
  times: dict[str, list[float]] = {'original': [], 'rewritten': []}
  for index in range(rounds):
    for side in ('original', 'rewritten') if index % 2 == 0 else ('rewritten', 'original'):
      script = _FIRST_CALL.format(path=path, side=side)
      # Run in the benchmarks' folder, which `python -c` puts first on the path.
      output = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, check=True,
                              cwd=bench).stdout
      times[side].append(float(output.strip().splitlines()[-1]))
  name = f'first `apply` of `{os.path.basename(path)[:-3]}` in a fresh process'
  return PatternResult(name, statistics.median(times['original']), statistics.median(times['rewritten']), 1.25)


def memory(limit_mb: int, keys: int) -> MemoryResult:
  """Distinct keys compiled at once under a byte limit: what the cache counts, and what stays resident."""
  forms = _forms()
  module = forms.rewritten
  x = jax.random.normal(jax.random.key(1), (64, 64))
  variables = module.Plain().init(jax.random.key(0), x)
  previous_mode = compiled.set_mode('always')
  previous_limits = compiled.set_cache_limits(bytes=limit_mb * 2**20)
  try:
    compiled.cache_clear()
    jax.block_until_ready(module.Plain().apply(variables, x))
    gc.collect()
    base = cache.resident_bytes() or 0
    for key in range(keys):
      jax.block_until_ready(module.Annealed(key).apply(variables, jnp.asarray(x)))
    gc.collect()
    grown = (cache.resident_bytes() or 0) - base
    _, counted = compiled.cache_size()
  finally:
    compiled.set_mode(previous_mode)
    compiled.set_cache_limits(*previous_limits)
    compiled.cache_clear()
  return MemoryResult(limit_mb, keys, counted / 2**20, grown / 2**20)
