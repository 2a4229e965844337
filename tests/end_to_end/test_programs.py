"""Programs written as users write them behave the same after the default (compiled) rewrite.

Each program in ``fixtures/programs`` (see the README there) is rewritten by
vjpify and run as written and as rewritten, each in a fresh Python process
(``tests/program_runner.py``). The two runs must print the same standard
output and error, and return the same tree: the same structure, leaf types,
dtypes, weak types and shapes, float32 and float64 values within 1e-6 (one
compiled program rounds differently from op-by-op dispatch), everything else
exactly; or raise the same exception with the same message. What
``vjpify.runtime.explain()`` reports for the rewritten run must match the
program's expectations (``EXPECT_COMPILED``, ``EXPECT_REASON``,
``EXPECT_RETRACE``), so that no program passes by never compiling.

Each program runs in both of the runtime's modes that compile: compiling at
the first eligible call (``VJPIFY_COMPILE=always``, which exercises the
compiled path wherever it can be taken, and where the expectations apply),
and the default tiered mode, which compiles once a key has paid for it.

All programs start at once, one process per core, when the first test asks
for its program.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pathlib
import pickle
import re
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np
import pytest

from support.comparing import COMPILED_RTOL, assert_arrays_close
from vjpify.transformer import transform_source

REPO = pathlib.Path(__file__).resolve().parents[2]
PROGRAMS = REPO / 'fixtures' / 'programs'
RUNNER = pathlib.Path(__file__).resolve().parents[1] / 'program_runner.py'
# What the compiled lowering promises for float32 and float64 values.
TOLERANCE = COMPILED_RTOL
TIMEOUT = 600


@dataclasses.dataclass(frozen=True)
class Run:
  returncode: int
  stdout: str
  stderr: str
  outcome: dict | None


MODES = ('always', 'tiered')


def _program_ids() -> list:
  return [pytest.param(path.name, mode, id=f'{path.stem}-{mode}')
          for path in sorted(PROGRAMS.glob('*.py')) for mode in MODES]


def _expectations(code: str) -> dict[str, Any]:
  namespace: dict[str, Any] = {}
  for line in code.splitlines():
    if line.startswith(('EXPECT_', 'TOLERANCE = ')):
      exec(line, namespace)  # pylint: disable=exec-used
  return {name: value for name, value in namespace.items() if name.startswith('EXPECT_') or name == 'TOLERANCE'}


def _run(path: pathlib.Path, directory: pathlib.Path, mode: str) -> Run:
  out = directory / f'{path.stem}.outcome'
  env = {**os.environ, 'PYTHONHASHSEED': '0', 'JAX_PLATFORMS': 'cpu', 'PYTHONDONTWRITEBYTECODE': '1',
         'VJPIFY_COMPILE': mode}
  env.pop('PROGRAM_SCALE', None)
  process = subprocess.run([sys.executable, str(RUNNER), str(path), str(out)], capture_output=True, text=True,
                           cwd=directory, env=env, timeout=TIMEOUT, check=False)
  outcome = pickle.loads(out.read_bytes()) if out.exists() else None
  return Run(process.returncode, process.stdout, process.stderr, outcome)


def _run_pair(name: str, mode: str) -> tuple[Run, Run]:
  source = PROGRAMS / name
  code = source.read_text(encoding='utf-8')
  result = transform_source(code, str(source))
  left = [site.format() for site in result.sites if site.action != 'rewritten']
  assert not left and result.changed, f'{name}: every site must be rewritten:\n' + '\n'.join(left)
  with tempfile.TemporaryDirectory(prefix='vjpify-program-') as temporary:
    directory = pathlib.Path(temporary)
    (directory / 'original').mkdir()
    (directory / 'rewritten').mkdir()
    rewritten = directory / 'rewritten' / name
    rewritten.write_text(result.code, encoding='utf-8')
    return _run(source, directory / 'original', mode), _run(rewritten, directory / 'rewritten', mode)


_executor: concurrent.futures.ThreadPoolExecutor | None = None
_futures: dict[str, concurrent.futures.Future] = {}


@pytest.fixture(scope='session')
def program_runs(request) -> dict[str, concurrent.futures.Future]:
  """Starts every selected program, in both forms, at once."""
  global _executor
  selected = [(item.callspec.params['program'], item.callspec.params['mode']) for item in request.session.items
              if item.originalname == 'test_program_behaves_the_same_after_the_rewrite']
  _executor = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 1)))
  for name, mode in selected:
    _futures.setdefault((name, mode), _executor.submit(_run_pair, name, mode))
  yield _futures
  _executor.shutdown(cancel_futures=True)


# Older jax prints this when a NaN comes out of a primitive it has already
# run through its C++ dispatch; whether it has depends on which primitives the
# process ran eagerly before, which a rewrite changes (it traces instead). The
# error that follows is compared.
_JAX_DISPATCH_NOTICE = re.compile(r'^Invalid nan value encountered in the output of a C\+\+-jit/pmap function\. '
                                  r'Calling the de-optimized version\.\n', re.MULTILINE)


def _comparable_output(text: str) -> str:
  # Reprs of some objects (tracers of older jax) hold memory addresses, which
  # differ between any two processes.
  return _JAX_DISPATCH_NOTICE.sub('', re.sub(r'0x[0-9a-f]{6,}', '0x…', text))


def _describe(run: Run) -> str:
  return f'exit {run.returncode}\n--- stdout\n{run.stdout[-3000:]}\n--- stderr\n{run.stderr[-3000:]}'


def _assert_same_leaf(index: int, want: tuple, got: tuple, tolerance: float = TOLERANCE) -> None:
  label = f'leaf {index}'
  assert got[0] == want[0], f'{label}: {got[0]} where the original has {want[0]}'
  kind = want[0]
  if kind == 'array':
    _, dtype, weak, value = want
    _, got_dtype, got_weak, got_value = got
    assert (got_dtype, got_weak, got_value.shape) == (dtype, weak, value.shape), label
    if np.issubdtype(value.dtype, np.floating) and value.dtype.itemsize >= 4:
      assert_arrays_close(value, got_value, label, rtol=tolerance, atol=tolerance)
    else:
      assert_arrays_close(value, got_value, label)
      assert got_value.tobytes() == value.tobytes(), f'{label}: the bits differ'
  elif kind in ('key', 'ndarray'):
    assert got[1] == want[1] and got[2].shape == want[2].shape, label
    assert got[2].tobytes() == want[2].tobytes(), f'{label}: {got[2]!r} where the original has {want[2]!r}'
  else:
    assert got[1] == want[1], f'{label}: a {got[1]} where the original has a {want[1]}'
    if isinstance(want[2], float) and want[2] != want[2]:
      assert got[2] != got[2], label
    else:
      assert got[2] == want[2], f'{label}: {got[2]!r} where the original has {want[2]!r}'


def assert_same_outcome(original: dict, rewritten: dict, tolerance: float = TOLERANCE) -> None:
  if 'error' in original:
    assert rewritten.get('error') == original['error']
    return
  assert 'error' not in rewritten, f'the rewritten program raised {rewritten["error"]}'
  want, got = original['result'], rewritten['result']
  assert got['tree'] == want['tree']
  assert len(got['leaves']) == len(want['leaves'])
  for index, (a, b) in enumerate(zip(want['leaves'], got['leaves'])):
    _assert_same_leaf(index, a, b, tolerance)


def _assert_expectations(name: str, rewritten: dict) -> None:
  expected = _expectations((PROGRAMS / name).read_text(encoding='utf-8'))
  sites = rewritten.get('explain', [])
  compiled = sum(site['compiled'] for site in sites)
  if not rewritten.get('flax_compiles', True):
    # flax releases before 0.10 run every call uncompiled.
    assert compiled == 0
    return
  reasons = [reason for site in sites for reason in site['reasons']]
  retraces = [reason for site in sites for reason in site['retraces']]
  if 'EXPECT_COMPILED' in expected:
    if expected['EXPECT_COMPILED']:
      # A site is excused only for the reason the program names.
      excused = expected.get('EXPECT_REASON')
      missing = [site['site'] for site in sites if not site['compiled']
                 and not (excused and any(excused in reason for reason in site['reasons']))]
      assert not missing, f'no call ran compiled at {missing}; reasons: {reasons}'
    else:
      assert compiled == 0, f'{compiled} calls ran compiled'
  if 'EXPECT_REASON' in expected:
    assert any(expected['EXPECT_REASON'] in reason for reason in reasons), reasons
  if 'EXPECT_RETRACE' in expected:
    assert any(expected['EXPECT_RETRACE'] in reason for reason in retraces), retraces


@pytest.mark.parametrize('program, mode', _program_ids())
def test_program_behaves_the_same_after_the_rewrite(program, mode, program_runs):
  original, rewritten = program_runs[program, mode].result()
  assert original.outcome is not None, f'the original program did not finish:\n{_describe(original)}'
  assert rewritten.outcome is not None, f'the rewritten program did not finish:\n{_describe(rewritten)}'
  assert _comparable_output(rewritten.stdout) == _comparable_output(original.stdout)
  assert _comparable_output(rewritten.stderr) == _comparable_output(original.stderr)
  assert rewritten.returncode == original.returncode
  # A program may widen the float tolerance where eager dispatch and jax.jit
  # of the original program already differ more, saying why (TOLERANCE).
  tolerance = _expectations((PROGRAMS / program).read_text(encoding='utf-8')).get('TOLERANCE', TOLERANCE)
  assert_same_outcome(original.outcome, rewritten.outcome, tolerance)
  if mode == 'always':
    _assert_expectations(program, rewritten.outcome)


def test_the_comparison_catches_what_it_must():
  base = {'result': {'tree': 'PyTreeDef([*])', 'leaves': [('array', 'float32', False, np.float32([1.0]))]}}
  same = {'result': {'tree': 'PyTreeDef([*])', 'leaves': [('array', 'float32', False, np.float32([1.0000001]))]}}
  assert_same_outcome(base, same)
  for leaves in ([('array', 'float32', False, np.float32([1.01]))], [('array', 'float16', False, np.float16([1.0]))],
                 [('array', 'float32', True, np.float32([1.0]))], [('value', 'float', 1.0)]):
    with pytest.raises(AssertionError):
      assert_same_outcome(base, {'result': {'tree': 'PyTreeDef([*])', 'leaves': leaves}})
  signed = {'result': {'tree': 'PyTreeDef([*])', 'leaves': [('ndarray', 'float64', np.float64([-0.0]))]}}
  with pytest.raises(AssertionError):
    assert_same_outcome({'result': {'tree': 'PyTreeDef([*])', 'leaves': [('ndarray', 'float64', np.float64([0.0]))]}},
                        signed)
  with pytest.raises(AssertionError):
    assert_same_outcome({'error': ('ValueError', 'a')}, {'error': ('ValueError', 'b')})
