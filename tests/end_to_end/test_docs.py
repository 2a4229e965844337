"""The pages under ``docs/`` say what the code does: their links resolve, the
modules, options, keys, settings and messages they name are the real ones,
and the rewrites they show are what the pass produces. (Their commands run
in ``test_docs_commands.py``.)"""

from __future__ import annotations

import argparse
import importlib.util
import re
import textwrap

import pytest

from support.docs import DOCS, README, ROOT, anchors, blocks, pages, relative_links, section

from vjpify.transformer import transform_source
from vjpify.transformer.cli.main import argument_parser
from vjpify.transformer.config.table import KEYS, ConfigError, read_table, settings_values


@pytest.mark.parametrize('page', [pytest.param(page, id=page.name) for page in pages()])
def test_every_relative_link_resolves(page):
  broken = []
  for link in relative_links(page):
    name, _, anchor = link.partition('#')
    target = (page.parent / name).resolve() if name else page
    if not target.exists():
      broken.append(f'{link}: no such file')
    elif anchor and target.suffix == '.md' and anchor not in anchors(target):
      broken.append(f'{link}: no such heading in {target.relative_to(ROOT)}')
  assert broken == []


def test_the_readme_links_to_every_page():
  linked = {(README.parent / link.partition('#')[0]).resolve() for link in relative_links(README)}
  assert sorted(str(p.relative_to(ROOT)) for p in DOCS.glob('*.md') if p.resolve() not in linked) == []


def test_how_it_works_names_modules_that_exist():
  page = (DOCS / 'architecture.md').read_text(encoding='utf-8')
  named = set(re.findall(r'`([\w/]+\.py)`', page))
  assert len(named) > 10
  folders = (ROOT, ROOT / 'transformer', ROOT / 'runtime' / 'compiled')
  assert sorted(name for name in named if not any((folder / name).is_file() for folder in folders)) == []


def test_the_option_table_names_every_option():
  rows = re.findall(r'^\| `-.*', section(DOCS / 'command-line.md', 'Command line'), re.M)
  named = set(re.findall(r'--?[\w-]+', ' '.join(row.split(' | ')[0] for row in rows)))
  mentioned = set(re.findall(r'`(--?[\w-]+)', ' '.join(rows)))
  missing = []
  for action in argument_parser()._actions:
    options = set(action.option_strings)
    if not options or options & {'--help', '--version'}:
      continue
    # An option --help does not list (--jit) is named in the row of its opposite.
    if not options & (mentioned if action.help == argparse.SUPPRESS else named):
      missing.append(sorted(options))
  assert missing == []


def test_the_key_table_names_every_key():
  page = DOCS / 'configuration.md'
  assert sorted(re.findall(r'^\| `([\w-]+)` \|', section(page, 'Configuration'), re.M)) == list(KEYS)
  (example,) = blocks(page, 'Configuration', 'toml')
  assert sorted(re.findall(r'^([\w-]+) =', example, re.M)) == list(KEYS)


def test_the_configuration_example_is_accepted(tmp_path):
  (example,) = blocks(DOCS / 'configuration.md', 'Configuration', 'toml')
  path = tmp_path / 'pyproject.toml'
  path.write_text(example, encoding='utf-8')
  table, text = read_table(str(path))
  assert settings_values(str(path), table, text)['module_bases'] == ('mylib.layers.Base',)


# The configuration page's error lines, each from a table whose bad key sits on that line.
@pytest.mark.parametrize('bad', [
    pytest.param('module_bases = ["mylib.layers.Base"]', id='unknown-key'),
    pytest.param('jobs = 0', id='value-of-the-wrong-type'),
])
def test_the_configuration_errors_are_what_vjpify_says(bad, tmp_path, monkeypatch):
  key = bad.split(' ')[0]
  (shown,) = [line for line in section(DOCS / 'configuration.md', 'Configuration').splitlines()
              if line.startswith('pyproject.toml:') and f"'{key}'" in line]
  line = int(shown.split(':')[1])
  (tmp_path / 'pyproject.toml').write_text('\n' * (line - 2) + f'[tool.vjpify]\n{bad}\n', encoding='utf-8')
  monkeypatch.chdir(tmp_path)
  table, text = read_table('pyproject.toml')
  with pytest.raises(ConfigError) as error:
    settings_values('pyproject.toml', table, text)
  assert error.value.format() == shown


def test_the_opt_out_example_is_what_vjpify_says():
  page = DOCS / 'what-is-rewritten.md'
  (marked,) = blocks(page, 'Opting out', 'python')
  (shown,) = blocks(page, 'Opting out', '')
  # The marked line as line 8 of a Module, where the message places it.
  source = ('import flax.linen as nn\n\n\nclass Model(nn.Module):\n\n  @nn.compact\n  def __call__(self, x):\n'
            f'{marked}    return grads\n')
  result = transform_source(source, 'model.py')
  assert result.code == source
  assert [site.format() + '\n' for site in result.sites] == [shown]


def test_the_reduce_axes_rewrite_is_what_the_pass_produces():
  (shown,) = blocks(DOCS / 'reduce-axes.md', 'What vjpify does', 'python')
  before, after = shown.split('\n# after\n')
  before = before.removeprefix('# before\n').strip('\n')
  source = ('import flax.linen as nn\n\n\nclass Model(nn.Module):\n\n  def __call__(self, fn, mdl, w, x):\n'
            f'{textwrap.indent(before, "    ")}\n    return w_grad, x_grad\n')
  code = transform_source(source, 'model.py').code
  assert textwrap.indent(after.strip('\n'), '    ') in code
  assert 'vjp_with_reduce_axes' in code.split('class Model')[0]


def test_the_cache_settings_are_the_runtimes():
  from vjpify.runtime import compiled  # pylint: disable=import-outside-toplevel  (jax only here)

  page = (DOCS / 'guarantees.md').read_text(encoding='utf-8')
  runtime = ''.join(path.read_text(encoding='utf-8') for path in (ROOT / 'runtime').rglob('*.py'))
  variables = set(re.findall(r'`(VJPIFY_\w+)`', page))
  assert variables and sorted(v for v in variables if f"'{v}'" not in runtime) == []
  functions = set(re.findall(r'`compiled\.(\w+)\(', page))
  assert len(functions) >= 5
  assert sorted(f for f in functions if not callable(getattr(compiled, f, None))) == []


def _bench_run():
  spec = importlib.util.spec_from_file_location('bench_run', ROOT / 'bench' / 'run.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_the_benchmark_table_is_in_its_page():
  run = _bench_run()
  page = (DOCS / 'benchmarks.md').read_text(encoding='utf-8')
  assert run.PAGE == str(DOCS / 'benchmarks.md')
  assert page.count(run.START) == 1 and page.count(run.END) == 1
  rows = re.findall(r'^\| \d .*\|$', page.split(run.START)[1].split(run.END)[0], re.M)
  assert rows and all(row.split(' | ')[-1] in ('met |', '**missed** |') for row in rows)


@pytest.mark.parametrize('page', [
    pytest.param('# Benchmarks\n\nProse.\n\n<!-- bench:start -->\nold\n<!-- bench:end -->\n\nMore prose.\n',
                 id='with-markers'),
    pytest.param('# Benchmarks\n\nProse.\n', id='without-markers'),
])
def test_update_page_replaces_only_the_table(page, tmp_path):
  run = _bench_run()
  path = tmp_path / 'benchmarks.md'
  path.write_text(page, encoding='utf-8')
  run.update_page('| new |', str(path))
  written = path.read_text(encoding='utf-8')
  assert written.split(run.START)[0].rstrip('\n') == page.split(run.START)[0].rstrip('\n')
  assert written.split(run.START)[1].split(run.END)[0] == '\n| new |\n'
  assert written.split(run.END)[1] == (page.split(run.END)[1] if run.END in page else '\n')
