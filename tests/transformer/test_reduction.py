"""The pass run on a cut-down copy of a file must give exactly what it gives
on the whole file: the same text, the same sites, the same errors.

The copy (``vjpify.transformer.find.reduction``) only exists to make the pass
faster; every way of comparing here runs both and demands equality, over
every fixture, generated and mutated Module sources, and real flax files
with sites planted in them.
"""

from __future__ import annotations

import ast
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings

import inject_sites
from support import tiers
from support.generated import module_sources, mutated_fixtures
from test_prefilter import PROJECT_FILES, project_settings

from vjpify.transformer import TransformError
from vjpify.transformer.find.prefilter import parse_quietly
from vjpify.transformer.find.reduction import reduce_source
from vjpify.transformer.pipeline import reduced_pass, whole_pass
from vjpify.transformer.settings import Settings

REPO = pathlib.Path(__file__).resolve().parents[2]

SOURCES = sorted([*REPO.glob('fixtures/*/*/*.py'), *REPO.glob('fixtures/exec/*.py'), *REPO.glob('examples/*.py')])


def _outcome(transform, code: str) -> tuple:
  try:
    result = transform(code)
  except TransformError as error:
    return 'error', error.site.format()
  return result.code, [site.format() for site in result.sites]


def _on_the_copy(code: str):
  return reduced_pass(code, parse_quietly(code), 'input.py', Settings())


def _on_the_whole_file(code: str):
  return whole_pass(code, 'input.py', Settings())


def assert_same_either_way(code: str) -> None:
  assert _outcome(_on_the_copy, code) == _outcome(_on_the_whole_file, code)


def test_there_are_sources_to_compare():
  assert len(SOURCES) > 200


@pytest.mark.parametrize('path', SOURCES, ids=lambda p: str(p.relative_to(REPO / 'fixtures'))
                         if 'fixtures' in p.parts else p.name)
def test_fixtures_come_out_the_same_either_way(path):
  assert_same_either_way(path.read_bytes().decode('utf-8'))


@settings(max_examples=tiers.examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(module_sources())
def test_generated_modules_come_out_the_same_either_way(source):
  assert_same_either_way(source[0])


@settings(max_examples=tiers.examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixtures())
def test_mutated_fixtures_come_out_the_same_either_way(code):
  assert_same_either_way(code)


@pytest.mark.parametrize('path', PROJECT_FILES, ids=lambda p: str(p.relative_to(REPO / 'fixtures' / 'projects')))
def test_project_files_come_out_the_same_either_way(path):
  # At their own paths, so that bases are traced through the other files.
  code, settings = path.read_text(encoding='utf-8'), project_settings(path)
  on_the_copy = _outcome(lambda c: reduced_pass(c, parse_quietly(c), str(path), settings), code)
  assert on_the_copy == _outcome(lambda c: whole_pass(c, str(path), settings), code)


def _flax_file(name: str) -> pathlib.Path:
  (path,) = [p for p in inject_sites.default_files() if p.parts[-2:] == ('linen', name)]
  return path


@pytest.mark.parametrize('name', ['activation.py', 'stochastic.py', 'recurrent.py'])
def test_planted_flax_files_come_out_the_same_either_way(name):
  # Sites in every method: little is cut, but much is checked.
  code, planted = inject_sites.plant_sites(_flax_file(name).read_text(), seed=0)
  assert planted
  assert_same_either_way(code)


# A Module with a site, added to a real file, as the benchmarks do.
SITE_CLASS = '''

import flax.linen as _site_nn


class _Site(_site_nn.Module):

  @_site_nn.compact
  def __call__(self, x):
    return _site_nn.grad(lambda mdl, x: mdl(x).sum(), _site_nn.Dense(3), x)
'''


@pytest.mark.parametrize('name', ['activation.py', 'pooling.py', 'recurrent.py', 'attention.py', 'module.py'])
def test_flax_files_with_a_site_added_come_out_the_same_either_way(name):
  code = _flax_file(name).read_text() + SITE_CLASS
  reduction = reduce_source(code, ast.parse(code))
  assert reduction is not None and reduction.originals  # something was cut
  assert_same_either_way(code)


@pytest.mark.slow
def test_every_planted_flax_file_comes_out_the_same_either_way():
  for path in inject_sites.default_files():
    for seed in range(3):
      code, _ = inject_sites.plant_sites(path.read_text(), seed=seed)
      assert_same_either_way(code)


# What the copy looks like, and when it is refused.

WHOLE = '''\
import flax.linen as nn

@decorator(
    1)
def helper(a,
           b):
  """Doc."""
  return a + b  # comment


class Base(nn.Module, metaclass=Meta):
  x: int = 1


class Model(Base):

  def other(self, x):
    return x

  def __call__(self, x):
    return nn.grad(helper, self, x)
def one_line(): return 1
'''

CUT = '''\
import flax.linen as nn

def helper():  #vjpify-stub-0-3
  """#vjpify-stub-0-4
#vjpify-stub-0-5
#vjpify-stub-0-6
#vjpify-stub-0-7
#vjpify-stub-0-8"""


class Base(nn.Module, metaclass=Meta):  #vjpify-stub-0-11
  """#vjpify-stub-0-12"""


class Model(Base):

  def other():  #vjpify-stub-0-17
    """#vjpify-stub-0-18"""

  def __call__(self, x):
    return nn.grad(helper, self, x)
def one_line(): return 1
'''


def test_definitions_without_sites_become_stubs_on_the_same_lines():
  reduction = reduce_source(WHOLE, ast.parse(WHOLE))
  assert reduction.code == CUT
  assert reduction.restore(reduction.code) == WHOLE


def test_line_endings_are_kept():
  crlf = WHOLE.replace('\n', '\r\n')
  reduction = reduce_source(crlf, ast.parse(crlf))
  assert reduction.code == CUT.replace('\n', '\r\n')
  assert reduction.restore(reduction.code) == crlf


def test_the_marker_is_one_the_file_does_not_hold():
  code = WHOLE + '# #vjpify-stub-0-\n'
  assert '#vjpify-stub-1-3' in reduce_source(code, ast.parse(code)).code


@pytest.mark.parametrize('definition', [
    pytest.param('def f():\n  return grad\n', id='mentions_grad'),
    pytest.param('def f():\n  return vjp_kwargs\n', id='mentions_a_helper_name'),
    pytest.param('def f():\n  compiled = 1\n', id='binds_a_helper_name'),
    pytest.param('def f():\n  global nn\n  nn = 1\n', id='global'),
    pytest.param('def f():\n  x = 1\n  def g():\n    nonlocal x\n    x = 2\n', id='nonlocal'),
    pytest.param('def f():\n  return g(1)\n', id='uses_a_grad_import_alias'),
    pytest.param('def f():\n  vjpify_compiled_2 = 1\n', id='binds_a_clash_avoiding_name'),
    pytest.param('def f():\n  return linen_vjp\n', id='reads_a_clash_avoiding_name'),
    pytest.param('def f():\n  return nn.value_and_grad\n', id='references_value_and_grad'),
    pytest.param('def f(x: "grad_from_vjp"):\n  return x\n', id='string_annotation'),
    pytest.param('def f(x: "Optional[g]"):\n  return x\n', id='string_annotation_naming_a_grad_import_alias'),
    pytest.param('def f():\n  return h(vjp=1)\n', id='keyword_argument'),
    pytest.param('def f():\n  return self.compiled\n', id='attribute'),
    pytest.param('def f():\n  try:\n    pass\n  except E as grad:\n    pass\n', id='except_name'),
    pytest.param('def f(): return 1\n', id='one_line'),
    pytest.param('def f(a,\n      b): return a\n', id='suite_after_a_long_header'),
])
def test_definitions_that_stay_whole(definition):
  code = f'from flax.linen import grad as g\n\n{definition}'
  assert reduce_source(code, ast.parse(code)) is None


def test_docstrings_and_comments_name_nothing_the_pass_reads():
  code = 'def f():\n  """Like nn.grad."""\n  return 1  # not a vjp\n'
  reduction = reduce_source(code, ast.parse(code))
  assert 'nn.grad' not in reduction.code and 'a vjp' not in reduction.code
  assert reduction.restore(reduction.code) == code


@pytest.mark.parametrize('body', [
    pytest.param('return jax.lax.stop_gradient(x)', id='stop_gradient'),
    pytest.param('return jax.custom_vjp(g)', id='custom_vjp'),
    pytest.param('compiled_fn = 1', id='longer_name'),
    pytest.param('raise ValueError(f"the gradient of {x} is undefined")', id='message_with_a_word'),
    pytest.param('x: "grad_t" = x', id='annotation_naming_a_longer_name'),
])
def test_names_that_only_contain_the_words_are_cut(body):
  code = f'def f(x):\n  {body}\n'
  reduction = reduce_source(code, ast.parse(code))
  assert body not in reduction.code
  assert reduction.restore(reduction.code) == code


@pytest.mark.parametrize('transform, stays_whole', [
    pytest.param('jax.grad', True, id='a-jax-transform-spelled'),
    pytest.param('jax.jit', False, id='no-jax-transform-spelled'),
])
def test_readers_of_import_jax_stay_whole_where_a_jax_transform_is_spelled(transform, stays_whole):
  code = f'import jax\n\nDERIVATIVE = {transform}\n\n\ndef norm(x):\n  return jax.numpy.abs(x)\n'
  reduction = reduce_source(code, ast.parse(code))
  assert (reduction is None) == stays_whole


def test_lone_carriage_returns_are_refused():
  code = 'def f():\r  return 1\n'
  assert reduce_source(code, ast.parse(code)) is None


@pytest.mark.parametrize('edit', [
    pytest.param(lambda code: code.replace('#vjpify-stub-0-6\n', '#vjpify-stub-0-6 \n'), id='changed'),
    pytest.param(lambda code: code.replace('#vjpify-stub-0-18', '#vjpify-stub-0-1'), id='renumbered'),
    pytest.param(lambda code: code.replace('#vjpify-stub-0-5\n', ''), id='dropped'),
    pytest.param(lambda code: code.replace('#vjpify-stub-0-5\n', '#vjpify-stub-0-5\n#vjpify-stub-0-5\n'),
                 id='repeated'),
])
def test_restore_refuses_output_whose_stub_lines_moved(edit):
  reduction = reduce_source(WHOLE, ast.parse(WHOLE))
  assert reduction.restore(edit(reduction.code)) is None
