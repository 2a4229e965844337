"""Checking ``**kwargs`` meant for ``nn.grad`` / ``nn.value_and_grad`` before
they reach the ``nn.vjp`` call that replaced them.

``nn.vjp`` accepts keywords that ``nn.grad`` rejects and names itself in its
errors, so a ``**mapping`` in a rewritten call is first unpacked into a
function with ``nn.grad``'s own signature and name. Python then raises exactly
what it raises for the original call (a mapping that is not one, keys that are
not strings, unexpected keywords), worded by the running interpreter itself.

A ``reduce_axes`` in the mapping is judged by the installed flax itself:
recent releases reject a non-empty one in ``nn.grad`` before doing anything
else, older ones hand it to ``jax.vjp`` exactly as ``nn.vjp`` does.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn

__all__ = ['vjp_kwargs']

# Marks a parameter the mapping did not set; never passed on to nn.vjp.
_ABSENT = object()


def _given(arguments: dict[str, Any]) -> dict[str, Any]:
  return {
      name: value for name, value in arguments.items()
      if name != 'primals' and value is not _ABSENT
  }


# The two signatures below are flax's, with every default replaced by _ABSENT:
# only the mapping is unpacked into them, so fn and mdl may be missing, and
# nothing the mapping leaves out is passed on.
def grad(fn=_ABSENT, mdl=_ABSENT, *primals, has_aux=_ABSENT, reduce_axes=_ABSENT,
         variables=_ABSENT, rngs=_ABSENT):
  return _given(locals())


def value_and_grad(fn=_ABSENT, mdl=_ABSENT, *primals, has_aux=_ABSENT,
                   reduce_axes=_ABSENT, variables=_ABSENT, rngs=_ABSENT):
  return _given(locals())


# Python names a function by module and qualified name in some of these
# errors ("flax.linen.transforms.grad() argument after ** must be a mapping").
grad.__module__ = nn.grad.__module__
value_and_grad.__module__ = nn.value_and_grad.__module__

SIGNATURES = {'grad': grad, 'value_and_grad': value_and_grad}


def _reduce_axes_error(transform: str, reduce_axes: Any) -> NotImplementedError | None:
  """The error flax's own ``transform`` raises for ``reduce_axes``, if any.

  flax checks ``reduce_axes`` first and only then looks at ``fn``; given no
  ``fn`` it stops with a ValueError before touching any module, so the probe
  has no effect beyond telling which of the two comes first.
  """
  try:
    getattr(nn, transform)(None, None, reduce_axes=reduce_axes)
  except NotImplementedError as error:
    return error
  except Exception:  # pylint: disable=broad-except
    # This flax goes on with reduce_axes (or cannot even test it, which
    # nn.vjp then reports the same way): nn.vjp gets it as nn.grad would.
    return None
  return None


def vjp_kwargs(transform: str, kwargs: Any) -> dict[str, Any]:
  """Checks ``**kwargs`` meant for ``nn.grad`` before they reach ``nn.vjp``.

  Note that ``kwargs`` is checked on its own: a key that repeats an argument
  given positionally or by explicit keyword in the same call (``fn``,
  ``mdl``, ``has_aux`` ...) is reported by ``nn.vjp`` under its own name.
  ``reduce_axes`` is passed on where the installed flax's ``transform`` would
  pass it to ``jax.vjp`` (flax 0.10 and earlier), and raises where it rejects
  it.

  Example::

    nn.vjp(fn, mdl, x, **vjp_kwargs('grad', options),
           vjp_variables=False, multi_scope=True)

  Args:
    transform: ``'grad'`` or ``'value_and_grad'``, for the error messages.
    kwargs: the mapping the original call unpacked with ``**``.

  Returns:
    A new dict of the keywords ``kwargs`` set, ready to unpack into
    ``nn.vjp``.

  Raises:
    TypeError: ``kwargs`` is not a mapping, has keys that are not strings, or
      has a key ``transform`` does not accept; worded as Python words it for
      the original call.
    NotImplementedError: a non-empty ``reduce_axes`` where the installed flax
      rejects it; flax's own exception.
  """
  checked = SIGNATURES[transform](**kwargs)
  if 'reduce_axes' in checked:
    error = _reduce_axes_error(transform, checked['reduce_axes'])
    if error is not None:
      raise error
  return checked
