"""Benchmarks 3 to 5: the tool itself, on real trees, against LibCST.

The tool runs as a user runs it: the ``vjpify`` command when the CLI exists
(``--check``, so nothing is written), else a Python process calling
``transform_source`` on every file. Each run is a fresh process, timed from
start to exit, with the summed memory of its process tree sampled.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import tempfile

from measure import interleaved_commands

LARGE_TREE_PACKAGES = ('jax', 'flax', 'optax')
# Appended to every file of the all-sites tree: one site per file, as a
# Module method written the usual way.
SITE = '''

import flax.linen as _vjpify_bench_nn


class _VjpifyBenchSite(_vjpify_bench_nn.Module):

  @_vjpify_bench_nn.compact
  def __call__(self, x):
    return _vjpify_bench_nn.grad(lambda mdl, x: mdl(x).sum(), _vjpify_bench_nn.Dense(3), x)
'''
NO_SITES = {
    'app/__init__.py': '"""A package with no gradient code."""\n',
    'app/util.py': 'import os\n\n\ndef here():\n  return os.getcwd()\n',
    'app/model.py': 'import math\n\n\ndef area(r):\n  return math.pi * r * r\n',
}
# The API fallback: what the CLI does, minus its conveniences, in one process.
_API_SCRIPT = '''
import os, sys
from vjpify.transformer import TransformError, transform_source
for root in sys.argv[1:]:
  for folder, _, names in os.walk(root):
    for name in sorted(names):
      if name.endswith('.py'):
        path = os.path.join(folder, name)
        with open(path, encoding='utf-8', errors='surrogateescape') as f:
          code = f.read()
        try:
          transform_source(code, path)
        except TransformError:
          pass
'''
_BARE_PARSE_SCRIPT = '''
import os, sys
import libcst
for root in sys.argv[1:]:
  for folder, _, names in os.walk(root):
    for name in sorted(names):
      if name.endswith('.py'):
        with open(os.path.join(folder, name), encoding='utf-8', errors='surrogateescape') as f:
          libcst.parse_module(f.read())
'''


@dataclasses.dataclass(frozen=True)
class Tool:
  """How the tool is run: ``argv(paths, jobs)``, and a word for the table."""

  mode: str

  def argv(self, paths: list[str], jobs: int) -> list[str]:
    if self.mode == 'CLI':
      script = os.path.join(os.path.dirname(sys.executable), 'vjpify')
      command = [script] if os.path.exists(script) else [sys.executable, '-m', 'vjpify.transformer']
      # Every run is timed cold: the cache of results has its own row.
      return [*command, '--check', '--no-cache', f'--jobs={jobs}', *paths]
    return [sys.executable, '-c', _API_SCRIPT, *paths]


def tool() -> Tool:
  return Tool('CLI' if importlib.util.find_spec('vjpify.transformer.cli.main') else 'API')


def package_dirs() -> list[str]:
  dirs = []
  for name in LARGE_TREE_PACKAGES:
    spec = importlib.util.find_spec(name)
    if spec and spec.submodule_search_locations:
      dirs.append(list(spec.submodule_search_locations)[0])
  return dirs


def site_tree_source() -> str:
  spec = importlib.util.find_spec('flax.linen')
  return list(spec.submodule_search_locations)[0]


def python_files(root: str) -> list[str]:
  return sorted(
      os.path.join(folder, name)
      for folder, _, names in os.walk(root)
      for name in names
      if name.endswith('.py')
  )


def copy_python_files(sources: list[str], destination: str, suffix: str = '') -> tuple[int, int]:
  """Copies the ``*.py`` files under ``sources`` to ``destination``; files and bytes."""
  files = size = 0
  for source in sources:
    base = os.path.dirname(source.rstrip(os.sep))
    for path in python_files(source):
      target = os.path.join(destination, os.path.relpath(path, base))
      os.makedirs(os.path.dirname(target), exist_ok=True)
      with open(path, 'rb') as f:
        data = f.read() + suffix.encode()
      with open(target, 'wb') as f:
        f.write(data)
      files += 1
      size += len(data)
  return files, size


@dataclasses.dataclass
class ToolResults:
  mode: str
  large_files: int
  large_mb: float
  tool_large_s: float
  tool_large_status: int
  libcst_noop_s: float
  peak_mb: float
  site_files: int
  site_mb: float
  tool_sites_mb_per_s: float
  bare_parse_mb_per_s: float
  startup_s: float
  import_libcst_s: float

  @property
  def throughput_ratio(self) -> float:
    return self.tool_sites_mb_per_s / self.bare_parse_mb_per_s

  @property
  def startup_ratio(self) -> float:
    return self.startup_s / self.import_libcst_s


def run(rounds: int, startup_rounds: int, reference_rounds: int, jobs: int = 2) -> ToolResults:
  runner = tool()
  with tempfile.TemporaryDirectory(prefix='vjpify-bench-') as scratch:
    # Benchmarks 3 and 5: the installed packages, read in place by the tool
    # (--check writes nothing); LibCST's codemod runner rewrites what it
    # reads, so it gets a copy.
    packages = package_dirs()
    large_copy = os.path.join(scratch, 'large')
    large_files, large_bytes = copy_python_files(packages, large_copy)
    large = interleaved_commands({'tool': runner.argv(packages, jobs)}, rounds=rounds, warmup=0)['tool']
    noop = interleaved_commands(
        {'noop': [sys.executable, '-m', 'libcst.tool', 'codemod', f'--jobs={jobs}', 'noop.NOOPCommand', large_copy]},
        rounds=reference_rounds,
        warmup=0,
        cwd=scratch,
    )['noop']

    # Benchmark 3, second half: flax.linen with a site added to every file;
    # one core each.
    sites = os.path.join(scratch, 'sites')
    site_files, site_bytes = copy_python_files([site_tree_source()], sites, SITE)
    per_core = interleaved_commands(
        {
            'tool': runner.argv([sites], jobs=1),
            'parse': [sys.executable, '-c', _BARE_PARSE_SCRIPT, sites],
        },
        rounds=rounds,
        warmup=0,
    )

    # Benchmark 4: start-up, on a tree with nothing to do.
    empty = os.path.join(scratch, 'no_sites')
    for relative, text in NO_SITES.items():
      os.makedirs(os.path.dirname(os.path.join(empty, relative)), exist_ok=True)
      with open(os.path.join(empty, relative), 'w', encoding='utf-8') as f:
        f.write(text)
    startup = interleaved_commands(
        {'tool': runner.argv([empty], jobs=1), 'import': [sys.executable, '-c', 'import libcst']},
        rounds=startup_rounds,
    )
  return ToolResults(
      mode=runner.mode,
      large_files=large_files,
      large_mb=large_bytes / 2**20,
      tool_large_s=large['seconds'],
      tool_large_status=large['status'],
      libcst_noop_s=noop['seconds'],
      peak_mb=large['peak_mb'],
      site_files=site_files,
      site_mb=site_bytes / 2**20,
      tool_sites_mb_per_s=site_bytes / 2**20 / per_core['tool']['seconds'],
      bare_parse_mb_per_s=site_bytes / 2**20 / per_core['parse']['seconds'],
      startup_s=startup['tool']['seconds'],
      import_libcst_s=startup['import']['seconds'],
  )
