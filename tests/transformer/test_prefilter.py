"""The prefilter must never change a result: with it and without it (the
LibCST pass run on every file) the code and the sites must be the same, on
every fixture and on generated files that bind flax's grad in many ways.
"""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import tiers
from vjpify.transformer import ConfigError, TransformError, settings_for
from vjpify.transformer.find.prefilter import may_hold_sites, parse_quietly
from vjpify.transformer.pipeline import reduced_pass, transform_text
from vjpify.transformer.settings import Settings

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURE_FILES = sorted((REPO / 'fixtures').glob('**/*.py'))
# The files of the multi-file projects, each transformed at its own path so
# that its classes' bases are traced through the project's other files.
PROJECT_FILES = sorted((REPO / 'fixtures' / 'projects').glob('*/tree/**/*.py'))


def _outcome(transform, code: str):
  try:
    result = transform(code)
  except TransformError as error:
    return 'error', error.site
  return result.code, result.sites


def _with_prefilter(code: str):
  # The pipeline's, not the API's: transform_source also checks the syntax
  # of what the prefilter rules out.
  return transform_text(code, 'm.py', Settings())


def _without_prefilter(code: str):
  return reduced_pass(code, parse_quietly(code), 'm.py', Settings())


def assert_same_with_and_without(code: str) -> None:
  without = _outcome(_without_prefilter, code)
  assert _outcome(_with_prefilter, code) == without
  # Where the prefilter drops the file, the pass must find nothing in it.
  if not may_hold_sites(code):
    assert without == (code, ())


@pytest.mark.parametrize('path', FIXTURE_FILES, ids=lambda p: str(p.relative_to(REPO / 'fixtures')))
def test_fixture_results_do_not_depend_on_the_prefilter(path):
  assert_same_with_and_without(path.read_text(encoding='utf-8'))


def test_fixtures_are_found():
  assert len(FIXTURE_FILES) > 100
  assert len(PROJECT_FILES) > 40


def project_settings(path: pathlib.Path) -> Settings:
  """The settings the file's project asks for (the defaults where its
  configuration is one of the broken ones)."""
  try:
    return settings_for(str(path))
  except ConfigError:
    return Settings()


@pytest.mark.parametrize('path', PROJECT_FILES, ids=lambda p: str(p.relative_to(REPO / 'fixtures' / 'projects')))
def test_project_results_do_not_depend_on_the_prefilter(path):
  code, settings = path.read_text(encoding='utf-8'), project_settings(path)
  with_prefilter = _outcome(lambda c: transform_text(c, str(path), settings), code)
  without = _outcome(lambda c: reduced_pass(c, parse_quietly(c), str(path), settings), code)
  assert with_prefilter == without
  if not may_hold_sites(code):
    assert without == (code, ())


@pytest.mark.parametrize('code', [
    pytest.param('import flax.linen as nn\nf = nn.grad\n', id='alias'),
    pytest.param('import flax\nflax.linen.value_and_grad(f, m)\n', id='full-spelling'),
    pytest.param('from flax import linen\nlinen.grad\n', id='from-flax'),
    pytest.param('from flax.linen import grad as g\n', id='from-linen-import-grad'),
    pytest.param('from flax.linen.transforms import value_and_grad\n', id='from-transforms'),
    pytest.param('import flax.linen.transforms as t\nt.grad\n', id='transforms-alias'),
    pytest.param('def f():\n  import flax.linen as nn\n  return nn.grad\n', id='import-in-function'),
    pytest.param('class A:\n  from flax import linen\n  g = linen.grad\n', id='import-in-class'),
    pytest.param('try:\n  import flax.linen as nn\nexcept ImportError:\n  nn = None\nnn.grad\n', id='conditional'),
    pytest.param('import flax\nnn = flax.linen\nnn.grad\n', id='rebound-by-assignment'),
    pytest.param('import flax\nnn = flax.linen\nm = nn\nm.grad\n', id='rebound-twice'),
    pytest.param('from flax.linen import *\ngrad\n', id='star'),
    pytest.param('import jax, flax\njax.grad(f)\n', id='jax-grad'),
    pytest.param('import flax\nfrom jax import vjp\n', id='from-jax-import-vjp'),
    pytest.param('import flax\nimport jax as j\nj.jacfwd(f)\n', id='jax-alias-jacfwd'),
    pytest.param('import flax\ngrad(\n', id='syntax-error'),
    pytest.param('import flax\nx = "grad\0"\n', id='nul'),
])
def test_candidates(code):
  assert may_hold_sites(code)
  assert_same_with_and_without(code)


@pytest.mark.parametrize('code', [
    pytest.param('import os\n', id='no-words'),
    pytest.param('import jax, flax\njax.jit(f)\n', id='jax-jit'),
    pytest.param('import jax\njax.grad(f)\n', id='jax-grad-without-flax'),
    pytest.param('import flax\nfrom flax.nnx import grad\ngrad(f)\n', id='nnx-grad'),
    pytest.param('from flax.core import lift\nimport flax\nlift.value_and_grad\n', id='core-lift'),
    pytest.param('from .transforms import grad\nimport flax\ngrad\n', id='relative-import'),
    pytest.param('import flax\n"""nn.grad(f, m)"""\n', id='in-a-string'),
    pytest.param('import flax.nnx as nnx\nnnx.grad\n', id='other-flax-module'),
])
def test_not_candidates(code):
  assert not may_hold_sites(code)
  assert_same_with_and_without(code)


_IMPORTS = [
    'import flax', 'import flax.linen', 'import flax.linen as nn', 'import flax.linen.transforms',
    'import flax.linen.transforms as nn', 'from flax import linen', 'from flax import linen as nn',
    'from flax.linen import grad', 'from flax.linen import value_and_grad as vg',
    'from flax.linen.transforms import grad as g', 'from flax import nnx', 'import jax',
    'from jax import grad', 'nn = flax.linen', 'linen = nn',
]
_REFERENCES = [
    'flax.linen.grad', 'flax.linen.transforms.value_and_grad', 'nn.grad', 'nn.value_and_grad', 'linen.grad',
    'grad', 'vg', 'g', 'jax.grad', 'nnx.grad', 'nn.Dense',
]


@st.composite
def _sources(draw):
  lines = ['import flax.linen as _base', '']
  for _ in range(draw(st.integers(1, 3))):
    statement = draw(st.sampled_from(_IMPORTS))
    where = draw(st.sampled_from(['top', 'function', 'class', 'if']))
    if where == 'top':
      lines.append(statement)
    elif where == 'function':
      lines += ['def _setup():', f'  {statement}']
    elif where == 'class':
      lines += ['class _Holder:', f'  {statement}']
    else:
      lines += ['if True:', f'  {statement}']
  reference = draw(st.sampled_from(_REFERENCES))
  if draw(st.booleans()):
    lines += ['', 'class M(_base.Module):', '  @_base.compact', '  def __call__(self, x):',
              f'    return {reference}(lambda mdl, x: mdl(x), _base.Dense(3), x)']
  else:
    lines.append(f'f = {reference}')
  return '\n'.join(lines) + '\n'


@settings(max_examples=tiers.examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sources())
def test_generated_results_do_not_depend_on_the_prefilter(code):
  assert_same_with_and_without(code)
