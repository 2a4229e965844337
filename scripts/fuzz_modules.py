"""Differential fuzzing: random small Flax modules, run before and after the
rewrite, must give the same results leaf for leaf.

A drawn ``Spec`` is rendered to a file with one ``nn.grad`` or
``nn.value_and_grad`` site: an outer Module differentiates a random layer
stack (Dense, Conv, activations, Dropout, BatchNorm, LayerNorm, a parameter,
sown intermediates, a counter variable, a custom rng stream) through a loss
with or without aux, passing the ``variables`` / ``rngs`` filters drawn. The
file and its rewrite are imported as separate modules, initialised and
applied with the same keys, and the variables, outputs and mutated
collections compared exactly; when the original raises, the rewrite must
raise the same exception type with the same message.

The bounded run lives in ``tests/end_to_end/test_fuzz_differential.py``; this script is
the long run by hand. A failure prints the rendered source, ready to become a
``fixtures/fuzz/<case>/`` regression case.

Example::

    PYTHONPATH=tests python scripts/fuzz_modules.py --examples 500
    PYTHONPATH=tests python scripts/fuzz_modules.py --examples 50 --jit --seed 3
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import pathlib
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from hypothesis import strategies as st

from vjpify.transformer import transform_source
from vjpify.transformer.diagnostics import REWRITTEN

# The support shared with the tests: tests/ is on the path under pytest
# (its pythonpath setting) and in the command above (PYTHONPATH=tests).
from support.comparing import COMPILED_RTOL
from support.loading import load_file

# Layer lines of the differentiated stack; {n} is a feature count.
LAYERS = {
    'dense': 'x = nn.Dense({n})(x)',
    'conv': 'x = nn.Conv({n}, kernel_size=(2,))(x)',
    'relu': 'x = nn.relu(x)',
    'tanh': 'x = jnp.tanh(x)',
    'dropout': 'x = nn.Dropout(0.5, deterministic=False)(x)',
    'batchnorm': 'x = nn.BatchNorm(use_running_average=False)(x)',
    'layernorm': 'x = nn.LayerNorm()(x)',
    'scale': "x = x * self.param('scale', nn.initializers.normal(), (x.shape[-1],))",
    'sow': "self.sow('intermediates', 'h', x)",
    'counter': ("count = self.variable('counter', 'n', lambda: jnp.zeros((), jnp.int32))\n"
                '    count.value += 1'),
    'noise': "x = x + 0.1 * jax.random.normal(self.make_rng('noise'), x.shape)",
}

LOSSES = {
    'sum_squares': 'jnp.sum(out ** 2)',
    'mean_tanh': 'jnp.mean(jnp.tanh(out))',
    'first': 'out.reshape(-1)[0]',
    'vector': 'out.sum(axis=-1)',  # not a scalar: both versions must raise
}

AUXES = {'out': 'out', 'dict': "{'h': out, 'k': 1.0}", 'tuple': '(out.shape, out * 2)'}

# How the outer Module holds the differentiated module.
HOLDERS = ('inline', 'setup', 'self', 'attribute')

# How the site passes its arguments: all positionally but the options, fn
# and mdl by keyword (and so no primals), or the options as **mapping.
CALL_STYLES = ('positional', 'keywords', 'mapping')
# How the two inputs travel: as two primals or one pytree primal.
PRIMAL_FORMS = ('one', 'two', 'tuple', 'dict')
# A lifted transform around the code: none, nn.jit on the outer method, or
# nn.remat around the differentiated module's class.
LIFTS = ('none', 'jit_method', 'remat_stack')

VARIABLE_FILTERS = ('True', "'params'", "('params', 'batch_stats', 'counter')", "['params', 'intermediates']")
RNG_FILTERS = ('True', "'dropout'", "('dropout', 'noise')", 'False')


@dataclasses.dataclass(frozen=True)
class Spec:
  """One random program: what to differentiate and how."""

  layers: tuple[tuple[str, int], ...]
  batch: int
  features: int
  transform: str
  has_aux: str  # 'False', 'True' or an aux kind from AUXES
  loss: str
  holder: str
  primals: str
  variables: str | None
  rngs: str | None
  call_after: bool
  mutable: tuple[str, ...]
  jit: bool
  call_style: str = 'positional'
  lift: str = 'none'
  # The transformer's jit option: fn wrapped in the runtime's compiled or not.
  compiled: bool = True


@st.composite
def specs(draw, jit: bool = False) -> Spec:
  layers = draw(st.lists(st.tuples(st.sampled_from(sorted(LAYERS)), st.integers(1, 3)), min_size=1, max_size=4))
  return Spec(
      layers=tuple(layers),
      batch=draw(st.integers(1, 3)),
      features=draw(st.integers(1, 3)),
      transform=draw(st.sampled_from(('grad', 'value_and_grad'))),
      has_aux=draw(st.sampled_from(('False', *AUXES))),
      loss=draw(st.sampled_from(sorted(LOSSES))),
      holder=draw(st.sampled_from(HOLDERS)),
      primals=draw(st.sampled_from(PRIMAL_FORMS)),
      variables=draw(st.none() | st.sampled_from(VARIABLE_FILTERS)),
      rngs=draw(st.none() | st.sampled_from(RNG_FILTERS)),
      call_after=draw(st.booleans()),
      mutable=tuple(draw(st.lists(st.sampled_from(('batch_stats', 'intermediates', 'counter')), unique=True))),
      jit=jit and draw(st.booleans()),
      call_style=draw(st.sampled_from(CALL_STYLES)),
      lift=draw(st.sampled_from(LIFTS)),
      compiled=draw(st.booleans()),
  )


def render(spec: Spec) -> str:
  """The source of a file whose ``Outer`` module holds the one site."""
  stack = '\n    '.join(LAYERS[kind].format(n=n) for kind, n in spec.layers)
  # What loss receives, how it unpacks it, and what the site passes.
  params, unpack, primals = {
      'one': ('x', '', 'x'),
      'two': ('x, y', '', 'x, y'),
      'tuple': ('xy', '      x, y = xy\n', '(x, y)'),
      'dict': ('xy', "      x, y = xy['x'], xy['y']\n", "{'x': x, 'y': y}"),
  }[spec.primals]
  both = spec.primals != 'one'
  value = LOSSES[spec.loss]
  returned = f'{value}, {AUXES[spec.has_aux]}' if spec.has_aux in AUXES else value
  keywords = []
  if spec.has_aux != 'False':
    keywords.append(('has_aux', 'True'))
  if spec.variables:
    keywords.append(('variables', spec.variables))
  if spec.rngs:
    keywords.append(('rngs', spec.rngs))
  mdl = {'inline': 'stack', 'setup': 'self.stack', 'self': 'self', 'attribute': 'self.stack'}[spec.holder]
  call_in_fn = 'mdl.stack' if spec.holder == 'self' else 'mdl'
  options = ''
  if spec.call_style == 'keywords':
    # fn and mdl by keyword leave no room for primals: loss reads the inputs
    # from the enclosing method instead, and the gradients are ().
    params, unpack = '', ''
    args = f'fn=loss, mdl={mdl}' + ''.join(f', {k}={v}' for k, v in keywords)
  elif spec.call_style == 'mapping':
    options = '    options = {' + ', '.join(f"'{k}': {v}" for k, v in keywords) + '}\n'
    args = f'loss, {mdl}, {primals}, **options'
  else:
    args = f'loss, {mdl}, {primals}' + ''.join(f', {k}={v}' for k, v in keywords)
  site = f'nn.{spec.transform}({args})'
  stack_class = 'nn.remat(Stack)' if spec.lift == 'remat_stack' else 'Stack'
  call_head = '  @nn.jit\n' if spec.lift == 'jit_method' else ''
  if spec.holder == 'inline':
    head = f'  @nn.compact\n{call_head}  def __call__(self, x, y):\n    stack = {stack_class}()\n'
  elif spec.holder == 'attribute':
    head = f'  stack: nn.Module\n\n  @nn.compact\n{call_head}  def __call__(self, x, y):\n'
  else:
    head = f'  def setup(self):\n    self.stack = {stack_class}()\n\n{call_head}  def __call__(self, x, y):\n'
  inputs = 'x, y' if both else 'x'
  after = (f'    after = {mdl if spec.holder != "self" else "self.stack"}({inputs})\n' if spec.call_after
           else '    after = None\n')
  return f'''import jax
import jax.numpy as jnp
import flax.linen as nn


class Stack(nn.Module):

  @nn.compact
  def __call__(self, x, y=None):
{'    x = x * y' + chr(10) if both else ''}    {stack}
    return x


class Outer(nn.Module):
{head}
    def loss(mdl{', ' + params if params else ''}):
{unpack}      out = {call_in_fn}({inputs})
      return {returned}

{options}    result = {site}
{after}    return result, after
'''


# --- Running a file ---------------------------------------------------------

_counter = itertools.count()


def load(code: str, directory: pathlib.Path) -> Any:
  """Imports ``code`` as a fresh module, so Flax sees a real source file."""
  name = f'vjpify_fuzz_{next(_counter)}'
  path = directory / f'{name}.py'
  path.write_text(code)
  return load_file(path, name)


def outer_of(module: Any, spec: Spec) -> Any:
  if spec.holder != 'attribute':
    return module.Outer()
  stack_class = module.nn.remat(module.Stack) if spec.lift == 'remat_stack' else module.Stack
  return module.Outer(stack=stack_class())


def run(module: Any, spec: Spec) -> dict[str, Any]:
  """What the program does: variables after init, output and mutations of
  apply, or the exception each step raised."""
  shape = (spec.batch, spec.features)
  x = jax.random.normal(jax.random.key(1), shape)
  y = jax.random.normal(jax.random.key(2), shape)
  keys = {name: jax.random.key(seed) for seed, name in enumerate(('params', 'dropout', 'noise'), 10)}
  outer = outer_of(module, spec)
  init = jax.jit(outer.init) if spec.jit else outer.init
  outcome: dict[str, Any] = {}
  try:
    variables = init(keys, x, y)
  except Exception as error:  # The error itself is the behaviour compared.
    return {'init': _error(error)}
  outcome['init'] = variables
  apply_keys = {name: jax.random.fold_in(key, 7) for name, key in keys.items() if name != 'params'}
  apply = (lambda v, x, y: outer.apply(v, x, y, rngs=apply_keys, mutable=list(spec.mutable)))
  try:
    outcome['apply'] = (jax.jit(apply) if spec.jit else apply)(variables, x, y)
  except Exception as error:
    outcome['apply'] = _error(error)
  return outcome


# Known, reported difference: flax names the lifted scope after the transform
# in error messages ("/value_and_grad(Stack_0)/..." for nn.grad and
# nn.value_and_grad, "/vjp(Stack_0)/..." after the rewrite).
_SCOPE_PATH_TRANSFORM = re.compile(r'(?<=[/(])(?:vjp|value_and_grad)\(')


def _error(error: Exception) -> tuple[str, str]:
  # Object addresses differ between the two modules; compare the message without them.
  message = re.sub(r'0x[0-9a-f]+', '0x', str(error).split('\n')[0])
  message = _SCOPE_PATH_TRANSFORM.sub('<transform>(', message)
  return ('raised', f'{type(error).__name__}: {_normalise(message)}')


# A compiled program rounds differently from op-by-op dispatch: the values
# compiled gives may differ from nn.grad's by this much, relative or absolute
# (tests/support/comparing.py says why both).
COMPILED_TOLERANCE = COMPILED_RTOL


def assert_same(original: Any, rewritten: Any, where: str = 'result', tolerance: float = 0.0,
                rounded_like: Any = None) -> None:
  """Same pytree structure and bit-identical leaves; with ``tolerance``,
  floating point leaves within that much, relative or absolute, of the
  original's or, failing that, of ``rounded_like``'s (the original run as
  one compiled program, which rounds as a compiled rewrite does)."""
  leaves_a, tree_a = jax.tree_util.tree_flatten_with_path(original)
  leaves_b, tree_b = jax.tree_util.tree_flatten_with_path(rewritten)
  if tree_a != tree_b:
    raise AssertionError(f'{where}: structures differ:\n{tree_a}\n{tree_b}')
  alternatives = jax.tree_util.tree_leaves(rounded_like) if rounded_like is not None else [None] * len(leaves_a)
  for (path, a), (_, b), c in zip(leaves_a, leaves_b, alternatives):
    label = where + jax.tree_util.keystr(path)
    if isinstance(a, str) or isinstance(b, str):
      if _normalise(a) != _normalise(b):
        raise AssertionError(f'{label}: {a!r} != {b!r}')
      continue
    a, b = np.asarray(a), np.asarray(b)
    if not (tolerance and np.issubdtype(a.dtype, np.inexact)):
      np.testing.assert_array_equal(a, b, err_msg=label, strict=True)
      continue
    try:
      # assert_allclose takes strict= only from NumPy 2, which old jax predates.
      assert (b.shape, b.dtype) == (a.shape, a.dtype), label
      np.testing.assert_allclose(b, a, rtol=tolerance, atol=tolerance, err_msg=label)
    except AssertionError:
      if c is None:
        raise
      np.testing.assert_allclose(b, np.asarray(c), rtol=tolerance, atol=tolerance, err_msg=f'{label} (jitted)')


def _normalise(text: Any) -> Any:
  # Each run imports the file under a fresh module name.
  return re.sub(r'vjpify_fuzz_\d+', 'module', text) if isinstance(text, str) else text


def check(spec: Spec, directory: pathlib.Path) -> str:
  """Runs ``spec`` before and after rewriting and compares; returns the source."""
  code = render(spec)
  result = transform_source(code, 'fuzz.py', jit=spec.compiled)
  actions = [s.action for s in result.sites]
  if actions != [REWRITTEN]:
    raise AssertionError(f'expected one rewritten site, got {[s.format() for s in result.sites]}\n{code}')
  original, rewritten = load(code, directory), load(result.code, directory)
  try:
    outcome = run(rewritten, spec)
    # Under an outer jax.jit, compiled calls fn as nn.vjp would: bit for bit.
    tolerance = COMPILED_TOLERANCE if spec.compiled and not spec.jit else 0.0
    expected = run(original, spec)
    try:
      assert_same(expected, outcome, tolerance=tolerance)
    except AssertionError:
      if not tolerance:
        raise
      # An ill-conditioned result (a gradient through BatchNorm over a batch
      # of two, which cancels to rounding noise) amplifies the rounding of
      # any compiled program; compiled must then match the original compiled
      # by jax.jit as a whole.
      rounded_like = run(original, dataclasses.replace(spec, jit=True))
      assert_same(expected, outcome, tolerance=tolerance, rounded_like=rounded_like)
  except AssertionError as error:
    raise AssertionError(f'{error}\n--- input.py\n{code}--- expected.py\n{result.code}') from None
  return code


def main(argv: Sequence[str] | None = None) -> int:
  from hypothesis import HealthCheck, given, settings

  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--examples', type=int, default=200)
  parser.add_argument('--jit', action='store_true', help='also run some programs under jax.jit')
  parser.add_argument('--seed', type=int, default=None)
  args = parser.parse_args(argv)
  # Compile at the first call that can, so that the compiled path is what
  # the programs exercise (tiered compilation would run most calls as is).
  from vjpify.runtime import compiled  # pylint: disable=import-outside-toplevel
  compiled.set_mode('always')
  directory = pathlib.Path(tempfile.mkdtemp(prefix='vjpify-fuzz-'))
  programs = []
  start = time.perf_counter()

  @settings(max_examples=args.examples, deadline=None, print_blob=True,
            suppress_health_check=list(HealthCheck))
  @given(specs(jit=args.jit))
  def fuzz(spec: Spec) -> None:
    programs.append(spec)
    check(spec, directory)

  if args.seed is not None:
    fuzz = __import__('hypothesis').seed(args.seed)(fuzz)
  try:
    fuzz()
  finally:
    print(f'{len(programs)} programs run in {time.perf_counter() - start:.0f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main())
