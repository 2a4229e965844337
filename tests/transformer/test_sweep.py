"""The real-code sweeps of ``scripts/sweep.py`` and ``scripts/inject_sites.py``.

Marked slow: every ``.py`` file of the installed jax, flax, optax, numpy and
libcst, through the API and through a forced full parse and pass, must come
out byte for byte as it went in. In CI: a fixed sample of small files in both
modes, sites planted into a few small flax files, and checks that the sweep
itself notices a change, a syntax error and a crash.
"""

from __future__ import annotations

import pathlib

import pytest

import inject_sites
import sweep
from rewrite_check import check_rewrite


def _sample(count: int, max_bytes: int) -> list[pathlib.Path]:
  """Small files spread evenly over every package, the same ones each run."""
  small = [p for p in sweep.package_files(sweep.DEFAULT_PACKAGES) if p.stat().st_size <= max_bytes]
  return small[::max(1, len(small) // count)][:count]


def _assert_clean(report: sweep.Report) -> None:
  print(report.summary())
  assert not report.problems, '\n'.join(f'{o.path}: {o.status}\n{o.detail}' for o in report.problems)


@pytest.mark.slow
@pytest.mark.parametrize('mode, passes', [
    ('api', 2),
    # A second full pass over some 28 MB of unchanged code would double a
    # half-hour run to check only that the pass is deterministic.
    ('full', 1),
])
def test_installed_packages_come_out_byte_identical(mode, passes):
  paths = sweep.package_files(sweep.DEFAULT_PACKAGES)
  assert len(paths) > 1000
  _assert_clean(sweep.sweep(paths, mode, passes))


@pytest.mark.slow
def test_sites_planted_in_flax_keep_every_guarantee(tmp_path):
  assert inject_sites.main(['--keep', str(tmp_path)]) == 0


@pytest.mark.parametrize('mode', sorted(sweep.MODES))
def test_sample_of_installed_files_comes_out_byte_identical(mode):
  paths = _sample(20, 4000)
  assert len({p.parts[-2] for p in paths}) > 5
  _assert_clean(sweep.sweep(paths, mode))


@pytest.mark.parametrize('name', ['activation.py', 'combinators.py', 'stochastic.py'])
def test_sites_planted_in_small_flax_files_keep_every_guarantee(name):
  (path,) = [p for p in inject_sites.default_files() if p.parts[-2:] == ('linen', name)]
  code, planted = inject_sites.plant_sites(path.read_text(), seed=0)
  assert planted
  result = check_rewrite(code, name)
  assert any(site.action == 'rewritten' for site in result.sites)


SITE = '''import flax.linen as nn

class M(nn.Module):
  def __call__(self, x):
    return nn.grad(lambda mdl, x: x, self, x)
'''


@pytest.mark.parametrize('text, status', [
    pytest.param('x = 1  # flax grad\r\n', sweep.IDENTICAL, id='crlf_kept'),
    pytest.param('\ufeffx = "é"  # flax grad\n', sweep.IDENTICAL, id='bom_kept'),
    pytest.param(SITE, sweep.CHANGED, id='site'),
    pytest.param('import flax  # grad\ndef f(:\n', sweep.UNPARSEABLE, id='syntax_error'),
])
@pytest.mark.parametrize('mode', sorted(sweep.MODES))
def test_sweep_tells_outcomes_apart(tmp_path, mode, text, status):
  path = tmp_path / 'case.py'
  path.write_bytes(text.encode('utf-8'))
  assert sweep.sweep_file(path, sweep.MODES[mode]).status == status


def test_sweep_reports_a_crash_and_goes_on(tmp_path):
  path = tmp_path / 'case.py'
  path.write_text('x = 1\n')

  def crashing(code, path):
    raise RecursionError('deep')

  outcome = sweep.sweep_file(path, crashing)
  assert outcome.status == sweep.CRASHED
  assert 'RecursionError' in outcome.detail


def test_sweep_notices_a_second_pass_that_changes_again(tmp_path):
  path = tmp_path / 'case.py'
  path.write_text('x = 1\n')
  outputs = iter(['x = 1\n', 'x = 2\n'])
  assert sweep.sweep_file(path, lambda code, path: next(outputs)).status == sweep.UNSTABLE
