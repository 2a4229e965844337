"""Whether a class named in another module is a ``flax.linen.Module``
subclass, traced through the files of the project and the installed
packages.

The trace follows, through any number of files: relative and absolute
imports (``from ..base import Base``, ``from mylib.models import Block``),
re-exports in ``__init__.py`` (also through ``from x import *``),
``import pkg.mod as m`` then ``m.Base``, aliases (``Module = module.Module``)
and the bases of every class it reaches. A name counts as a Module when it
is ``flax.linen.Module`` or one of the configured ``module-bases``, by
qualified name, before any file is read. Names from the standard library
are never Modules; builtins neither.

Modules are found on disk (``find.project``) and read with Python's
``ast`` (``find.module_names``); nothing is imported. Import cycles end the
search where they close. When the search stops (a module that is neither
in the project nor installed, a name bound by a call, a file that does not
parse), the :class:`Trace` says at which file and line, and why.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import os
import sys
from collections.abc import Iterable

from vjpify.transformer.find import module_names as names
from vjpify.transformer.find.project import Found, find_submodule, module_name, project_root, search_folders
from vjpify.transformer.find.targets import MODULE_BASES

_STDLIB = frozenset(getattr(sys, 'stdlib_module_names', ())) | {'builtins', '__future__'}

# How many names deep a trace goes (each import, alias or base is one), far
# beyond real code, well within Python's recursion limit.
MAX_DEPTH = 100


@dataclasses.dataclass(frozen=True)
class Trace:
  """Whether a base is a flax.linen.Module subclass: ``module`` is True or
  False, or None when the search stopped; ``stop`` then says where and why
  (``path:line: what``), and ``name`` is the qualified name that could not
  be followed, when there is one, for the user to name in ``module-bases``."""

  module: bool | None
  stop: str | None = None
  name: str | None = None


IS_MODULE = Trace(True)
NOT_MODULE = Trace(False)


def combined(traces: Iterable[Trace]) -> Trace:
  """One trace for a name that may be any of several things (several
  bases, or several bindings): a Module if any is one; else the first stop;
  else not a Module."""
  stopped = None
  for trace in traces:
    if trace.module:
      return trace
    if trace.module is None and stopped is None:
      stopped = trace
  return stopped or NOT_MODULE


def _attribute_chain(node: ast.expr) -> tuple[str, tuple[str, ...]] | None:
  """``('a', ('b', 'c'))`` for ``a.b.c``; None for anything else."""
  attrs = []
  while isinstance(node, ast.Attribute):
    attrs.append(node.attr)
    node = node.value
  return (node.id, tuple(reversed(attrs))) if isinstance(node, ast.Name) else None


class BaseTracer:
  """Traces the bases named in one file (``path``) to flax.linen.Module.

  ``module_bases``: fully qualified names of further classes to count as
  Module bases. The tracer remembers the classes it decided and the folders
  it looked in, for the one file's pass; parsed modules are shared by the
  whole process (``find.module_names``).
  """

  def __init__(self, path: str, module_bases: Iterable[str] = ()):
    self._shown = path
    self._path = os.path.abspath(path)
    self.bases = MODULE_BASES | frozenset(module_bases)
    self._root: str | None = None
    self._folders: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    self._classes: dict[tuple[str, int, int], Trace] = {}
    self._depth = 0

  def _search_folders(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if self._folders is None:
      if self._shown == '-' or self._shown.startswith('<'):
        # Standard input, or a string with no file behind it: no project.
        self._folders = ((), search_folders(self._path, None)[1])
      else:
        self._root = project_root(self._path)
        self._folders = search_folders(self._path, self._root)
    return self._folders

  def _show(self, file: str) -> str:
    """``file`` as diagnostics name it: the file being transformed as it
    was given, others relative to the project root when inside it."""
    if file == self._path:
      return self._shown
    self._search_folders()
    if self._root and file.startswith(self._root + os.sep):
      return os.path.relpath(file, self._root).replace(os.sep, '/')
    return file

  def _stop(self, file: str, line: int, what: str, name: str | None = None) -> Trace:
    return Trace(None, f'{self._show(file)}:{line}: {what}', name)

  def is_named_base(self, class_name: str) -> bool:
    """Whether the top-level class ``class_name`` of the file itself is a
    Module base by its qualified name (flax's own ``module.py`` defines
    ``flax.linen.module.Module``)."""
    if self._shown == '-' or self._shown.startswith('<'):
      return False
    qualified = module_name(self._path)
    return bool(qualified) and f'{qualified}.{class_name}' in self.bases

  def trace(self, qualified_name: str, line: int) -> Trace:
    """Whether ``qualified_name`` (as LibCST spells what the file imports:
    ``.base.Base`` for a relative import, ``pkg.mod.Base``) is a Module
    class; ``line`` is where the file imports it."""
    level = len(qualified_name) - len(qualified_name.lstrip('.'))
    parts = tuple(qualified_name[level:].split('.')) if qualified_name[level:] else ()
    return self._dotted(self._path, line, level, parts, frozenset())

  # -- Names, modules and files ----------------------------------------------

  def _top(self, name: str) -> Found | Trace | None:
    """The top-level module ``name`` of an absolute import."""
    project, installed = self._search_folders()
    found = find_submodule(name, project)
    if found is None and name in _STDLIB:
      return NOT_MODULE
    return found or find_submodule(name, installed)

  def _start(self, file: str, level: int, first: str | None) -> Found | Trace | None:
    """Where an import from ``file`` starts: for an absolute one, the
    top-level module ``first``; for a relative one, the package ``level``
    dots up."""
    if level == 0:
      return self._top(first) if first else NOT_MODULE
    anchor = os.path.dirname(file)
    for _ in range(level - 1):
      anchor = os.path.dirname(anchor)
    init = os.path.join(anchor, '__init__.py')
    return Found(init if os.path.isfile(init) else None, (anchor,))

  def _dotted(self, file: str, line: int, level: int, parts: tuple[str, ...], seen: frozenset,
              star: bool = False) -> Trace | None:
    """What ``parts`` names when ``file`` imports it at ``line``, ``level``
    dots up from the file's package (0: an absolute import). With ``star``
    (the name is looked for through ``from ... import *``), None when the
    module does not define it."""
    written = '.' * level + '.'.join(parts)
    if level == 0 and written in self.bases:
      return IS_MODULE
    current = self._start(file, level, parts[0] if parts else None)
    if isinstance(current, Trace):
      return current
    if current is None:
      return self._stop(file, line, f'cannot find {written}: {parts[0]} is neither in the project nor installed',
                        written)
    index = 0 if level else 1
    while index < len(parts):
      part = parts[index]
      found = find_submodule(part, current.folders) if current.folders else None
      if found is not None:
        current, index = found, index + 1
        continue
      trace = self._name_in(current.file, part, parts[index + 1:], seen) if current.file else None
      if trace is None and not star:
        where = self._show(current.file) if current.file else self._show(current.folders[0]) + '/'
        return self._stop(file, line, f'cannot find {written}: {where} has no module or name {part}',
                          None if level else written)
      return trace
    return NOT_MODULE  # a module, not a class

  def _name_in(self, file: str, name: str, attrs: tuple[str, ...], seen: frozenset) -> Trace | None:
    """What ``name.attrs`` is in the module ``file``; None when the module
    does not define ``name``."""
    if self._depth >= MAX_DEPTH:
      return Trace(None, f'{self._show(file)}: {name} is more than {MAX_DEPTH} imports, aliases and bases away')
    self._depth += 1
    try:
      return self._defined_in(file, name, attrs, seen)
    finally:
      self._depth -= 1

  def _defined_in(self, file: str, name: str, attrs: tuple[str, ...], seen: frozenset) -> Trace | None:
    try:
      module = names.module_names(file)
    except names.Unreadable as error:
      return Trace(None, f'{self._show(file)}: the file {error}')
    bindings = module.bindings.get(name)
    key = (file, name, attrs)
    if key in seen:
      line = bindings[0].line if bindings else 1
      return self._stop(file, line, f'{name} is imported in a cycle that never reaches its definition')
    seen = seen | {key}
    if bindings:
      return combined(self._binding(file, name, b, attrs, seen) for b in bindings)
    for star in module.stars:
      parts = (*(star.module.split('.') if star.module else ()), name, *attrs)
      trace = self._dotted(file, star.line, star.level, parts, seen, star=True)
      if trace is not None:
        return trace
    return None

  def _binding(self, file: str, name: str, binding: names.Binding, attrs: tuple[str, ...], seen: frozenset) -> Trace:
    if binding.kind == names.CLASS:
      if attrs:
        return self._stop(file, binding.line, f'{name}.{".".join(attrs)} is an attribute of a class, '
                          'which vjpify does not follow')
      return self.trace_class(file, binding.node)
    if binding.kind == names.ALIAS:
      return self._expression(file, binding.node, binding.line, attrs, seen)
    if binding.kind == names.IMPORT:
      if binding.name is None:
        return self._dotted(file, binding.line, 0, (*binding.module.split('.'), *attrs), seen)
      module = binding.module.split('.') if binding.module else []
      return self._dotted(file, binding.line, binding.level, (*module, binding.name, *attrs), seen)
    return self._stop(file, binding.line, f'{name} is bound by a statement other than a class, an import '
                      'or a plain assignment, which vjpify does not follow')

  def _expression(self, file: str, node: ast.expr, line: int, attrs: tuple[str, ...], seen: frozenset) -> Trace:
    """What the expression ``node`` (a base, or an alias's value) in the
    module ``file`` names, followed by ``attrs``."""
    if isinstance(node, ast.Subscript):  # Generic[T], Base[int]
      node = node.value
    chain = _attribute_chain(node)
    if chain is None:
      return self._stop(file, line, f'{ast.unparse(node)} is an expression vjpify does not follow')
    name, more = chain
    trace = self._name_in(file, name, (*more, *attrs), seen)
    if trace is not None:
      return trace
    if hasattr(builtins, name):
      return NOT_MODULE
    return self._stop(file, line, f'{name} is not defined in this module')

  # -- Classes ---------------------------------------------------------------

  def trace_class(self, file: str, node: ast.ClassDef) -> Trace:
    """Whether the class ``node`` of the module ``file`` is a Module."""
    key = (file, node.lineno, node.col_offset)
    known = self._classes.get(key)
    if known is not None:
      return known
    qualified = module_name(file)
    if qualified and f'{qualified}.{node.name}' in self.bases:
      self._classes[key] = IS_MODULE
      return IS_MODULE
    # A class that reaches itself again (only through an import cycle) is
    # not a Module by that way round.
    self._classes[key] = NOT_MODULE
    traces = []
    for base in node.bases:
      if isinstance(base, ast.Starred):
        traces.append(self._stop(file, base.lineno, f'class {node.name} unpacks its bases, which vjpify does not follow'))
      else:
        traces.append(self._expression(file, base, base.lineno, (), frozenset()))
    trace = combined(traces)
    self._classes[key] = trace
    return trace
