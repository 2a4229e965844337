"""Which calls from user code are observable effects, and which are not."""

from __future__ import annotations

import collections
import datetime
import io
import json
import logging
import os
import random
import sys
import threading
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vjpify.runtime.compiled import heldwarnings
from vjpify.runtime.compiled.effects import UNKNOWN_ARGUMENT, caught_tracer_error, classify_call, classify_code

OUTLIVING = [1, 2]
RNG = np.random.default_rng(0)


def _outlives(obj) -> bool:
  return obj is OUTLIVING or obj is RNG or obj is sys.stdout


@pytest.mark.parametrize('fn, first, expected', [
    pytest.param(print, UNKNOWN_ARGUMENT, 'calls print()', id='print'),
    pytest.param(input, UNKNOWN_ARGUMENT, 'calls input()', id='input'),
    pytest.param(open, UNKNOWN_ARGUMENT, 'calls open()', id='open'),
    pytest.param(time.time, UNKNOWN_ARGUMENT, 'calls time.time()', id='clock'),
    pytest.param(time.perf_counter, UNKNOWN_ARGUMENT, 'calls time.perf_counter()', id='counter'),
    pytest.param(random.random, UNKNOWN_ARGUMENT, 'Random.random()', id='python-random'),
    pytest.param(random.gauss, UNKNOWN_ARGUMENT, 'Random', id='python-random-in-python'),
    pytest.param(np.random.normal, UNKNOWN_ARGUMENT, 'RandomState.normal()', id='numpy-legacy'),
    pytest.param(RNG.normal, UNKNOWN_ARGUMENT, 'Generator.normal()', id='numpy-generator'),
    pytest.param(np.random.default_rng, UNKNOWN_ARGUMENT, 'default_rng', id='numpy-new-generator'),
    pytest.param(sys.stdout.write, UNKNOWN_ARGUMENT, 'write()', id='stream-write'),
    pytest.param(warnings.warn, UNKNOWN_ARGUMENT, 'warn', id='warnings'),
    pytest.param(logging.getLogger('x').warning, UNKNOWN_ARGUMENT, 'logging', id='logging'),
    pytest.param(os.getenv, UNKNOWN_ARGUMENT, 'os.getenv', id='environment'),
    pytest.param(os.environ.get, UNKNOWN_ARGUMENT, '_Environ', id='environment-mapping'),
    pytest.param(datetime.datetime.now, UNKNOWN_ARGUMENT, 'now()', id='datetime-now'),
    pytest.param(json.dump, UNKNOWN_ARGUMENT, 'json.dump', id='json-dump'),
    pytest.param(OUTLIVING.append, UNKNOWN_ARGUMENT, 'list.append() on a list that outlives the call', id='append'),
    pytest.param(list.append, OUTLIVING, 'list.append() on a list that outlives the call', id='unbound-append'),
    pytest.param(next, iter(OUTLIVING), None, id='next-on-a-fresh-iterator'),
    pytest.param(setattr, OUTLIVING, 'setattr', id='setattr-on-outliving'),
    pytest.param(jax.clear_caches, UNKNOWN_ARGUMENT, 'clear_caches', id='jax-clear-caches'),
    pytest.param(type(sys.stdout).write, sys.stdout, '.write()', id='unbound-stream-write'),
    # Reads no guard can cover: a namespace by computed names.
    pytest.param(globals, UNKNOWN_ARGUMENT, 'calls globals() (values read through a namespace cannot be guarded)',
                 id='globals'),
    pytest.param(vars, sys.modules[__name__], f'calls vars() on the module {__name__} (values read', id='vars-module'),
    pytest.param(getattr, sys.modules[__name__], f'calls getattr() on the module {__name__}', id='getattr-module'),
    pytest.param(hasattr, UNKNOWN_ARGUMENT, 'calls hasattr() on an object it cannot see', id='hasattr-unseen'),
])
def test_effects(fn, first, expected):
  verdict = classify_call(fn, first, _outlives)
  if expected is None:
    assert verdict is None
  else:
    assert verdict is not None and expected in verdict, verdict


@pytest.mark.parametrize('fn, first', [
    pytest.param(len, UNKNOWN_ARGUMENT, id='len'),
    pytest.param(jnp.sum, UNKNOWN_ARGUMENT, id='jnp-sum'),
    pytest.param(jax.random.normal, UNKNOWN_ARGUMENT, id='jax-random'),
    pytest.param([].append, UNKNOWN_ARGUMENT, id='append-to-a-fresh-list'),
    pytest.param(dict.update, {}, id='update-a-fresh-dict'),
    pytest.param(collections.deque().append, UNKNOWN_ARGUMENT, id='fresh-deque'),
    pytest.param(io.StringIO().write, UNKNOWN_ARGUMENT, id='fresh-string-buffer'),
    pytest.param(__import__('math').sqrt, UNKNOWN_ARGUMENT, id='math'),
    pytest.param(sorted, UNKNOWN_ARGUMENT, id='sorted'),
    pytest.param(str.format, 'a{}', id='format'),
    # A library module's attributes are guarded by identity; an object's by its state.
    pytest.param(getattr, jnp, id='getattr-library-module'),
    pytest.param(getattr, OUTLIVING, id='getattr-object'),
    pytest.param(vars, OUTLIVING, id='vars-object'),
])
def test_not_effects(fn, first):
  assert classify_call(fn, first, _outlives) is None


def test_library_code_entered_from_user_code():
  assert 'random' in classify_code(random.Random.gauss.__code__)
  assert 'os' in classify_code(os.makedirs.__code__)
  assert classify_code(json.dumps.__code__) is None
  assert classify_code(jax.numpy.linalg.slogdet.__wrapped__.__code__) is None


def test_tracer_errors_caught_by_user_code_stop_the_trace():
  def concretize(x):
    try:
      return bool(x > 0)
    except Exception as error:  # pylint: disable=broad-except
      return error

  caught = []
  jax.make_jaxpr(lambda x: caught.append(concretize(x)) or x)(1.0)
  assert caught_tracer_error(caught[0]) == (
      f'meets a {type(caught[0]).__name__} inside a try block (eagerly the value is concrete there, and the code '
      'takes another path)')
  assert isinstance(caught[0], jax.errors.ConcretizationTypeError)
  assert caught_tracer_error(KeyError('k')) is None
  assert caught_tracer_error(TypeError('unsupported')) is None


def _warn(text: str, category: type = UserWarning) -> None:
  warnings.warn(text, category)


@pytest.mark.parametrize('action', ['default', 'module', 'once', 'always'])
def test_a_held_warning_is_shown_later_as_if_it_never_was(action):
  with warnings.catch_warnings(record=True) as shown:
    warnings.resetwarnings()
    warnings.simplefilter(action)
    with heldwarnings.held() as held:
      _warn('held')
    assert [str(w.message) for w in held] == ['held'] and not shown
    _warn('held')
    _warn('held')
  assert [str(w.message) for w in shown] == ['held'] * (2 if action == 'always' else 1)


def test_holding_a_warning_leaves_what_was_shown_once_elsewhere_alone():
  # catch_warnings would make every module forget its warnings shown once.
  with warnings.catch_warnings(record=True) as shown:
    warnings.resetwarnings()
    warnings.simplefilter('default')
    _warn('shown once')
    with heldwarnings.held() as held:
      _warn('held')
    _warn('shown once')
  assert [str(w.message) for w in held] == ['held']
  assert [str(w.message) for w in shown] == ['shown once']


def test_warnings_of_other_threads_and_of_inner_recorders_pass_through():
  with warnings.catch_warnings(record=True) as shown:
    warnings.resetwarnings()
    warnings.simplefilter('always')
    with heldwarnings.held() as held:
      worker = threading.Thread(target=_warn, args=('from another thread',))
      worker.start()
      worker.join()
      with warnings.catch_warnings(record=True) as inner:
        _warn('recorded inside')
  assert not held
  assert [str(w.message) for w in inner] == ['recorded inside']
  assert [str(w.message) for w in shown] == ['from another thread']
  assert warnings._showwarnmsg is not heldwarnings._show  # pylint: disable=protected-access


@pytest.mark.parametrize('action, shown_at_once', [('always', False), ('default', True)])
def test_a_warning_attributed_to_no_frame_is_held_only_when_nothing_recorded_it(action, shown_at_once):
  # warn_explicit with a registry of its own: what it registered cannot be
  # undone, so it is shown at once (and the registry keeps it from showing again).
  registry = {}
  with warnings.catch_warnings(record=True) as shown:
    warnings.resetwarnings()
    warnings.simplefilter(action)
    with heldwarnings.held() as held:
      warnings.warn_explicit('elsewhere', UserWarning, 'generated.py', 3, registry=registry)
  assert [str(w.message) for w in held] == ['elsewhere']
  assert [str(w.message) for w in shown] == (['elsewhere'] if shown_at_once else [])
