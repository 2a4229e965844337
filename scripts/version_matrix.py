"""Runs the behavioural tests against several flax/jax releases.

Each (flax, jax) pair gets its own virtual environment under ``--work-dir``
(reused on later runs), with vjpify installed from this checkout; the
differential and upstream tests run there and a Markdown table of the
outcomes is printed. With ``--readme`` the table, and a line saying when
and how it was made, also replace what README.md holds between
``<!-- matrix:start -->`` and ``<!-- matrix:end -->``.

Example::

    python scripts/version_matrix.py                      # the default pairs
    python scripts/version_matrix.py --pair 0.8.0:0.4.23  # one pair
    python scripts/version_matrix.py --readme             # and into README.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import pathlib
import platform
import re
import shlex
import subprocess
import sys
import time
import venv

REPO = pathlib.Path(__file__).resolve().parent.parent
README = REPO / 'README.md'
START, END = '<!-- matrix:start -->', '<!-- matrix:end -->'

# The oldest release with nn.grad, a few in between, and the newest tested.
# Each jax is one the flax release was tested against upstream.
DEFAULT_PAIRS = (
    ('0.8.0', '0.4.23'),
    ('0.8.5', '0.4.30'),
    ('0.10.0', '0.4.35'),
    ('0.12.8', '0.10.2'),
)

# Old jax wheels predate NumPy 2.
NUMPY_FOR_OLD_JAX = 'numpy<2'

TESTS = ('tests/test_differential.py', 'tests/test_flax_upstream.py', 'tests/test_compiled.py')


@dataclasses.dataclass
class Outcome:
  flax: str
  jax: str
  status: str
  summary: str
  seconds: float


def _run(command: list[str], log: pathlib.Path) -> subprocess.CompletedProcess:
  with log.open('a') as out:
    out.write(f'$ {" ".join(command)}\n')
    out.flush()
    return subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, check=False)


def _pytest_summary(log: pathlib.Path) -> str:
  lines = [line for line in log.read_text(errors='replace').splitlines() if re.search(r'\d+ (passed|failed|error)', line)]
  return lines[-1].strip('= ') if lines else 'no summary'


def run_pair(flax_version: str, jax_version: str, work_dir: pathlib.Path) -> Outcome:
  start = time.monotonic()
  env_dir = work_dir / f'flax-{flax_version}-jax-{jax_version}'
  log = work_dir / f'flax-{flax_version}-jax-{jax_version}.log'
  log.write_text('')
  python = env_dir / 'bin' / 'python'
  if not python.exists():
    venv.create(env_dir, with_pip=True)
  requirements = [f'flax=={flax_version}', f'jax=={jax_version}', f'jaxlib=={jax_version}']
  if tuple(int(p) for p in jax_version.split('.')[:3]) < (0, 4, 26):
    requirements.append(NUMPY_FOR_OLD_JAX)
  steps = (
      [str(python), '-m', 'pip', 'install', '-q', '--upgrade', 'pip'],
      [str(python), '-m', 'pip', 'install', '-q', '-e', '.[test]', *requirements],
  )
  for step in steps:
    if _run(step, log).returncode != 0:
      return Outcome(flax_version, jax_version, 'install failed', f'see {log}', time.monotonic() - start)
  result = _run([str(python), '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *TESTS], log)
  status = 'pass' if result.returncode == 0 else 'FAIL'
  return Outcome(flax_version, jax_version, status, _pytest_summary(log), time.monotonic() - start)


def table(outcomes: list[Outcome], *, seconds: bool = True) -> str:
  """A Markdown table, one row per pair; ``seconds=False`` leaves out the
  time each took, which says more about the network than about vjpify."""
  columns = ['flax', 'jax', 'result', 'tests'] + ['seconds'] * seconds
  rows = ['| ' + ' | '.join(columns) + ' |', '| ' + ' | '.join(['---'] * len(columns)) + ' |']
  for o in outcomes:
    cells = [o.flax, o.jax, o.status, o.summary] + [f'{o.seconds:.0f}'] * seconds
    rows.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(rows)


def readme_block(outcomes: list[Outcome], made: datetime.date, python: str, command: str) -> str:
  """What goes between the README's markers: how the table was made, then the table."""
  return (f'Generated {made.isoformat()} by `{command}` with Python {python}: {" and ".join(TESTS)}, '
          f'run for each pair in a virtual environment of its own.\n\n{table(outcomes, seconds=False)}')


def replace_block(readme: str, block: str) -> str:
  """``readme`` with what lies between its matrix markers replaced by ``block``."""
  if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
    raise ValueError(f'README.md needs one {START} line and one {END} line after it, '
                     'in its "## Supported versions" section; add them and run again')
  before, rest = readme.split(START)
  after = rest.split(END)[1]
  return f'{before}{START}\n{block}\n{END}{after}'


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--pair', action='append', metavar='FLAX:JAX',
                      help='a flax:jax version pair to test (repeatable); default: a spread from 0.8.0 to the newest')
  parser.add_argument('--work-dir', type=pathlib.Path, default=REPO / '.cache' / 'matrix',
                      help='where the virtual environments and logs live (default: %(default)s)')
  parser.add_argument('--readme', action='store_true',
                      help='also write the table into README.md, between its matrix markers')
  args = parser.parse_args(argv)
  command = shlex.join(['python', 'scripts/version_matrix.py', *(sys.argv[1:] if argv is None else argv)])
  if args.readme:
    # Missing markers should stop the run now, not after an hour of installs.
    try:
      replace_block(README.read_text(encoding='utf-8'), '')
    except ValueError as error:
      parser.error(str(error))
  pairs = [tuple(p.split(':', 1)) for p in args.pair] if args.pair else list(DEFAULT_PAIRS)
  args.work_dir.mkdir(parents=True, exist_ok=True)
  outcomes = []
  for flax_version, jax_version in pairs:
    print(f'flax {flax_version} / jax {jax_version} ...', file=sys.stderr, flush=True)
    outcomes.append(run_pair(flax_version, jax_version, args.work_dir))
  print(table(outcomes))
  if args.readme:
    block = readme_block(outcomes, datetime.date.today(), platform.python_version(), command)
    README.write_text(replace_block(README.read_text(encoding='utf-8'), block), encoding='utf-8')
  return 0 if all(o.status == 'pass' for o in outcomes) else 1


if __name__ == '__main__':
  raise SystemExit(main())
