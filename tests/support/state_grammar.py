"""Random small flax programs built from a grammar of Python operations on state outside fn.

A generated program holds many cases, each its own Module class with one
``nn.grad`` or ``nn.value_and_grad`` site, so that one fresh process checks
them all. A case's differentiated function runs one to three operations, each
drawn from :data:`OPERATIONS` and placed either in fn itself or in a
module-level helper that fn calls; ``main()`` initialises the case, applies
it three times, runs each operation's change between the applies and prints
the loss and each operation's visible state after every apply. Original and
rewritten program must print the same and return the same losses.

An operation is a row of source templates, with ``{n}`` standing for the
operation's unique suffix:

- ``setup``: module-level statements creating the state it works on;
- ``expr``: what fn evaluates (a Python float factor of the loss, or an
  effect whose value is 1.0);
- ``between``: statements in ``change_{n}()``, run between applies
  (``global`` names are declared for it);
- ``show``: an expression printed after each apply, the state a user sees.

The grammar covers reads and writes of globals, closure cells, containers
and objects, C methods called directly and through aliases, registrations
(ABCs, singledispatch, pytree nodes), finalisers, context variables,
thread-locals and iterators.
"""

from __future__ import annotations

import dataclasses
import random
import textwrap

__all__ = ['Operation', 'OPERATIONS', 'Case', 'random_cases', 'program_source']


@dataclasses.dataclass(frozen=True)
class Operation:
  name: str
  setup: str
  expr: str
  between: str = ''
  show: str = 'None'
  globals: tuple[str, ...] = ()


def _op(name, setup, expr, between='', show='None', global_names=()):
  return Operation(name, textwrap.dedent(setup).strip(), expr, textwrap.dedent(between).strip(), show,
                   tuple(global_names))


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    # Reads of state changed between applies.
    _op('global_scalar', 'G{n} = 1.0', 'G{n}', 'G{n} += 1.0', global_names=('G{n}',)),
    _op('global_rebound_list', 'L{n} = [1.0]', 'L{n}[0]', 'L{n} = [L{n}[0] * 2]', global_names=('L{n}',)),
    _op('list_item', 'L{n} = [1.0, 2.0]', 'L{n}[0]', 'L{n}[0] += 0.5'),
    _op('list_length', 'L{n} = []', '(1.0 + len(L{n}))', 'L{n}.append(0)'),
    _op('dict_get', 'D{n} = {{}}', 'D{n}.get("scale", 1.0)', 'D{n}["scale"] = D{n}.get("scale", 1.0) + 1'),
    _op('attribute', 'O{n} = types.SimpleNamespace(scale=1.0)', 'O{n}.scale', 'O{n}.scale *= 2'),
    _op('attrgetter', 'O{n} = types.SimpleNamespace(scale=1.0)\nGET{n} = operator.attrgetter("scale")',
        'GET{n}(O{n})', 'O{n}.scale += 1'),
    _op('computed_getattr', 'O{n} = types.SimpleNamespace(a_scale=1.0, b_scale=3.0)\nP{n} = ["a"]',
        'getattr(O{n}, P{n}[0] + "_scale")', 'P{n}[0] = "b" if P{n}[0] == "a" else "a"'),
    _op('mapping_proxy', 'D{n} = {{"shift": 0.0}}\nV{n} = types.MappingProxyType(D{n})', '(1.0 + V{n}["shift"])',
        'D{n}["shift"] += 1'),
    _op('weak_proxy', 'O{n} = Box()\nW{n} = weakref.proxy(O{n})', 'W{n}.scale', 'O{n}.scale += 1'),
    _op('closure_cell', 'get{n}, set{n} = cell_pair(1.0)', 'get{n}()', 'set{n}(get{n}() + 1)'),
    _op('context_var', 'CV{n} = contextvars.ContextVar("cv{n}", default=1.0)', 'CV{n}.get()',
        'CV{n}.set(CV{n}.get() * 3)'),
    _op('thread_local', 'TL{n} = threading.local()', 'getattr(TL{n}, "scale", 1.0)',
        'TL{n}.scale = getattr(TL{n}, "scale", 1.0) + 2'),
    _op('environ', 'os.environ.pop("GRAMMAR_{n}", None)', 'float(os.environ.get("GRAMMAR_{n}", "1"))',
        'os.environ["GRAMMAR_{n}"] = str(float(os.environ.get("GRAMMAR_{n}", "1")) + 1)'),
    _op('count_next', 'IT{n} = itertools.count(1)', 'next(IT{n})'),
    _op('cycle_next', 'IT{n} = itertools.cycle((1.0, 2.0, 3.0))', 'next(IT{n})'),
    _op('abc_register', 'class A{n}(abc.ABC):\n  pass\nclass K{n}:\n  pass\nI{n} = K{n}()',
        '(2.0 if isinstance(I{n}, A{n}) else 1.0)', 'A{n}.register(K{n})'),
    _op('singledispatch', 'class K{n}:\n  pass\nI{n} = K{n}()\n@functools.singledispatch\ndef SD{n}(obj):\n'
        '  return 1.0', 'SD{n}(I{n})', 'SD{n}.register(K{n}, lambda obj: 5.0)'),
    _op('pytree_register', 'class K{n}:\n  def __init__(self):\n    self.parts = (1.0, 2.0)\nI{n} = K{n}()',
        'float(len(jax.tree_util.tree_leaves(I{n})))',
        'jax.tree_util.register_pytree_node(K{n}, lambda k: (k.parts, None), lambda _, p: K{n}())'),
    # Effects on state that outlives the call.
    _op('append', 'L{n} = []', '(L{n}.append(0) or 1.0)', show='len(L{n})'),
    _op('bound_alias', 'L{n} = []\nLOG{n} = L{n}.append', '(LOG{n}(0) or 1.0)', show='len(L{n})'),
    _op('iadd_alias', 'L{n} = []', 'iadd(L{n})', show='len(L{n})'),
    _op('map_append', 'L{n} = []', '(list(map(L{n}.append, (1, 2))) and 1.0)', show='len(L{n})'),
    _op('counter_update', 'C{n} = collections.Counter()', '(C{n}.update(["step"]) or 1.0)', show='dict(C{n})'),
    _op('setdefault', 'D{n} = {{}}', '(D{n}.setdefault("seen", []).append(1) or 1.0)', show='D{n}'),
    _op('deque_append', 'Q{n} = collections.deque(maxlen=5)', '(Q{n}.append(len(Q{n})) or 1.0)', show='list(Q{n})'),
    _op('heappush', 'H{n} = []', '(heapq.heappush(H{n}, -len(H{n})) or 1.0)', show='H{n}'),
    _op('set_add_alias', 'S{n} = set()\nADD{n} = S{n}.add', '(ADD{n}(len(S{n})) or 1.0)', show='sorted(S{n})'),
    _op('partial_setattr', 'O{n} = types.SimpleNamespace(calls=0)\nSET{n} = functools.partial(setattr, O{n}, "calls")',
        '(SET{n}(O{n}.calls + 1) or 1.0)', show='O{n}.calls'),
    _op('object_setattr', 'O{n} = Box()', '(object.__setattr__(O{n}, "calls", O{n}.calls + 1) or 1.0)',
        show='O{n}.calls'),
    _op('vars_update', 'O{n} = Box()', '(vars(O{n}).update(calls=O{n}.calls + 1) or 1.0)', show='O{n}.calls'),
    _op('attribute_store', 'O{n} = Box()', 'bump(O{n})', show='O{n}.calls'),
    _op('numpy_add_at', 'N{n} = np.zeros(2, dtype=np.int64)', '(np.add.at(N{n}, [0], 1) or 1.0)',
        show='N{n}.tolist()'),
    _op('bytearray_extend', 'B{n} = bytearray()', '(B{n}.extend(b"s") or 1.0)', show='bytes(B{n})'),
    _op('del_counter', 'L{n} = []', 'make_dying(L{n})', show='len(L{n})'),
    _op('weakref_finalize', 'L{n} = []', 'make_finalized(L{n})', show='len(L{n})'),
    _op('print', '', '(print("effect {n}") or 1.0)'),
)}

# Module-level helpers the operations' templates use.
PRELUDE = '''\
import abc
import collections
import contextvars
import functools
import heapq
import itertools
import operator
import os
import threading
import types
import weakref

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class Box:

  def __init__(self):
    self.scale = 1.0
    self.calls = 0


class Dying:

  def __init__(self, log):
    self.log = log

  def __del__(self):
    self.log.append(1)


def cell_pair(value):
  def get():
    return value

  def put(new):
    nonlocal value
    value = new
  return get, put


def iadd(xs):
  alias = xs
  alias += [0]
  return 1.0


def bump(obj):
  obj.calls += 1
  return 1.0


def make_dying(log):
  Dying(log)
  return 1.0


def make_finalized(log):
  token = Box()
  weakref.finalize(token, log.append, 1)
  return 1.0
'''


@dataclasses.dataclass(frozen=True)
class Case:
  """A Module class whose fn runs ``operations``; each op in fn or in a helper (``in_helper``)."""
  operations: tuple[str, ...]
  in_helper: tuple[bool, ...]
  value_and_grad: bool = False
  lambda_fn: bool = False

  def label(self) -> str:
    return ' '.join(f'{op}{"@helper" if helper else ""}' for op, helper in zip(self.operations, self.in_helper))


def random_cases(seed: int, count: int) -> list[Case]:
  """``count`` cases drawn deterministically from ``seed``."""
  rng = random.Random(seed)
  names = sorted(OPERATIONS)
  cases = []
  for _ in range(count):
    ops = tuple(rng.sample(names, rng.randint(1, 3)))
    cases.append(Case(ops, tuple(rng.random() < 0.4 for _ in ops), rng.random() < 0.5, rng.random() < 0.3))
  return cases


def _case_source(index: int, case: Case) -> tuple[str, str]:
  """The module-level source of one case, and the statements of main() that run it."""
  lines, factors, shows, changes, names = [f'# case {index}: {case.label()}'], [], [], [], []
  for position, (op_name, in_helper) in enumerate(zip(case.operations, case.in_helper)):
    op = OPERATIONS[op_name]
    n = f'{index}_{position}'
    if op.setup:
      lines.append(op.setup.format(n=n))
    expr = op.expr.format(n=n)
    if in_helper:
      lines.append(f'def helper_{n}():\n  return {expr}')
      expr = f'helper_{n}()'
    factors.append(expr)
    shows.append(op.show.format(n=n))
    if op.between:
      changes.append(op.between.format(n=n))
      names.extend(name.format(n=n) for name in op.globals)
  body = '\n'.join(changes) or 'pass'
  declared = f'  global {", ".join(names)}\n' if names else ''
  lines.append(f'def change_{index}():\n{declared}{textwrap.indent(body, "  ")}')
  factor = ' * '.join(f'({expr})' for expr in factors)
  transform = 'nn.value_and_grad' if case.value_and_grad else 'nn.grad'
  if case.lambda_fn:
    fn_def, fn = '', f'lambda mdl, x: jnp.sum(mdl(x) ** 2) * {factor}'
  else:
    fn_def = f'    def loss(mdl, x):\n      y = jnp.sum(mdl(x) ** 2)\n      return y * {factor}\n'
    fn = 'loss'
  lines.append(f'class Case{index}(nn.Module):\n\n  @nn.compact\n  def __call__(self, x):\n{fn_def}'
               f'    return {transform}({fn}, nn.Dense(2), x)')
  run = (f'  run(out, {index}, Case{index}, change_{index}, lambda: [{", ".join(shows)}])')
  return '\n\n\n'.join(lines), run


_MAIN = '''

def run(out, index, module, change, show):
  x = jnp.linspace(0.1, 0.6, 6).reshape(2, 3)
  try:
    variables = module().init(jax.random.key(index), x)
    for step in range(3):
      result = module().apply(variables, x * (step + 1))
      total = sum(float(jnp.sum(leaf)) for leaf in jax.tree_util.tree_leaves(result))
      print(f'case {index} step {step}: {total:.5g} {show()}')
      out.append(result)
      change()
  except Exception as error:  # pylint: disable=broad-except
    print(f'case {index}: {type(error).__name__}: {error}')


def main():
  out = []
'''


def program_source(cases: list[Case], title: str) -> str:
  """A program running every case in order from main()."""
  parts, runs = [], []
  for index, case in enumerate(cases):
    source, run = _case_source(index, case)
    parts.append(source)
    runs.append(run)
  return (f'"""{title}"""\n\n{PRELUDE}\n\n' + '\n\n\n'.join(parts) + '\n\n' + _MAIN + '\n'.join(runs)
          + '\n  return out\n')
