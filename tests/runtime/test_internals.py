"""Each assumption ``vjpify.runtime.internals`` makes about flax and jax, checked against the installed releases."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vjpify.runtime import internals


class Probe(nn.Module):
  """Records what the internals report from inside a method."""

  @nn.compact
  def __call__(self, x):
    self.sow('seen', 'interceptors', jnp.asarray(internals.interceptors_active()))
    self.sow('seen', 'call_info', jnp.asarray(internals.call_info_active()))
    state = internals.module_state(self)
    self.sow('seen', 'in_compact', jnp.asarray(state.in_compact_method))
    self.sow('seen', 'capture', jnp.asarray(bool(internals.capture_filter())))
    return nn.Dense(1)(x)


def _seen(**kwargs):
  x = jnp.ones((1, 2))
  variables = Probe().init(jax.random.key(0), x)
  _, state = Probe().apply(variables, x, mutable=['seen', 'intermediates'], **kwargs)
  return {name: bool(values[-1]) for name, values in state['seen'].items()}


def test_module_context_stacks_are_read():
  assert _seen() == {'interceptors': False, 'call_info': False, 'in_compact': True, 'capture': False}
  assert _seen(capture_intermediates=True)['capture']
  with nn.intercept_methods(lambda next_fun, args, kwargs, context: next_fun(*args, **kwargs)):
    assert _seen()['interceptors']


def test_tabulate_is_seen_as_call_info():
  seen = []

  class Tabulated(nn.Module):

    @nn.compact
    def __call__(self, x):
      seen.append(internals.call_info_active())
      return nn.Dense(1)(x)

  Tabulated().tabulate(jax.random.key(0), jnp.ones((1, 2)))
  assert True in seen


def test_scope_and_module_types():
  assert issubclass(nn.Dense, internals.Module)
  scope_types = (internals.Scope, internals.Variable, internals.DenyList)
  assert all(isinstance(kind, type) for kind in scope_types)
  assert callable(internals.wrap_method_once)


def test_concrete_values_are_told_from_abstract_ones():
  assert internals.is_concrete(jnp.ones(2))
  assert not internals.is_concrete(np.ones(2))
  # Differentiation keeps the value known; jit does not.
  concrete = []
  jax.grad(lambda x: concrete.append(internals.is_concrete(x)) or x)(jnp.float32(1.0))
  jax.jit(lambda x: concrete.append(internals.is_concrete(x)) or x)(jnp.float32(1.0))
  assert concrete == [True, False]


def test_jaxprs_are_walked_and_evaluated():
  closed = jax.make_jaxpr(lambda x: jax.lax.cond(x > 0, jnp.sin, jnp.cos, x))(1.0)
  names = [eqn.primitive.name for eqn in internals.jaxpr_equations(closed)]
  assert 'cond' in names and 'sin' in names and 'cos' in names  # inside the branches
  assert internals.jaxpr_as_fun(closed)(0.5)[0] == jnp.sin(0.5)


def test_the_pullback_wrapper_of_nn_vjp_is_found():
  assert internals.lift_bwd_wrapper is None or callable(internals.lift_bwd_wrapper)


def test_flax_version_is_a_pair_of_numbers():
  assert len(internals.FLAX_VERSION) == 2 and all(isinstance(part, int) for part in internals.FLAX_VERSION)


def test_the_jax_pullback_inside_nn_vjp_is_found():
  class Scale(nn.Module):

    @nn.compact
    def __call__(self, x):
      return x * self.param('w', nn.initializers.ones_init(), ())

  class Probe(nn.Module):

    @nn.compact
    def __call__(self, x):
      _, vjp_fn = nn.vjp(lambda mdl, x: mdl(x), Scale(), x, vjp_variables=False, multi_scope=True)
      parts = internals.flax_pullback(vjp_fn)
      assert parts is not None, 'flax changed the layout of the pullback nn.vjp returns'
      jax_pullback, _ = parts
      return jax_pullback(jnp.ones_like(x))[1:]

  x = jnp.ones(2)
  variables = Probe().init(jax.random.key(0), x)
  (x_grad,) = Probe().apply(variables, x)
  np.testing.assert_array_equal(x_grad, jnp.ones(2))
  assert internals.flax_pullback(lambda g: g) is None


def test_the_mapping_over_a_vmap_axis_is_read_from_the_trace():
  seen = []

  def probe(x, y):
    seen.append((internals.axis_mapping(x, 'batch'), internals.axis_mapping(y, 'batch')))
    return x

  from jax._src import core  # pylint: disable=import-outside-toplevel
  if not hasattr(core, 'unsafe_get_trace_stack'):  # jax before 0.4.36: the question cannot be answered
    with pytest.raises(internals.Undetermined, match='lacks the trace internals vjpify reads'):
      jax.vmap(probe, in_axes=(0, None), axis_name='batch')(jnp.ones(3), jnp.ones(()))
    return
  jax.vmap(probe, in_axes=(0, None), axis_name='batch')(jnp.ones(3), jnp.ones(()))
  assert seen == [(internals.AxisMapping.MAPPED, internals.AxisMapping.BROADCAST)]


def test_module_scopes_follow_flax_order():
  class Leaf(nn.Module):

    @nn.compact
    def __call__(self, x):
      return nn.Dense(1)(x)

  class Holder(nn.Module):
    zeta: nn.Module
    alpha: nn.Module

    @nn.compact
    def __call__(self, x):
      flax_order = nn.transforms.get_module_scopes(self)[0]
      assert internals.module_scopes(self) == flax_order
      return self.zeta(x) + self.alpha(x)

  Holder(Leaf(), Leaf()).init(jax.random.key(0), jnp.ones((1, 2)))
