"""Which classes in a file are flax.linen.Module definitions.

A class counts when one of its bases resolves, by qualified name, to
``flax.linen.Module``, or to a class in the same file that counts. Classes
from other files cannot be seen, so sites in their subclasses are reported
rather than rewritten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import libcst as cst
from libcst.metadata import QualifiedName, Scope

from vjpify.transformer.targets import MODULE_BASES


def _local_class_of(base: cst.BaseExpression, scope_of: Callable[[cst.CSTNode], Scope | None]) -> set[cst.ClassDef]:
  if not isinstance(base, cst.Name):
    return set()
  scope = scope_of(base)
  if scope is None:
    return set()
  return {a.node for a in scope[base.value] if isinstance(a.node, cst.ClassDef)}


def module_classes(
    classes: Iterable[cst.ClassDef],
    qualified_names: Callable[[cst.CSTNode], Iterable[QualifiedName]],
    scope_of: Callable[[cst.CSTNode], Scope | None],
) -> frozenset[cst.ClassDef]:
  """Returns the classes that subclass flax.linen.Module, directly or not."""
  local_bases: dict[cst.ClassDef, set[cst.ClassDef]] = {}
  found: set[cst.ClassDef] = set()
  for cls in classes:
    local_bases[cls] = set()
    for arg in cls.bases:
      if arg.keyword is not None or arg.star:
        continue
      names = {q.name for q in qualified_names(arg.value)}
      if names & MODULE_BASES:
        found.add(cls)
      local_bases[cls] |= _local_class_of(arg.value, scope_of)
  changed = True
  while changed:
    changed = False
    for cls, bases in local_bases.items():
      if cls not in found and bases & found:
        found.add(cls)
        changed = True
  return frozenset(found)
