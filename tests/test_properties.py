"""Property-based tests of the pass over generated and mutated sources.

Generated Module files combine import spellings, callee aliases, argument
forms, expression contexts, comments and odd layouts. Whatever comes in, the
pass must not crash, its output must compile, a second pass must change
nothing, and nothing outside the rewritten sites may change but the imports
it manages (``check_rewrite`` in ``scripts/inject_sites.py`` spells this
out). A site outside a Module method must never be rewritten; a well-formed
site inside one must be.

Real fixture files, mutated by deleting, duplicating or breaking lines and by
inserting characters, must either transform under the same guarantees or be
reported as unparseable with a ``TransformError``.
"""

from __future__ import annotations

import pathlib
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vjpify.transformer import TransformError, transform_source
from vjpify.transformer.diagnostics import REWRITTEN

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'scripts'))
from inject_sites import check_rewrite  # noqa: E402

# Import lines, then how each spelling names (grad, value_and_grad, Module).
SPELLINGS = {
    'linen_as_nn': ('import flax.linen as nn\n', 'nn.grad', 'nn.value_and_grad', 'nn.Module'),
    'from_flax_import_linen': ('from flax import linen\n', 'linen.grad', 'linen.value_and_grad', 'linen.Module'),
    'import_flax': ('import flax\n', 'flax.linen.grad', 'flax.linen.value_and_grad', 'flax.linen.Module'),
    'from_linen_import': ('from flax.linen import Module, grad, value_and_grad\n', 'grad', 'value_and_grad', 'Module'),
    'aliases': ('from flax.linen import Module as Base, grad as g, value_and_grad as vg\n', 'g', 'vg', 'Base'),
    'transforms': ('import flax.linen as L\nfrom flax.linen.transforms import grad, value_and_grad\n',
                   'grad', 'value_and_grad', 'L.Module'),
    'mixed': ('import flax.linen as nn\nfrom flax.linen import grad as linen_grad\n',
              'linen_grad', 'nn.value_and_grad', 'nn.Module'),
}

# Where a site sits. Each maps to (template, inside a Module method?); the
# template's {call} is the site, {indent} the method body's indentation.
CONTEXTS = {
    'assign': ('out = {call}', True),
    'return': ('return {call}', True),
    'unpack': ('a, *b = {call}', True),
    'subscript': ('out = {call}[0]', True),
    'argument': ('out = print({call}, sep="")', True),
    'comprehension': ('out = [{call} for _ in range(2)]', True),
    'lambda': ('out = (lambda: {call})()', True),
    'conditional': ('out = {call} if x is not None else None', True),
    'walrus': ('if (out := {call}) is not None:\n{indent}  pass', True),
    'parenthesized': ('out = ({call})', True),
    'semicolon': ('x = x; out = {call}  # trailing', True),
    'nested_def': ('def inner(y):\n{indent}  return {call}\n{indent}out = inner(x)', True),
    'default_argument': ('def inner(y, g={call}):\n{indent}  return g', True),
    'decorator': ('@print\n{indent}@(lambda f: {call})\n{indent}def inner():\n{indent}  pass', True),
    'class_body': ('class Inner:\n{indent}  out = {call}', False),
    'backslash': ('out = \\\n{indent}    {call}', True),
}

FN = ('loss', 'lambda mdl, x: mdl(x).sum()', 'self.loss', 'type(self).loss')
MDL = ('self.dense', 'self', 'dense', 'Dense(3)')
PRIMALS = ('x', 'y', '2 * x', '(x, y)', '*xs', 'x[:, 0]', 'ξ')
KEYWORDS = ('has_aux=True', 'has_aux=False', 'has_aux=flag', 'reduce_axes=()', 'reduce_axes=[]', "reduce_axes=('batch',)",
            "variables='params'", 'rngs=True', "rngs=('dropout',)", '**options')


# Whether a site in a Module method must be rewritten: a reduce_axes next to
# **mapping (which could repeat it) or a non-empty one may be reported instead.
def _certain(args: list[str]) -> bool:
  reduce_axes = [a for a in args if a.startswith('reduce_axes')]
  return not reduce_axes or (reduce_axes[0] in ('reduce_axes=()', 'reduce_axes=[]') and '**options' not in args)


@st.composite
def site_calls(draw, callee: str, inner: str | None = None) -> tuple[str, bool, bool]:
  """One call of ``callee`` with arguments and a layout drawn at random,
  whether a Module method must have it rewritten, and whether ``inner`` (a
  nested site) went in as its first primal."""
  fn, mdl = draw(st.sampled_from(FN)), draw(st.sampled_from(MDL))
  by_keyword = draw(st.booleans())
  args = [f'fn={fn}', f'mdl={mdl}'] if by_keyword else [fn, mdl]
  nested = inner is not None and not by_keyword
  if not by_keyword:
    args += [inner] if nested else []
    args += draw(st.lists(st.sampled_from(PRIMALS), max_size=3))
  args += draw(st.lists(st.sampled_from(KEYWORDS), max_size=2, unique_by=lambda k: k.split('=')[0]))
  layout = draw(st.sampled_from(('flat', 'spaced', 'per_line', 'hanging', 'comments', 'comment_lines', 'trailing_comma')))
  return _laid_out(callee, args, layout, draw(st.sampled_from(('', ' ')))), _certain(args), nested


def _laid_out(callee: str, args: list[str], layout: str, gap: str) -> str:
  if layout == 'flat':
    return f'{callee}{gap}({", ".join(args)})'
  if layout == 'spaced':
    return f'{callee} ( {" , ".join(args)} )'
  if layout == 'trailing_comma':
    return f'{callee}({", ".join(args)},)'
  if layout == 'hanging':
    return f'{callee}({args[0]},\n{{pad}}' + f',\n{{pad}}'.join(args[1:]) + ')'
  if layout == 'comment_lines':
    return f'{callee}(\n{{pad}}  ' + ',\n{pad}  # a line of its own\n{pad}  '.join(args) + '\n{pad})'
  comment = '  # why' if layout == 'comments' else ''
  return f'{callee}(\n{{pad}}  ' + f',{comment}\n{{pad}}  '.join(args) + f',{comment}\n{{pad}})'


@st.composite
def module_sources(draw) -> tuple[str, list[tuple[str, bool | None]]]:
  """A Module file and, in source order, each site's kind and whether it must
  be rewritten (None: either way is right)."""
  imports, grad, value_and_grad, base = SPELLINGS[draw(st.sampled_from(sorted(SPELLINGS)))]
  indent = draw(st.sampled_from(('  ', '    ', '\t')))
  local_base = draw(st.booleans())
  lines = [imports, 'from flax.linen import Dense\n', '\n']
  if local_base:
    lines.append(f'class Layer({base}):\n{indent}pass\n\n')
    base = 'Layer'
  lines.append(f'class Model({base}):\n{indent}dense: object = None\n\n')
  lines.append(f'{indent}def loss(self, x):\n{indent * 2}return x\n\n')
  expected = []
  for number in range(draw(st.integers(1, 3))):
    kind = draw(st.sampled_from(('grad', 'value_and_grad')))
    callee = grad if kind == 'grad' else value_and_grad
    template, in_method = CONTEXTS[draw(st.sampled_from(sorted(CONTEXTS)))]
    inner = f'{grad}(loss, dense, x)' if draw(st.integers(0, 4)) == 0 else None
    call, certain, nested = draw(site_calls(callee, inner))
    body = template.replace('{indent}', indent * 2).replace('{call}', call.replace('{pad}', indent * 2))
    lines.append(f'{indent}def method_{number}(self, x, y, xs, flag, options, ξ=None):\n')
    lines.append(f'{indent * 2}dense = self.dense\n{indent * 2}{body}\n\n')
    expected.append((kind, in_method if certain or not in_method else None))
    if nested:
      expected.append(('grad', in_method))
  # A site outside any Module: in a plain class and in a module-level function.
  if draw(st.booleans()):
    call = draw(site_calls(grad))[0].replace('{pad}', '    ')
    plain_base = draw(st.sampled_from(('', '(object)', '(Exception)', '(dict[str, int])')))
    lines.append(f'\nclass Plain{plain_base}:\n  def method(self, x, y, xs, flag, options):\n    return {call}\n')
    expected.append(('grad', False))
  if draw(st.booleans()):
    call = draw(site_calls(value_and_grad))[0].replace('{pad}', '    ')
    lines.append(f'\ndef function(self, x, y, xs, flag, options):\n  return {call}\n')
    expected.append(('value_and_grad', False))
  code = ''.join(lines)
  newline = draw(st.sampled_from(('\n', '\r\n')))
  if draw(st.booleans()):
    code = code.rstrip('\n')
  return code.replace('\n', newline), expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
  @settings(max_examples=30, deadline=None)
  @given(module_sources())
  def compiles(source):
    compile(source[0], 'generated.py', 'exec', dont_inherit=True)

  compiles()


# --- Mutated fixtures ------------------------------------------------------

FIXTURE_FILES = sorted(p for p in (REPO / 'fixtures').glob('*/*/*.py') if p.name in ('input.py', 'expected.py'))
FIXTURE_FILES += sorted((REPO / 'fixtures' / 'exec').glob('*.py'))


@st.composite
def mutated_fixtures(draw) -> str:
  path = draw(st.sampled_from(FIXTURE_FILES))
  lines = path.read_text().splitlines(keepends=True)
  for _ in range(draw(st.integers(1, 3))):
    where = draw(st.integers(0, max(len(lines) - 1, 0)))
    mutation = draw(st.sampled_from(('delete', 'duplicate', 'insert', 'split')))
    if mutation == 'delete' and lines:
      del lines[where]
    elif mutation == 'duplicate' and lines:
      lines.insert(where, lines[where])
    elif mutation == 'split' and lines:
      cut = draw(st.integers(0, len(lines[where])))
      lines[where:where + 1] = [lines[where][:cut] + '\n', lines[where][cut:]]
    else:
      text = ''.join(lines)
      at = draw(st.integers(0, len(text)))
      junk = draw(st.text(st.characters(codec='utf-8'), min_size=1, max_size=3)
                  | st.sampled_from(('(', ')', ',', ':', '\\', '\t', '\r', '\x0c', '\x00', '"""', '#', 'nn.grad(')))
      lines = (text[:at] + junk + text[at:]).splitlines(keepends=True)
  return ''.join(lines)


def test_there_are_fixtures_to_mutate():
  assert len(FIXTURE_FILES) >= 10


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
