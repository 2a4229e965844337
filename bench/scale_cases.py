"""Benchmarks 8 and 9: the tool on one large generated file, and on a tree
run a second time unchanged, against its first run.

The large file is what code generators write: tables of numbers, many small
functions and Module classes, and a handful of Modules with a site. The
repeated run is ``vjpify --check`` twice over the same files, the first time
with an empty cache and the second with the cache the first left.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import statistics
import sys
import tempfile

from measure import interleaved_commands, run_command
from tool_cases import SITE, copy_python_files, site_tree_source, tool

LARGE_FILE_MB = 5
REPEATED_FILES = 20


def generated_source(size: int, seed: int = 0) -> str:
  """A generated module of about ``size`` bytes, with a site every thousand
  statements or so."""
  rnd = random.Random(seed)
  parts = ['"""Generated: tables, ops and blocks."""\n\nimport flax.linen as nn\nimport jax.numpy as jnp\n\n']
  total = len(parts[0])
  n = 0
  while total < size:
    kind = n % 4
    if kind == 0:
      rows = ',\n'.join('    [' + ', '.join(f'{rnd.random():.6f}' for _ in range(8)) + ']' for _ in range(40))
      text = f'TABLE_{n} = [\n{rows},\n]\n\n\n'
    elif kind == 1:
      text = f'def op_{n}(x, y):\n  """Op {n}."""\n  z = jnp.dot(x, y) + {n}\n  return jnp.tanh(z) * TABLE_{n - 1}[0][0]\n\n\n'
    elif kind == 2:
      text = (f'class Block{n}(nn.Module):\n  features: int = {n % 7 + 1}\n\n  @nn.compact\n  def __call__(self, x):\n'
              f'    x = nn.Dense(self.features)(x)\n    return op_{n - 1}(x, x)\n\n\n')
    else:
      text = f'CONFIG_{n} = {{"name": "block{n}", "features": {n % 11}, "rate": {rnd.random():.3f}}}\n\n\n'
    if n % 997 == 0:
      text += (f'class Site{n}(nn.Module):\n\n  @nn.compact\n  def __call__(self, x):\n'
               f'    return nn.grad(lambda mdl, x: mdl(x).sum(), nn.Dense(3), x)\n\n\n')
    parts.append(text)
    total += len(text)
    n += 1
  return ''.join(parts)


@dataclasses.dataclass
class ScaleResults:
  large_mb: float
  large_s: float
  large_peak_mb: float
  large_status: int
  repeated_files: int
  first_s: float
  again_s: float

  @property
  def repeat_speedup(self) -> float:
    return self.first_s / self.again_s


def run(rounds: int) -> ScaleResults:
  runner = tool()
  with tempfile.TemporaryDirectory(prefix='vjpify-scale-') as scratch:
    large = os.path.join(scratch, 'large', 'generated.py')
    os.makedirs(os.path.dirname(large))
    with open(large, 'w', encoding='utf-8') as f:
      f.write(generated_source(LARGE_FILE_MB * 2**20))
    measured = interleaved_commands({'large': runner.argv([large], jobs=1)}, rounds=rounds, warmup=0)['large']

    # The repeated run: a project of its own, so that its cache is its own.
    project = os.path.join(scratch, 'project')
    copy_python_files([site_tree_source()], project, SITE)
    files = sorted(os.path.join(folder, name) for folder, _, names in os.walk(project) for name in names)
    for path in files[REPEATED_FILES:]:
      os.remove(path)
    open(os.path.join(project, 'pyproject.toml'), 'w', encoding='utf-8').close()
    argv = [a for a in runner.argv([project], jobs=1) if a != '--no-cache']
    first, again = [], []
    large_mb = os.path.getsize(large) / 2**20
    for _ in range(rounds):
      shutil.rmtree(os.path.join(project, '.vjpify_cache'), ignore_errors=True)
      first.append(run_command(argv)[0])
      again.append(run_command(argv)[0])
  return ScaleResults(
      large_mb=large_mb,
      large_s=measured['seconds'], large_peak_mb=measured['peak_mb'], large_status=measured['status'],
      repeated_files=min(REPEATED_FILES, len(files)),
      first_s=statistics.median(first), again_s=statistics.median(again))


if __name__ == '__main__':
  print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
