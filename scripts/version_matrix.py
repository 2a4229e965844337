"""Runs the behavioural tests against several flax/jax releases.

Each (flax, jax) pair gets its own virtual environment under ``--work-dir``
(reused on later runs), with vjpify installed from this checkout; the
differential and upstream tests run there and a Markdown table of the
outcomes is printed.

Example::

    python scripts/version_matrix.py                      # the default pairs
    python scripts/version_matrix.py --pair 0.8.0:0.4.23  # one pair
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import re
import subprocess
import sys
import time
import venv

REPO = pathlib.Path(__file__).resolve().parent.parent

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

TESTS = ('tests/test_differential.py', 'tests/test_flax_upstream.py')


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


def table(outcomes: list[Outcome]) -> str:
  rows = ['| flax | jax | result | tests | seconds |', '| --- | --- | --- | --- | --- |']
  rows += [f'| {o.flax} | {o.jax} | {o.status} | {o.summary} | {o.seconds:.0f} |' for o in outcomes]
  return '\n'.join(rows)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--pair', action='append', metavar='FLAX:JAX',
                      help='a flax:jax version pair to test (repeatable); default: a spread from 0.8.0 to the newest')
  parser.add_argument('--work-dir', type=pathlib.Path, default=REPO / '.cache' / 'matrix',
                      help='where the virtual environments and logs live (default: %(default)s)')
  args = parser.parse_args(argv)
  pairs = [tuple(p.split(':', 1)) for p in args.pair] if args.pair else list(DEFAULT_PAIRS)
  args.work_dir.mkdir(parents=True, exist_ok=True)
  outcomes = []
  for flax_version, jax_version in pairs:
    print(f'flax {flax_version} / jax {jax_version} ...', file=sys.stderr, flush=True)
    outcomes.append(run_pair(flax_version, jax_version, args.work_dir))
  print(table(outcomes))
  return 0 if all(o.status == 'pass' for o in outcomes) else 1


if __name__ == '__main__':
  raise SystemExit(main())
