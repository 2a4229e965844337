"""The fixture tree is the transformer's test suite.

Each ``fixtures/<group>/<case>/`` holds ``input.py``, ``expected.py`` (absent
when the file must come out byte for byte unchanged) and ``warnings.txt`` (the
exact diagnostics, one per line; absent when none are expected), and
``options.txt`` (command-line options for the case, such as ``--no-jit``;
absent for the defaults; a group's own ``options.txt`` applies to each of
its cases first). The exec group belongs to the behavioural tests
and is not read here.

Run with ``VJPIFY_OVERWRITE=1`` to regenerate the golden files from the
current transformer, then review the diff by eye.
"""

from __future__ import annotations

import ast
import os
import pathlib
import runpy
import subprocess
import sys

import pytest

import vjpify.runtime
from vjpify.transformer.cli.main import argument_parser
from vjpify.transformer.diagnostics import REWRITTEN
from vjpify.transformer.find.targets import RUNTIME_HELPERS
from vjpify.transformer.pipeline import transform_text
from vjpify.transformer.settings import Settings

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / 'fixtures'
OVERWRITE = os.environ.get('VJPIFY_OVERWRITE') == '1'
# Diagnostics name the file as the tests pass it, so golden files stay portable.
INPUT_PATH = 'input.py'
# Groups whose cases are not one input.py: the differential tests' modules
# and the multi-file projects of tests/transformer/test_projects.py.
NOT_SINGLE_FILES = ('exec', 'projects')


def _cases() -> list:
  cases = []
  for input_file in sorted(FIXTURES.glob('*/*/input.py')):
    case = input_file.parent
    if case.parent.name in NOT_SINGLE_FILES:
      continue
    cases.append(pytest.param(case, id=f'{case.parent.name}/{case.name}'))
  return cases


def _diagnostics(result) -> list[str]:
  return [site.format() for site in result.sites if site.action != REWRITTEN]


def _reasons(result) -> list[str]:
  return [site.reason for site in result.sites if site.action != REWRITTEN]


def _read(path: pathlib.Path) -> str:
  # Bytes, not text mode, so that line endings are compared as they are.
  return path.read_bytes().decode('utf-8')


def _read_lines(path: pathlib.Path) -> list[str]:
  return _read(path).splitlines() if path.exists() else []


def _overwrite(case: pathlib.Path, source: str, code: str, diagnostics: list[str]) -> None:
  expected = case / 'expected.py'
  warnings = case / 'warnings.txt'
  if code == source:
    expected.unlink(missing_ok=True)
  else:
    expected.write_bytes(code.encode('utf-8'))
  if diagnostics:
    warnings.write_text(''.join(f'{line}\n' for line in diagnostics))
  else:
    warnings.unlink(missing_ok=True)


def case_flags(case: pathlib.Path) -> list[str]:
  """The command-line options of a case: its group's ``options.txt``, then its own."""
  return [flag for options in (case.parent / 'options.txt', case / 'options.txt') if options.exists()
          for flag in _read(options).split()]


def _settings(case: pathlib.Path) -> Settings:
  """The settings that the case's command-line options stand for, built as
  the command line builds them."""
  return Settings.from_args(argument_parser().parse_args([*case_flags(case), INPUT_PATH]))


@pytest.mark.parametrize('case', _cases())
def test_fixture(case: pathlib.Path) -> None:
  source = _read(case / 'input.py')
  settings = _settings(case)
  result = transform_text(source, INPUT_PATH, settings)
  diagnostics = _diagnostics(result)
  if OVERWRITE:
    _overwrite(case, source, result.code, diagnostics)
  expected_file = case / 'expected.py'
  expected = _read(expected_file) if expected_file.exists() else source
  assert result.code == expected
  assert diagnostics == _read_lines(case / 'warnings.txt')
  if expected_file.exists():
    assert expected != source, 'expected.py equals input.py; delete it instead'

  again = transform_text(result.code, INPUT_PATH, settings)
  assert again.code == result.code, 'transforming the output changed it again'
  # Added imports move lines, so compare what was reported, not where.
  assert _reasons(again) == _reasons(result)


def test_every_case_is_complete() -> None:
  # A case directory without input.py would silently test nothing.
  for case in FIXTURES.glob('*/*/'):
    if case.parent.name not in NOT_SINGLE_FILES and case.name != '__pycache__':
      assert (case / 'input.py').exists(), case


@pytest.mark.parametrize('case', _cases())
def test_fixture_sources_import(case: pathlib.Path) -> None:
  # The differential tests run these files, so both sides must import
  # cleanly (flax and jax included) without running any model: every
  # definition is there afterwards, and every runtime helper imported is
  # the runtime's own.
  for name in ('input.py', 'expected.py'):
    if (case / name).exists():
      namespace = runpy.run_path(str(case / name), run_name=f'fixture_{name[:-3]}')
      top_level = ast.parse(_read(case / name)).body
      defined = {node.name for node in top_level if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
      assert defined <= namespace.keys()
      helpers = {alias.asname or alias.name: alias.name for node in top_level
                 if isinstance(node, ast.ImportFrom) and node.module == 'vjpify.runtime' for alias in node.names}
      assert all(namespace[bound] is getattr(vjpify.runtime, helper) for bound, helper in helpers.items())


def test_runtime_exports_every_helper_the_transformer_emits() -> None:
  assert RUNTIME_HELPERS <= set(vjpify.runtime.__all__)
  for name in RUNTIME_HELPERS:
    assert callable(getattr(vjpify.runtime, name))


def test_transformer_never_imports_jax_or_flax() -> None:
  script = (
      'import sys\n'
      'import vjpify.transformer\n'
      'source = open(sys.argv[1]).read()\n'
      'assert vjpify.transformer.transform_source(source, "input.py").changed\n'
      'loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "flax"))\n'
      'print(",".join(loaded))\n'
  )
  sample = FIXTURES / 'spellings' / 'import_linen_as_nn' / 'input.py'
  done = subprocess.run(
      [sys.executable, '-c', script, str(sample)],
      capture_output=True, text=True, check=False, timeout=120)
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip() == ''
