"""Shared helpers for the command line tests: run ``vjpify`` in a subprocess
the way users, build systems and pre-commit do, and build the files it
works on.

Every run gets a clean environment: no ``PRE_COMMIT``, no ``NO_COLOR``, so
that each test states the conditions it depends on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vjpify.transformer import transform_source

# One site the pass rewrites (line 8) and one it leaves alone (line 12).
SOURCE = '''\
import flax.linen as nn


class Model(nn.Module):

  @nn.compact
  def __call__(self, x):
    return nn.grad(lambda mdl, x: mdl(x), nn.Dense(3), x)


def outside(f, m, x):
  return nn.grad(f, m, x)
'''

REWRITTEN = transform_source(SOURCE, 'model.py').code

# The lines the site becomes by default and with --no-jit.
COMPILED_SITE = (
    '    return grad_from_vjp(nn.vjp(\n'
    '        compiled(lambda mdl, x: mdl(x)), nn.Dense(3), x,\n'
    '        vjp_variables=False, multi_scope=True))\n')
PLAIN_SITE = COMPILED_SITE.replace('compiled(lambda mdl, x: mdl(x))', 'lambda mdl, x: mdl(x)')

# A file that cannot hold a site: the prefilter skips it unparsed.
PLAIN = 'def f(x):\n  return x + 1\n'

SKIPPED_DIAGNOSTIC = ':12:10: VJ202 nn.grad(...) is not inside a flax.linen.Module subclass'

TIMEOUT_S = 120


def cli_env(**overrides: str) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items() if k not in ('PRE_COMMIT', 'NO_COLOR', 'FORCE_COLOR')}
  env.update(overrides)
  return env


def vjpify(*args: str, cwd: Path | str, stdin: bytes | None = None, env: dict[str, str] | None = None,
           command: tuple[str, ...] = (sys.executable, '-m', 'vjpify')) -> subprocess.CompletedProcess:
  """Runs the command line; stdout and stderr come back as text (stdout as
  bytes when ``stdin`` is given, since it then carries file contents)."""
  process = subprocess.run(
      [*command, *args], cwd=cwd, input=stdin if stdin is not None else b'', capture_output=True,
      env=env if env is not None else cli_env(), timeout=TIMEOUT_S)
  if stdin is None:
    return subprocess.CompletedProcess(process.args, process.returncode,
                                       process.stdout.decode('utf-8', 'replace'),
                                       process.stderr.decode('utf-8', 'replace'))
  return subprocess.CompletedProcess(process.args, process.returncode, process.stdout,
                                     process.stderr.decode('utf-8', 'replace'))


_RUN_MAIN = '''
import sys
from vjpify.transformer.cli.main import main
raise SystemExit(main(sys.argv[1:]))
'''


def patched(patch: str) -> tuple[str, ...]:
  """A command that runs ``patch`` (Python code) and then the command line,
  for faults that cannot be made for real; worker processes, forked from
  it, inherit what it changed."""
  return (sys.executable, '-c', textwrap.dedent(patch) + _RUN_MAIN)


def console_script() -> str:
  """The installed ``vjpify`` entry point, next to this interpreter."""
  return str(Path(sys.executable).parent / 'vjpify')


@pytest.fixture
def project(tmp_path):
  """A folder with one file the pass rewrites and one it cannot touch;
  modules that use it import it from here."""
  write(tmp_path / 'model.py', SOURCE)
  write(tmp_path / 'plain.py', PLAIN)
  return tmp_path


def write(path: Path, content: str | bytes) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  if isinstance(content, str):
    content = content.encode('utf-8')
  path.write_bytes(content)
  return path


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
  """Every file under ``root``: contents, mode and modification time."""
  found = {}
  for path in sorted(root.rglob('*')):
    if path.is_file() and not path.is_symlink():
      stat = path.stat()
      found[str(path.relative_to(root))] = (path.read_bytes(), stat.st_mode, stat.st_mtime_ns)
  return found


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
  assert 'Traceback' not in result.stderr, result.stderr
