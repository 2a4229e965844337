"""What vjpify says about the jax transforms over bound Modules it finds,
as data: each reason's stable code (the VJ3xx range) with its text.

The texts follow a site's callee (``jax.grad(...) ``) in a diagnostic; a
text with ``{names}`` or ``{attribute}`` is filled in per site. Every
message is made by :func:`message`, so that the codes can be shown with the
messages, or matched to suppressions, from this one table.
"""

from __future__ import annotations

import enum

from vjpify.transformer import codes


class LiftReason(enum.Enum):
  """Why a jax transform over a bound Module was reported, or left
  unchanged under ``--lift-jax-transforms``; the value is the name of its
  code in ``vjpify.transformer.codes``."""

  REPORTED = 'jax-transform-reported'
  UNLIFTED_TRANSFORM = 'jax-transform-not-lowered'
  DRAWS_RNG = 'jax-transform-draws-rng'
  PARTIAL_ARGNUMS = 'jax-transform-partial-argnums'
  CAPTURES_LOCALS = 'jax-transform-captures-locals'
  ARGUMENT_FORM = 'jax-transform-argument-form'
  NOT_APPLIED = 'jax-transform-not-applied'
  SHARED_FUNCTION = 'jax-transform-shared-function'
  NOT_A_METHOD = 'jax-transform-not-a-method'
  SIGNATURE = 'jax-transform-signature'
  NESTED = 'jax-transform-nested'

  @property
  def code(self) -> str:
    return codes.code(self.value)


TEXTS: dict[LiftReason, str] = {
    LiftReason.REPORTED: (
        'is a jax transform over a bound Module, which breaks with mutable collections and on older '
        'flax; left unchanged; lift it to nn.vjp with --lift-jax-transforms'),
    LiftReason.UNLIFTED_TRANSFORM: (
        'is a jax transform over a bound Module that vjpify cannot lower to nn.vjp; left unchanged; '
        'use flax.linen\'s own transform (nn.jvp, nn.vjp) by hand'),
    LiftReason.DRAWS_RNG: (
        'is a jax transform over a bound Module whose function draws random numbers (make_rng), and '
        'lifted it could draw them from other streams; left unchanged; draw the key outside the '
        'function and pass it in'),
    LiftReason.PARTIAL_ARGNUMS: (
        'is a jax transform over a bound Module that differentiates only some of its arguments '
        '(argnums), and lifted it would trace the others too (a non-array argument would break); '
        'left unchanged; close over the other arguments, or give argnums as a literal naming every one'),
    LiftReason.CAPTURES_LOCALS: (
        'is a jax transform over a bound Module whose function uses {names} from the method around it, '
        'which may be a submodule bound outside the lifted scope (its updates would be lost); '
        'left unchanged; reach it through self or pass it in as an argument'),
    LiftReason.ARGUMENT_FORM: (
        'is a jax transform over a bound Module called with arguments nn.vjp cannot pass on as they '
        'are (keywords other than argnums and has_aux, unpacking, or a has_aux that is not a name or '
        'True/False); left unchanged; pass the primals positionally'),
    LiftReason.NOT_APPLIED: (
        'is a jax transform over a bound Module that is not called at once, nor stored in a name that '
        'is called once in the same function; left unchanged; call it where it is made'),
    LiftReason.SHARED_FUNCTION: (
        'is a jax transform over a bound Module whose function {names} is decorated or used elsewhere '
        'too, and lifting it adds a module parameter; left unchanged; give the transform a function '
        'of its own'),
    LiftReason.NOT_A_METHOD: (
        'is a jax transform over {attribute}, which is not a method defined in this class, so vjpify '
        'cannot tell a method from a submodule; left unchanged; pass a lambda that calls it'),
    LiftReason.SIGNATURE: (
        "is a jax transform over a bound Module whose function's parameters do not take the arguments "
        'one by one (defaults, *args, keywords or another count); left unchanged; give it one '
        'positional parameter per argument'),
    LiftReason.NESTED: (
        'is a jax transform over a bound Module nested in another one, or with another one nested in '
        'it, and the lifted forms would pass each other the wrong module; left unchanged; lift them '
        'by hand with nn.vjp'),
}

# What a lifted site's diagnostic says.
LIFTED = 'over a bound Module lifted to explicit nn.vjp'


def message(reason: LiftReason, spelled: str, **fields: str) -> codes.Reason:
  """The diagnostic for a site whose callee is ``spelled``."""
  return codes.Reason(reason.code, f'{spelled}(...) {TEXTS[reason].format(**fields)}')


def lifted(spelled: str) -> codes.Reason:
  """The diagnostic for a site lifted to nn.vjp."""
  return codes.reason('lifted', f'{spelled}(...) {LIFTED}')
