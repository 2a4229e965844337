"""What the pass looks for and what it may emit, declared in one place.

Every runtime helper name the transformer can write into user code is listed
in ``RUNTIME_HELPERS``; a test checks that each exists in ``vjpify.runtime``.
"""

from __future__ import annotations

# Qualified names of the calls that are lowered, mapped to the transform name
# flax uses in its own error messages.
GRAD_TRANSFORMS: dict[str, str] = {
    'flax.linen.grad': 'grad',
    'flax.linen.transforms.grad': 'grad',
    'flax.linen.value_and_grad': 'value_and_grad',
    'flax.linen.transforms.value_and_grad': 'value_and_grad',
}

# The names those calls spell: ``nn.grad``, ``from flax.linen import value_and_grad``.
GRAD_NAMES = frozenset(name.rsplit('.', 1)[1] for name in GRAD_TRANSFORMS)

# Modules whose attribute ``vjp`` is flax's lifted vjp.
LINEN_MODULES = frozenset({'flax.linen', 'flax.linen.transforms'})
LINEN_VJP = frozenset({'flax.linen.vjp', 'flax.linen.transforms.vjp'})
IMPORT_VJP_FROM = 'flax.linen'

MODULE_BASES = frozenset({'flax.linen.Module', 'flax.linen.module.Module'})

# The parameters of nn.grad / nn.value_and_grad that may be passed by keyword.
GRAD_KEYWORDS = frozenset({'fn', 'mdl', 'has_aux', 'reduce_axes', 'variables', 'rngs'})

RUNTIME_MODULE = 'vjpify.runtime'
EXTRACTION_HELPER = {'grad': 'grad_from_vjp', 'value_and_grad': 'value_and_grad_from_vjp'}
KWARGS_HELPER = 'vjp_kwargs'
# Called with flax's vjp first, at sites whose reduce_axes is kept.
REDUCE_AXES_HELPER = 'vjp_with_reduce_axes'
# Wraps ``fn`` so that eager calls run through a cached jax.jit.
COMPILE_HELPER = 'compiled'

# A name the file already binds is imported instead as PREFIX_name, then
# PREFIX_name_2, PREFIX_name_3, ...: the runtime's helpers with one prefix,
# flax's vjp with the other.
HELPER_ALIAS_PREFIX = 'vjpify'
VJP_ALIAS_PREFIX = 'linen'

# Keywords added to every emitted nn.vjp call: differentiate no variable (as
# nn.grad does) and lift every scope that the module reaches (nn.grad lifts
# with multi_scope=True, nn.vjp defaults to False).
VJP_KEYWORDS = (('vjp_variables', 'False'), ('multi_scope', 'True'))

# Cheap text test: a file without both words cannot hold a site.
PREFILTER_WORDS = ('flax', 'grad')
# ... or, for a jax transform over a bound Module, 'flax' and one of these.
JAX_PREFILTER_WORDS = ('grad', 'vjp', 'jac', 'jvp', 'hessian', 'linearize')

# jax's own transforms, found over bound Modules inside Module methods and
# lifted to nn.vjp on request (--lift-jax-transforms); each maps to its
# Site kind and to the runtime helper that shapes nn.vjp's result like it.
JAX_TRANSFORMS: dict[str, str] = {
    'jax.grad': 'jax.grad',
    'jax.value_and_grad': 'jax.value_and_grad',
    'jax.vjp': 'jax.vjp',
}
JAX_EXTRACTION_HELPER = {
    'jax.grad': 'jax_grad_from_vjp',
    'jax.value_and_grad': 'jax_value_and_grad_from_vjp',
    'jax.vjp': 'jax_vjp_from_vjp',
}
# jax transforms reported over bound Modules but never lifted: the lowering
# cannot express them yet.
JAX_UNLIFTED = frozenset({'jax.jacfwd', 'jax.jacrev', 'jax.hessian', 'jax.jvp', 'jax.linearize'})
# The keywords a lifted site may pass, per transform: others (holomorphic,
# allow_int, reduce_axes) have no nn.vjp counterpart.
JAX_KEYWORDS = {'jax.grad': ('argnums', 'has_aux'), 'jax.value_and_grad': ('argnums', 'has_aux'),
                'jax.vjp': ('has_aux',)}
# The names those transforms spell (``jax.grad``, ``from jax import vjp``).
JAX_NAMES = frozenset(name.rsplit('.', 1)[1] for name in (*JAX_TRANSFORMS, *JAX_UNLIFTED))
# The parameter that takes the module in a lifted function (``lambda mdl, r:``),
# or mdl_2, mdl_3, ... where the function uses that name.
LIFTED_MODULE_PARAMETER = 'mdl'
# The Module method that draws random numbers: a function that calls it is
# not lifted, and a definition that names it is read whole.
RNG_METHOD = 'make_rng'

RUNTIME_HELPERS = frozenset({*EXTRACTION_HELPER.values(), KWARGS_HELPER, REDUCE_AXES_HELPER, COMPILE_HELPER,
                             *JAX_EXTRACTION_HELPER.values()})
