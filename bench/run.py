"""Runs every benchmark of the rewrite side by side and reports each goal as met or missed.

Example::

    PYTHONPATH=tests python bench/run.py                  # all five, table into docs/benchmarks.md
    PYTHONPATH=tests python bench/run.py --only runtime   # benchmarks 1 and 2
    PYTHONPATH=tests python bench/run.py --only scale     # benchmarks 8 and 9: a large file, a repeated run
    PYTHONPATH=tests python bench/run.py --no-docs        # print the table only

The table goes to standard output and, unless ``--no-docs`` (or its older
name ``--no-readme``), replaces what docs/benchmarks.md holds between
``<!-- bench:start -->`` and ``<!-- bench:end -->`` (added at the end of
the page when absent).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import version

PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs', 'benchmarks.md')
START, END = '<!-- bench:start -->', '<!-- bench:end -->'


def _met(ok: bool) -> str:
  return 'met' if ok else '**missed**'


def runtime_rows(rounds: int, jit_rounds: int, compile_rounds: int) -> tuple[list[tuple[str, ...]], list[str]]:
  import runtime_cases  # pylint: disable=import-outside-toplevel  (jax only when asked for)

  eager, jitted = runtime_cases.run(rounds, jit_rounds, compile_rounds)
  rows = []
  notes = []
  for result in eager:
    rows.append((
        '1',
        f'Eager `apply`, `{result.module}`: rewritten / original per call',
        f'{result.ratio:.3f} ({result.rewritten_ms:.2f} / {result.original_ms:.2f} ms); compiled after '
        f'{result.warmup_calls} calls; then traces: {result.compiled_traces}, uncompiled calls: {result.fallbacks}',
        '≤ 0.25; 0 traces, 0 uncompiled',
        _met(result.ratio <= 0.25 and result.compiled_traces == 0 and result.fallbacks == 0),
    ))
  for result in jitted:
    rows.append((
        '2',
        f'Under `jax.jit`, `{result.module}`: rewritten / original per step',
        f'{result.step_ratio:.3f} ({result.step_rewritten_ms:.3f} / {result.step_original_ms:.3f} ms); '
        f'retraces: {result.retraces}; HLO ops {result.hlo_ops_rewritten} / {result.hlo_ops_original}'
        + ('; identical programs' if result.hlo_identical else ''),
        '≤ 1.02; 0 retraces; ops ≤ original',
        _met(result.step_ratio <= 1.02 and result.retraces == 0
             and result.hlo_ops_rewritten <= result.hlo_ops_original),
    ))
    rows.append((
        '2',
        f'Under `jax.jit`, `{result.module}`: rewritten / original compile time',
        f'{result.compile_ratio:.3f} ({result.compile_rewritten_s:.2f} / {result.compile_original_s:.2f} s)',
        '≤ 1.10',
        _met(result.compile_ratio <= 1.10),
    ))
  return rows, notes


def pattern_rows(rounds: int, first_call_rounds: int) -> tuple[list[tuple[str, ...]], list[str]]:
  import pattern_cases  # pylint: disable=import-outside-toplevel
  import runtime_cases  # pylint: disable=import-outside-toplevel

  rows = []
  results = pattern_cases.patterns(rounds)
  results += [pattern_cases.first_call(path, first_call_rounds) for path in runtime_cases.module_paths()]
  for result in results:
    rows.append((
        '6',
        f'Call pattern, {result.name}: rewritten / original, all calls',
        f'{result.ratio:.3f} ({result.rewritten_s * 1e3:.1f} / {result.original_s * 1e3:.1f} ms)',
        f'≤ {result.goal:g}',
        _met(result.ratio <= result.goal),
    ))
  memory = pattern_cases.memory(limit_mb=64, keys=120)
  rows.append((
      '7',
      f'Cache memory: {memory.keys} distinct keys compiled under a {memory.limit_mb:g} MB limit',
      f'{memory.counted_mb:.0f} MB counted, {memory.resident_growth_mb:.0f} MB resident growth',
      f'counted ≤ {memory.limit_mb:g} MB',
      _met(memory.counted_mb <= memory.limit_mb),
  ))
  return rows, []


def tool_rows(rounds: int, startup_rounds: int, reference_rounds: int) -> tuple[list[tuple[str, ...]], list[str]]:
  import tool_cases  # pylint: disable=import-outside-toplevel

  result = tool_cases.run(rounds, startup_rounds, reference_rounds)
  how = 'the `vjpify --check` CLI' if result.mode == 'CLI' else 'the Python API (no CLI yet)'
  status = '' if result.tool_large_status in (0, 1) else f'; exit status {result.tool_large_status}'
  return [
      (
          '3',
          f'{how} on installed jax, flax, optax ({result.large_files} files, {result.large_mb:.1f} MB), 2 jobs',
          f'{result.tool_large_s:.2f} s{status} (LibCST noop codemod, 2 jobs: {result.libcst_noop_s:.1f} s)',
          '≤ 1 s',
          _met(result.tool_large_s <= 1.0 and not status),
      ),
      (
          '3',
          f'{how}, 1 job, on a tree where every file has a site '
          f'({result.site_files} files, {result.site_mb:.1f} MB): throughput / LibCST bare parse',
          f'{result.throughput_ratio:.2f} ({result.tool_sites_mb_per_s:.2f} / {result.bare_parse_mb_per_s:.2f} MB/s)',
          '≥ 0.80',
          _met(result.throughput_ratio >= 0.80),
      ),
      (
          '4',
          f'Start-up of {how} on a tree with no sites / `python -c "import libcst"`',
          f'{result.startup_ratio:.2f} ({result.startup_s * 1e3:.0f} / {result.import_libcst_s * 1e3:.0f} ms)',
          '≤ 1.5',
          _met(result.startup_ratio <= 1.5),
      ),
      (
          '5',
          f'Peak memory of {how} on the large tree (all processes)',
          f'{result.peak_mb:.0f} MB',
          '≤ 300 MB',
          _met(result.peak_mb <= 300),
      ),
  ], []


def scale_rows(rounds: int) -> tuple[list[tuple[str, ...]], list[str]]:
  import scale_cases  # pylint: disable=import-outside-toplevel

  result = scale_cases.run(rounds)
  status = '' if result.large_status in (0, 1) else f'; exit status {result.large_status}'
  return [
      (
          '8',
          f'`vjpify --check` on one generated file of {result.large_mb:.1f} MB, 1 job',
          f'{result.large_s:.2f} s, {result.large_peak_mb:.0f} MB peak{status}',
          '≤ 10 s, ≤ 300 MB',
          _met(result.large_s <= 10 and result.large_peak_mb <= 300 and not status),
      ),
      (
          '9',
          f'`vjpify --check` run again on {result.repeated_files} unchanged files with sites: first / second run',
          f'{result.repeat_speedup:.1f}x ({result.first_s:.2f} / {result.again_s:.2f} s)',
          '≥ 10x',
          _met(result.repeat_speedup >= 10),
      ),
  ], []


def table(rows: list[tuple[str, ...]], notes: list[str], args: argparse.Namespace) -> str:
  versions = ', '.join(f'{name} {version(name)}' for name in ('jax', 'flax', 'libcst'))
  lines = [
      f'Measured {datetime.date.today()} on {os.cpu_count()} cores ({platform.machine()}, '
      f'Python {platform.python_version()}, {versions}) by `PYTHONPATH=tests python bench/run.py`. '
      'Both sides of each ratio ran interleaved in the same run; each figure is a median: '
      f'{args.rounds} calls per eager side, {args.jit_rounds} jitted steps, {args.compile_rounds} '
      f'fresh compilations, {args.pattern_rounds} runs of each call pattern, {args.first_call_rounds} fresh '
      f'processes per first call, {args.tool_rounds} tool runs per tree ({args.reference_rounds} of the '
      f'LibCST codemod), {args.startup_rounds} start-ups.',
      '',
      '| # | Benchmark | Measured | Goal | Result |',
      '| - | --------- | -------- | ---- | ------ |',
  ]
  lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
  lines += ['', *notes] if notes else []
  return '\n'.join(lines)


def update_page(text: str, path: str = PAGE) -> None:
  """Puts ``text`` between the page's bench markers, the prose around them kept."""
  with open(path, encoding='utf-8') as f:
    page = f.read()
  block = f'{START}\n{text}\n{END}'
  if START in page and END in page:
    before, rest = page.split(START, 1)
    after = rest.split(END, 1)[1]
    page = before + block + after
  else:
    page = page.rstrip('\n') + f'\n\n{block}\n'
  with open(path, 'w', encoding='utf-8') as f:
    f.write(page)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--only', choices=('runtime', 'patterns', 'tool', 'scale'), help='run one part only')
  parser.add_argument('--pattern-rounds', type=int, default=5, help='interleaved rounds per call pattern')
  parser.add_argument('--first-call-rounds', type=int, default=11, help='fresh processes per side for the first call')
  parser.add_argument('--rounds', type=int, default=101, help='interleaved rounds per eager timing')
  parser.add_argument('--jit-rounds', type=int, default=300, help='interleaved rounds per jitted step timing')
  parser.add_argument('--compile-rounds', type=int, default=21, help='fresh compilations per side')
  parser.add_argument('--tool-rounds', type=int, default=3, help='runs of the tool per tree')
  parser.add_argument('--startup-rounds', type=int, default=15, help='runs per start-up timing')
  parser.add_argument('--reference-rounds', type=int, default=1,
                      help="runs of LibCST's noop codemod on the large tree (slow)")
  # --no-readme is the option's name from when the table lived in README.md.
  parser.add_argument('--no-docs', '--no-readme', dest='no_docs', action='store_true',
                      help='do not rewrite docs/benchmarks.md')
  args = parser.parse_args(argv)

  rows, notes = [], []
  if args.only in (None, 'runtime'):
    more_rows, more_notes = runtime_rows(args.rounds, args.jit_rounds, args.compile_rounds)
    rows += more_rows
    notes += more_notes
  if args.only in (None, 'patterns'):
    more_rows, more_notes = pattern_rows(args.pattern_rounds, args.first_call_rounds)
    rows += more_rows
    notes += more_notes
  if args.only in (None, 'tool'):
    more_rows, more_notes = tool_rows(args.tool_rounds, args.startup_rounds, args.reference_rounds)
    rows += more_rows
    notes += more_notes
  if args.only in (None, 'scale'):
    more_rows, more_notes = scale_rows(args.tool_rounds)
    rows += more_rows
    notes += more_notes
  text = table(rows, notes, args)
  print(text)
  if not args.no_docs:
    update_page(text)
  return 0 if all(row[-1] == 'met' for row in rows) else 1


if __name__ == '__main__':
  sys.exit(main())
