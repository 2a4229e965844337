"""Every channel through which a trace could read or change state unseen, run as ``nn.grad`` and compiled.

Each case is a differentiated function that reaches state outside the key
through one CPython channel (a C method, C code that reads, a registry, a
finalizer, code from a string, a backward rule, a foreign tracer), a change
made between applies, and what the case observes. Both forms run the same
applies from the same state; the gradients and the observations must be
the same, and ``explain()`` must say why the compiled form did not compile
where it must not.
"""

from __future__ import annotations

import abc
import collections
import contextvars
import dataclasses
import functools
import gc
import itertools
import sys
import threading
import weakref
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support.comparing import COMPILED_ATOL, COMPILED_RTOL
from vjpify.runtime import compiled, explain, grad_from_vjp
from vjpify.runtime.compiled import FLAX_COMPILES

pytestmark = pytest.mark.skipif(not FLAX_COMPILES, reason='the installed flax is run uncompiled')

STATE: dict[str, Any] = {}
LOSS_SCALE = contextvars.ContextVar('loss_scale', default=1.0)


class Candidate:
  pass


class Finalized:

  def __del__(self):
    STATE['finalized'] += 1


class Meta(type):
  scale = 1.0


class Settings(metaclass=Meta):
  pass


@dataclasses.dataclass
class Point:
  x: float
  y: float = 2.0


class Config:
  scale = 1.0


_STRING_NAMESPACE: dict = {'FACTOR': 2.0}
exec(compile('def from_string(x):\n  return x * FACTOR\n', '<string>', 'exec'), _STRING_NAMESPACE)  # pylint: disable=exec-used
from_string = _STRING_NAMESPACE['from_string']


@jax.custom_vjp
def bf16_backward(x):
  return x * 2.0


def _forward(x):
  return bf16_backward(x), x


def _backward(x, g):
  return ((g.astype(jnp.bfloat16) * 2).astype(jnp.float32),)


bf16_backward.defvjp(_forward, _backward)


@dataclasses.dataclass
class Case:
  name: str
  fn: Callable[[Any, Any], Any]
  reset: Callable[[], None]
  between: Callable[[int], None] = lambda call: None
  observed: Callable[[], Any] = lambda: None
  reason: str | None = None  # None: the case must compile
  retrace: str | None = None


def _loss(mdl, x):
  return jnp.sum(mdl(x) ** 2)


def _reset(**values):
  def reset():
    STATE.clear()
    for name, value in values.items():  # in order: a later value may use an earlier one
      STATE[name] = value()
  return reset


def _events(frame, event, arg):
  if frame.f_code.co_filename == __file__:
    STATE['events'].append(f'{event} {frame.f_code.co_name}')


def _install_tracer(call):
  if call == 1:
    STATE['previous'] = sys.gettrace()
    sys.settrace(_events)


CASES = [
    Case('bound-method-alias', lambda mdl, x: STATE['log'](1) or _loss(mdl, x),
         _reset(terms=list, log=lambda: STATE['terms'].append), observed=lambda: len(STATE['terms']),
         reason='list.append() on a list that outlives the call'),
    Case('counter-update', lambda mdl, x: STATE['counts'].update(['a']) or _loss(mdl, x),
         _reset(counts=collections.Counter), observed=lambda: dict(STATE['counts']), reason='Counter'),
    Case('setdefault', lambda mdl, x: STATE['seen'].setdefault(len(STATE['seen']), 1) and _loss(mdl, x),
         _reset(seen=dict), observed=lambda: dict(STATE['seen']), reason='dict.setdefault()'),
    Case('deque-append', lambda mdl, x: STATE['history'].append(0) or _loss(mdl, x),
         _reset(history=collections.deque), observed=lambda: len(STATE['history']), reason='deque.append()'),
    Case('ufunc-at', lambda mdl, x: np.add.at(STATE['hits'], 0, 1) or _loss(mdl, x),
         _reset(hits=lambda: np.zeros(2)), observed=lambda: STATE['hits'].tolist(), reason='add.at()'),
    Case('in-place-through-an-alias', lambda mdl, x: _append_through_alias() or _loss(mdl, x),
         _reset(terms=list), observed=lambda: len(STATE['terms']), reason='in place'),
    Case('map-of-a-c-method', lambda mdl, x: list(map(STATE['terms'].append, [1])) and _loss(mdl, x),
         _reset(terms=list), observed=lambda: len(STATE['terms']), reason='list.append()'),
    Case('context-variable', lambda mdl, x: _loss(mdl, x) * LOSS_SCALE.get(), _reset(),
         between=lambda call: LOSS_SCALE.set(float(call + 1)), reason='ContextVar.get()'),
    Case('itertools-count', lambda mdl, x: _loss(mdl, x) * next(STATE['step']),
         _reset(step=itertools.count), reason='calls next() on a count that outlives the call'),
    Case('weakref-proxy', lambda mdl, x: _loss(mdl, x) * STATE['proxy'].scale,
         _reset(config=Config, proxy=lambda: weakref.proxy(STATE['config'])),
         between=lambda call: setattr(STATE['config'], 'scale', call + 2.0), reason='weakref.proxy'),
    # Registrations cannot be undone: each run makes its own classes and dispatcher.
    Case('abc-register', lambda mdl, x: _loss(mdl, x) * (2.0 if isinstance(STATE['item'], STATE['abc']) else 1.0),
         _reset(abc=lambda: abc.ABCMeta('Registered', (abc.ABC,), {}), kind=lambda: type('Candidate', (), {}),
                item=lambda: STATE['kind']()),
         between=lambda call: call == 1 and STATE['abc'].register(STATE['kind']), retrace='ABC registrations'),
    Case('singledispatch', lambda mdl, x: _loss(mdl, x) * STATE['weight'](Candidate()),
         _reset(weight=lambda: functools.singledispatch(lambda value: 1.0)),
         between=lambda call: call == 1 and STATE['weight'].register(Candidate, lambda value: 3.0),
         reason='weakref'),
    Case('finalizer', lambda mdl, x: Finalized() and _loss(mdl, x), _reset(finalized=int),
         observed=lambda: STATE['finalized'], reason='whose __del__ would run'),
    Case('code-from-a-string', lambda mdl, x: from_string(_loss(mdl, x)), _reset(),
         between=lambda call: _STRING_NAMESPACE.update(FACTOR=call + 3.0), retrace='global FACTOR'),
    Case('dataclass-made-in-fn', lambda mdl, x: _loss(mdl, x) * Point(1.0).y, _reset()),
    Case('metaclass-attribute', lambda mdl, x: _loss(mdl, x) * Settings.scale, _reset(),
         between=lambda call: setattr(Meta, 'scale', call + 2.0), retrace='global Settings'),
    Case('bfloat16-backward-rule', lambda mdl, x: jnp.sum(bf16_backward(mdl(x))), _reset(),
         reason='the backward pass computes in bfloat16'),
    Case('lock', lambda mdl, x: _with_lock() or _loss(mdl, x), _reset(lock=threading.Lock),
         reason='enters a lock'),
    Case('bytearray-read', lambda mdl, x: _loss(mdl, x) * float(STATE_BYTES[0]), _reset(),
         between=lambda call: STATE_BYTES.__setitem__(0, call + 2), retrace='STATE_BYTES'),
    Case('tracer-installed-later', lambda mdl, x: _loss(mdl, x), _reset(events=list), between=_install_tracer,
         observed=lambda: sorted(set(STATE['events'])), reason='sys.settrace hook'),
]
STATE_BYTES = bytearray(b'\x01')


def _append_through_alias():
  alias = STATE['terms']
  alias += [1]


def _with_lock():
  with STATE['lock']:
    pass


class Model(nn.Module):
  fn: Any
  form: str

  @nn.compact
  def __call__(self, x):
    dense = nn.Dense(2)
    if self.form == 'original':
      return nn.grad(self.fn, dense, x)
    return grad_from_vjp(nn.vjp(compiled(self.fn), dense, x, vjp_variables=False, multi_scope=True))


def _run(case: Case, form: str) -> tuple[list, list]:
  case.reset()
  Meta.scale, Config.scale, STATE_BYTES[0] = 1.0, 1.0, 1
  LOSS_SCALE.set(1.0)
  _STRING_NAMESPACE['FACTOR'] = 2.0
  x = jnp.linspace(0.1, 0.6, 6).reshape(2, 3)
  variables = Model(case.fn, form).init(jax.random.key(0), x)
  results, observations = [], []
  try:
    for call in range(4):
      case.between(call)
      results.append(Model(case.fn, form).apply(variables, x))
      observations.append(case.observed())
  finally:
    sys.settrace(STATE.pop('previous', None))
  return results, observations


@pytest.mark.parametrize('case', [pytest.param(case, id=case.name) for case in CASES])
def test_channel(case):
  compiled.cache_clear()
  expected, expected_observations = _run(case, 'original')
  compiled.cache_clear()
  got, observations = _run(case, 'compiled')
  assert observations == expected_observations
  for want, have in zip(expected, got):
    np.testing.assert_allclose(np.asarray(have[0]), np.asarray(want[0]), rtol=COMPILED_RTOL, atol=COMPILED_ATOL)
  [report] = explain().sites
  if case.reason is None:
    assert report.compiled == report.calls, str(report)
  else:
    assert any(case.reason in reason for reason in report.uncompiled_reasons), str(report)
  if case.retrace is not None:
    assert report.compiled and any(case.retrace in reason for reason in report.retrace_reasons), str(report)


def _apply_while_collecting(callback) -> Any:
  """Applies the compiled form four times with a collection striking every few allocations and ``callback`` installed."""
  compiled.cache_clear()
  x = jnp.linspace(0.1, 0.6, 6).reshape(2, 3)
  fn = lambda mdl, x: _loss(mdl, x)  # pylint: disable=unnecessary-lambda-assignment
  variables = Model(fn, 'compiled').init(jax.random.key(0), x)
  threshold = gc.get_threshold()
  gc.callbacks.append(callback)
  gc.set_threshold(50)
  try:
    for _ in range(4):
      Model(fn, 'compiled').apply(variables, x)
  finally:
    gc.set_threshold(*threshold)
    gc.callbacks.remove(callback)
  [report] = explain().sites
  return report


def test_a_user_gc_callback_during_the_trace_uncompiles_it():
  collections_seen = []
  report = _apply_while_collecting(lambda phase, info: collections_seen.append(phase))
  assert collections_seen
  applies_while_collecting = 4  # the init ran before the callback was installed
  assert report.calls - report.compiled == applies_while_collecting, str(report)
  assert any('gc callback' in reason for reason in report.uncompiled_reasons), str(report)


def test_a_gc_callback_that_only_times_collections_leaves_it_compiled():
  junkdrawer = pytest.importorskip('hypothesis.internal.conjecture.junkdrawer')
  junkdrawer.gc_cumulative_time()
  [timing] = [callback for callback in gc.callbacks if callback.__module__ == junkdrawer.__name__]
  gc.callbacks.remove(timing)  # installed again, alone beside the runtime's own, by the helper
  try:
    report = _apply_while_collecting(timing)
  finally:
    gc.callbacks.append(timing)
  assert report.compiled == report.calls, str(report)
