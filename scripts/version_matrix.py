"""Runs the behavioural tests against several Python, flax and jax releases.

Each (Python, flax, jax) combination gets its own virtual environment under
``--work-dir`` (reused on later runs), with vjpify installed from this
checkout; the differential, upstream and compiled-runtime tests run there
and a Markdown table of the outcomes is printed. The compiled runtime reads
bytecode and uses ``sys.settrace`` (Python 3.10, 3.11) or ``sys.monitoring``
(3.12 and later), so every supported Python has a row. With ``--docs`` (or
its older name ``--readme``) the table, and a line saying when and how it was
made, also replace what docs/supported-versions.md holds between
``<!-- matrix:start -->`` and ``<!-- matrix:end -->``.

Example::

    python scripts/version_matrix.py                           # the default rows
    python scripts/version_matrix.py --pair 0.8.0:0.4.23       # one pair, this Python
    python scripts/version_matrix.py --combo 3.13:0.12.8:0.10.2  # one row
    python scripts/version_matrix.py --docs                    # and into docs/supported-versions.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import glob
import os
import pathlib
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
PAGE = REPO / 'docs' / 'supported-versions.md'
START, END = '<!-- matrix:start -->', '<!-- matrix:end -->'

# The oldest release with nn.grad, a few in between, and the newest tested,
# on the Python the project develops with; then every other supported Python
# with the newest pair that installs there. Each jax is one the flax release
# was tested against upstream.
DEFAULT_COMBOS = (
    ('3.11', '0.8.0', '0.4.23'),
    ('3.11', '0.8.5', '0.4.30'),
    ('3.11', '0.10.0', '0.4.35'),
    ('3.11', '0.12.8', '0.10.2'),
    ('3.10', '0.10.7', '0.6.2'),
    ('3.12', '0.12.8', '0.10.2'),
    ('3.13', '0.12.8', '0.10.2'),
)

# Old jax wheels predate NumPy 2.
NUMPY_FOR_OLD_JAX = 'numpy<2'

TESTS = ('tests/end_to_end/test_differential.py', 'tests/end_to_end/test_flax_upstream.py',
         'tests/runtime/test_compiled.py', 'tests/runtime/test_compiled_bytecode.py',
         'tests/runtime/test_compiled_allowlist.py', 'tests/runtime/test_compiled_channels.py',
         'tests/runtime/test_compiled_warnings.py', 'tests/runtime/test_compiled_fingerprint.py',
         'tests/runtime/test_compiled_explain.py', 'tests/runtime/test_internals.py',
         'tests/end_to_end/test_programs.py', 'tests/end_to_end/test_lift_differential.py')


@dataclasses.dataclass
class Outcome:
  python: str
  flax: str
  jax: str
  status: str
  summary: str
  seconds: float


def find_python(version: str) -> str | None:
  """An interpreter for ``version`` (``3.12``) that runs: installed by pyenv, or on PATH as python3.12.

  pyenv's shims on PATH answer for every version but run only the selected
  ones, so each candidate is tried.
  """
  root = os.environ.get('PYENV_ROOT', os.path.expanduser('~/.pyenv'))
  candidates = sorted(glob.glob(os.path.join(root, 'versions', f'{version}.*', 'bin', 'python')), reverse=True)
  on_path = shutil.which(f'python{version}')
  if on_path:
    candidates.append(on_path)
  for candidate in candidates:
    check = subprocess.run([candidate, '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
                           capture_output=True, text=True, check=False)
    if check.returncode == 0 and check.stdout.strip() == version:
      return candidate
  return None


def _run(command: list[str], log: pathlib.Path) -> subprocess.CompletedProcess:
  with log.open('a') as out:
    out.write(f'$ {" ".join(command)}\n')
    out.flush()
    return subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, check=False)


def _pytest_summary(log: pathlib.Path) -> str:
  lines = [line for line in log.read_text(errors='replace').splitlines() if re.search(r'\d+ (passed|failed|error)', line)]
  return lines[-1].strip('= ') if lines else 'no summary'


def run_combo(python_version: str, flax_version: str, jax_version: str, work_dir: pathlib.Path) -> Outcome:
  start = time.monotonic()
  name = f'python-{python_version}-flax-{flax_version}-jax-{jax_version}'
  env_dir = work_dir / name
  log = work_dir / f'{name}.log'
  log.write_text('')
  python = env_dir / 'bin' / 'python'
  if not python.exists():
    interpreter = find_python(python_version)
    if interpreter is None:
      return Outcome(python_version, flax_version, jax_version, 'no interpreter', f'python{python_version} not found',
                     time.monotonic() - start)
    if _run([interpreter, '-m', 'venv', str(env_dir)], log).returncode != 0:
      return Outcome(python_version, flax_version, jax_version, 'install failed', f'see {log}',
                     time.monotonic() - start)
  requirements = [f'flax=={flax_version}', f'jax=={jax_version}', f'jaxlib=={jax_version}']
  if tuple(int(p) for p in jax_version.split('.')[:3]) < (0, 4, 26):
    requirements.append(NUMPY_FOR_OLD_JAX)
  steps = (
      [str(python), '-m', 'pip', 'install', '-q', '--upgrade', 'pip'],
      [str(python), '-m', 'pip', 'install', '-q', '-e', '.[test]', *requirements],
  )
  for step in steps:
    if _run(step, log).returncode != 0:
      return Outcome(python_version, flax_version, jax_version, 'install failed', f'see {log}',
                     time.monotonic() - start)
  # The whole of each file, in one process (not the fast tier the README's command runs).
  result = _run([str(python), '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-m', 'not slow', '-n', '0', *TESTS],
                log)
  status = 'pass' if result.returncode == 0 else 'FAIL'
  return Outcome(python_version, flax_version, jax_version, status, _pytest_summary(log), time.monotonic() - start)


def table(outcomes: list[Outcome], *, seconds: bool = True) -> str:
  """A Markdown table, one row per combination; ``seconds=False`` leaves out
  the time each took, which says more about the network than about vjpify."""
  columns = ['python', 'flax', 'jax', 'result', 'tests'] + ['seconds'] * seconds
  rows = ['| ' + ' | '.join(columns) + ' |', '| ' + ' | '.join(['---'] * len(columns)) + ' |']
  for o in outcomes:
    cells = [o.python, o.flax, o.jax, o.status, o.summary] + [f'{o.seconds:.0f}'] * seconds
    rows.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(rows)


def page_block(outcomes: list[Outcome], made: datetime.date, command: str, tests: tuple[str, ...] = TESTS) -> str:
  """What goes between the page's markers: how the table was made (``tests``: the files each row ran, which a
  block made before the suite moved names as they were), then the table."""
  return (f'Generated {made.isoformat()} by `{command}`: {", ".join(tests)}, run for each row in a virtual '
          f'environment of its own.\n\n{table(outcomes, seconds=False)}')


def replace_block(page: str, block: str) -> str:
  """``page`` with what lies between its matrix markers replaced by ``block``."""
  if page.count(START) != 1 or page.count(END) != 1 or page.index(START) > page.index(END):
    raise ValueError(f'docs/supported-versions.md needs one {START} line and one {END} line after it; '
                     'add them and run again')
  before, rest = page.split(START)
  after = rest.split(END)[1]
  return f'{before}{START}\n{block}\n{END}{after}'


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--pair', action='append', metavar='FLAX:JAX',
                      help='a flax:jax version pair to test with this Python (repeatable)')
  parser.add_argument('--combo', action='append', metavar='PYTHON:FLAX:JAX',
                      help='a Python:flax:jax combination to test (repeatable); default: a spread of flax and jax '
                           'from 0.8.0 to the newest on Python 3.11, and the newest on 3.10, 3.12 and 3.13')
  parser.add_argument('--work-dir', type=pathlib.Path, default=REPO / '.cache' / 'matrix',
                      help='where the virtual environments and logs live (default: %(default)s)')
  # --readme is the option's name from when the table lived in README.md.
  parser.add_argument('--docs', '--readme', dest='docs', action='store_true',
                      help='also write the table into docs/supported-versions.md, between its matrix markers')
  args = parser.parse_args(argv)
  command = shlex.join(['python', 'scripts/version_matrix.py', *(sys.argv[1:] if argv is None else argv)])
  if args.docs:
    # Missing markers should stop the run now, not after an hour of installs.
    try:
      replace_block(PAGE.read_text(encoding='utf-8'), '')
    except ValueError as error:
      parser.error(str(error))
  this_python = '.'.join(platform.python_version_tuple()[:2])
  combos = [tuple(c.split(':', 2)) for c in args.combo or ()]
  combos += [(this_python, *p.split(':', 1)) for p in args.pair or ()]
  if not combos:
    combos = list(DEFAULT_COMBOS)
  args.work_dir.mkdir(parents=True, exist_ok=True)
  outcomes = []
  for python_version, flax_version, jax_version in combos:
    print(f'python {python_version} / flax {flax_version} / jax {jax_version} ...', file=sys.stderr, flush=True)
    outcomes.append(run_combo(python_version, flax_version, jax_version, args.work_dir))
  print(table(outcomes))
  if args.docs:
    block = page_block(outcomes, datetime.date.today(), command)
    PAGE.write_text(replace_block(PAGE.read_text(encoding='utf-8'), block), encoding='utf-8')
  return 0 if all(o.status == 'pass' for o in outcomes) else 1


if __name__ == '__main__':
  raise SystemExit(main())
