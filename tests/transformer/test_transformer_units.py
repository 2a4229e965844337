"""Table tests for decisions that are easier to enumerate than to give a
fixture each: which reduce_axes values are dropped or kept, which quote a new string
may use inside an f-string, which quote a file prefers, where a merged
import name goes, which line length a file keeps to and how far a broken
call's arguments are indented."""

from __future__ import annotations

import libcst as cst
import pytest
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from vjpify.transformer import transform_source
from vjpify.transformer.find.sites import string_quote
from vjpify.transformer.rewrite.import_adder import OrderedAddImportsVisitor
from vjpify.transformer.rewrite.layout import hanging_indent
from vjpify.transformer.rewrite.style import line_limit, quote_counts

_SITE = '''import flax.linen as nn


class Model(nn.Module):

  def __call__(self, x, axes=()):
    return nn.grad(lambda mdl, x: mdl(x), nn.Dense(1), x, reduce_axes={})
'''


@pytest.mark.parametrize('value', ['()', '[]', '{}', 'None', 'False', '0', "''", "b''", '""'])
def test_empty_literal_reduce_axes_is_dropped(value: str) -> None:
  result = transform_source(_SITE.format(value), 'm.py')
  assert 'reduce_axes' not in result.code
  assert [s.action for s in result.sites] == ['rewritten']


@pytest.mark.parametrize('value', [
    "('batch',)", "['batch']", "'batch'", "('batch', 'model')", '[*axes, 1]', 'axes', '[*axes]', 'set()', "f''",
    '() if x else ()', 'self.axes',
])
def test_kept_reduce_axes_goes_through_the_helper_verbatim(value: str) -> None:
  # A line past every usual limit, so that the call stays on one line.
  result = transform_source(_SITE.format(value) + '#' * 130 + '\n', 'm.py')
  assert (f'return grad_from_vjp(vjp_with_reduce_axes(nn.vjp, lambda mdl, x: mdl(x), nn.Dense(1), x, '
          f'reduce_axes={value}, vjp_variables=False, multi_scope=True))') in result.code
  assert 'from vjpify.runtime import grad_from_vjp, vjp_with_reduce_axes\n' in result.code
  (site,) = result.sites
  assert site.action == 'rewritten'
  # The CLI prints only sites left unchanged; the report says why this one
  # no longer does what the installed flax does.
  assert 'through vjp_with_reduce_axes' in site.reason
  assert 'NotImplementedError' in site.reason


@pytest.mark.parametrize('keywords', ["reduce_axes=(), reduce_axes=('batch',)", 'has_aux=True, has_aux=False'])
def test_keyword_given_twice_is_reported(keywords: str) -> None:
  # Python rejects the file; dropping the empty one would let it run.
  code = _SITE.replace('reduce_axes={}', keywords)
  result = transform_source(code, 'm.py')
  assert not result.changed
  (site,) = result.sites
  assert site.reason.startswith(f"nn.grad(...) passes keyword '{keywords.split('=')[0]}' twice")


def _fstrings(*sources: str) -> list[cst.FormattedString]:
  return [cst.parse_expression(source) for source in sources]


@pytest.mark.parametrize(('fstrings', 'preferred', 'expected'), [
    pytest.param([], "'", "'", id='outside-any-f-string'),
    pytest.param([], '"', '"', id='file-prefers-double'),
    pytest.param(["f'{x}'"], "'", '"', id='single-quoted'),
    pytest.param(['f"{x}"'], "'", "'", id='double-quoted'),
    pytest.param(["f'''{x}'''"], "'", "'", id='triple-quoted-allows-its-own-quote'),
    pytest.param(['f"{x}"', "f'{x}'"], "'", None, id='both-taken'),
])
def test_string_quote(fstrings: list[str], preferred: str, expected: str | None) -> None:
  assert string_quote(_fstrings(*fstrings), preferred) == expected


def _string_node_quotes(code: str) -> dict[str, int]:
  """The quote counts of the one-line strings LibCST parses out of ``code``."""
  counts = {"'": 0, '"': 0}

  class _Count(cst.CSTVisitor):

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
      if node.quote in counts:
        counts[node.quote] += 1

  cst.parse_module(code).visit(_Count())
  return counts


@pytest.mark.parametrize('code', [
    pytest.param('x = \'a\'\ny = "b"\nz = "c"\n', id='plain'),
    pytest.param('"""doc"""\nx = \'\'\'long\'\'\'\n# it\'s "a comment"\n', id='triple-quoted-and-comments'),
    pytest.param('x = b\'a\' + rb"b" + u\'c\' + Rb"d"\n', id='prefixes'),
    pytest.param('x = (\'a\' "b" f\'{c}\' \'d\')\n', id='concatenated'),
    pytest.param('x = f"{d[\'k\']} and {e!r} and {{\'escaped\'}}"\n', id='f-string-field'),
    pytest.param('x = f"{y:{\'>\'}{w}} {z!r:>{\'10\'}} {q=}"\n', id='f-string-format-spec'),
    pytest.param('x = f\'\'\'{f"{d[\'k\']}"} {\'a\' if y else "b"}\'\'\'\n', id='nested-f-strings'),
    pytest.param('x = f"{d[\'a\':\'b\']} {(lambda: \'l\')()} {[\'i\' for i in y]}"\n', id='colons-in-brackets'),
    pytest.param('x = rf"{y}\\d" + fr\'{z}\' + F"{\'w\'}"\r\n', id='raw-f-strings-crlf'),
    pytest.param('# a comment\rx = \'a\'\ry = ("b"\r     "c")\r', id='lone-carriage-returns'),
])
def test_quote_counts_match_the_strings_libcst_parses(code: str) -> None:
  assert quote_counts(code) == _string_node_quotes(code)


@pytest.mark.parametrize(('before', 'after'), [
    pytest.param('from flax.linen import Dense, Module\n',
                 'from flax.linen import Dense, Module, vjp\n', id='sorted-goes-last'),
    pytest.param('from flax.linen import Dense, wrap\n',
                 'from flax.linen import Dense, vjp, wrap\n', id='sorted-goes-between'),
    pytest.param('from flax.linen import compact, Dense\n',
                 'from flax.linen import compact, Dense, vjp\n', id='sorted-ignoring-case'),
    pytest.param('from flax.linen import Module, Dense\n',
                 'from flax.linen import Module, Dense, vjp\n', id='unsorted-goes-last'),
    pytest.param('from flax.linen import (\n    Dense,\n    Module,  # the base\n)\n',
                 'from flax.linen import (\n    Dense,\n    Module,  # the base\n    vjp,\n)\n',
                 id='parenthesized-trailing-comma'),
    pytest.param('from flax.linen import (Dense,\n                        Module)\n',
                 'from flax.linen import (Dense,\n                        Module,\n                        vjp)\n',
                 id='parenthesized-aligned'),
    pytest.param('import os\n', 'import os\nfrom flax.linen import vjp\n', id='new-import'),
    pytest.param('"doc" "string"\nfrom __future__ import annotations\nx = 1\n',
                 '"doc" "string"\nfrom __future__ import annotations\nfrom flax.linen import vjp\n\nx = 1\n',
                 id='docstring-in-two-pieces-stays-first'),
])
def test_merged_import_name_goes_where_sorting_puts_it(before: str, after: str) -> None:
  context = CodemodContext()
  AddImportsVisitor.add_needed_import(context, 'flax.linen', 'vjp')
  assert OrderedAddImportsVisitor(context).transform_module(cst.parse_module(before)).code == after


@pytest.mark.parametrize(('lengths', 'expected'), [
    pytest.param([10, 80], 80, id='all-within-80'),
    pytest.param([10] * 99 + [85], 80, id='one-percent-over-is-noise'),
    pytest.param([10] * 20 + [85], 88, id='black'),
    pytest.param([10] * 20 + [99], 100, id='within-100'),
    pytest.param([10] * 20 + [121], None, id='no-limit-kept'),
])
def test_line_limit(lengths: list[int], expected: int | None) -> None:
  assert line_limit('\n'.join('x' * n for n in lengths)) == expected


@pytest.mark.parametrize(('line', 'block_indent', 'in_header', 'expected'), [
    pytest.param('    x = nn.grad(f, m, x)', '  ', False, '        ', id='four-in'),
    pytest.param('    if nn.grad(f, m, x):', '  ', True, '        ', id='header-two-space-body'),
    pytest.param('    if nn.grad(f, m, x):', '    ', True, '            ', id='header-clear-of-body'),
    pytest.param('\t\tx = nn.grad(f, m, x)', '\t', False, '\t\t\t', id='tabs'),
    pytest.param('\tif nn.grad(f, m, x):', '\t', True, '\t\t\t', id='tabs-header'),
])
def test_hanging_indent(line: str, block_indent: str, in_header: bool, expected: str) -> None:
  assert hanging_indent(line, block_indent, in_header) == expected
