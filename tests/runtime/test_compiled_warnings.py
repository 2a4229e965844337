"""Held warnings, and tracer errors that user code catches: what a trace must not show or swallow."""

from __future__ import annotations

import threading
import warnings

import jax
import pytest

from vjpify.runtime.compiled import heldwarnings
from vjpify.runtime.compiled.calls import caught_tracer_error


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
