"""``scripts/version_matrix.py --docs``: the matrix block of
docs/supported-versions.md is the table the script renders, and writing it
touches nothing else. No virtual
environments are made: the pairs' outcomes are given."""

from __future__ import annotations

import datetime
import pathlib
import platform
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
import version_matrix  # noqa: E402

_NOTE = re.compile(r'Generated (\d{4}-\d\d-\d\d) by `(python scripts/version_matrix\.py[^`]*)`: ')
_VERSION = re.compile(r'\d+(\.\d+)+')

_OUTCOMES = [
    version_matrix.Outcome('3.11', '0.8.0', '0.4.23', 'pass', '60 passed, 5 xfailed', 300.0),
    version_matrix.Outcome('3.13', '0.12.8', '0.10.2', 'FAIL', '1 failed, 59 passed', 200.0),
]

_PAGE = '''# Supported versions

Some prose.

<!-- matrix:start -->
old block
<!-- matrix:end -->

More prose.
'''


def _block(page: str) -> str:
  return page.split(version_matrix.START)[1].split(version_matrix.END)[0].strip('\n')


def _parse(block: str) -> tuple[re.Match, list[version_matrix.Outcome]]:
  note, blank, *rows = block.split('\n')
  match = _NOTE.match(note)
  assert match, note
  assert blank == ''
  outcomes = []
  for row in rows[2:]:
    cells = [cell.strip() for cell in row.strip('|').split('|')]
    assert len(cells) == 5, row
    outcomes.append(version_matrix.Outcome(*cells, seconds=0.0))
  return match, outcomes


def test_the_pages_block_is_what_the_script_renders():
  page = version_matrix.PAGE.read_text(encoding='utf-8')
  assert version_matrix.PAGE == REPO / 'docs' / 'supported-versions.md'
  assert page.count(version_matrix.START) == 1 and page.count(version_matrix.END) == 1
  block = _block(page)
  note, outcomes = _parse(block)
  made, command = note.groups()
  tests = tuple(re.search(r'`: (.*), run for each row', block).group(1).split(', '))
  assert version_matrix.page_block(outcomes, datetime.date.fromisoformat(made), command, tests) == block
  assert [(o.python, o.flax, o.jax) for o in outcomes] == list(version_matrix.DEFAULT_COMBOS)
  for outcome in outcomes:
    assert _VERSION.fullmatch(outcome.flax) and _VERSION.fullmatch(outcome.jax)
    assert outcome.status in ('pass', 'FAIL', 'install failed', 'no interpreter')


def test_every_supported_python_has_a_row():
  pythons = {combo[0] for combo in version_matrix.DEFAULT_COMBOS}
  assert pythons == {'3.10', '3.11', '3.12', '3.13'}


def test_the_pages_prose_names_the_oldest_tested_pair():
  page = version_matrix.PAGE.read_text(encoding='utf-8')
  _, outcomes = _parse(_block(page))
  assert 'flax 0.8.0 and later' in page and '(the oldest tested is 0.4.23)' in page
  assert (outcomes[0].flax, outcomes[0].jax) == ('0.8.0', '0.4.23')


def test_table_for_the_page_leaves_out_seconds():
  assert version_matrix.table(_OUTCOMES, seconds=False) == '\n'.join([
      '| python | flax | jax | result | tests |',
      '| --- | --- | --- | --- | --- |',
      '| 3.11 | 0.8.0 | 0.4.23 | pass | 60 passed, 5 xfailed |',
      '| 3.13 | 0.12.8 | 0.10.2 | FAIL | 1 failed, 59 passed |',
  ])
  assert version_matrix.table(_OUTCOMES).splitlines()[2] == '| 3.11 | 0.8.0 | 0.4.23 | pass | 60 passed, 5 xfailed | 300 |'


def test_replace_block_replaces_only_the_block():
  block = version_matrix.page_block(_OUTCOMES, datetime.date(2026, 1, 2), 'python scripts/version_matrix.py')
  new = version_matrix.replace_block(_PAGE, block)
  start, end = version_matrix.START, version_matrix.END
  assert new.split(start)[0] == _PAGE.split(start)[0]
  assert new.split(end)[1] == _PAGE.split(end)[1]
  assert _block(new) == block
  assert new.splitlines().count(start) == 1 and new.splitlines().count(end) == 1
  assert version_matrix.replace_block(new, block) == new
  note, outcomes = _parse(_block(new))
  assert note.groups() == ('2026-01-02', 'python scripts/version_matrix.py')
  assert [(o.python, o.flax, o.jax, o.status, o.summary) for o in outcomes] == [
      (o.python, o.flax, o.jax, o.status, o.summary) for o in _OUTCOMES]


@pytest.mark.parametrize('page', [
    pytest.param(_PAGE.replace(version_matrix.END, ''), id='no-end'),
    pytest.param(_PAGE.replace(version_matrix.START, ''), id='no-start'),
    pytest.param(f'{version_matrix.END}\nblock\n{version_matrix.START}\n', id='reversed'),
    pytest.param(_PAGE + version_matrix.START + '\n', id='two-starts'),
])
def test_replace_block_needs_one_pair_of_markers(page):
  with pytest.raises(ValueError, match='docs/supported-versions.md needs one <!-- matrix:start --> line and one '
                                       '<!-- matrix:end --> line after it; add them and run again'):
    version_matrix.replace_block(page, 'block')


@pytest.fixture
def page(tmp_path, monkeypatch):
  path = tmp_path / 'supported-versions.md'
  path.write_text(_PAGE, encoding='utf-8')
  monkeypatch.setattr(version_matrix, 'PAGE', path)
  return path


@pytest.mark.parametrize('option', [
    pytest.param('--docs', id='docs'),
    pytest.param('--readme', id='the-older-name'),
])
def test_main_with_docs_writes_the_outcomes(option, page, tmp_path, monkeypatch):
  ran = []

  def run_combo(python_version, flax_version, jax_version, work_dir):
    ran.append((python_version, flax_version, jax_version, work_dir))
    return version_matrix.Outcome(python_version, flax_version, jax_version, 'pass', '60 passed, 5 xfailed', 12.0)

  monkeypatch.setattr(version_matrix, 'run_combo', run_combo)
  args = [option, '--combo', '3.13:0.12.8:0.10.2', '--pair', '0.8.0:0.4.23', '--work-dir', str(tmp_path / 'work')]
  assert version_matrix.main(args) == 0
  this_python = '.'.join(platform.python_version_tuple()[:2])
  assert ran == [('3.13', '0.12.8', '0.10.2', tmp_path / 'work'), (this_python, '0.8.0', '0.4.23', tmp_path / 'work')]
  written = page.read_text(encoding='utf-8')
  command = (f'python scripts/version_matrix.py {option} --combo 3.13:0.12.8:0.10.2 --pair 0.8.0:0.4.23 '
             f'--work-dir {tmp_path / "work"}')
  assert _block(written) == version_matrix.page_block(
      [version_matrix.Outcome('3.13', '0.12.8', '0.10.2', 'pass', '60 passed, 5 xfailed', 0.0),
       version_matrix.Outcome(this_python, '0.8.0', '0.4.23', 'pass', '60 passed, 5 xfailed', 0.0)],
      datetime.date.today(), command)
  assert written.split(version_matrix.END)[1] == _PAGE.split(version_matrix.END)[1]


def test_main_without_docs_leaves_the_page_alone(page, tmp_path, monkeypatch):
  monkeypatch.setattr(version_matrix, 'run_combo',
                      lambda p, f, j, w: version_matrix.Outcome(p, f, j, 'pass', 'ok', 1.0))
  assert version_matrix.main(['--pair', '0.8.0:0.4.23', '--work-dir', str(tmp_path / 'work')]) == 0
  assert page.read_text(encoding='utf-8') == _PAGE


def test_main_checks_the_markers_before_running_anything(page, tmp_path, monkeypatch, capsys):
  page.write_text(_PAGE.replace(version_matrix.END, ''), encoding='utf-8')
  monkeypatch.setattr(version_matrix, 'run_combo', lambda *args: pytest.fail('ran a combination'))
  with pytest.raises(SystemExit) as exit_info:
    version_matrix.main(['--docs', '--work-dir', str(tmp_path / 'work')])
  assert exit_info.value.code == 2
  assert 'docs/supported-versions.md needs one <!-- matrix:start --> line' in capsys.readouterr().err
