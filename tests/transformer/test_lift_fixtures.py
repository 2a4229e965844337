"""jax transforms over bound Modules without ``--lift-jax-transforms``: each
site of ``fixtures/lift/`` is reported where it is, with the reason it would
not be lifted or the advice to lift it, and nothing changes; ``--strict``
fails on them only with ``--strict-jax-transforms``. Also the settings that
turn lifting on: the configuration key and the API's keyword.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from support.cli import vjpify, write
from test_fixtures import FIXTURES, INPUT_PATH, case_flags

from vjpify.transformer import settings_for, transform_source
from vjpify.transformer.cli.main import argument_parser
from vjpify.transformer.diagnostics import REPORTED, REWRITTEN, SKIPPED
from vjpify.transformer.find.lift_reasons import TEXTS, LiftReason, message
from vjpify.transformer.find.targets import JAX_TRANSFORMS
from vjpify.transformer.pipeline import transform_text
from vjpify.transformer.settings import Settings

LIFT_CASES = [pytest.param(case, id=case.name) for case in sorted((FIXTURES / 'lift').glob('*/'))
              if (case / 'input.py').exists()]

SOURCE = '''\
import flax.linen as nn
import jax


class Model(nn.Module):

  def setup(self):
    self.dense = nn.Dense(1)

  def __call__(self, r):
    return jax.grad(lambda r: self.dense(r).sum())(r)
'''
REPORT = ('model.py:11:12: VJ301 jax.grad(...) is a jax transform over a bound Module, which breaks with mutable '
          'collections and on older flax; left unchanged; lift it to nn.vjp with --lift-jax-transforms')


def _settings(flags: list[str]) -> Settings:
  return Settings.from_args(argument_parser().parse_args([*flags, INPUT_PATH]))


@pytest.mark.parametrize('case', LIFT_CASES)
def test_default_run_reports_every_site_and_lifts_none(case: pathlib.Path) -> None:
  source = (case / 'input.py').read_text(encoding='utf-8')
  flags = case_flags(case)
  lifted = transform_text(source, INPUT_PATH, _settings(flags))
  default = transform_text(source, INPUT_PATH, _settings([f for f in flags if f != '--lift-jax-transforms']))
  expected = []
  for site in lifted.sites:
    if site.kind not in JAX_TRANSFORMS or site.action == SKIPPED and 'vjpify: skip' in site.reason:
      continue
    reason = site.reason
    if site.action == REWRITTEN:
      reason = message(LiftReason.REPORTED, reason.split('(...)', 1)[0]).text
    expected.append((site.line, site.column, site.kind, REPORTED, reason))
  assert [(s.line, s.column, s.kind, s.action, s.reason) for s in default.sites
          if s.kind in JAX_TRANSFORMS and not s.requested] == expected
  assert not re.search(r'\bjax_\w+_from_vjp\b', default.code)
  if 'nn.grad' not in source:
    assert default.code == source


def test_every_reason_has_a_code_of_its_own_and_a_text() -> None:
  codes = [reason.code for reason in LiftReason]
  assert len(set(codes)) == len(codes)
  assert all(re.fullmatch(r'VJ3\d\d', code) for code in codes)
  assert set(TEXTS) == set(LiftReason)


@pytest.mark.parametrize(('flags', 'status', 'shown'), [
    pytest.param(('--strict',), 0, [REPORT], id='strict-ignores-reported-sites'),
    pytest.param(('--strict', '-q'), 0, [], id='quiet-strict-hides-them'),
    pytest.param(('--strict', '--strict-jax-transforms', '-q'), 1, [REPORT], id='strict-jax-transforms-fails'),
])
def test_strict_and_reported_sites(tmp_path, flags, status, shown) -> None:
  write(tmp_path / 'model.py', SOURCE)
  result = vjpify(*flags, '--check', 'model.py', cwd=tmp_path)
  assert result.returncode == status, result.stderr
  assert [line for line in result.stderr.splitlines() if not line.startswith('vjpify: ')] == shown
  assert (tmp_path / 'model.py').read_text() == SOURCE


def test_configuration_key_and_api_keyword_turn_lifting_on(tmp_path) -> None:
  write(tmp_path / 'pyproject.toml', '[tool.vjpify]\nlift-jax-transforms = true\nstrict-jax-transforms = true\n'
        'strict = true\n')
  write(tmp_path / 'model.py', SOURCE)
  settings = settings_for(str(tmp_path / 'model.py'))
  assert settings.lift_jax_transforms and settings.strict_jax_transforms
  from_config = transform_source(SOURCE, 'model.py', settings=settings)
  from_keyword = transform_source(SOURCE, 'model.py', lift_jax_transforms=True)
  assert from_config.code == from_keyword.code != SOURCE
  assert [s.action for s in from_keyword.sites] == [REWRITTEN]
  # The command line undoes what the configuration turned on.
  result = vjpify('--no-lift-jax-transforms', '--check', 'model.py', cwd=tmp_path)
  assert (result.returncode, result.stderr.splitlines()[-1]) == (1, 'vjpify: strict: 1 site left unchanged')
  result = vjpify('--no-lift-jax-transforms', '--no-strict-jax-transforms', '--check', 'model.py', cwd=tmp_path)
  assert result.returncode == 0, result.stderr


def test_configuration_key_must_be_a_boolean(tmp_path) -> None:
  write(tmp_path / 'pyproject.toml', '[tool.vjpify]\nlift-jax-transforms = "yes"\n')
  result = vjpify('model.py', cwd=tmp_path)
  assert result.returncode == 2
  assert result.stderr.splitlines() == [
      "pyproject.toml:2:1: VJ106 'lift-jax-transforms' in [tool.vjpify] must be true or false, not 'yes' (a string); "
      'nothing was rewritten; fix the value']
