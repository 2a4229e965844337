"""Helpers imported by code that vjpify rewrote.

The transformer emits explicit ``nn.vjp`` calls; these helpers finish the job
that ``nn.grad`` and ``nn.value_and_grad`` did on top of it. They need only
jax and flax, never libcst.
"""

from vjpify.runtime.arguments import vjp_kwargs
from vjpify.runtime.compiled import compiled, explain
from vjpify.runtime.gradients import grad_from_vjp, value_and_grad_from_vjp
from vjpify.runtime.jax_gradients import jax_grad_from_vjp, jax_value_and_grad_from_vjp, jax_vjp_from_vjp
from vjpify.runtime.reduce_axes import vjp_with_reduce_axes

__all__ = ['compiled', 'explain', 'grad_from_vjp', 'jax_grad_from_vjp', 'jax_value_and_grad_from_vjp', 'jax_vjp_from_vjp',
           'value_and_grad_from_vjp', 'vjp_kwargs', 'vjp_with_reduce_axes']
