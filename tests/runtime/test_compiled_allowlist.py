"""The allow-list: which calls from user code may run in a cached trace, one table of cases per entry class.

Each case is a callable, its first argument as the monitor sees it, and the
reason it is refused (a text the reason must contain) or None where it is
allowed. ``OUTLIVING_*`` objects stand for state that existed before the
trace and outlives it; everything else counts as created by the trace.
"""

from __future__ import annotations

import abc
import array
import builtins
import collections
import contextvars
import datetime
import functools
import gc
import heapq
import io
import itertools
import json
import logging
import math
import operator
import os
import random
import sys
import time
import warnings
import weakref

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vjpify.runtime.compiled import allowlist, calls, usercode
from vjpify.runtime.compiled.calls import UNKNOWN_ARGUMENT, code_verdict, reads_registries, verdict

OUTLIVING_LIST = [1, 2]
OUTLIVING_DICT = {'a': 1}
OUTLIVING_COUNTER = collections.Counter()
OUTLIVING_DEQUE = collections.deque()
OUTLIVING_ARRAY = np.zeros(3)
OUTLIVING_HEAP: list = []
OUTLIVING_BUFFER = io.StringIO()
OUTLIVING_BYTES = bytearray(b'ab')
OUTLIVING_ITERATOR = itertools.count()
LOSS_SCALE = contextvars.ContextVar('loss_scale', default=1.0)
RNG = np.random.default_rng(0)
_OUTLIVING = (OUTLIVING_LIST, OUTLIVING_DICT, OUTLIVING_COUNTER, OUTLIVING_DEQUE, OUTLIVING_ARRAY, OUTLIVING_HEAP,
              OUTLIVING_BUFFER, OUTLIVING_BYTES, OUTLIVING_ITERATOR, RNG, sys.stdout)


def _outlives(obj) -> bool:
  return any(obj is outliving for outliving in _OUTLIVING)


class Logged:

  def __del__(self):
    pass


class Plain:

  def method(self):
    return 1


def _check(fn, first, expected):
  found = verdict(fn, first, _outlives)
  if expected is None:
    assert found is None, found
  else:
    assert found is not None and expected in found, found


@pytest.mark.parametrize('fn, first, expected', [
    pytest.param(len, UNKNOWN_ARGUMENT, None, id='len'),
    pytest.param(sorted, UNKNOWN_ARGUMENT, None, id='sorted'),
    pytest.param(isinstance, UNKNOWN_ARGUMENT, None, id='isinstance'),
    pytest.param(print, UNKNOWN_ARGUMENT, 'calls print()', id='print'),
    pytest.param(input, UNKNOWN_ARGUMENT, 'calls input()', id='input'),
    pytest.param(open, UNKNOWN_ARGUMENT, 'open()', id='open'),
    pytest.param(id, UNKNOWN_ARGUMENT, 'calls id()', id='id'),
    pytest.param(exec, UNKNOWN_ARGUMENT, 'calls exec()', id='exec'),
])
def test_builtins(fn, first, expected):
  _check(fn, first, expected)


@pytest.mark.parametrize('fn, first, expected', [
    pytest.param(next, iter([1]), None, id='next-on-a-fresh-iterator'),
    pytest.param(next, OUTLIVING_ITERATOR, 'calls next() on a count that outlives the call', id='next-outliving'),
    pytest.param(next, UNKNOWN_ARGUMENT, 'calls next() on an object it cannot see', id='next-unseen'),
    pytest.param(setattr, OUTLIVING_LIST, 'setattr', id='setattr-outliving'),
    pytest.param(heapq.heappush, OUTLIVING_HEAP, 'heappush() on a list that outlives the call', id='heappush'),
    pytest.param(heapq.heappush, [], None, id='heappush-fresh'),
    pytest.param(operator.setitem, OUTLIVING_DICT, 'setitem() on a dict that outlives', id='operator-setitem'),
    pytest.param(operator.iadd, OUTLIVING_LIST, 'iadd() on a list that outlives', id='operator-iadd'),
    pytest.param(np.copyto, OUTLIVING_ARRAY, 'copyto() on a ndarray that outlives', id='numpy-copyto'),
    pytest.param(np.add.at, OUTLIVING_ARRAY, 'add.at() on a ndarray that outlives', id='ufunc-at'),
    pytest.param(np.add.at, np.zeros(2), None, id='ufunc-at-fresh'),
])
def test_argument_mutators(fn, first, expected):
  _check(fn, first, expected)


@pytest.mark.parametrize('fn, first, expected', [
    pytest.param(OUTLIVING_LIST.append, 1, 'list.append() on a list that outlives the call', id='alias-append'),
    pytest.param(list.append, OUTLIVING_LIST, 'list.append() on a list that outlives the call', id='unbound-append'),
    pytest.param([].append, 1, None, id='fresh-list'),
    pytest.param(OUTLIVING_LIST.index, 1, None, id='read-method'),
    pytest.param(OUTLIVING_DICT.setdefault, 'b', 'dict.setdefault() on a dict', id='setdefault'),
    pytest.param(dict.update, {}, None, id='update-a-fresh-dict'),
    pytest.param(OUTLIVING_DEQUE.append, 1, 'deque.append() on a deque', id='deque'),
    pytest.param(OUTLIVING_BYTES.extend, b'c', 'bytearray.extend()', id='bytearray'),
    pytest.param(array.array('d').append, 1.0, None, id='fresh-array'),
    pytest.param(OUTLIVING_ARRAY.fill, 0.0, 'ndarray.fill() on a ndarray', id='ndarray-fill'),
    pytest.param(OUTLIVING_ARRAY.sum, UNKNOWN_ARGUMENT, None, id='ndarray-sum'),
    pytest.param(OUTLIVING_BUFFER.write, 'x', 'StringIO.write() on a buffer that outlives', id='outliving-buffer'),
    pytest.param(io.StringIO().write, 'x', None, id='fresh-buffer'),
    pytest.param(object.__setattr__, OUTLIVING_COUNTER, 'object.__setattr__()', id='object-setattr'),
])
def test_container_methods(fn, first, expected):
  _check(fn, first, expected)


@pytest.mark.parametrize('fn, first, expected', [
    pytest.param('abc'.upper, UNKNOWN_ARGUMENT, None, id='str'),
    pytest.param(str.format, 'a{}', None, id='str-format'),
    pytest.param((1, 2).index, 1, None, id='tuple'),
    pytest.param(dict.fromkeys, 'ab', None, id='class-method-of-a-builtin'),
    pytest.param(datetime.datetime.now, UNKNOWN_ARGUMENT, 'datetime.now()', id='clock-class-method'),
])
def test_immutable_types_and_class_methods(fn, first, expected):
  _check(fn, first, expected)


@pytest.mark.parametrize('fn, first, expected', [
    pytest.param(math.sqrt, 2.0, None, id='math'),
    pytest.param(operator.attrgetter('a'), UNKNOWN_ARGUMENT, None, id='attrgetter'),
    pytest.param(functools.reduce, operator.add, None, id='reduce-of-a-pure-function'),
    pytest.param(functools.reduce, OUTLIVING_LIST.append, 'list.append()', id='reduce-of-a-mutator'),
    pytest.param(map, OUTLIVING_LIST.append, 'passed to be called from C code', id='map-of-a-mutator'),
    pytest.param(map, abs, None, id='map-of-a-builtin'),
    pytest.param(functools.partial(OUTLIVING_LIST.append), 1, 'list.append()', id='partial-of-a-mutator'),
    pytest.param(functools.partial(max, 1), 2, None, id='partial-of-a-builtin'),
    pytest.param(operator.methodcaller('append', 1), OUTLIVING_LIST, 'methodcaller', id='methodcaller'),
    pytest.param(itertools.count, UNKNOWN_ARGUMENT, None, id='new-iterator'),
])
def test_pure_c_modules_and_higher_order(fn, first, expected):
  _check(fn, first, expected)


@pytest.mark.parametrize('fn, first, expected', [
    pytest.param(LOSS_SCALE.get, UNKNOWN_ARGUMENT, 'ContextVar.get(), which is not on the allow-list',
                 id='context-variable'),
    pytest.param(time.time, UNKNOWN_ARGUMENT, 'calls time.time()', id='clock'),
    pytest.param(time.perf_counter, UNKNOWN_ARGUMENT, 'calls time.perf_counter()', id='counter'),
    pytest.param(random.random, UNKNOWN_ARGUMENT, 'Random.random()', id='python-random'),
    pytest.param(os.getpid, UNKNOWN_ARGUMENT, 'getpid()', id='system-call'),
    pytest.param(sys.stdout.write, 'x', 'write()', id='stream-write'),
    pytest.param(type(sys.stdout).write, sys.stdout, '.write()', id='unbound-stream-write'),
    pytest.param(warnings.warn, UNKNOWN_ARGUMENT, 'warn', id='warnings'),
    pytest.param(json.dumps, UNKNOWN_ARGUMENT, None, id='stdlib-python-is-followed'),
    pytest.param(os.environ.get, UNKNOWN_ARGUMENT, '_Environ.get() (reads the process environment)',
                 id='environment'),
    pytest.param(logging.getLogger('x').warning, UNKNOWN_ARGUMENT, None, id='stdlib-method-is-followed'),
])
def test_unknown_c_callables_are_refused(fn, first, expected):
  _check(fn, first, expected)


@pytest.mark.parametrize('fn, first, expected', [
    pytest.param(jnp.sum, UNKNOWN_ARGUMENT, None, id='jnp-sum'),
    pytest.param(jnp.tanh, UNKNOWN_ARGUMENT, None, id='jitted-jnp'),
    pytest.param(jax.random.normal, UNKNOWN_ARGUMENT, None, id='jax-random'),
    pytest.param(jax.tree_util.tree_map, OUTLIVING_LIST.append, 'passed to be called from C code', id='tree-map'),
    pytest.param(nn.Dense, UNKNOWN_ARGUMENT, None, id='flax-module'),
    pytest.param(np.float32, 1.0, None, id='numpy-scalar'),
    pytest.param(np.sqrt, 2.0, None, id='ufunc'),
    pytest.param(np.random.normal, UNKNOWN_ARGUMENT, 'RandomState.normal()', id='numpy-legacy-random'),
    pytest.param(RNG.normal, UNKNOWN_ARGUMENT, 'Generator.normal()', id='numpy-generator'),
    pytest.param(np.random.default_rng, UNKNOWN_ARGUMENT, 'default_rng', id='numpy-new-generator'),
    pytest.param(np.save, UNKNOWN_ARGUMENT, 'save', id='numpy-io'),
    pytest.param(jax.clear_caches, UNKNOWN_ARGUMENT, 'clear_caches', id='jax-clear-caches'),
])
def test_trusted_packages_and_their_exceptions(fn, first, expected):
  _check(fn, first, expected)


@pytest.mark.parametrize('fn, first, expected', [
    pytest.param(Plain, UNKNOWN_ARGUMENT, None, id='user-class'),
    pytest.param(Plain().method, UNKNOWN_ARGUMENT, None, id='user-method'),
    pytest.param(Logged, UNKNOWN_ARGUMENT, 'creates a Logged, whose __del__ would run', id='finalizer'),
    pytest.param(weakref.ref, UNKNOWN_ARGUMENT, 'creates a ReferenceType (a callback could run', id='weakref'),
    pytest.param(weakref.finalize, UNKNOWN_ARGUMENT, 'creates a finalize', id='weakref-finalize'),
    pytest.param(collections.Counter, UNKNOWN_ARGUMENT, None, id='stdlib-class-in-python'),
    pytest.param(collections.deque, UNKNOWN_ARGUMENT, None, id='stdlib-container'),
    pytest.param(contextvars.ContextVar, 'x', 'creates a contextvars.ContextVar', id='stdlib-c-class'),
    pytest.param(ValueError, 'bad', None, id='an-error'),
])
def test_constructors(fn, first, expected):
  _check(fn, first, expected)


@pytest.mark.parametrize('fn, first, expected', [
    pytest.param(globals, UNKNOWN_ARGUMENT, 'calls globals() (values read through a namespace cannot be guarded)',
                 id='globals'),
    pytest.param(vars, sys.modules[__name__], f'calls vars() on the module {__name__} (values read', id='vars-module'),
    pytest.param(getattr, sys.modules[__name__], f'calls getattr() on the module {__name__}', id='getattr-module'),
    pytest.param(hasattr, UNKNOWN_ARGUMENT, 'calls hasattr() on an object it cannot see', id='hasattr-unseen'),
    pytest.param(getattr, jnp, None, id='getattr-library-module'),
    pytest.param(getattr, OUTLIVING_LIST, None, id='getattr-object'),
])
def test_namespace_readers(fn, first, expected):
  _check(fn, first, expected)


def test_registry_questions_are_marked_for_a_registry_guard():
  assert reads_registries(isinstance) and reads_registries(issubclass) and not reads_registries(len)


def test_trusted_package_code_entered_without_a_call():
  assert code_verdict(jax.numpy.linalg.slogdet.__wrapped__.__code__) is None
  assert 'jax._src.config.update' in code_verdict(jax.config.update.__code__)


def test_gc_callbacks_that_only_time_collections():
  junkdrawer = pytest.importorskip('hypothesis.internal.conjecture.junkdrawer')
  junkdrawer.gc_cumulative_time()  # installs its callback once per process
  [timing] = [callback for callback in gc.callbacks if callback.__module__ == junkdrawer.__name__]
  assert calls.times_collections(timing.__code__)

  def gc_callback(phase, info):  # the same name in user code counts for nothing
    del phase, info

  assert not calls.times_collections(gc_callback.__code__)


def test_kinds_of_code():
  assert usercode.kind_of_code(_check.__code__) == usercode.USER
  assert usercode.kind_of_code(json.dumps.__code__) == usercode.STDLIB
  assert usercode.kind_of_code(abc.ABCMeta.__instancecheck__.__code__) == usercode.TRANSPARENT
  assert usercode.kind_of_code(jnp.linalg.slogdet.__wrapped__.__code__) == usercode.TRUSTED
  namespace: dict = {}
  exec(compile('def helper():\n  return 1\n', '<string>', 'exec'), namespace)  # pylint: disable=exec-used
  assert usercode.kind_of_code(namespace['helper'].__code__) == usercode.STRING
  assert usercode.is_user_code(namespace['helper'].__code__)


def test_tables_name_what_exists():
  # A typo in a table would silently allow nothing, or refuse nothing.
  for name in allowlist.PURE_BUILTINS | allowlist.REGISTRY_BUILTINS | allowlist.NAMESPACE_READERS:
    assert hasattr(builtins, name), name
  for kind, (reads, changes) in allowlist.CONTAINER_METHODS.items():
    assert not reads & changes, kind
    for name in reads | changes:
      assert hasattr(kind, name) or name in ('itemset', 'dump'), (kind, name)
