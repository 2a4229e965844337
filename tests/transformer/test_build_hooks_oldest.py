"""The build hooks on the oldest backends vjpify supports: setuptools 65.5
(what Python 3.11's ``venv`` installs, from the wheel ``ensurepip`` bundles,
so that no package index is needed) builds a user's wheel through the
``build_py`` command class, build log included.

The oldest hatchling supported, 1.21, is not bundled anywhere; it is
checked by hand (see docs/build-systems.md), and these tests run it only
when a wheel of it lies in ``VJPIFY_TEST_WHEELS``.
"""

from __future__ import annotations

import ensurepip
import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from support.install import USER_MODEL, USER_SKIPPED, clean_copy, run, user_project

from vjpify.transformer import transform_source

_BUNDLED = Path(ensurepip.__file__).parent / '_bundled'
_OLDEST = {
    'setuptools': sorted(_BUNDLED.glob('setuptools-65.*.whl')),
    'hatchling': sorted(Path(os.environ.get('VJPIFY_TEST_WHEELS', _BUNDLED)).glob('hatchling-1.21.*.whl')),
}


def _environment(path: Path, backend: str) -> Path:
  """A virtual environment with pip, the oldest ``backend`` and vjpify
  built by it, that sees this environment's other packages (libcst and
  the rest) after its own."""
  subprocess.run([sys.executable, '-m', 'venv', str(path)], check=True, capture_output=True)
  python = path / 'bin' / 'python'
  install = [str(python), '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', '--no-build-isolation']
  subprocess.run([*install, str(_OLDEST[backend][-1])], check=True, capture_output=True)
  purelib = subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                           check=True, capture_output=True, text=True).stdout.strip()
  ours = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()['purelib']])
  Path(purelib, 'zz_test_environment.pth').write_text(''.join(f'{p}\n' for p in ours))
  done = subprocess.run([*install, str(clean_copy(path.parent / 'vjpify'))], capture_output=True, text=True)
  assert done.returncode == 0, done.stdout + done.stderr
  return python


@pytest.mark.parametrize('backend', [
    pytest.param(name, marks=pytest.mark.skipif(not wheels, reason=f'no wheel of the oldest {name} here'))
    for name, wheels in _OLDEST.items()])
def test_the_oldest_backend_builds_a_rewritten_wheel(backend, tmp_path):
  python = _environment(tmp_path / 'venv', backend)
  version = run(python, '-c', f'import importlib.metadata as m; print(m.version("{backend}"))', cwd=tmp_path)
  assert version.stdout.strip() == _OLDEST[backend][-1].name.split('-')[1]
  project = user_project(tmp_path / 'project', backend)
  result = run(python, '-m', 'pip', 'wheel', '-v', '--no-deps', '--no-build-isolation', '--no-index',
               '-w', tmp_path / 'wheels', project, cwd=project)
  assert result.returncode == 0, result.stdout
  assert f'vjpify: {USER_SKIPPED}' in result.stdout
  assert 'vjpify: 3 files scanned, 1 changed, 1 site rewritten, 1 skipped, 0 errors' in result.stdout
  (wheel,) = (tmp_path / 'wheels').glob('*.whl')
  with zipfile.ZipFile(wheel) as archive:
    assert archive.read('userpkg/model.py').decode() == transform_source(USER_MODEL, 'model.py').code
