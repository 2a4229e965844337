"""What a module binds at its top level, read from Python's ``ast``: the
view of the files the pass only inspects (those its classes' bases come
from), never rewrites.

Each file is parsed once per process and again only when its modification
time or size changes, so a run over a tree reads each base module once
however many files import it.

The top level includes the bodies of ``if``, ``try`` and ``with``
statements (``try: from flax.linen import Module``), not those of
functions, classes or loops, whose names do not become the module's
attributes by import.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import warnings
from collections.abc import Iterable, Mapping

CLASS = 'class'
IMPORT = 'import'
ALIAS = 'alias'
OTHER = 'other'

# Blocks whose statements run at the module's top level.
_BLOCKS = (ast.If, ast.Try, ast.With, ast.AsyncWith, *((ast.TryStar,) if hasattr(ast, 'TryStar') else ()))


@dataclasses.dataclass(frozen=True)
class Binding:
  """One statement that binds a name at a module's top level.

  ``kind``: ``class`` (``node`` is the ``ast.ClassDef``), ``alias``
  (``node`` is the assigned expression), ``import`` (``module`` and
  ``level`` say where from; ``name`` is the name imported from it, None when
  the module itself is bound) or ``other`` (``node`` is the statement).
  """

  kind: str
  line: int
  node: ast.AST | None = None
  module: str = ''
  level: int = 0
  name: str | None = None


@dataclasses.dataclass(frozen=True)
class ModuleNames:
  """A module's top-level bindings, each name's in source order, and its
  ``from ... import *`` statements (as bindings with ``name`` ``*``)."""

  bindings: Mapping[str, tuple[Binding, ...]]
  stars: tuple[Binding, ...]


class Unreadable(Exception):
  """A module's source cannot be read or parsed; the message says which."""


def _statements(body: Iterable[ast.stmt]) -> Iterable[ast.stmt]:
  for node in body:
    yield node
    if isinstance(node, _BLOCKS):
      for field in ('body', 'orelse', 'finalbody'):
        yield from _statements(getattr(node, field, ()))
      for handler in getattr(node, 'handlers', ()):
        yield from _statements(handler.body)


def _bound_names(target: ast.expr) -> Iterable[str]:
  """The names an assignment to ``target`` binds (``a.b = ...`` binds none)."""
  if isinstance(target, ast.Name):
    yield target.id
  elif isinstance(target, (ast.Tuple, ast.List)):
    for element in target.elts:
      yield from _bound_names(element)
  elif isinstance(target, ast.Starred):
    yield from _bound_names(target.value)


def _bindings_of(node: ast.stmt) -> Iterable[tuple[str, Binding]]:
  line = node.lineno
  if isinstance(node, ast.ClassDef):
    yield node.name, Binding(CLASS, line, node)
  elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
    yield node.name, Binding(OTHER, line, node)
  elif isinstance(node, ast.Import):
    for alias in node.names:
      if alias.asname:
        yield alias.asname, Binding(IMPORT, line, node, alias.name)
      else:
        # ``import a.b`` binds ``a``.
        top = alias.name.split('.', 1)[0]
        yield top, Binding(IMPORT, line, node, top)
  elif isinstance(node, ast.ImportFrom):
    for alias in node.names:
      yield alias.asname or alias.name, Binding(IMPORT, line, node, node.module or '', node.level, alias.name)
  elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    for target in targets:
      if isinstance(target, ast.Name):
        yield target.id, Binding(ALIAS, line, node.value)
      else:
        yield from ((name, Binding(OTHER, line, node)) for name in _bound_names(target))
  elif isinstance(node, (ast.AugAssign, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
    targets = [node.target] if not isinstance(node, (ast.With, ast.AsyncWith)) else [
        item.optional_vars for item in node.items if item.optional_vars is not None]
    for target in targets:
      yield from ((name, Binding(OTHER, line, node)) for name in _bound_names(target))


def names_of(tree: ast.Module) -> ModuleNames:
  """The top-level bindings of a parsed module."""
  bindings: dict[str, list[Binding]] = {}
  stars = []
  for node in _statements(tree.body):
    for name, binding in _bindings_of(node):
      if binding.name == '*':
        stars.append(binding)
      else:
        bindings.setdefault(name, []).append(binding)
  return ModuleNames({name: tuple(found) for name, found in bindings.items()}, tuple(stars))


# path -> (modification time, size, names or the reason they cannot be had)
_CACHE: dict[str, tuple[int, int, ModuleNames | str]] = {}
# Every path asked for, in order, so that a caller can tell which files a
# result read (the engine keeps them with a result it caches, and drops them).
ASKED: list[str] = []


def module_names(path: str) -> ModuleNames:
  """The top-level bindings of the module in ``path``, parsed once per
  process and again only when the file changes.

  Raises:
    Unreadable: the file cannot be read or does not parse; the message
      says which, to follow ``<path> `` in a sentence.
  """
  ASKED.append(path)
  try:
    stat = os.stat(path)
  except OSError as error:
    raise Unreadable(f'cannot be read ({error.strerror})') from None
  cached = _CACHE.get(path)
  if cached is None or cached[:2] != (stat.st_mtime_ns, stat.st_size):
    cached = (stat.st_mtime_ns, stat.st_size, _parse(path))
    _CACHE[path] = cached
  if isinstance(cached[2], str):
    raise Unreadable(cached[2])
  return cached[2]


def _parse(path: str) -> ModuleNames | str:
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as error:
    return f'cannot be read ({error.strerror})'
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      # Bytes, so that ast decodes them as Python does (BOM, coding line).
      return names_of(ast.parse(data, path))
  except (SyntaxError, ValueError, RecursionError, MemoryError):
    return 'does not parse'
