"""Hypothesis strategies for Python sources the pass must handle, shared by
the property tests and the reduction tests.

``module_sources`` generates Module files that combine import spellings,
callee aliases, argument forms, expression contexts, comments and odd
layouts, and says which of their sites must be rewritten.
``mutated_fixtures`` takes real fixture files and deletes, duplicates or
breaks their lines, or inserts characters.
"""

from __future__ import annotations

import pathlib

from hypothesis import strategies as st

REPO = pathlib.Path(__file__).resolve().parents[2]

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
    return f'{callee}({args[0]},\n{{pad}}' + ',\n{pad}'.join(args[1:]) + ')'
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
