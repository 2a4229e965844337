"""Finding sites: which names and attributes are flax's grad transforms,
and where a call sits (its class, the f-strings around it).

Names are matched by qualified name, never by spelling, so that
``import flax.linen as whatever`` still matches.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping

import libcst as cst
from libcst.metadata import CodeRange, QualifiedName

from vjpify.transformer.codes import Reason, reason
from vjpify.transformer.find.targets import GRAD_TRANSFORMS


@dataclasses.dataclass(frozen=True)
class Verdict:
  """``transform`` is ``grad`` or ``value_and_grad``; ``problem`` is None
  when the site may be rewritten, else the reason it may not."""

  transform: str
  problem: Reason | None = None


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
        reason('ambiguous-name', f'may refer to any of {bound} depending on how the file runs; '
        'left unchanged; bind the name to one flax.linen function'),
    )
  return Verdict(transform)


def survey(positions: Mapping[cst.CSTNode, CodeRange],
           qualified_names: Callable[[cst.CSTNode], Collection[QualifiedName]],
           ) -> tuple[list[cst.ClassDef], collections.Counter[int]]:
  """The file's classes in source order, and how many grad calls start on
  each line (a call that shares its line keeps its layout, since the others
  move the line too), from one walk over the nodes whose ``positions``
  LibCST's metadata already holds: visiting the tree again would cost more
  than the rest of the pass."""
  classes = []
  site_lines: collections.Counter[int] = collections.Counter()
  for each, where in positions.items():
    if isinstance(each, cst.ClassDef):
      classes.append((where.start.line, where.start.column, each))
    elif isinstance(each, cst.Call) and transform_of(each.func, qualified_names) is not None:
      site_lines[where.start.line] += 1
  classes.sort(key=lambda found: found[:2])
  return [cls for *_, cls in classes], site_lines


def is_reference(node: cst.Name | cst.Attribute, parent_of: Callable[[cst.CSTNode], cst.CSTNode | None]) -> bool:
  """Whether ``node`` uses what it names, rather than being part of a longer
  attribute chain or of an import."""
  return not isinstance(parent_of(node), (cst.Attribute, cst.ImportAlias, cst.ImportFrom))


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


def enclosing_fstrings(node: cst.CSTNode, parent_of: Callable[[cst.CSTNode], cst.CSTNode | None]) -> list[cst.FormattedString]:
  """The f-strings whose replacement fields contain ``node``, innermost first."""
  found = []
  while (node := parent_of(node)) is not None:
    if isinstance(node, cst.FormattedString):
      found.append(node)
  return found


def in_self_documenting_field(node: cst.CSTNode, parent_of: Callable[[cst.CSTNode], cst.CSTNode | None]) -> bool:
  """Whether ``node`` is inside an f-string field that prints its own text
  (``{expression=}``)."""
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
