"""Building the lifted replacement for a jax transform over a bound Module.

``jax.grad(lambda r: self.energy(r))(r)`` is ``nn.grad(lambda mdl, r:
mdl.energy(r), self, r)`` in spirit, and is lowered as ``nn.grad`` is::

    jax_grad_from_vjp(nn.vjp(compiled(lambda mdl, r: mdl.energy(r)), self, r,
                             vjp_variables=False, multi_scope=True))

A literal ``argnums`` goes to the helper (``argnums=(0, 1)``), which shapes
the gradients as jax does; ``has_aux`` goes to ``nn.vjp``. ``jax.vjp(f, p)``
becomes ``jax_vjp_from_vjp(nn.vjp(f, self, p, ...))``; a nested def gets the
module parameter in its own signature; a bound method (``self.energy``) is
passed as it is, since ``nn.vjp`` calls it on the module it is given.
"""

from __future__ import annotations

import dataclasses

import libcst as cst

from vjpify.transformer.find.lift_sites import LiftSite
from vjpify.transformer.find.targets import VJP_KEYWORDS
from vjpify.transformer.rewrite.nodes import append_keywords, new_keyword, separator_of

_SPACE = cst.SimpleWhitespace(' ')
_NO_SPACE = cst.SimpleWhitespace('')


@dataclasses.dataclass(frozen=True)
class LiftSpelling:
  """How the replacement names what it calls: ``vjp`` is flax's vjp,
  ``extraction`` the runtime helper that shapes its result, ``compile`` the
  runtime's ``compiled`` (None: ``fn`` is left as it is)."""

  vjp: cst.BaseExpression
  extraction: str
  compile: str | None = None


def with_module_parameter(function: cst.Lambda | cst.FunctionDef, parameter: str) -> cst.Lambda | cst.FunctionDef:
  """``function`` with ``parameter`` in front of its parameters."""
  params = function.params
  new = cst.Param(cst.Name(parameter), comma=cst.Comma(whitespace_after=_SPACE))
  if params.posonly_params:
    return function.with_changes(params=params.with_changes(posonly_params=(new, *params.posonly_params)))
  return function.with_changes(params=params.with_changes(params=(new, *params.params)))


def _bare(arg: cst.Arg) -> cst.Arg:
  """``arg`` without its comma, for a new place in a call."""
  return arg.with_changes(comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=_NO_SPACE)


def _comma() -> cst.Comma:
  return cst.Comma(whitespace_after=_SPACE)


def lifted_call(site: LiftSite, made: cst.Call, applied: cst.Call, spelling: LiftSpelling, own_line: bool = False,
                hang: str | None = None) -> cst.Call:
  """The expression that replaces ``applied``, the updated node of
  ``site.applied``, where ``made`` is the updated transform call (the same
  node for ``jax.vjp``); ``own_line`` and ``hang`` lay it out as
  ``nodes.lowered_call``'s do."""
  fn = made.args[0].value
  if spelling.compile is not None:
    fn = cst.Call(func=cst.Name(spelling.compile), args=(cst.Arg(fn),))
  module = cst.Arg(cst.Name(site.module.value), comma=_comma())
  extra = [new_keyword(name, value) for name, value in VJP_KEYWORDS]
  if site.transform == 'jax.vjp':
    # The primals and has_aux stay where they were, the module goes after fn.
    first, *rest = made.args
    args = [first.with_changes(value=fn), module, *rest]
    before = made.whitespace_before_args
  else:
    has_aux = [_bare(a) for a in made.args if a.keyword is not None and a.keyword.value == 'has_aux']
    extra = [*has_aux, *extra]
    args = [cst.Arg(fn, comma=_comma()), module, *applied.args]
    before = applied.whitespace_before_args
    if (isinstance(made.whitespace_before_args, cst.ParenthesizedWhitespace)
        and not isinstance(before, cst.ParenthesizedWhitespace)):
      # The transform's arguments were laid out a line each: so are the new ones.
      before = made.whitespace_before_args
      separator = separator_of(made.args, before)
      args = [cst.Arg(fn, comma=separator), module.with_changes(comma=separator),
              *(a.with_changes(comma=separator) for a in applied.args[:-1]), applied.args[-1]]
      return _extracted(site, made, applied, spelling, cst.Call(
          func=spelling.vjp, args=append_keywords(args, before, extra, separator=separator),
          whitespace_before_args=before))
  if hang is not None:
    before = cst.ParenthesizedWhitespace(indent=False, last_line=cst.SimpleWhitespace(hang))
  vjp_call = cst.Call(func=spelling.vjp, args=append_keywords(args, before, extra, own_line),
                      whitespace_before_args=before)
  return _extracted(site, made, applied, spelling, vjp_call)


def _extracted(site: LiftSite, made: cst.Call, applied: cst.Call, spelling: LiftSpelling,
               vjp_call: cst.Call) -> cst.Call:
  """``vjp_call`` handed to the helper that shapes its result, with the
  site's ``argnums``."""
  outer_args = [cst.Arg(vjp_call)]
  if site.argnums is not None:
    argnums = next((a for a in made.args if a.keyword is not None and a.keyword.value == 'argnums'), made.args[-1])
    outer_args = [cst.Arg(vjp_call, comma=_comma()), cst.Arg(
        argnums.value, keyword=cst.Name('argnums'),
        equal=cst.AssignEqual(whitespace_before=_NO_SPACE, whitespace_after=_NO_SPACE))]
  return cst.Call(func=cst.Name(spelling.extraction), args=outer_args, lpar=applied.lpar, rpar=applied.rpar)
