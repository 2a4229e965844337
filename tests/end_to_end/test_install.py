"""vjpify installed from a clean copy of this repository, as a user
installs it: ``python -m vjpify`` in a regular and in an editable install
(``vjpify`` is a namespace package assembled by ``package-dir``, which each
kind of install assembles in its own way), what the wheel holds, and mypy
reading the lines vjpify adds through the ``py.typed`` markers.
"""

from __future__ import annotations

import sys
import zipfile

import pytest

from support.cli import SOURCE, write
from support.install import clean_copy, environment, pip_install, run

_WHERE = '''
import vjpify.__main__, vjpify.transformer, vjpify.runtime
print(vjpify.__main__.__file__)
print(vjpify.transformer.__file__)
'''


@pytest.fixture(scope='module', params=['regular', 'editable'])
def installed(request, tmp_path_factory):
  """vjpify installed each way: (interpreter, where its modules should be)."""
  root = tmp_path_factory.mktemp(request.param)
  python = environment(root / 'venv')
  copy = clean_copy(root / 'vjpify')
  if request.param == 'editable':
    pip_install(python, '-e', copy, cwd=root)
    return python, {'__main__': copy / 'vjpify/__main__.py', 'transformer': copy / 'transformer/__init__.py'}
  pip_install(python, copy, cwd=root)
  site_packages = run(python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])', cwd=root)
  package = root / site_packages.stdout.strip() / 'vjpify'
  return python, {'__main__': package / '__main__.py', 'transformer': package / 'transformer/__init__.py'}


def test_python_dash_m_vjpify_runs_the_command_line(installed, tmp_path):
  python, _ = installed
  write(tmp_path / 'model.py', SOURCE)
  result = run(python, '-m', 'vjpify', '--diff', 'model.py', cwd=tmp_path)
  assert result.returncode == 1, result.stdout
  assert '--- model.py\n+++ model.py\n@@ ' in result.stdout  # with stderr's lines
  assert (tmp_path / 'model.py').read_text() == SOURCE


def test_the_command_comes_from_the_install_under_test(installed, tmp_path):
  python, expected = installed
  result = run(python, '-c', _WHERE, cwd=tmp_path)
  assert result.returncode == 0, result.stdout
  assert result.stdout.splitlines() == [str(expected['__main__']), str(expected['transformer'])]


def test_the_console_script_is_installed(installed, tmp_path):
  python, _ = installed
  result = run(python.parent / 'vjpify', '--version', cwd=tmp_path)
  assert result.returncode == 0 and result.stdout.startswith('vjpify ')


def test_the_wheel_keeps_vjpify_a_namespace_with_typed_packages(tmp_path):
  copy = clean_copy(tmp_path / 'vjpify')
  result = run(sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index', '-w',
               tmp_path / 'wheels', copy, cwd=tmp_path)
  assert result.returncode == 0, result.stdout
  (wheel,) = (tmp_path / 'wheels').glob('*.whl')
  with zipfile.ZipFile(wheel) as archive:
    names = set(archive.namelist())
    entry_points = archive.read(next(n for n in names if n.endswith('entry_points.txt'))).decode()
  assert {'vjpify/__main__.py', 'vjpify/transformer/py.typed', 'vjpify/runtime/py.typed',
          'vjpify/transformer/build_hooks/__init__.py'} <= names
  assert 'vjpify/__init__.py' not in names
  assert '[hatch]\nvjpify = vjpify.transformer.build_hooks.hatch_hook\n' in entry_points


# jax and flax are typed too, and large: checking the rewritten lines
# against vjpify's packages does not need mypy to read them.
_MYPY_CONFIG = '''\
[mypy]
follow_imports = silent
[mypy-jax.*,jaxlib.*,flax.*,numpy.*]
follow_imports = skip
'''


# mypy finds packages on the search path only, never through the import
# hooks of editable installs, so it reads a regular one.
@pytest.mark.parametrize('installed', ['regular'], indirect=True)
def test_mypy_reads_the_lines_vjpify_adds(installed, tmp_path):
  python, expected = installed
  write(tmp_path / 'mypy.ini', _MYPY_CONFIG)
  write(tmp_path / 'model.py', SOURCE)
  assert run(python, '-m', 'vjpify', 'model.py', cwd=tmp_path).returncode == 1
  mypy = (sys.executable, '-m', 'mypy', '--python-executable', python, '--cache-dir', tmp_path / 'cache', 'model.py')
  result = run(*mypy, cwd=tmp_path)
  assert result.returncode == 0, result.stdout
  assert result.stdout.startswith('Success: no issues found in 1 source file')

  # Without the marker, mypy refuses to read the runtime at all.
  (expected['__main__'].parent / 'runtime/py.typed').unlink()
  try:
    result = run(*mypy, cwd=tmp_path)
  finally:
    (expected['__main__'].parent / 'runtime/py.typed').touch()
  assert result.returncode == 1
  assert 'Skipping analyzing "vjpify.runtime": module is installed, but missing library stubs or py.typed' in result.stdout
