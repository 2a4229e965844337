"""Deciding, for one reference to nn.grad or nn.value_and_grad, whether the
pass may rewrite it, and if not, why.

Every check here guards a way in which the lowered code could behave
differently from the original; a site that fails one is left as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable

import libcst as cst
from libcst.metadata import QualifiedName

from vjpify.transformer.targets import GRAD_KEYWORDS, GRAD_TRANSFORMS


@dataclasses.dataclass(frozen=True)
class Verdict:
  """``transform`` is ``grad`` or ``value_and_grad``; ``problem`` is None
  when the site may be rewritten, else the reason it may not."""

  transform: str
  problem: str | None = None


def transform_of(node: cst.CSTNode, qualified_names: Callable[[cst.CSTNode], Iterable[QualifiedName]]) -> Verdict | None:
  """Classifies a Name or Attribute; None when it is not a flax grad at all."""
  names = {q.name for q in qualified_names(node)}
  kinds = {GRAD_TRANSFORMS[n] for n in names if n in GRAD_TRANSFORMS}
  if not kinds:
    return None
  transform = sorted(kinds)[0]
  others = names - set(GRAD_TRANSFORMS)
  if len(kinds) > 1 or others:
    bound = ', '.join(sorted(names))
    return Verdict(
        transform,
        f'may refer to any of {bound} depending on how the file runs; '
        'left unchanged; bind the name to one flax.linen function',
    )
  return Verdict(transform)


def enclosing_class(node: cst.CSTNode, parent_of: Callable[[cst.CSTNode], cst.CSTNode | None]) -> tuple[cst.ClassDef | None, bool]:
  """The nearest class around ``node``, and whether ``node`` runs inside a
  function body (a method, a nested function or lambda) within that class,
  rather than at class definition time."""
  in_function = False
  while (parent := parent_of(node)) is not None:
    if isinstance(parent, (cst.FunctionDef, cst.Lambda)) and node is parent.body:
      in_function = True
    elif isinstance(parent, cst.ClassDef):
      return parent, in_function and node is parent.body
    node = parent
  return None, False


def _is_empty_literal(value: cst.BaseExpression) -> bool:
  if isinstance(value, (cst.Tuple, cst.List)) and not value.elements:
    return True
  return isinstance(value, cst.Name) and value.value == 'None'


def _is_nonempty_literal(value: cst.BaseExpression) -> bool:
  return isinstance(value, (cst.Tuple, cst.List, cst.SimpleString)) and not _is_empty_literal(value)


def argument_problem(call: cst.Call, transform: str, code_for: Callable[[cst.CSTNode], str]) -> str | None:
  """Why the arguments rule out an exact rewrite, or None."""
  positional = 0
  starred = False
  keywords: set[str] = set()
  for arg in call.args:
    if arg.star:
      starred = True
    elif arg.keyword is None:
      positional += 1
    else:
      name = arg.keyword.value
      keywords.add(name)
      if name not in GRAD_KEYWORDS:
        return (f"passes keyword '{name}', which {transform}() does not accept; "
                'left unchanged; remove the keyword')
      if name == 'reduce_axes' and not _is_empty_literal(arg.value):
        if _is_nonempty_literal(arg.value):
          return ('passes a non-empty reduce_axes, which flax rejects with '
                  'NotImplementedError; left unchanged; remove reduce_axes')
        return (f'passes reduce_axes={code_for(arg.value)}, which vjpify cannot '
                'prove empty; left unchanged; pass reduce_axes=() or drop it')
  if not starred:
    for index, name in enumerate(('fn', 'mdl')):
      given_positionally = positional > index
      if given_positionally == (name in keywords):
        how = 'twice' if given_positionally else 'no'
        return (f'passes {how} {name} argument, so {transform}() raises TypeError; '
                f'left unchanged; pass {name} exactly once')
  return None


def site_problem(
    call: cst.Call,
    verdict: Verdict,
    parent_of: Callable[[cst.CSTNode], cst.CSTNode | None],
    module_classes: Collection[cst.ClassDef],
    code_for: Callable[[cst.CSTNode], str],
) -> str | None:
  """Why this call may not be rewritten, or None when it may."""
  if verdict.problem:
    return verdict.problem
  cls, in_method = enclosing_class(call, parent_of)
  if cls is None or cls not in module_classes:
    return ('is not inside a flax.linen.Module subclass defined in this file; '
            'left unchanged; call it from a Module method to have it rewritten')
  if not in_method:
    return (f"runs in the body of class {cls.name.value} when the class is defined, "
            'not in a method; left unchanged; move it into a method')
  return argument_problem(call, verdict.transform, code_for)
