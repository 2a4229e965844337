"""The pre-commit hook, for real: ``pre-commit try-repo`` installs vjpify
from a throwaway copy of this repository into its own environment (from
the package index, so it needs network access) and runs the hook on a
throwaway git repository. It takes tens of seconds, mostly the install.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

from support.cli import PLAIN, REWRITTEN, SOURCE, cli_env, write

_ROOT = Path(__file__).resolve().parents[2]

# What pip needs to build and install vjpify: no tests, fixtures or caches.
_INSTALL_FILES = ('pyproject.toml', 'README.md', '.pre-commit-hooks.yaml')
_INSTALL_FOLDERS = ('vjpify', 'transformer', 'runtime')

_INSTALL_TIMEOUT_S = 600


def _git(*args: str, cwd: Path) -> None:
  subprocess.run(['git', '-c', 'user.name=vjpify tests', '-c', 'user.email=tests@vjpify.invalid',
                  '-c', 'commit.gpgsign=false', *args], cwd=cwd, check=True, capture_output=True)


def _hook_repository(path: Path) -> None:
  for name in _INSTALL_FILES:
    shutil.copy2(_ROOT / name, path / name)
  for name in _INSTALL_FOLDERS:
    shutil.copytree(_ROOT / name, path / name, ignore=shutil.ignore_patterns('__pycache__'))
  _git('init', '-q', cwd=path)
  _git('add', '.', cwd=path)
  _git('commit', '-q', '-m', 'hook', cwd=path)


def test_hook_definition_names_the_console_script():
  hooks = (_ROOT / '.pre-commit-hooks.yaml').read_text()
  for line in ('- id: vjpify', 'entry: vjpify', 'language: python', 'types: [python]'):
    assert line in hooks


def test_hook_install_needs_no_jax_or_flax():
  requirements = [Requirement(r) for r in importlib.metadata.requires('vjpify') or []]
  base = {r.name for r in requirements if r.marker is None}
  runtime = {r.name for r in requirements if r.marker is not None and r.marker.evaluate({'extra': 'runtime'})}
  assert 'libcst' in base
  assert not base & {'jax', 'jaxlib', 'flax', 'numpy'}
  assert {'jax', 'flax'} <= runtime


def test_pre_commit_try_repo_rewrites_staged_files(tmp_path):
  hook = tmp_path / 'hook'
  hook.mkdir()
  _hook_repository(hook)
  work = tmp_path / 'work'
  write(work / 'model.py', SOURCE)
  write(work / 'plain.py', PLAIN)
  _git('init', '-q', cwd=work)
  _git('add', '.', cwd=work)
  env = cli_env(PRE_COMMIT_HOME=str(tmp_path / 'cache'), PRE_COMMIT_COLOR='never')
  result = subprocess.run(
      [sys.executable, '-m', 'pre_commit', 'try-repo', str(hook), 'vjpify', '--files', 'model.py', 'plain.py'],
      cwd=work, env=env, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S)
  assert result.returncode == 1, result.stdout + result.stderr
  assert 'files were modified by this hook' in result.stdout
  assert 'Rewriting model.py' in result.stdout
  assert 'vjpify: 2 files scanned, 1 changed, 1 site rewritten, 1 skipped, 0 errors' in result.stdout
  assert (work / 'model.py').read_text() == REWRITTEN
  assert (work / 'plain.py').read_text() == PLAIN

