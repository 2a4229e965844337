"""Lifted jax transforms must behave like the originals: run both and compare.

Every case in ``fixtures/exec/lift/*.py`` is run as written and as vjpify
lifted it (``lift_jax_transforms=True``), through the stages of
``test_differential`` (init and apply eagerly, under ``jax.jit``, under
``jax.vmap``, under an outer ``jax.grad`` and a method interceptor), with
``compiled`` and without; the outcomes and the printed output must match,
and the interceptor must see every Module method call of the original, in
order (lifting adds calls of its own, as ``nn.grad`` does).
Where the original breaks (a ``reference`` case: batch statistics leak a
tracer), the original must raise as the case says, and the lifted copy must
match the Module written by hand with ``nn.grad`` / ``nn.vjp`` instead.
"""

from __future__ import annotations

import contextlib
import functools
import io
import pathlib

import pytest

from support.comparing import COMPILED_ATOL, COMPILED_RTOL, Outcome, assert_same_outcome
from support.loading import load_pair, load_source
from test_differential import _COMPILED_STAGES, _run

LIFT_FIXTURES = pathlib.Path(__file__).resolve().parents[2] / 'fixtures' / 'exec' / 'lift'


@functools.cache
def _pair(stem: str, jit: bool):
  return load_pair(str(LIFT_FIXTURES / f'{stem}.py'), f'lift_{stem}', jit=jit, lift_jax_transforms=True)


def _case_ids() -> list:
  params = []
  for path in sorted(LIFT_FIXTURES.glob('*.py')):
    original = load_source(path.read_text(encoding='utf-8'), f'_vjpify_lift_listing_{path.stem}', str(path))
    for name in original.CASES:
      for jit in (True, False):
        params.append(pytest.param(path.stem, name, jit, id=f'{path.stem}/{name}/{"jit" if jit else "no_jit"}'))
  return params


def _printed_run(spec: dict) -> tuple[dict, str]:
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    outcomes = _run(spec)
  return outcomes, printed.getvalue()


def _renamed(intercepted: Outcome, reference: str, module: str) -> Outcome:
  """The interceptor's record of the reference run, with the reference's
  class named as the Module it stands in for."""
  if intercepted.error is not None:
    return intercepted
  value, calls = intercepted.value
  return Outcome(value=(value, [(path, module if cls == reference else cls, method) for path, cls, method in calls]))


@pytest.mark.parametrize(('stem', 'name', 'jit'), _case_ids())
def test_lifted_behaves_like_original(stem: str, name: str, jit: bool) -> None:
  pair = _pair(stem, jit)
  original_spec = pair.original.CASES[name]()
  lifted_spec = pair.rewritten.CASES[name]()
  original, original_printed = _printed_run(original_spec)
  if 'reference' in original_spec:
    stage = 'apply under jit'
    assert isinstance(original[stage].error, original_spec['original_error']), original[stage].error
    original, original_printed = _printed_run({**original_spec, 'module': original_spec['reference']})
    original['apply intercepted'] = _renamed(original['apply intercepted'], type(original_spec['reference']).__name__,
                                             type(original_spec['module']).__name__)
  for stage, outcome in original.items():
    expected = original_spec.get('error' if stage.startswith('init') else 'apply_error')
    if expected is None:
      assert outcome.error is None, f'original {stage} raised {outcome.error!r}'
    else:
      assert isinstance(outcome.error, expected), f'original {stage}: {outcome.error!r}'
  lifted, lifted_printed = _printed_run(lifted_spec)
  assert list(original) == list(lifted)
  # A method interceptor also sees what lifting adds, as under nn.grad: the
  # lifted function and the setup of the module's clone; every call of the
  # original is still there, in order.
  if 'apply intercepted' in original and original['apply intercepted'].error is None:
    (value, calls), (lifted_value, lifted_calls) = original['apply intercepted'].value, lifted['apply intercepted'].value
    remaining = iter(lifted_calls)
    assert all(call in remaining for call in calls), (calls, lifted_calls)
    original['apply intercepted'], lifted['apply intercepted'] = Outcome(value), Outcome(lifted_value)
  for stage in original:
    compiled_stage = jit and stage in _COMPILED_STAGES
    assert_same_outcome(original[stage], lifted[stage], f'{stem}/{name} {stage}',
                        rtol=COMPILED_RTOL if compiled_stage else 0.0, atol=COMPILED_ATOL if compiled_stage else 0.0)
  assert lifted_printed == original_printed
