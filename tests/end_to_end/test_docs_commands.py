"""The commands and configuration of the README and the pages under
``docs/``, run as written from a clean copy of this repository (what a clone
holds), wherever that can be done here: the README's first command in a
fresh environment and its pre-commit configuration; the installs from a
clone and from a git URL (docs/installing.md); the setuptools and hatchling
tables, the ``--out-dir`` output shown and the Makefile rule
(docs/build-systems.md); the command line's output shown
(docs/command-line.md).
(The Bazel rule is shown only: it needs Bazel. The ``[runtime]`` install
is not run: it downloads jax and flax, which the test extras install.)

``<vjpify-url>`` and ``<commit>`` stand for the repository's URL and one of
its commits; here they are a committed clean copy, as a ``file://`` URL or
a path, and its commit. The installs into fresh environments fetch
vjpify's own dependencies from the package index, as a user's do, so they
need it reachable, as ``test_precommit.py`` does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support.cli import PLAIN, REWRITTEN, SOURCE, cli_env, vjpify, write
from support.docs import DOCS, README, blocks
from support.install import USER_MODEL, build_wheel, clean_copy, git, path_without, run, user_project

from vjpify.transformer import transform_source
from vjpify.transformer.cli.console import unified_diff

INSTALLING, BUILD_SYSTEMS = DOCS / 'installing.md', DOCS / 'build-systems.md'


def _url(path: Path) -> str:
  # With a host: the requirement parser of pip 23 (packaging 21) rejects
  # git+file:/// URLs, which newer ones accept.
  return f'file://localhost{path}'


def _fill(text: str, url: str, commit: str) -> str:
  return text.replace('<vjpify-url>', url).replace('<commit>', commit)


@pytest.fixture(scope='module')
def repository(tmp_path_factory):
  """A committed clean copy: (its path, its commit)."""
  path = clean_copy(tmp_path_factory.mktemp('repository') / 'vjpify', commit=True)
  return path, git('rev-parse', 'HEAD', cwd=path).strip()


def _fresh_environment(path: Path) -> dict[str, str]:
  """A new virtual environment with pip and nothing else; the environment
  variables of a shell in which it is active."""
  subprocess.run([sys.executable, '-m', 'venv', str(path)], check=True, capture_output=True)
  return cli_env(VIRTUAL_ENV=str(path), PATH=f'{path / "bin"}{os.pathsep}{os.environ["PATH"]}')


def _shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
  return run('bash', '-c', command, cwd=cwd, env=env)


def test_the_first_command_shows_the_diff_without_jax_or_flax(tmp_path):
  command = re.search(r'```bash\n(.*?)\n', README.read_text()).group(1)
  clone = clean_copy(tmp_path / 'vjpify')
  env = _fresh_environment(tmp_path / 'venv')
  result = _shell(command, clone, env)
  assert result.returncode == 1, result.stdout
  example = (clone / 'examples/seed_model.py').read_text()
  assert unified_diff('examples/seed_model.py', example, transform_source(example).code) in result.stdout
  for name in ('jax', 'flax'):
    assert _shell(f'python -c "import {name}"', tmp_path, env).returncode == 1


def test_installing_from_a_clone_and_from_a_git_url(repository, tmp_path):
  path, commit = repository
  clone, from_clone, runtime, from_url = _fill(blocks(INSTALLING, 'Installing', 'bash')[0], _url(path), commit).splitlines()
  assert '[runtime]' in runtime
  env = _fresh_environment(tmp_path / 'venv')
  for command in (clone, from_clone, 'vjpify --version'):
    result = _shell(command, tmp_path, env)
    assert result.returncode == 0, result.stdout
  assert result.stdout.startswith('vjpify 0.')
  env = _fresh_environment(tmp_path / 'other-venv')
  for command in (from_url, 'python -m vjpify --version'):
    result = _shell(command, tmp_path, env)
    assert result.returncode == 0, result.stdout
  assert result.stdout.startswith('vjpify 0.')


def test_the_pre_commit_configuration(repository, tmp_path):
  path, commit = repository
  (config,) = blocks(README, 'pre-commit', 'yaml')
  work = tmp_path / 'work'
  # With the commented-out line in: the hook's --force-exclude makes it
  # apply to the files pre-commit names.
  assert '# args: [--exclude, ' in config
  write(work / '.pre-commit-config.yaml', _fill(config, str(path), commit).replace('# args:', 'args:'))
  write(work / 'model.py', SOURCE)
  write(work / 'third_party/model.py', SOURCE)
  git('init', '-q', cwd=work)
  git('add', '.', cwd=work)
  env = cli_env(PRE_COMMIT_HOME=str(tmp_path / 'cache'), PRE_COMMIT_COLOR='never')
  result = run(sys.executable, '-m', 'pre_commit', 'run', '--all-files', cwd=work, env=env)
  assert result.returncode == 1, result.stdout
  assert 'files were modified by this hook' in result.stdout
  assert (work / 'model.py').read_text() == REWRITTEN
  assert (work / 'third_party/model.py').read_text() == SOURCE


@pytest.mark.parametrize('backend', ['setuptools', 'hatchling'])
def test_the_build_system_tables_build_a_rewritten_wheel(backend, repository, tmp_path):
  path, commit = repository
  (table,) = blocks(BUILD_SYSTEMS, backend, 'toml')
  project = user_project(tmp_path / 'project', backend, _fill(table, _url(path), commit))
  before = path_without(project, 'build', 'userpkg.egg-info')
  result, wheel = build_wheel(project, tmp_path / 'wheels')
  assert wheel is not None, result.stdout
  with zipfile.ZipFile(wheel) as archive:
    assert archive.read('userpkg/model.py').decode() == transform_source(USER_MODEL).code
  assert path_without(project, 'build', 'userpkg.egg-info') == before


@pytest.fixture
def sources(tmp_path):
  write(tmp_path / 'src/model.py', SOURCE.split('\n\ndef outside')[0] + '\n')
  write(tmp_path / 'src/plain.py', PLAIN)
  write(tmp_path / 'src/data.json', '{}\n')
  return tmp_path


def test_out_dir_says_what_the_readme_shows(sources):
  (command,) = blocks(BUILD_SYSTEMS, 'Other tools: `--out-dir`', 'bash')
  env = cli_env(PATH=f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}')
  first = subprocess.run(['bash', '-c', command], cwd=sources, env=env, capture_output=True, text=True)
  assert first.returncode == 0, first.stderr
  second = subprocess.run(['bash', '-c', command], cwd=sources, env=env, capture_output=True, text=True)
  assert second.returncode == 0
  (shown,) = blocks(BUILD_SYSTEMS, 'Other tools: `--out-dir`', '')
  assert second.stderr == shown


@pytest.mark.skipif(shutil.which('make') is None, reason='needs make')
def test_the_makefile_rule(sources):
  (rule,) = blocks(BUILD_SYSTEMS, 'Other tools: `--out-dir`', 'make')
  write(sources / 'Makefile', rule)
  env = cli_env(PATH=f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}')
  result = run('make', cwd=sources, env=env)
  assert result.returncode == 0, result.stdout
  assert (sources / 'build/src/model.py').read_text() == transform_source(
      (sources / 'src/model.py').read_text()).code
  assert (sources / 'build/src/data.json').read_text() == '{}\n'
  again = run('make', cwd=sources, env=env)
  assert again.returncode == 0 and "'build/src.stamp' is up to date" in again.stdout


def test_the_command_line_says_what_its_page_shows(tmp_path):
  write(tmp_path / 'src/model.py', SOURCE)
  write(tmp_path / 'src/plain.py', PLAIN)
  (shown,) = blocks(DOCS / 'command-line.md', 'Command line', '')
  result = vjpify('src/', cwd=tmp_path)
  assert result.returncode == 1
  assert result.stderr == shown
  assert (tmp_path / 'src/model.py').read_text() == REWRITTEN
