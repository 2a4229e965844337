"""The table of diagnostic codes: well formed, used by the transformer,
documented in ``docs/diagnostics.md``, and read by ``--strict``, the
``ignore`` key and ``--ignore``, rather than any message text."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import re

import pytest

from support.cli import SOURCE, vjpify, write

from vjpify.transformer import codes
from vjpify.transformer.cli.report import Summary
from vjpify.transformer.config.load import ConfigError, settings_for
from vjpify.transformer.diagnostics import FileResult, Site

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / 'docs' / 'diagnostics.md'
_BEGIN = '<!-- generated from transformer/codes.py: begin -->\n'
_END = '<!-- generated from transformer/codes.py: end -->\n'

# The hundreds of each kind; VJ3xx is another kind of site's.
_HUNDREDS = {codes.FILE_ERROR: '0', codes.CONFIG_ERROR: '1', codes.LEFT_UNCHANGED: '23', codes.REQUESTED: '9',
             codes.REWRITE: '9'}


def test_codes_are_unique_and_numbered_by_kind():
  assert len({e.code for e in codes.TABLE}) == len({e.name for e in codes.TABLE}) == len(codes.TABLE)
  for entry in codes.TABLE:
    assert re.fullmatch(r'VJ\d{3}', entry.code) and re.fullmatch(r'[a-z0-9]+(-[a-z0-9]+)*', entry.name), entry
    assert entry.code[2] in _HUNDREDS[entry.kind], entry
    assert entry.summary and not entry.summary.endswith('.'), entry


def test_every_code_is_used_and_every_name_used_is_in_the_table():
  called, literals = set(), set()
  for path in (ROOT / 'transformer').rglob('*.py'):
    if path.name != 'codes.py':
      text = path.read_text()
      called |= set(re.findall(r"\b_?(?:code|reason)\('([a-z0-9-]+)'", text))
      literals |= {node.value for node in ast.walk(ast.parse(text))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)}
  assert called - set(codes.BY_NAME) == set()
  assert set(codes.BY_NAME) - literals == set()


def test_the_page_lists_the_table():
  text = PAGE.read_text()
  generated = _BEGIN + codes.table_markdown() + _END
  if os.environ.get('VJPIFY_OVERWRITE') == '1':
    start, end = text.index(_BEGIN), text.index(_END) + len(_END)
    PAGE.write_text(text[:start] + generated + text[end:])
    text = PAGE.read_text()
  assert generated in text


def _site(code: str, reason: str = 'whatever it says') -> Site:
  return Site('m.py', 1, 1, 'grad', 'skipped', reason, code)


@pytest.mark.parametrize('site, fails', [
    pytest.param(_site('VJ205'), True, id='left-unchanged'),
    pytest.param(_site('VJ205', "left unchanged at the user's request"), True, id='text-does-not-count'),
    pytest.param(_site('VJ901', 'says nothing of a request'), False, id='requested-by-code'),
    pytest.param(_site('VJ903'), False, id='accepted-by-code'),
])
def test_strict_reads_the_code_not_the_text(site, fails):
  summary = Summary()
  summary.add(FileResult('m.py', b'', b'', (site,)))
  assert summary.left_unchanged() == fails


@pytest.mark.parametrize('prefix, selected', [
    pytest.param('VJ205', ('VJ205',), id='code'),
    pytest.param('VJ90', ('VJ901', 'VJ902', 'VJ903'), id='prefix'),
    pytest.param('VJ001', (), id='an-error'),
    pytest.param('VJ99', (), id='rewrites'),
    pytest.param('vj205', (), id='lower-case'),
    pytest.param('VJ2x', (), id='not-a-code'),
])
def test_what_a_code_or_prefix_selects(prefix, selected):
  assert codes.selected(prefix) == selected


@pytest.mark.parametrize('value, message', [
    pytest.param('["VJ001"]', "3:1: VJ107 'ignore' in [tool.vjpify] must be a list of codes of sites left "
                 'unchanged, or prefixes of them, such as "VJ205" or "VJ2", not \'VJ001\' (an item of the list); '
                 'nothing was rewritten; fix the value', id='an-error-code'),
    pytest.param('["VJ999"]', "VJ107 'ignore' in [tool.vjpify] must be", id='unknown'),
    pytest.param('"VJ205"', "VJ106 'ignore' in [tool.vjpify] must be a list of codes of sites left unchanged, "
                 "or prefixes of them, such as \"VJ205\" or \"VJ2\", not 'VJ205' (a string)", id='not-a-list'),
])
def test_a_bad_ignore_key(tmp_path, value, message):
  write(tmp_path / 'pyproject.toml', f'[project]\n[tool.vjpify]\nignore = {value}\n')
  with pytest.raises(ConfigError) as caught:
    settings_for(str(tmp_path))
  assert message in caught.value.format()


def test_the_ignore_key_expands_prefixes(tmp_path):
  write(tmp_path / 'pyproject.toml', '[tool.vjpify]\nignore = ["VJ20", "VJ212"]\n')
  assert settings_for(str(tmp_path)).ignore == tuple(f'VJ20{i}' for i in range(1, 10)) + ('VJ212',)


def test_ignored_sites_are_not_reported_and_do_not_fail_strict(tmp_path):
  # SOURCE has one site vjpify rewrites and one it leaves (VJ202).
  write(tmp_path / 'model.py', SOURCE)
  reported = vjpify('--check', '--strict', 'model.py', cwd=tmp_path)
  assert reported.returncode == 1 and 'VJ202' in reported.stderr and 'strict: 1 site' in reported.stderr
  write(tmp_path / 'pyproject.toml', '[tool.vjpify]\nstrict = true\nignore = ["VJ202"]\n')
  ignored = vjpify('--report', 'r.json', 'model.py', cwd=tmp_path)
  assert ignored.returncode == 1  # the file was rewritten; strict found nothing
  assert ignored.stderr.splitlines() == [
      'Rewriting model.py', 'vjpify: 1 file scanned, 1 changed, 1 site rewritten, 0 skipped, 0 errors']
  report = json.loads((tmp_path / 'r.json').read_text())
  assert [s['code'] for s in report['sites']] == ['VJ990'] and report['summary']['sites_skipped'] == 0


def test_the_ignore_option_adds_to_the_key_and_refuses_what_is_no_code(tmp_path):
  write(tmp_path / 'model.py', SOURCE)
  result = vjpify('--check', '--strict', '--ignore', 'VJ205,VJ2', 'model.py', cwd=tmp_path)
  assert result.returncode == 1 and 'VJ202' not in result.stderr and 'strict' not in result.stderr
  bad = vjpify('--check', '--ignore', 'VJ001', 'model.py', cwd=tmp_path)
  assert bad.returncode == 2
  assert bad.stderr.splitlines()[-1] == (
      "vjpify: error: argument --ignore: 'VJ001' is not the code of a site left unchanged, nor a prefix of one "
      '(the codes are listed in docs/diagnostics.md)')
