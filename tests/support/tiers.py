"""Which tests run in the fast tier (``pytest``), and which only in the full suite (``pytest -m 'not slow'``).

The fast tier covers every feature in under three minutes on two cores: each
test function runs, but a parametrized family that starts processes or
builds environments runs a representative few of its cases, a program suite
one program per class of behaviour, and property tests fewer examples. The
full suite, which ``.ci/run`` runs after the fast tier, runs everything but
the ``slow`` sweeps. ``tests/conftest.py`` marks the rest ``full``.
"""

from __future__ import annotations

import os

__all__ = ['FULL_ONLY_FILES', 'FAST_PROGRAMS', 'REPRESENTATIVES', 'examples', 'is_fast', 'full_only']

# Test files whose every test installs packages into fresh environments or
# runs external suites: their features are covered faster elsewhere in the
# fast tier (the pass by the fixtures, the hooks by test_build_hooks).
FULL_ONLY_FILES = frozenset({
    'test_docs_commands.py', 'test_install.py', 'test_precommit.py', 'test_flax_upstream.py', 'test_sweep.py',
    'test_fuzz_differential.py', 'test_build_hooks_oldest.py',
})
# One program per class of behaviour, in the mode that compiles at once.
FAST_PROGRAMS = frozenset({
    'mutating_outliving_state.py', 'c_method_aliases.py', 'context_and_thread_locals.py',
    'abc_and_instance_checks.py', 'finalizers_and_collection.py', 'user_tracers.py',
})
# Parametrized families of which the fast tier runs the first few cases.
REPRESENTATIVES = {
    'test_differential.py': 2,
    'test_prefilter.py': 3,
    'test_reduction.py': 3,
    'test_reduce_axes.py': 3,
    'test_lift_differential.py': 2,
    'test_build_hooks.py': 1,
    'test_cli_interrupt.py': 1,
    'test_state_grammar.py': 0,
}
# Set by conftest when the run leaves the full tier out.
_TIER_VARIABLE = 'VJPIFY_TEST_TIER'


def is_fast() -> bool:
  return os.environ.get(_TIER_VARIABLE) == 'fast'


def set_fast(fast: bool) -> None:
  if fast:
    os.environ[_TIER_VARIABLE] = 'fast'
  else:
    os.environ.pop(_TIER_VARIABLE, None)


def examples(count: int) -> int:
  """How many examples a property test draws: ``count`` in the full suite, a sixth of it in the fast tier."""
  return max(3, count // 6) if is_fast() else count


def full_only(filename: str, function: str, params: dict | None, index: int) -> bool:
  """Whether a test (file name, function, parameters, position among its function's cases) is for the full suite only."""
  if filename in FULL_ONLY_FILES:
    return True
  if filename == 'test_programs.py' and params:
    return params.get('mode') != 'always' or params.get('program') not in FAST_PROGRAMS
  if filename == 'test_state_grammar.py':
    return function == 'test_random_programs_behave_the_same'
  limit = REPRESENTATIVES.get(filename)
  return limit is not None and params is not None and index >= limit
