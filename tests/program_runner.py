"""Runs one program of ``fixtures/programs`` in this fresh process and saves what it returned.

Usage: ``python tests/program_runner.py PROGRAM OUT``. The program is
imported as the module ``program`` and its ``main()`` called; what it
returned (or raised), normalised leaf by leaf into numpy arrays and plain
values, goes to ``OUT`` as a pickle, with ``vjpify.runtime.explain()`` when
the program imported the runtime. Standard output and error are left to the
caller to compare.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

import jax
import numpy as np

# Run as a script, whose own folder Python puts first on the path: the
# support shared with the tests is beside it.
from support.loading import load_file


def _leaf(leaf: Any) -> tuple:
  if isinstance(leaf, jax.Array):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      return ('key', str(leaf.dtype), np.asarray(jax.random.key_data(leaf)))
    return ('array', str(leaf.dtype), bool(getattr(leaf, 'weak_type', False)), np.asarray(leaf))
  if isinstance(leaf, np.ndarray):
    return ('ndarray', str(leaf.dtype), leaf.copy())
  try:
    pickle.dumps(leaf)
    return ('value', type(leaf).__name__, leaf)
  except Exception:  # pylint: disable=broad-except
    return ('unpicklable', type(leaf).__name__, repr(leaf))


def _normalise(result: Any) -> dict:
  leaves, treedef = jax.tree_util.tree_flatten(result, is_leaf=lambda x: x is None)
  return {'tree': str(treedef), 'leaves': [_leaf(leaf) for leaf in leaves]}


def main(program: str, out: str) -> None:
  module = load_file(program, 'program')
  try:
    outcome = {'result': _normalise(module.main())}
  except Exception as error:  # pylint: disable=broad-except
    outcome = {'error': (type(error).__name__, str(error))}
  runtime = sys.modules.get('vjpify.runtime')
  if runtime is not None:
    outcome['flax_compiles'] = sys.modules['vjpify.runtime.compiled'].FLAX_COMPILES
    report = runtime.explain()
    outcome['explain'] = [
        {'site': site.site, 'compiled': site.compiled, 'uncompiled': site.uncompiled,
         'reasons': dict(site.uncompiled_reasons), 'retraces': dict(site.retrace_reasons)}
        for site in report.sites
    ]
  sys.stdout.flush()
  sys.stderr.flush()
  with open(out, 'wb') as f:
    pickle.dump(outcome, f)


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2])
