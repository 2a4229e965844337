"""Shared helpers for the tests that install things: a clean copy of this
repository as a clone would have it, throwaway environments to install it
(or a user's project) into, and small user projects built with vjpify's
build hooks.

An environment made by :func:`environment` has nothing installed of its
own, but sees this test environment's packages (libcst, setuptools,
hatchling, jax, flax, ...) through a ``.pth`` line, so that installing into
it needs no package index: ``pip install --no-deps --no-build-isolation``.
Lines of a ``.pth`` file only extend ``sys.path``; the ``.pth`` files found
there are not run, so an editable vjpify installed here stays invisible
there and each test sees only the vjpify it installed.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

from support.cli import cli_env, write

ROOT = Path(__file__).resolve().parents[2]

INSTALL_TIMEOUT_S = 600


def git(*args: str, cwd: Path) -> str:
  return subprocess.run(
      ['git', '-c', 'user.name=vjpify tests', '-c', 'user.email=tests@vjpify.invalid', '-c', 'commit.gpgsign=false',
       *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def clean_copy(destination: Path, *, commit: bool = False) -> Path:
  """The files of this repository that a clone would have (tracked, or new
  and not ignored), as they are in the working tree; with ``commit``, a
  git repository of its own with them committed."""
  listed = git('ls-files', '-z', '--cached', '--others', '--exclude-standard', cwd=ROOT).split('\0')
  for name in filter(None, listed):
    source = ROOT / name
    if source.is_file():
      (destination / name).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(source, destination / name)
  if commit:
    git('init', '-q', cwd=destination)
    git('add', '.', cwd=destination)
    git('commit', '-q', '-m', 'copy', cwd=destination)
  return destination


def environment(path: Path) -> Path:
  """A new virtual environment at ``path`` that sees this one's packages;
  returns its interpreter."""
  subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(path)], check=True)
  python = path / 'bin' / 'python'
  purelib = subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                           check=True, capture_output=True, text=True).stdout.strip()
  ours = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()['purelib']])
  Path(purelib, '_test_environment.pth').write_text(''.join(f'{p}\n' for p in ours))
  return python


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
  """Runs ``command``; stdout and stderr together, as text."""
  return subprocess.run([str(c) for c in command], cwd=cwd, env=env or cli_env(), stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True, timeout=INSTALL_TIMEOUT_S)


def pip_install(python: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
  """Installs into ``python``'s environment from what is on disk only;
  ``--ignore-installed`` so that pip never touches this test environment's
  own copies."""
  result = run(python, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation', '--no-index',
               '--ignore-installed', *args, cwd=cwd)
  assert result.returncode == 0, result.stdout
  return result


# A user's model: one site the build rewrites (line 9), one it leaves alone
# (line 13), and a scalar loss, so that the module runs.
USER_MODEL = '''\
import flax.linen as nn
import jax.numpy as jnp


class Model(nn.Module):

  @nn.compact
  def __call__(self, x):
    return nn.grad(lambda mdl, x: jnp.sum(mdl(x) ** 2), nn.Dense(3), x)


def outside(f, m, x):
  return nn.grad(f, m, x)
'''

USER_SKIPPED = 'src/userpkg/model.py:13:10: VJ202 nn.grad(...) is not inside a flax.linen.Module subclass'

# Runs the model; prints where it was imported from and its gradient.
RUN_USER_MODEL = '''
import jax, jax.numpy as jnp, numpy as np
import userpkg.model as m
model = m.Model()
x = jnp.arange(1.0, 3.0)
variables = model.init(jax.random.key(0), x)
print(m.__file__)
print(np.round(np.asarray(model.apply(variables, x)), 4).tolist())
'''

# The build system of a user's project with each backend, vjpify's hook
# enabled as the README shows.
BUILD_SYSTEMS = {
    'setuptools': '''\
[build-system]
requires = ["setuptools>=64", "vjpify"]
build-backend = "setuptools.build_meta"

[tool.setuptools.cmdclass]
build_py = "vjpify.transformer.build_hooks.build_py"
''',
    'hatchling': '''\
[build-system]
requires = ["hatchling>=1.21", "vjpify"]
build-backend = "hatchling.build"

[tool.hatch.build.hooks.vjpify]
''',
}

PROJECT_TABLE = '\n[project]\nname = "userpkg"\nversion = "0.1"\n'

BACKENDS = tuple(BUILD_SYSTEMS)


def user_project(root: Path, backend: str, build_system: str | None = None) -> Path:
  """A user's package, in the src layout, built with ``backend`` and vjpify
  (as ``build_system`` says, if given)."""
  write(root / 'pyproject.toml', (build_system or BUILD_SYSTEMS[backend]) + PROJECT_TABLE)
  write(root / 'src/userpkg/__init__.py', '"""A package with a flax model."""\n')
  write(root / 'src/userpkg/model.py', USER_MODEL)
  write(root / 'src/userpkg/plain.py', 'def f(x):\n  return x + 1\n')
  return root


def build_wheel(project: Path, out: Path) -> tuple[subprocess.CompletedProcess, Path | None]:
  """``pip wheel --no-build-isolation`` of ``project`` into ``out``, with
  the build log (``-v``); the wheel, if one was built."""
  result = run(sys.executable, '-m', 'pip', 'wheel', '-v', '--no-deps', '--no-build-isolation', '--no-index',
               '-w', out, project, cwd=project)
  wheels = sorted(out.glob('*.whl')) if out.is_dir() else []
  return result, (wheels[0] if wheels else None)


def path_without(root: Path, *names: str) -> dict[str, bytes]:
  """The files under ``root`` and their bytes, but for those under ``names``."""
  return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
          if p.is_file() and not any(part in names for part in p.relative_to(root).parts)}


def with_python_path(*paths: Path) -> dict[str, str]:
  return cli_env(PYTHONPATH=os.pathsep.join(map(str, paths)))
