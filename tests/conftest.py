"""Test-wide settings.

The compiled runtime compiles a key only once its uncompiled calls have paid
for it (tiered compilation). Tests that check what compiled code does, or
count traces, need it to compile at the first call; the tests of tiering
itself set the mode they test. ``fresh_cache`` gives a test the runtime's
state emptied before and after it.

No test keeps the command line's cache of results (``tests/transformer/test_cache.py``
turns it on where it is tested), so that a run leaves nothing in the trees
the tests look at, and every test sees the pass itself.

``pytest`` runs the fast tier; ``pytest -m 'not slow'`` runs the full suite
(``support/tiers.py`` says which tests are for the full suite only, and
marks them ``full`` here).
"""

from __future__ import annotations

import os
import sys

import pytest

from support import tiers


def pytest_configure(config):
  # Property tests read the tier when their modules are imported, after this.
  tiers.set_fast('not full' in (config.getoption('markexpr') or ''))


def pytest_collection_modifyitems(config, items):
  seen: dict[tuple[str, str], int] = {}
  for item in items:
    filename = item.path.name
    function = getattr(item, 'originalname', item.name)
    callspec = getattr(item, 'callspec', None)
    index = seen.get((filename, function), 0)
    seen[(filename, function)] = index + 1
    if tiers.full_only(filename, function, callspec.params if callspec else None, index):
      item.add_marker(pytest.mark.full)


@pytest.fixture(autouse=True, scope='session')
def _no_cache_of_results():
  # Session-wide, before any module's fixtures run the command line.
  previous = os.environ.get('VJPIFY_NO_CACHE')
  os.environ['VJPIFY_NO_CACHE'] = '1'
  yield
  if previous is None:
    del os.environ['VJPIFY_NO_CACHE']
  else:
    os.environ['VJPIFY_NO_CACHE'] = previous


@pytest.fixture(autouse=True)
def _compile_at_the_first_call():
  compiled = sys.modules.get('vjpify.runtime.compiled')
  if compiled is None:  # a test that never imports the runtime
    yield
    return
  previous = compiled.compiled.set_mode('always')
  try:
    yield
  finally:
    compiled.compiled.set_mode(previous)


@pytest.fixture
def fresh_cache():
  """The runtime's state, with an empty cache and no site records, emptied again after the test."""
  from vjpify.runtime.compiled import state  # pylint: disable=import-outside-toplevel
  runtime = state.state()
  runtime.clear()
  yield runtime
  runtime.clear()
