"""What the monitor learns from bytecode: global names, stores and their targets, and (3.10, 3.11) calls.

Every case runs on whichever Python runs the tests; the version matrix runs
them on 3.10 to 3.13, whose bytecode differs.
"""

from __future__ import annotations

import sys

import pytest

from vjpify.runtime.compiled import bytecode
from vjpify.runtime.compiled.bytecode import Const, Item, Method, Source


def _facts(source: str, name: str = 'f'):
  namespace: dict = {}
  exec(compile(source, '<test>', 'exec'), namespace)  # pylint: disable=exec-used
  return bytecode.facts(namespace[name].__code__)


# How an augmented assignment is named: by its symbol from 3.11, by its opcode before.
_PLUS = '+=' if sys.version_info >= (3, 11) else 'add'


def _stores(source: str) -> list[tuple]:
  return [(store.kind, store.name, store.target) for _, store in sorted(_facts(source).stores.items())]


@pytest.mark.parametrize('source, expected', [
    pytest.param('def f(d, k, v):\n  d[k] = v', [('item', '', Source('fast', 'd'))], id='item'),
    pytest.param('def f(self, v):\n  self.total += v',
                 [('inplace', _PLUS, Source('fast', 'self', ('total',))), ('attr', 'total', Source('fast', 'self'))],
                 id='augmented-attr'),
    pytest.param("def f():\n  STATS['n'] += 1",
                 [('inplace', _PLUS, Source('global', 'STATS', (Item(Const('n')),))),
                  ('item', '', Source('global', 'STATS'))], id='augmented-item'),
    pytest.param('def f(xs):\n  alias = xs\n  alias += [1]', [('inplace', _PLUS, Source('fast', 'alias'))],
                 id='augmented-local-alias'),
    pytest.param('def f(lock):\n  with lock:\n    pass', [('with', '', Source('fast', 'lock'))], id='with'),
    pytest.param('def f(self):\n  self.a.b = 3', [('attr', 'b', Source('fast', 'self', ('a',)))], id='attr-chain'),
    pytest.param('def f():\n  global G\n  G = 1', [('global', 'G', None)], id='global'),
    pytest.param('def f():\n  for x in IT:\n    pass', [('iter', '', Source('global', 'IT'))], id='iter'),
    pytest.param('def f(d, k):\n  d[k][0] = 2', [('item', '', Source('fast', 'd', (Item(Source('fast', 'k')),)))],
                 id='item-of-item'),
    pytest.param('def f(g):\n  g()[0] = 2', [('item', '', None)], id='item-of-a-call-unknown'),
    pytest.param('def f(d, k):\n  del d[k]', [('item', '', Source('fast', 'd'))], id='del-item'),
    pytest.param('def f(g):\n  g().x = 1', [('attr', 'x', None)], id='attr-of-call-unknown'),
    pytest.param('def f(d):\n  out = {}\n  out[1] = d', [('item', '', Source('fast', 'out'))], id='local-dict'),
])
def test_stores_and_their_targets(source, expected):
  assert _stores(source) == expected


def test_nonlocal_assignment_is_a_store_but_own_cells_are_not():
  source = 'def outer():\n  c = 1\n  def f():\n    nonlocal c\n    c += 1\n  c = 2\n  return f'
  namespace: dict = {}
  exec(compile(source, '<test>', 'exec'), namespace)  # pylint: disable=exec-used
  inner = namespace['outer']()
  assert [store.kind for store in bytecode.facts(inner.__code__).stores.values()] == ['inplace', 'nonlocal']
  assert bytecode.facts(namespace['outer'].__code__).stores == {}


def test_global_names_are_those_loaded():
  facts = _facts('def f(x):\n  return TEMP * helper(x).attr + len(CONFIG)')
  assert facts.global_names == ('TEMP', 'helper', 'len', 'CONFIG')
  assert {'attr', 'TEMP'} <= facts.names


@pytest.mark.parametrize('source, handles', [
    pytest.param('def f(x):\n  try:\n    return x > 0\n  except TypeError:\n    return 0', True, id='try'),
    pytest.param('def f(x):\n  with x:\n    return 1', True, id='with'),
    pytest.param('def f(x):\n  try:\n    return x\n  finally:\n    pass', True, id='finally'),
    pytest.param('def f(x):\n  return x > 0', False, id='none'),
])
def test_code_that_may_catch_errors_is_marked(source, handles):
  assert _facts(source).handles_exceptions is handles


@pytest.mark.skipif(sys.version_info >= (3, 12), reason='from 3.12 sys.monitoring hands over the callable')
def test_a_function_made_here_is_known_to_be_python():
  calls = _facts('def f(xs):\n  return sum(x for x in xs)').calls
  assert any(call.callable == bytecode.MADE for call in calls.values()), calls


def test_generators_are_marked():
  assert _facts('def f():\n  yield 1').is_generator
  assert not _facts('def f():\n  return 1').is_generator


@pytest.mark.skipif(sys.version_info >= (3, 12), reason='from 3.12 sys.monitoring hands over the callable')
@pytest.mark.parametrize('source, callable_, first', [
    pytest.param('def f(x):\n  print("a", x)', Source('global', 'print'), Const('a'), id='builtin'),
    pytest.param('def f():\n  return time.time()', Source('global', 'time', ('time',)), None, id='module-function'),
    pytest.param('def f():\n  H.append(len(H))', Method(Source('global', 'H'), 'append'), None, id='method'),
    pytest.param('def f():\n  np.random.normal(size=3)', Method(Source('global', 'np', ('random',)), 'normal'), None,
                 id='method-with-keywords'),
    pytest.param('def f(g):\n  return next(G)', Source('global', 'next'), Source('global', 'G'), id='first-argument'),
    pytest.param('def f(x):\n  return g(*x)', Source('global', 'g'), None, id='star-arguments'),
])
def test_calls_before_3_12(source, callable_, first):
  calls = _facts(source).calls
  assert any(_flat(call.callable) == _flat(callable_) and call.first == first for call in calls.values()), calls


def _flat(target):
  # Python 3.10 looks module functions up as methods: time.time() is a
  # Method of the module; both name the same callable.
  if type(target) is Method and target.base is not None:
    return target.base._replace(attrs=target.base.attrs + (target.name,))
  return target


@pytest.mark.skipif(sys.version_info < (3, 12), reason='before 3.12 calls are found from the bytecode')
def test_no_calls_are_modelled_from_3_12():
  assert _facts('def f(x):\n  print(x)').calls == {}


def test_attribute_chains_read_from_globals():
  facts = _facts('def f(x):\n  y = jnp.tanh(x) + jax.random.normal(k, x.shape)\n  return config.TEMP * y + x.sum()')
  assert set(facts.attribute_chains) == {('jnp', 'tanh'), ('jax', 'random'), ('jax', 'random', 'normal'),
                                         ('config', 'TEMP')}
