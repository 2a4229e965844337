"""Which classes in a file are flax.linen.Module definitions.

A class counts when one of its bases resolves, by qualified name, to
``flax.linen.Module``, or to a class in the same file that counts. Classes
from other files cannot be seen, so sites in their subclasses are reported
rather than rewritten; ``untraced`` names, for each class that might still be
a Module, the first base that could not be followed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

import libcst as cst
from libcst.metadata import QualifiedName, Scope

from vjpify.transformer.find.targets import MODULE_BASES



@dataclasses.dataclass(frozen=True)
class ModuleClasses:
  """``modules``: classes that subclass flax.linen.Module; ``untraced``: the
  other classes with a base that may or may not be one, mapped to that base."""

  modules: frozenset[cst.ClassDef]
  untraced: Mapping[cst.ClassDef, cst.BaseExpression]

  def __contains__(self, cls: object) -> bool:
    return cls in self.modules


def _local_classes(base: cst.BaseExpression, scope_of: Callable[[cst.CSTNode], Scope | None]) -> set[cst.ClassDef]:
  if not isinstance(base, cst.Name):
    return set()
  scope = scope_of(base)
  if scope is None:
    return set()
  # Builtins have no node; only a class statement in this file counts.
  return {a.node for a in scope[base.value] if isinstance(getattr(a, 'node', None), cst.ClassDef)}


def _builtin(names: set[str]) -> bool:
  # A builtin base (object, Exception, ...) never makes a class a Module.
  return bool(names) and all(n.startswith('builtins.') for n in names)


def module_classes(
    classes: Iterable[cst.ClassDef],
    qualified_names: Callable[[cst.CSTNode], Iterable[QualifiedName]],
    scope_of: Callable[[cst.CSTNode], Scope | None],
) -> ModuleClasses:
  """Sorts the classes of a file into Modules, maybe-Modules and the rest."""
  local_bases: dict[cst.ClassDef, dict[cst.ClassDef, cst.BaseExpression]] = {}
  found: set[cst.ClassDef] = set()
  untraced: dict[cst.ClassDef, cst.BaseExpression] = {}
  for cls in classes:
    local_bases[cls] = {}
    for arg in cls.bases:
      if arg.keyword is not None:
        continue
      names = {q.name for q in qualified_names(arg.value)}
      local = _local_classes(arg.value, scope_of) if not arg.star else set()
      if not arg.star and names & MODULE_BASES:
        found.add(cls)
      elif not local and not _builtin(names):
        untraced.setdefault(cls, arg.value)
      local_bases[cls].update(dict.fromkeys(local, arg.value))
  changed = True
  while changed:
    changed = False
    for cls, bases in local_bases.items():
      if cls not in found and found.intersection(bases):
        found.add(cls)
        changed = True
      elif cls not in found and cls not in untraced:
        via = next((base for local, base in bases.items() if local in untraced), None)
        if via is not None:
          untraced[cls] = via
          changed = True
  return ModuleClasses(frozenset(found), {c: b for c, b in untraced.items() if c not in found})
