"""flax's own tests of nn.grad and nn.value_and_grad must pass after vjpify
rewrote the file that holds them.

The test file ships in flax's sdist, not in its wheel, so the sdist of the
installed flax version is downloaded with pip (PyPI is the one host CI can
reach) into ``.cache/flax-sdist/<version>/`` and reused from there. When it
cannot be downloaded the test is skipped and says why.
"""

from __future__ import annotations

import ast
import importlib.metadata
import pathlib
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ElementTree

import pytest

from vjpify.transformer import transform_source

REPO = pathlib.Path(__file__).resolve().parents[2]
FLAX_VERSION = importlib.metadata.version('flax')
CACHE = REPO / '.cache' / 'flax-sdist' / FLAX_VERSION
TEST_FILE = 'tests/linen/linen_transforms_test.py'

# The tests in TEST_FILE that call nn.grad or nn.value_and_grad.
GRAD_TESTS = (
    'test_grad_simple',
    'test_grad_simple_with_aux',
    'test_value_and_grad_simple',
    'test_value_and_grad_simple_with_aux',
    'test_value_and_grad_multiscope',
    'test_value_and_grad_multiscope_adopted',
)


def _download_sdist() -> pathlib.Path | str:
  """The sdist archive, or why it could not be had."""
  archives = sorted(CACHE.glob('flax-*.tar.gz'))
  if archives:
    return archives[0]
  CACHE.mkdir(parents=True, exist_ok=True)
  command = [
      sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
      f'flax=={FLAX_VERSION}', '-d', str(CACHE),
  ]
  try:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
  except subprocess.TimeoutExpired:
    return 'pip download timed out after 600 s'
  archives = sorted(CACHE.glob('flax-*.tar.gz'))
  if done.returncode != 0 or not archives:
    return f'pip download exited with {done.returncode}: {done.stderr.strip()[-500:]}'
  return archives[0]


@pytest.fixture(scope='module')
def upstream_source() -> str:
  """The text of TEST_FILE from the installed flax version's sdist."""
  archive = _download_sdist()
  if isinstance(archive, str):
    pytest.skip(f'cannot get the flax {FLAX_VERSION} sdist from PyPI: {archive}')
  with tarfile.open(archive) as tar:
    member = next(m for m in tar.getmembers() if m.name.endswith(f'/{TEST_FILE}'))
    return tar.extractfile(member).read().decode('utf-8')


def _test_methods(source: str) -> dict[str, ast.FunctionDef]:
  """The test methods of the test classes in ``source``, by pytest node id."""
  methods = {}
  for cls in ast.parse(source).body:
    if isinstance(cls, ast.ClassDef):
      for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith('test_'):
          methods[f'{cls.name}::{node.name}'] = node
  return methods


def _outcomes(junit_xml: pathlib.Path) -> dict[str, str]:
  outcomes = {}
  for case in ElementTree.parse(junit_xml).iter('testcase'):
    failed = [child.tag for child in case if child.tag in ('failure', 'error', 'skipped')]
    outcomes[case.get('name')] = failed[0] if failed else 'passed'
  return outcomes


def test_grad_tests_pass_after_rewriting(upstream_source: str, tmp_path: pathlib.Path) -> None:
  methods = _test_methods(upstream_source)
  # Older flax releases predate some of these tests; those they have must pass.
  expected = {node_id: node for node_id, node in methods.items() if node.name in GRAD_TESTS}
  assert {'test_grad_simple', 'test_value_and_grad_simple'} <= {n.name for n in expected.values()}

  result = transform_source(upstream_source, TEST_FILE)
  rewritten = [s for s in result.sites if s.action == 'rewritten']
  assert not [s.format() for s in result.sites if s.action != 'rewritten']
  # One site in each of those tests, and none anywhere else.
  holders = [
      node_id for site in rewritten for node_id, node in methods.items()
      if node.lineno <= site.line <= node.end_lineno
  ]
  assert sorted(holders) == sorted(expected)

  test_file = tmp_path / 'linen_transforms_test.py'
  test_file.write_text(result.code, encoding='utf-8')
  # An empty ini file keeps this repository's pytest settings out of the run.
  (tmp_path / 'pytest.ini').write_text('[pytest]\n', encoding='utf-8')
  junit_xml = tmp_path / 'report.xml'
  done = subprocess.run(
      [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
       f'--junitxml={junit_xml}', *(f'{test_file.name}::{node_id}' for node_id in sorted(expected))],
      cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
  )
  assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
  assert _outcomes(junit_xml) == {expected[node_id].name: 'passed' for node_id in expected}
