"""Which classes in a file are flax.linen.Module definitions.

A class counts when one of its bases resolves to ``flax.linen.Module`` (or
to a configured ``module-bases`` name), by qualified name; or to a class in
the same file that counts; or, through aliases in the file
(``Module = nn.Module``, ``Module = module.Module``, ``Base = Local``, and
chains of them, in any scope), to either; or to a class in another file
that counts, traced by ``find.bases``. ``untraced`` names, for each class
that might still be a Module, the base that could not be followed and where
the search stopped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import libcst as cst
from libcst.metadata import Assignment, ImportAssignment, QualifiedNameSource

from vjpify.transformer.find.bases import IS_MODULE, NOT_MODULE, BaseTracer, Trace, combined
from vjpify.transformer.find.metadata import Metadata


@dataclasses.dataclass(frozen=True)
class Untraced:
  """A base that may or may not be a Module: ``base`` as the class spells
  it, and ``trace``, which says where the search stopped."""

  base: cst.BaseExpression
  trace: Trace


@dataclasses.dataclass(frozen=True)
class ModuleClasses:
  """``modules``: classes that subclass flax.linen.Module; ``untraced``: the
  other classes with a base that may or may not be one."""

  modules: frozenset[cst.ClassDef]
  untraced: Mapping[cst.ClassDef, Untraced]

  def __contains__(self, cls: object) -> bool:
    return cls in self.modules


class _Bases:
  """Reads what each base expression of the file may be."""

  def __init__(self, metadata: Metadata, tracer: BaseTracer, path: str):
    self._metadata = metadata
    self._tracer = tracer
    self._path = path

  def _line(self, node: cst.CSTNode) -> int:
    where = self._metadata.range_of(node)
    return where.start.line if where else 1

  def _stop(self, node: cst.CSTNode, what: str) -> Trace:
    return Trace(None, f'{self._path}:{self._line(node)}: {what}')

  def _import_line(self, node: cst.BaseExpression) -> int:
    """The line of the import that binds the name ``node`` starts with."""
    root = node
    while isinstance(root, cst.Attribute):
      root = root.value
    scope = self._metadata.scope_of(root) if isinstance(root, cst.Name) else None
    imports = [a.node for a in scope[root.value] if isinstance(a, ImportAssignment)] if scope else []
    return self._line(imports[0]) if imports else self._line(node)

  def _aliases(self, node: cst.Name, seen: frozenset) -> tuple[list[Trace], set[cst.ClassDef]]:
    """What the assignments to the name ``node`` in this file make it: the
    classes it may be, and the traces of what it is bound to otherwise.
    Imports are left to the qualified names."""
    scope = self._metadata.scope_of(node)
    traces: list[Trace] = []
    local: set[cst.ClassDef] = set()
    for assignment in scope[node.value] if scope is not None else ():
      bound = getattr(assignment, 'node', None)
      if isinstance(assignment, ImportAssignment) or not isinstance(assignment, Assignment):
        continue  # an import: its qualified names say what it is; a builtin has no node
      if isinstance(bound, cst.ClassDef):
        local.add(bound)
        continue
      statement = self._metadata.parent_of(bound)
      if isinstance(statement, cst.AssignTarget) and statement.target is bound:
        statement = self._metadata.parent_of(statement)
      elif not (isinstance(statement, cst.AnnAssign) and statement.target is bound and statement.value):
        statement = None
      if isinstance(statement, (cst.Assign, cst.AnnAssign)):
        trace, classes = self.read(statement.value, seen | {node.value})
        traces.append(trace)
        local |= classes
      else:
        traces.append(self._stop(bound, f'{node.value} is bound by a statement other than a class, an import '
                                 'or a plain assignment, which vjpify does not follow'))
    return traces, local

  def read(self, node: cst.BaseExpression, seen: frozenset = frozenset()) -> tuple[Trace, set[cst.ClassDef]]:
    """What the base (or aliased value) ``node`` may be: the trace of what
    it names outside this file's classes, and the classes of this file it
    may be."""
    if isinstance(node, cst.Subscript):  # Generic[T], Base[int]
      node = node.value
    if not isinstance(node, (cst.Name, cst.Attribute)):
      return self._stop(node, f'{self._metadata.code_for(node)} is an expression vjpify does not follow'), set()
    qualified = self._metadata.qualified_names(node)
    if any(q.name in self._tracer.bases for q in qualified):
      return IS_MODULE, set()
    traces: list[Trace] = []
    local: set[cst.ClassDef] = set()
    if isinstance(node, cst.Name) and node.value not in seen:
      traces, local = self._aliases(node, seen)
    for name in qualified:
      if name.source == QualifiedNameSource.IMPORT:
        traces.append(self._tracer.trace(name.name, self._import_line(node)))
      elif name.source == QualifiedNameSource.BUILTIN:
        traces.append(NOT_MODULE)
    if not traces and not local:
      # A local name bound by nothing this file shows (``del``, a
      # comprehension variable), or an attribute of a local object.
      traces.append(self._stop(node, f'{self._metadata.code_for(node)} is not a name vjpify can follow'))
    return combined(traces), local


def module_classes(classes: Iterable[cst.ClassDef], metadata: Metadata, tracer: BaseTracer,
                   path: str) -> ModuleClasses:
  """Sorts the classes of a file (shown in diagnostics as ``path``) into
  Modules, maybe-Modules and the rest."""
  bases = _Bases(metadata, tracer, path)
  local_bases: dict[cst.ClassDef, dict[cst.ClassDef, cst.BaseExpression]] = {}
  found: set[cst.ClassDef] = set()
  untraced: dict[cst.ClassDef, Untraced] = {}
  for cls in classes:
    local_bases[cls] = {}
    if isinstance(metadata.parent_of(cls), cst.Module) and tracer.is_named_base(cls.name.value):
      found.add(cls)
    for arg in cls.bases:
      if arg.keyword is not None:
        continue
      if arg.star:
        trace, local = bases._stop(arg.value, f'class {cls.name.value} unpacks its bases, '
                                   'which vjpify does not follow'), set()
      else:
        trace, local = bases.read(arg.value)
      if trace.module:
        found.add(cls)
      elif trace.module is None:
        untraced.setdefault(cls, Untraced(arg.value, trace))
      local_bases[cls].update(dict.fromkeys(local, arg.value))
  changed = True
  while changed:
    changed = False
    for cls, local in local_bases.items():
      if cls not in found and found.intersection(local):
        found.add(cls)
        changed = True
      elif cls not in found and cls not in untraced:
        via = next(((base, untraced[c].trace) for c, base in local.items() if c in untraced), None)
        if via is not None:
          untraced[cls] = Untraced(*via)
          changed = True
  return ModuleClasses(frozenset(found), {c: u for c, u in untraced.items() if c not in found})
