"""Messages that say what happened and nothing else: a missing path, an
empty folder, a syntax error in a file that cannot hold a site, a
``[tool.vjpify]`` that is not a table, each with its exact text and exit
status; and the notes that say what installing the command installs."""

from __future__ import annotations

import json
import pathlib
import re
import sys

import pytest

from support.cli import vjpify, write

if sys.version_info >= (3, 11):
  import tomllib
else:
  import tomli as tomllib

_NOTHING = 'vjpify: 0 files scanned, 0 changed, 0 sites rewritten, 0 skipped, 0 errors'


def test_a_missing_path_is_named_without_a_position_and_not_scanned(tmp_path):
  write(tmp_path / 'plain.py', 'x = 1\n')
  result = vjpify('--report', 'r.json', 'nope.py', 'plain.py', cwd=tmp_path)
  assert result.returncode == 2
  assert result.stderr.splitlines() == [
      'nope.py: VJ010 cannot read the file: no such file or directory; skipped; check the path',
      'vjpify: 1 file scanned, 0 changed, 0 sites rewritten, 0 skipped, 1 error',
      'vjpify: 1 file failed: nope.py',
  ]
  (site,) = json.loads((tmp_path / 'r.json').read_text())['sites']
  assert (site['line'], site['col'], site['code']) == (None, None, 'VJ010')


def test_an_empty_folder_says_no_python_files_were_found(tmp_path):
  (tmp_path / 'empty').mkdir()
  result = vjpify('empty', cwd=tmp_path)
  assert result.returncode == 0
  assert result.stderr.splitlines() == [
      'vjpify: warning: no Python files found under empty; nothing done; check the paths, the excludes and '
      '.gitignore', _NOTHING]


# The command line reads for sites only files with both words in them; the
# others are not parsed, so their syntax is not its business (pyupgrade
# leaves a file it cannot parse alone too).
@pytest.mark.parametrize('text, status, first_line', [
    pytest.param('def f(:\n', 0, 'vjpify: 1 file scanned, 0 changed, 0 sites rewritten, 0 skipped, 0 errors',
                 id='cannot-hold-a-site'),
    pytest.param('import flax  # grad\ndef f(:\n', 2, 'broken.py:2:7: VJ001 cannot parse: invalid syntax; '
                 'file left unchanged; fix the syntax error', id='may-hold-a-site'),
])
def test_a_syntax_error_is_reported_where_a_site_could_be(tmp_path, text, status, first_line):
  write(tmp_path / 'broken.py', text)
  result = vjpify('broken.py', cwd=tmp_path)
  assert result.returncode == status
  assert result.stderr.splitlines()[0] == first_line


@pytest.mark.parametrize('text, where', [
    pytest.param('[project]\nname = "x"\n\n[tool]\nvjpify = 3\n', ':5:1', id='key-of-tool'),
    pytest.param('tool.vjpify = 3\n', ':1:6', id='dotted'),
    pytest.param('[tool]\n"vjpify" = 3\n', ':2:1', id='quoted'),
])
def test_a_tool_vjpify_that_is_not_a_table_is_reported_at_its_line(tmp_path, text, where):
  write(tmp_path / 'pyproject.toml', text)
  write(tmp_path / 'model.py', 'x = 1\n')
  result = vjpify('model.py', cwd=tmp_path)
  assert result.returncode == 2
  assert result.stderr == (f'pyproject.toml{where}: VJ104 tool.vjpify is 3 (a number), not a table; nothing was '
                           'rewritten; write the settings under [tool.vjpify]\n')


def test_the_notes_say_what_installing_the_command_installs():
  root = pathlib.Path(__file__).resolve().parents[2]
  required = tomllib.loads((root / 'pyproject.toml').read_text())['project']['dependencies']
  names = {re.match(r'[A-Za-z0-9_.-]+', requirement).group(0) for requirement in required}
  notes = (root / 'docs/command-line-notes.md').read_text()
  section = notes.split('## What installing the command installs', 1)[1].split('\n## ', 1)[0]
  assert set(re.findall(r'^\| `([\w.-]+)` \|', section, re.M)) == names
