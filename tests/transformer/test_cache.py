"""The cache of results between runs (``engine.cache``): hits for an
unchanged file, misses after any change that could change the result, and
never a half-written or unreadable entry taken for a result."""

from __future__ import annotations

import concurrent.futures
import os
import pathlib

import pytest

import vjpify.transformer.engine.cache as cache_module
import vjpify.transformer.engine.runner as runner
from vjpify.transformer.engine.cache import Cache
from vjpify.transformer.files.walk import plan
from vjpify.transformer.settings import Settings

SITE = '''import flax.linen as nn


class Model(nn.Module):

  @nn.compact
  def __call__(self, x):
    return nn.grad(lambda mdl, x: mdl(x).sum(), nn.Dense(3), x)
'''


def _run(tree: pathlib.Path, settings: Settings = Settings(), folder: pathlib.Path | None = None):
  cache = Cache(str(folder or tree / '.vjpify_cache'), settings)
  tasks = plan([str(tree)], write=False)
  return [(result.code, result.sites) for _, result in runner.run(tasks, settings, cache=cache)]


@pytest.fixture
def tree(tmp_path):
  (tmp_path / 'pyproject.toml').write_text('')
  (tmp_path / 'model.py').write_text(SITE)
  return tmp_path


@pytest.fixture
def counted(monkeypatch):
  """How many files were transformed rather than taken from the cache."""
  calls = []
  transform = runner.transform_one

  def transform_one(path, *args):
    calls.append(path)
    return transform(path, *args)

  monkeypatch.setattr(runner, 'transform_one', transform_one)
  return calls


def test_an_unchanged_rerun_takes_every_result_from_the_cache(tree, counted):
  first = _run(tree)
  second = _run(tree)
  assert (second, len(counted)) == (first, 1)


@pytest.mark.parametrize('change', [
    pytest.param(lambda tree, s: ((tree / 'model.py').write_text(SITE + '\n'), s)[1], id='content'),
    pytest.param(lambda tree, s: s._replace(jit=False), id='settings'),
    pytest.param(lambda tree, s: s._replace(module_bases=('lib.Base',)), id='module-bases'),
])
def test_a_change_that_may_change_the_result_misses(tree, counted, change):
  _run(tree)
  settings = change(tree, Settings())
  assert _run(tree, settings) and len(counted) == 2


def test_a_new_version_of_vjpify_misses(tree, counted, monkeypatch):
  _run(tree)
  monkeypatch.setattr(cache_module, 'code_fingerprint', lambda: 'another version')
  _run(tree)
  assert len(counted) == 2


def test_a_change_to_a_file_the_result_read_misses(tree, counted):
  (tree / 'base.py').write_text('import flax.linen as nn\n\n\nclass Base(nn.Module):\n  pass\n')
  (tree / 'model.py').write_text(SITE.replace('(nn.Module)', '(Base)').replace(
      'import flax.linen as nn\n', 'import flax.linen as nn\nfrom base import Base\n'))
  first = _run(tree)
  (tree / 'base.py').write_text('class Base:\n  pass\n')
  second = _run(tree)
  assert counted.count(str(tree / 'model.py')) == 2 and first != second


@pytest.mark.parametrize('garbage', [
    pytest.param(b'', id='empty'),
    pytest.param(b'{"path": "model.py", "code"', id='half-written'),
    pytest.param(b'[1, 2]', id='not-an-entry'),
    pytest.param(b'\xff\xfe', id='not-text'),
])
def test_an_unreadable_entry_is_ignored_and_written_again(tree, counted, garbage):
  first = _run(tree)
  entries = [p for p in (tree / '.vjpify_cache').rglob('*') if p.is_file() and p.parent.name != '.vjpify_cache']
  for entry in entries:
    entry.write_bytes(garbage)
  assert _run(tree) == first and len(counted) == 2
  assert _run(tree) == first and len(counted) == 2


def test_concurrent_runs_never_leave_a_broken_entry(tree):
  expected = _run(tree, folder=tree / 'reference')
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    results = list(pool.map(lambda _: _run(tree), range(16)))
  assert all(result == expected for result in results)
  leftovers = [p.name for p in (tree / '.vjpify_cache').rglob('.tmp-*')]
  assert leftovers == [] and _run(tree) == expected


@pytest.mark.parametrize('value, wanted', [('1', False), ('yes', False), ('0', True), ('', True)])
def test_the_environment_turns_the_cache_off(monkeypatch, value, wanted):
  monkeypatch.setenv(cache_module.OFF_VARIABLE, value)
  assert cache_module.wanted(Settings()) is wanted


def test_the_cache_lives_in_the_project_root_unless_told(tree, monkeypatch):
  (tree / 'src').mkdir()
  monkeypatch.delenv(cache_module.DIR_VARIABLE, raising=False)
  assert cache_module.folder_for([str(tree / 'src')]) == os.path.join(str(tree), '.vjpify_cache')
  monkeypatch.setenv(cache_module.DIR_VARIABLE, str(tree / 'elsewhere'))
  assert cache_module.folder_for([str(tree / 'src')]) == str(tree / 'elsewhere')


@pytest.mark.parametrize('table, argv, kept', [
    pytest.param('', [], True, id='on-by-default'),
    pytest.param('[tool.vjpify]\ncache = false\n', [], False, id='off-in-configuration'),
    pytest.param('', ['--no-cache'], False, id='off-on-the-command-line'),
    pytest.param('[tool.vjpify]\ncache = false\n', ['--cache'], True, id='option-over-configuration'),
])
def test_the_command_line_keeps_a_cache_unless_told_not_to(tree, monkeypatch, table, argv, kept):
  from vjpify.transformer.cli.main import main
  monkeypatch.delenv(cache_module.OFF_VARIABLE, raising=False)
  monkeypatch.delenv(cache_module.DIR_VARIABLE, raising=False)
  (tree / 'pyproject.toml').write_text(table)
  assert main(['--check', '-q', *argv, str(tree)]) == 1
  assert (tree / '.vjpify_cache').is_dir() is kept
