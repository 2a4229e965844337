"""Fingerprints differ whenever a Python value could make a trace differ, and only then."""

from __future__ import annotations

import dataclasses
import functools
import struct
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vjpify.runtime import compiled
from vjpify.runtime.compiled.fingerprint import Fingerprinter, Unguardable, fingerprint


def _nan(payload: int) -> float:
  return struct.unpack('<d', struct.pack('<Q', 0x7FF8000000000000 | payload))[0]


def scaled(factor):
  return lambda fn: (lambda mdl, x: factor * fn(mdl, x))


def energy(mdl, x):
  return mdl(x)


@dataclasses.dataclass
class Config:
  temperature: float = 1.0


class Plain:

  def __init__(self, w):
    self.w = w


@pytest.mark.parametrize('first, second', [
    pytest.param(0.0, -0.0, id='signed-zeros'),
    pytest.param(_nan(1), _nan(2), id='nan-payloads'),
    pytest.param(1, 1.0, id='int-and-float'),
    pytest.param(1, True, id='int-and-bool'),
    pytest.param(1.0, np.float32(1.0), id='python-and-numpy-float'),
    pytest.param(np.float32(-0.0), np.float32(0.0), id='numpy-signed-zeros'),
    pytest.param(complex(0.0, 0.0), complex(0.0, -0.0), id='complex-signed-zeros'),
    pytest.param((1, 2), [1, 2], id='tuple-and-list'),
    pytest.param({'a': 1}, {'a': 1.0}, id='dict-values-typed'),
    pytest.param(Config(1.0), Config(2.0), id='dataclass-fields'),
    pytest.param(Plain(1.0), Plain(-1.0), id='object-attributes'),
    pytest.param(scaled(1.0)(scaled(2.0)(energy)), scaled(1.0)(scaled(3.0)(energy)), id='nested-closures-one-code'),
    pytest.param(scaled(2.0)(energy), scaled(2.0)(lambda mdl, x: -mdl(x)), id='closures-over-other-functions'),
    pytest.param(functools.partial(energy, 1), functools.partial(energy, 2), id='partial-arguments'),
    pytest.param(np.zeros(3), np.zeros(4), id='numpy-shapes'),
    pytest.param(np.zeros(3), np.ones(3), id='numpy-values'),
    pytest.param(np.zeros(3, np.float32), np.zeros(3, np.float64), id='numpy-dtypes'),
])
def test_values_that_trace_differently_have_different_fingerprints(first, second):
  assert fingerprint(first) != fingerprint(second)


@pytest.mark.parametrize('make', [
    pytest.param(lambda: 2.5, id='float'),
    pytest.param(lambda: _nan(7), id='nan'),
    pytest.param(lambda: scaled(2.0)(energy), id='fresh-closure'),
    pytest.param(lambda: (lambda mdl, x: mdl(x) * 2), id='fresh-lambda'),
    pytest.param(lambda: Config(3.0), id='fresh-dataclass'),
    pytest.param(lambda: {'lr': [1.0, 2.0]}, id='fresh-containers'),
    pytest.param(lambda: np.arange(4.0), id='fresh-numpy-array'),
])
def test_equal_values_made_anew_have_equal_fingerprints(make):
  # A lambda written inline in a Module method is a new object on every
  # apply; it must still find its entry.
  assert fingerprint(make()) == fingerprint(make())


def test_a_mutation_anywhere_inside_changes_the_fingerprint():
  config = {'layers': [Config(1.0), Config(2.0)]}
  before = fingerprint(config)
  config['layers'][1].temperature = 4.0
  assert fingerprint(config) != before


def test_a_cycle_is_fingerprinted_by_its_shape():
  first, second = [1.0], [1.0]
  first.append(first)
  second.append(second)
  assert fingerprint(first) == fingerprint(second)
  second[0] = 2.0
  assert fingerprint(first) != fingerprint(second)


def test_a_recursive_closure_is_fingerprinted():
  def make(k):
    def walk(n):
      return k if n == 0 else walk(n - 1)
    return walk

  assert fingerprint(make(1)) == fingerprint(make(1))
  assert fingerprint(make(1)) != fingerprint(make(2))


def test_a_class_is_fingerprinted_by_identity_and_namespace():
  class Energy:
    scale = 1.0

  before = fingerprint(Energy)
  Energy.scale = 2.0
  assert fingerprint(Energy) != before

  class Other:
    scale = 2.0

  assert fingerprint(Other) != fingerprint(Energy)


def test_a_module_class_is_fingerprinted_by_what_its_author_wrote():
  import flax.linen as nn  # pylint: disable=import-outside-toplevel

  class Energy(nn.Module):
    width: int = 4
    scale = 1.0

    def __call__(self, x):
      return x * self.scale

  shown = repr(fingerprint(Energy))
  # The fields are keyed on each instance; what dataclasses and flax put in
  # every class is not walked on every call.
  assert '__dataclass_fields__' not in shown and "'_state'" not in shown and "'__init__'" not in shown
  assert "'width'" in shown and "'__call__'" in shown
  before = fingerprint(Energy)
  Energy.scale = 2.0
  assert fingerprint(Energy) != before
  Energy.__call__ = lambda self, x: x
  assert fingerprint(Energy) != before


def test_jax_arrays_by_identity_refused_or_lifted():
  array = jnp.ones(3)
  assert fingerprint(array) == fingerprint(array)
  assert fingerprint(array) != fingerprint(jnp.ones(3))
  with pytest.raises(Unguardable, match=r'a jax array of shape \(3,\) in a module field'):
    Fingerprinter(arrays=False)(array)


def _capturing(first, second):
  return lambda mdl, r: mdl(r, first, second)


def test_arrays_in_a_closure_are_lifted_by_their_abstract_value():
  def key(fn):
    fingerprinter = Fingerprinter(arrays=False)
    fingerprinter.lifting = True
    return fingerprinter(fn), fingerprinter.lifted

  species = jnp.arange(3)
  once, lifted = key(_capturing(species, species))
  assert lifted == [species]  # once, however often it is captured
  twice, lifted = key(_capturing(species, species + 1))
  assert len(lifted) == 2 and twice != once  # two arrays are not one
  other = jnp.arange(3) * 2
  assert key(_capturing(other, other))[0] == once  # a new array of the same shape and dtype
  assert key(_capturing(species.astype(jnp.float32), species.astype(jnp.float32)))[0] != once
  assert key(_capturing(jnp.arange(4), jnp.arange(4)))[0] != once


@pytest.mark.parametrize('make', [
    pytest.param(types.SimpleNamespace, id='simple-namespace'),
    pytest.param(__import__('argparse').Namespace, id='argparse-namespace'),
    pytest.param(__import__('threading').local, id='thread-local'),
])
def test_library_objects_that_hold_user_data_are_keyed_by_it(make):
  holder = make()
  holder.gain = 1.0
  before = fingerprint(holder)
  holder.gain = -2.0
  assert fingerprint(holder) != before


def test_a_jitted_library_function_is_fingerprinted_by_identity():
  # jax.numpy's jitted functions are checked before every call: identity,
  # not a walk of their attributes, is enough for what jit holds.
  assert type(fingerprint(jnp.tanh)).__name__ == 'Identity'
  assert fingerprint(jnp.tanh) != fingerprint(jnp.sin)


def test_the_compiled_wrapper_is_fingerprinted_by_identity():
  # It has cache_info and cache_clear as functools' caches do, and a trace
  # that calls compiled(fn) reads it.
  assert type(fingerprint(compiled)).__name__ == 'Identity'


def test_a_cache_is_fingerprinted_by_how_full_it_is():
  cached = functools.lru_cache(lambda x: x)
  before = fingerprint(cached)
  cached(1)
  assert fingerprint(cached) != before
  cached.cache_clear()
  assert fingerprint(cached) == before


def test_a_jitted_user_function_is_fingerprinted_by_what_it_closes_over():
  gain = 1.0
  scale = jax.jit(lambda x: gain * x)
  before = fingerprint(scale)
  assert type(before).__name__ != 'Identity'
  gain = 2.0
  assert fingerprint(scale) != before
