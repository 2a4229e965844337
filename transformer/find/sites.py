"""Deciding, for one reference to nn.grad or nn.value_and_grad, whether the
pass may rewrite it, and if not, why.

Every check here guards a way in which the lowered code could behave
differently from the original; a site that fails one is left as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import libcst as cst
from libcst.metadata import QualifiedName

from vjpify.transformer.find.module_classes import ModuleClasses
from vjpify.transformer.find.targets import GRAD_KEYWORDS, GRAD_TRANSFORMS


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


def _literal_truth(value: cst.BaseExpression) -> bool | None:
  """Whether a literal ``reduce_axes`` is truthy; None when it is not a
  literal whose truth can be read off the source."""
  if isinstance(value, cst.Name) and value.value in ('None', 'False', 'True'):
    return value.value == 'True'
  if isinstance(value, (cst.Tuple, cst.List, cst.Set, cst.Dict)):
    unpacked = (cst.StarredElement, cst.StarredDictElement)
    if any(not isinstance(e, unpacked) for e in value.elements):
      return True
    # Nothing but ``*xs`` items: empty exactly when every ``xs`` is.
    return None if value.elements else False
  if isinstance(value, cst.SimpleString):
    return bool(value.evaluated_value)
  if isinstance(value, cst.Integer):
    return bool(value.evaluated_value)
  return None


def keeps_reduce_axes(call: cst.Call) -> bool:
  """Whether the rewrite passes ``reduce_axes`` on (to the runtime helper that
  reduces the gradients), rather than dropping an empty literal one."""
  return any(arg.keyword is not None and arg.keyword.value == 'reduce_axes'
             and _literal_truth(arg.value) is not False for arg in call.args)


def argument_problem(call: cst.Call, transform: str) -> str | None:
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
      if name in keywords:
        # Python rejects the file; a rewrite that drops one would let it run.
        return (f"passes keyword '{name}' twice, which Python rejects; "
                'left unchanged; pass it once')
      keywords.add(name)
      if name not in GRAD_KEYWORDS:
        return (f"passes keyword '{name}', which {transform}() does not accept; "
                'left unchanged; remove the keyword')
  if 'reduce_axes' in keywords and any(arg.star == '**' for arg in call.args):
    # A mapping that repeats reduce_axes makes the original raise TypeError.
    # Dropped, an empty keyword would let nn.vjp take the mapping's; kept, the
    # mapping's check runs first and raises flax's NotImplementedError.
    if not keeps_reduce_axes(call):
      return ('passes reduce_axes next to a **mapping that may repeat it; left unchanged; '
              'drop the reduce_axes keyword, which changes nothing')
    return ('passes reduce_axes next to a **mapping that may repeat it; left unchanged; '
            'pass the keywords in the mapping explicitly to have it rewritten')
  if not starred:
    for index, name in enumerate(('fn', 'mdl')):
      given_positionally = positional > index
      if given_positionally == (name in keywords):
        how = f'{name} twice' if given_positionally else f'no {name} argument'
        return (f'passes {how}, so {transform}() raises TypeError; '
                f'left unchanged; pass {name} exactly once')
  return None


def enclosing_fstrings(node: cst.CSTNode, parent_of: Callable[[cst.CSTNode], cst.CSTNode | None]) -> list[cst.FormattedString]:
  """The f-strings whose replacement fields contain ``node``, innermost first."""
  found = []
  while (node := parent_of(node)) is not None:
    if isinstance(node, cst.FormattedString):
      found.append(node)
  return found


def _in_self_documenting_field(node: cst.CSTNode, parent_of: Callable[[cst.CSTNode], cst.CSTNode | None]) -> bool:
  while (node := parent_of(node)) is not None:
    if isinstance(node, cst.FormattedStringExpression) and isinstance(node.equal, cst.AssignEqual):
      return True
  return False


def string_quote(fstrings: Iterable[cst.FormattedString], preferred: str) -> str | None:
  """A quote character for a new string literal inside ``fstrings``: Python
  before 3.12 forbids a single-line f-string's own quote in its fields."""
  taken = {f.quote for f in fstrings if len(f.quote) == 1}
  for quote in (preferred, *(q for q in ('\'', '"') if q != preferred)):
    if quote not in taken:
      return quote
  return None


def _class_problem(call: cst.Call, parent_of: Callable[[cst.CSTNode], cst.CSTNode | None],
                   classes: ModuleClasses, code_for: Callable[[cst.CSTNode], str]) -> str | None:
  cls, in_method = enclosing_class(call, parent_of)
  if cls is None:
    return ('is not inside a flax.linen.Module subclass defined in this file; '
            'left unchanged; call it from a Module method to have it rewritten')
  name = cls.name.value
  if cls not in classes:
    base = classes.untraced.get(cls)
    if base is not None:
      return (f'is in class {name}, whose base {code_for(base)} vjpify cannot trace to '
              'flax.linen.Module within this file; left unchanged; if it is a Module, '
              'lower this call to nn.vjp by hand')
    return (f'is in class {name}, which is not a flax.linen.Module subclass; '
            'left unchanged; call it from a Module method to have it rewritten')
  if not in_method:
    return (f'runs in the body of class {name} when the class is defined, '
            'not in a method; left unchanged; move it into a method')
  return None


def site_problem(
    call: cst.Call,
    verdict: Verdict,
    parent_of: Callable[[cst.CSTNode], cst.CSTNode | None],
    classes: ModuleClasses,
    code_for: Callable[[cst.CSTNode], str],
) -> str | None:
  """Why this call may not be rewritten, or None when it may."""
  if verdict.problem:
    return verdict.problem
  problem = _class_problem(call, parent_of, classes, code_for)
  if problem:
    return problem
  if _in_self_documenting_field(call, parent_of):
    return ("is inside a self-documenting f-string field ({...=}), which prints the "
            'call as written; left unchanged; drop the = or compute the value outside the f-string')
  problem = argument_problem(call, verdict.transform)
  if problem:
    return problem
  if any(a.star == '**' for a in call.args) and string_quote(enclosing_fstrings(call, parent_of), "'") is None:
    return ('unpacks **keywords inside f-strings that use both quote characters, so the '
            'keyword check cannot be spelled there; left unchanged; compute the value '
            'outside the f-string')
  return None
