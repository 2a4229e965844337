"""Property-based tests of the pass over generated and mutated sources.

Generated Module files (``tests/generated_sources.py``) combine import
spellings, callee aliases, argument forms, expression contexts, comments and
odd layouts. Whatever comes in, the pass must not crash, its output must
compile, a second pass must change nothing, and nothing outside the
rewritten sites may change but the imports it manages (``check_rewrite`` in
``scripts/rewrite_check.py`` spells this out). A site outside a Module method
must never be rewritten; a well-formed site inside one must be.

Real fixture files, mutated by deleting, duplicating or breaking lines and by
inserting characters, must either transform under the same guarantees or be
reported as unparseable with a ``TransformError``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from support import tiers
from support.generated import FIXTURE_FILES, module_sources, mutated_fixtures
from rewrite_check import check_rewrite

from vjpify.transformer import TransformError, transform_source
from vjpify.transformer.diagnostics import REWRITTEN


@settings(max_examples=tiers.examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(module_sources())
def test_generated_modules_keep_every_guarantee(source):
  code, expected = source
  result = check_rewrite(code, 'generated.py')
  sites = [s for s in result.sites if s.kind in ('grad', 'value_and_grad')]
  assert [s.kind for s in sites] == [kind for kind, _ in expected], result.sites
  for site, (_, rewritten) in zip(sites, expected):
    if rewritten is not None:
      assert (site.action == REWRITTEN) == rewritten, site.format()


def test_generated_source_is_valid_python():
  # The generator itself must produce files Python accepts, or the property
  # above could pass on inputs the pass is allowed to reject.
  @settings(max_examples=tiers.examples(30), deadline=None)
  @given(module_sources())
  def compiles(source):
    compile(source[0], 'generated.py', 'exec', dont_inherit=True)

  compiles()


def test_there_are_fixtures_to_mutate():
  assert len(FIXTURE_FILES) >= 10


@settings(max_examples=tiers.examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixtures())
def test_mutated_fixtures_transform_or_are_reported(code):
  try:
    compile(code, 'mutated.py', 'exec', dont_inherit=True)
  except (SyntaxError, ValueError):
    # Python rejects it: the pass may only report it or leave it alone.
    try:
      result = transform_source(code, 'mutated.py')
    except TransformError as error:
      assert error.site.path == 'mutated.py'
      return
    assert result.code == code or _compiles(result.code)
    return
  check_rewrite(code, 'mutated.py')


def _compiles(code: str) -> bool:
  try:
    compile(code, 'mutated.py', 'exec', dont_inherit=True)
  except (SyntaxError, ValueError):
    return False
  return True


@pytest.mark.parametrize('code', [
    pytest.param('import flax.linen as nn\nclass M(nn.Module):\n  def f(self):\n    return nn.grad(\n', id='unclosed_call'),
    pytest.param('import flax.linen as nn  # grad\n\x00\n', id='nul_byte'),
    pytest.param('import flax.linen as nn  # grad\nclass M(nn.Module):\n\tdef f(self):\n        pass\n', id='mixed_indent'),
    pytest.param('import flax.linen as nn  # grad\nx = 1 +\n', id='dangling_operator'),
    # LibCST's tokenizer takes a code point unassigned in this Python's
    # Unicode tables, then its node validation rejects the name.
    pytest.param('import flax.linen as nn  # grad\nx\U00013440 = 1\n', id='unassigned_code_point'),
])
def test_broken_sources_are_reported_not_crashed(code):
  with pytest.raises(TransformError) as raised:
    transform_source(code, 'broken.py')
  assert raised.value.site.format().startswith('broken.py:')


# Valid Python nested deeper than LibCST's recursive visitors go. Python
# compiles every one of these; the pass may report them, never crash.
DEEP_BODIES = {
    'elif_chain': 'def f(x):\n  if x == 0:\n    pass\n' + ''.join(f'  elif x == {i}:\n    pass\n' for i in range(1, 500)),
    'adjacent_strings': 'y = ' + ' '.join(['"a"'] * 1000) + '\n',
    'nested_calls': 'y = ' + 'f(' * 150 + 'x' + ')' * 150 + '\n',
}
DEEP_SITE = 'import flax.linen as nn\n\nclass M(nn.Module):\n  def __call__(self, x):\n    return nn.grad(lambda m, x: x, self, x)\n\n'


@pytest.mark.parametrize('body', DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
def test_deeply_nested_sources_are_reported_not_crashed(body):
  code = DEEP_SITE + body
  compile(code, 'deep.py', 'exec', dont_inherit=True)
  try:
    result = transform_source(code, 'deep.py')
  except TransformError as error:
    assert error.site.path == 'deep.py'
  except RecursionError:
    # A thousand-frame traceback would take pytest minutes to render.
    pytest.fail('RecursionError escaped transform_source; expected a TransformError', pytrace=False)
  else:
    assert result.code.endswith(body)
