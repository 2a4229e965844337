"""The build hooks for real: wheels of a small user package built by pip
with each backend (setuptools' ``build_py`` command class, hatchling's
``vjpify`` hook), opened and read; the sdist and the source tree left as
they were; the build log and a failed build; and an editable install that
imports and runs the original sources while the wheel runs the rewritten
ones, with the same gradients.

Builds run without build isolation, against this environment's vjpify,
setuptools and hatchling, so they need no package index.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tarfile
import zipfile

import pytest

from support.install import (
    BACKENDS, ROOT, RUN_USER_MODEL, USER_MODEL, USER_SKIPPED, build_wheel, clean_copy, environment, path_without,
    pip_install, run, user_project, with_python_path)
from test_lift_fixtures import SOURCE as JAX_MODEL

from vjpify.transformer import transform_source

REWRITTEN_MODEL = transform_source(USER_MODEL, 'model.py').code
_BUILT = ('build', 'userpkg.egg-info')  # what setuptools leaves in the tree, besides sources


@pytest.fixture(scope='module', params=BACKENDS)
def built(request, tmp_path_factory):
  """A user project of each backend, its sources before the build, and
  the outcome of building its wheel."""
  project = user_project(tmp_path_factory.mktemp(request.param), request.param)
  before = path_without(project, *_BUILT)
  result, wheel = build_wheel(project, project.parent / f'{request.param}-wheels')
  assert wheel is not None, result.stdout
  return request.param, project, before, result, wheel


def _wheel_file(wheel, name: str) -> str:
  with zipfile.ZipFile(wheel) as archive:
    return archive.read(name).decode('utf-8')


def test_the_wheel_ships_the_rewritten_module(built):
  _, _, _, _, wheel = built
  assert _wheel_file(wheel, 'userpkg/model.py') == REWRITTEN_MODEL
  assert 'from vjpify.runtime import compiled, grad_from_vjp\n' in REWRITTEN_MODEL


def test_the_wheel_ships_other_modules_as_they_are(built):
  _, project, _, _, wheel = built
  for name in ('__init__.py', 'plain.py'):
    assert _wheel_file(wheel, f'userpkg/{name}') == (project / 'src/userpkg' / name).read_text()
  with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
  assert len([n for n in names if n.endswith('userpkg/model.py')]) == 1
  # The RECORD's hash is the shipped file's, so pip installs it cleanly.
  assert any(line.startswith('userpkg/model.py,sha256=') for line in _wheel_file(
      wheel, 'userpkg-0.1.dist-info/RECORD').splitlines())


def test_the_source_tree_is_untouched(built):
  _, project, before, _, _ = built
  assert path_without(project, *_BUILT) == before


def test_the_build_log_reports_sites_left_unchanged(built):
  backend, _, _, result, _ = built
  log = result.stdout
  assert f'vjpify: {USER_SKIPPED}' in log
  assert 'vjpify: 3 files scanned, 1 changed, 1 site rewritten, 1 skipped, 0 errors' in log
  destination = 'build/lib/userpkg/model.py' if backend == 'setuptools' else 'userpkg/model.py'
  assert f'vjpify: Rewriting src/userpkg/model.py -> {destination}' in log


@pytest.mark.parametrize('backend', BACKENDS)
def test_the_sdist_is_the_source_tree(backend, tmp_path):
  project = user_project(tmp_path / 'project', backend)
  module = 'setuptools.build_meta' if backend == 'setuptools' else 'hatchling.build'
  result = run(sys.executable, '-c', f'import {module} as b; print(b.build_sdist({str(tmp_path / "dist")!r}))',
               cwd=project)
  assert result.returncode == 0, result.stdout
  with tarfile.open(next((tmp_path / 'dist').glob('*.tar.gz'))) as archive:
    models = [m for m in archive.getmembers() if m.name.endswith('src/userpkg/model.py')]
    assert len(models) == 1
    assert archive.extractfile(models[0]).read().decode('utf-8') == USER_MODEL


@pytest.mark.parametrize('backend', BACKENDS)
def test_a_file_that_cannot_be_transformed_fails_the_build(backend, tmp_path):
  project = user_project(tmp_path / 'project', backend)
  (project / 'src/userpkg/broken.py').write_text('import flax\ngrad(\n')
  result, wheel = build_wheel(project, tmp_path / 'wheels')
  assert result.returncode != 0
  assert wheel is None
  assert "src/userpkg/broken.py:2:5: VJ001 cannot parse: '(' was never closed" in result.stdout
  assert 'Traceback' not in result.stdout
  assert 'vjpify could not transform these files, so the build stops:' in result.stdout


def test_setuptools_resolves_the_command_by_its_dotted_name(tmp_path):
  from setuptools.config.expand import resolve_class

  from vjpify.transformer.build_hooks.setuptools_command import build_py
  assert resolve_class('vjpify.transformer.build_hooks.build_py', {}, str(tmp_path)) is build_py


def test_hatchling_finds_the_hook_through_the_entry_point():
  from hatchling.plugin.manager import PluginManager

  from vjpify.transformer.build_hooks.hatch_hook import VjpifyBuildHook
  (entry_point,) = [e for e in importlib.metadata.entry_points(group='hatch') if e.name == 'vjpify']
  assert entry_point.value == 'vjpify.transformer.build_hooks.hatch_hook'
  assert PluginManager().build_hook.get('vjpify') is VjpifyBuildHook


# --- [tool.vjpify] in builds: the settings vjpify run in the project uses

_CONFIGURED = """
[tool.vjpify]
no-jit = true
extend-exclude = ["src/userpkg/generated.py"]
"""


@pytest.mark.parametrize('backend', BACKENDS)
def test_the_build_reads_the_projects_configuration(backend, tmp_path):
  project = user_project(tmp_path / 'project', backend)
  with open(project / 'pyproject.toml', 'a', encoding='utf-8') as f:
    f.write(_CONFIGURED)
  (project / 'src/userpkg/generated.py').write_text(USER_MODEL)
  result, wheel = build_wheel(project, tmp_path / 'wheels')
  assert wheel is not None, result.stdout
  assert _wheel_file(wheel, 'userpkg/model.py') == transform_source(USER_MODEL, 'model.py', jit=False).code
  assert _wheel_file(wheel, 'userpkg/generated.py') == USER_MODEL
  assert 'vjpify: 3 files scanned, 1 changed, 1 site rewritten, 1 skipped, 0 errors' in result.stdout


@pytest.mark.parametrize('backend', BACKENDS)
def test_the_build_lifts_jax_transforms_when_configured(backend, tmp_path):
  project = user_project(tmp_path / 'project', backend)
  with open(project / 'pyproject.toml', 'a', encoding='utf-8') as f:
    f.write('\n[tool.vjpify]\nlift-jax-transforms = true\n')
  (project / 'src/userpkg/field.py').write_text(JAX_MODEL)
  result, wheel = build_wheel(project, tmp_path / 'wheels')
  assert wheel is not None, result.stdout
  assert _wheel_file(wheel, 'userpkg/field.py') == transform_source(
      JAX_MODEL, 'field.py', lift_jax_transforms=True).code != JAX_MODEL


@pytest.mark.parametrize('backend', BACKENDS)
def test_strict_configuration_fails_the_build_on_a_site_left_unchanged(backend, tmp_path):
  project = user_project(tmp_path / 'project', backend)
  with open(project / 'pyproject.toml', 'a', encoding='utf-8') as f:
    f.write('\n[tool.vjpify]\nstrict = true\n')
  result, wheel = build_wheel(project, tmp_path / 'wheels')
  assert wheel is None
  log = [line.strip() for line in result.stdout.splitlines()]
  # setuptools says 'error: ...', hatchling the message alone.
  stop = next(i for i, line in enumerate(log) if line.endswith(
      'vjpify left 1 site unchanged and [tool.vjpify] has strict = true, so the build stops:'))
  assert log[stop + 1].startswith(USER_SKIPPED)


@pytest.mark.parametrize('backend', BACKENDS)
def test_bad_configuration_fails_the_build_with_its_position(backend, tmp_path):
  project = user_project(tmp_path / 'project', backend)
  with open(project / 'pyproject.toml', 'a', encoding='utf-8') as f:
    f.write('\n[tool.vjpify]\nno_jit = true\n')
  line = (project / 'pyproject.toml').read_text().splitlines().index('no_jit = true') + 1
  result, wheel = build_wheel(project, tmp_path / 'wheels')
  assert wheel is None
  # The one line that says where and why, in the backend's own words,
  # with no traceback before it.
  shown = f"pyproject.toml:{line}:1: VJ105 unknown key 'no_jit' in [tool.vjpify]; nothing was rewritten; "
  stop = {'setuptools': f'error: {shown}', 'hatchling': shown}[backend]
  assert any(entry.strip().startswith(stop) for entry in result.stdout.splitlines()), result.stdout
  assert 'Traceback' not in result.stdout


# --- installed: the wheel runs rewritten code, an editable install the original

@pytest.fixture
def vjpify_environment(tmp_path_factory):
  """An environment with vjpify installed from a clean copy (its build
  hooks, and the runtime that rewritten code imports), one per test, so
  that each sees only the user project it installs."""
  root = tmp_path_factory.mktemp('vjpify-env')
  python = environment(root / 'venv')
  pip_install(python, clean_copy(root / 'vjpify'), cwd=root)
  return python


@pytest.mark.parametrize('backend', BACKENDS)
def test_editable_install_runs_the_original_and_the_wheel_the_rewrite(backend, vjpify_environment, tmp_path):
  project = user_project(tmp_path / 'project', backend)
  pip_install(vjpify_environment, '-e', project, cwd=tmp_path)
  editable = run(vjpify_environment, '-c', RUN_USER_MODEL, cwd=tmp_path)
  assert editable.returncode == 0, editable.stdout
  imported_from, editable_gradient = editable.stdout.splitlines()[-2:]
  assert imported_from == str(project / 'src/userpkg/model.py')
  assert (project / 'src/userpkg/model.py').read_text() == USER_MODEL

  _, wheel = build_wheel(project, tmp_path / 'wheels')
  pip_install(vjpify_environment, '--target', tmp_path / 'installed', wheel, cwd=tmp_path)
  installed = run(vjpify_environment, '-c', RUN_USER_MODEL, cwd=tmp_path,
                  env=with_python_path(tmp_path / 'installed'))
  assert installed.returncode == 0, installed.stdout
  imported_from, installed_gradient = installed.stdout.splitlines()[-2:]
  assert imported_from == str(tmp_path / 'installed/userpkg/model.py')
  assert (tmp_path / 'installed/userpkg/model.py').read_text() == REWRITTEN_MODEL
  assert installed_gradient == editable_gradient
