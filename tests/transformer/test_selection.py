"""The top-level statements LibCST is handed (``find.selection``): only
those that may hold a site and what they need, the rest spliced back byte
for byte, with the same result as the pass on the whole file."""

from __future__ import annotations

import textwrap

import pytest

from vjpify.transformer.find.selection import NO_SITES, select
from vjpify.transformer.pipeline import transform_text, whole_pass
from vjpify.transformer.settings import Settings

HEAD = 'import flax.linen as nn\nimport numpy as np\n\n'
SITE = textwrap.dedent('''\
    class Site(nn.Module):

      @nn.compact
      def __call__(self, x):
        return nn.grad(lambda mdl, x: mdl(x).sum(), nn.Dense(3), x)
    ''')
# Statements that spell a word of a site without holding one.
MESSAGE = 'def check(x):\n  if x.ndim:\n    raise ValueError(f"gradients need a scalar, got {x.shape}")\n'
DRAWS = ('class Noise(nn.Module):\n\n  @nn.compact\n  def __call__(self, x):\n'
         '    return x + jax.random.normal(self.make_rng("noise"), x.shape)\n')
COUNTS = 'CALLS = 0\n\n\ndef count():\n  global CALLS\n  CALLS += 1\n'
USES_JAX = 'def norm(x):\n  return jax.numpy.linalg.norm(x)\n'
JAX_SITE = textwrap.dedent('''\
    class Energy(nn.Module):

      @nn.compact
      def __call__(self, r):
        return -jax.grad(lambda r: nn.Dense(1)(r).sum())(r)
    ''')
UNRELATED = 'TABLE = [\n    [0.5, 1.5],\n    [2.5,  3.5],   # odd  spacing kept\n]\n'


def _source(*parts: str) -> str:
  return HEAD + '\n\n'.join(parts)


@pytest.mark.parametrize('code, kept, left_out', [
    pytest.param(_source(UNRELATED, SITE), ['class Site'], ['TABLE'], id='unrelated-table-left-out'),
    pytest.param(_source(SITE, 'def helper(x):\n  return np.tanh(x)\n'), ['class Site'], ['def helper'],
                 id='unrelated-function-left-out'),
    pytest.param(_source('class Base(nn.Module):\n  pass\n', SITE.replace('(nn.Module)', '(Base)'), UNRELATED),
                 ['class Base', 'class Site'], ['TABLE'], id='base-class-defined-in-the-file-kept'),
    pytest.param(_source(SITE, 'nn = np\n', UNRELATED), ['nn = np'], ['TABLE'], id='rebinding-a-name-the-site-reads-kept'),
    pytest.param(_source('Base = nn.Module\n', SITE.replace('(nn.Module)', '(Base)'), UNRELATED),
                 ['Base = nn.Module'], ['TABLE'], id='alias-of-a-base-kept'),
    pytest.param(_source(SITE, 'if True:\n  import flax.linen as L\n', UNRELATED), ['import flax.linen as L'],
                 ['TABLE'], id='import-in-a-block-kept'),
    pytest.param(_source(SITE, MESSAGE), ['class Site'], ['def check'], id='a-message-about-gradients-left-out'),
    pytest.param(_source(SITE, DRAWS), ['class Site'], ['class Noise'], id='a-module-drawing-rngs-left-out'),
    pytest.param(_source(SITE, COUNTS), ['class Site'], ['def count'], id='global-of-a-name-no-site-reads-left-out'),
    pytest.param('import jax\n' + _source(SITE, USES_JAX), ['class Site'], ['def norm'],
                 id='users-of-jax-left-out-when-no-site-is-a-jax-transform'),
    pytest.param(_source(SITE, 'def helper(x: "grad_from_vjp"):\n  return x\n', UNRELATED), ['def helper'], ['TABLE'],
                 id='a-string-that-may-name-an-emitted-name-kept'),
    pytest.param(_source(SITE, 'def reset():\n  global nn\n  nn = None\n', UNRELATED), ['global nn'], ['TABLE'],
                 id='global-of-a-name-the-site-reads-kept'),
    pytest.param('import jax\n' + _source(JAX_SITE, USES_JAX, UNRELATED), ['class Energy', 'def norm'], ['TABLE'],
                 id='users-of-jax-kept-when-a-site-is-a-jax-transform'),
])
def test_the_pass_sees_only_what_it_needs(code, kept, left_out):
  selection = select(code)
  assert selection is not None and selection is not NO_SITES
  assert [k for k in kept if k not in selection.code] == []
  assert [k for k in left_out if k in selection.code] == []
  assert selection.code.count('\n') == code.count('\n')  # every kept node keeps its line
  assert selection.restore(selection.code) == code


@pytest.mark.parametrize('code', [
    pytest.param(_source(UNRELATED, SITE, UNRELATED.replace('TABLE', 'OTHER')), id='tables-around'),
    pytest.param(_source(SITE, 'nn = np\n', UNRELATED), id='rebound-alias'),
    pytest.param(_source('class Base(nn.Module):\n  pass\n', SITE.replace('(nn.Module)', '(Base)'), UNRELATED),
                 id='local-base'),
    pytest.param(_source(UNRELATED, SITE).replace('\n', '\r\n'), id='crlf'),
    pytest.param(_source(UNRELATED, SITE, 'def grad_from_vjp():\n  pass\n'), id='emitted-name-bound-elsewhere'),
    pytest.param(_source(SITE, MESSAGE, DRAWS, COUNTS), id='words-of-sites-elsewhere'),
    pytest.param(_source(SITE, 'def reset():\n  global nn\n  nn = None\n'), id='global-rebinding-what-the-site-reads'),
    pytest.param(_source(SITE, 'def helper(x: "grad_from_vjp"):\n  return x\n'), id='string-annotation'),
])
def test_the_result_is_the_whole_pass_result(code):
  whole = whole_pass(code, 'model.py', Settings())
  fast = transform_text(code, 'model.py', Settings())
  assert (fast.code, fast.sites) == (whole.code, whole.sites)
  assert fast.sites  # the site was found, rewritten or not


@pytest.mark.parametrize('lift', [False, True], ids=['reported', 'lifted'])
@pytest.mark.parametrize('users', [USES_JAX, '', 'TABLE = jax.numpy.zeros(3)\n'], ids=['a-def', 'none', 'a-table'])
def test_lifting_keeps_import_jax_exactly_when_the_whole_pass_would(users, lift):
  code = 'import jax\n' + _source(JAX_SITE, users, UNRELATED)
  settings = Settings(lift_jax_transforms=lift)
  whole = whole_pass(code, 'model.py', settings)
  fast = transform_text(code, 'model.py', settings)
  assert (fast.code, fast.sites) == (whole.code, whole.sites)
  assert fast.sites


def test_statements_left_out_come_back_byte_for_byte():
  code = _source(UNRELATED, SITE, UNRELATED.replace('TABLE', 'OTHER'))
  result = transform_text(code, 'model.py', Settings())
  assert result.code.endswith(UNRELATED.replace('TABLE', 'OTHER'))
  assert UNRELATED in result.code


@pytest.mark.parametrize('code', [
    pytest.param(_source('from flax.linen import *\n', SITE), id='star-import'),
    pytest.param(_source(UNRELATED, SITE, 'return 3\n'), id='a-statement-that-does-not-compile'),
    pytest.param(_source(UNRELATED, SITE, 'x = 1\rTABLE = 2\n'), id='lone-cr'),
    pytest.param(_source(SITE), id='nothing-to-leave-out'),
])
def test_unsure_files_go_through_the_pass_whole(code):
  assert select(code) is None


def test_a_file_whose_statements_hold_no_site_is_ruled_out():
  assert select(_source(UNRELATED, '# grad is only a word in a comment\n', '"""A docstring about grad."""\n')) is NO_SITES
