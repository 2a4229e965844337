"""Deciding cheaply whether a file can hold a site, so that LibCST (parse
plus scope metadata, tens of times slower than Python's own parser) runs
only on files that may need it.

Two tests, each conservative: a text test (the file must mention every word
in ``PREFILTER_WORDS``), then a look at Python's ``ast``: some name must be
able to resolve to flax's grad or value_and_grad through the file's absolute
flax imports, or to one of jax's transforms (``JAX_TRANSFORMS``,
``JAX_UNLIFTED``) through the file's jax imports. The ``ast`` test ignores scopes and control flow (an import
inside a function, a class or an ``if`` counts everywhere) and follows plain
assignments (``nn = flax.linen``), which LibCST's qualified names do not, so
it keeps every file that the pass could report on. A file that ``ast``
cannot parse is kept too: the pass then reports why, as it always has.
"""

from __future__ import annotations

import ast
import warnings

from vjpify.transformer.find.targets import (
    GRAD_NAMES, GRAD_TRANSFORMS, JAX_NAMES, JAX_PREFILTER_WORDS, JAX_TRANSFORMS, JAX_UNLIFTED, PREFILTER_WORDS)

# Modules through which a name can lead to a target: flax, flax.linen, ...
_PARENTS = frozenset(name.rsplit('.', i)[0] for name in GRAD_TRANSFORMS for i in range(1, name.count('.') + 1))


def could_contain_sites(code: str) -> bool:
  """False when ``code`` cannot reference flax's grad, so parsing can be skipped."""
  if all(word in code for word in PREFILTER_WORDS):
    return True
  return PREFILTER_WORDS[0] in code and any(word in code for word in JAX_PREFILTER_WORDS)


def _root_name(node: ast.expr) -> str | None:
  """``a`` for ``a.b.c``; None when the chain does not start at a name."""
  while isinstance(node, ast.Attribute):
    node = node.value
  return node.id if isinstance(node, ast.Name) else None


def _target_names(target: ast.expr):
  for node in ast.walk(target):
    if isinstance(node, ast.Name):
      yield node.id


def _references_jax_transform(tree: ast.AST) -> bool:
  """Whether some name may be one of jax's transforms: imported from jax, or
  an attribute of that name on an import of jax."""
  jax_names: set[str] = set()
  attributes: list[ast.Attribute] = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      jax_names.update((a.asname or a.name).split('.', 1)[0] for a in node.names if a.name.split('.')[0] == 'jax')
      if any(a.name in {*JAX_TRANSFORMS, *JAX_UNLIFTED} for a in node.names):
        return True
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == 'jax':
      if any(a.name in JAX_NAMES or a.name == '*' for a in node.names):
        return True
    elif isinstance(node, ast.Attribute) and node.attr in JAX_NAMES:
      attributes.append(node)
  return any(_root_name(node.value) in jax_names for node in attributes)


def _references_grad(tree: ast.AST) -> bool:
  flax_names: set[str] = set()
  grad_attributes: list[ast.Attribute] = []
  assignments: list[tuple[ast.expr, list[ast.expr]]] = []
  for node in ast.walk(tree):
    # Qualified names are spelled out from the imports alone, so only an
    # import of a target or of a module on the way to one can lead to a
    # target.
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name in GRAD_TRANSFORMS:
          return True
        if alias.asname is None and alias.name.split('.', 1)[0] in _PARENTS:
          flax_names.add(alias.name.split('.', 1)[0])
        elif alias.name in _PARENTS:
          flax_names.add(alias.asname)
    elif isinstance(node, ast.ImportFrom):
      if node.level == 0 and node.module in _PARENTS:
        for alias in node.names:
          if f'{node.module}.{alias.name}' in GRAD_TRANSFORMS or alias.name == '*':
            return True
          if f'{node.module}.{alias.name}' in _PARENTS:
            flax_names.add(alias.asname or alias.name)
    elif isinstance(node, ast.Attribute):
      if node.attr in GRAD_NAMES:
        grad_attributes.append(node)
    elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
      targets = node.targets if isinstance(node, ast.Assign) else [node.target]
      if node.value is not None:
        assignments.append((node.value, targets))
  if not grad_attributes or not flax_names:
    return False
  # Names bound, directly or through other names, to something reached
  # from a flax import.
  grown = True
  while grown:
    grown = False
    for value, targets in assignments:
      if any(isinstance(n, ast.Name) and n.id in flax_names for n in ast.walk(value)):
        for name in (n for target in targets for n in _target_names(target)):
          if name not in flax_names:
            flax_names.add(name)
            grown = True
  return any(_root_name(node.value) in flax_names for node in grad_attributes)


def parse_quietly(code: str) -> ast.Module | None:
  """``code``'s ast, or None when Python cannot parse it; warnings about the
  code (invalid escapes and the like) are the file's business, not ours."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      return ast.parse(code)
  except (SyntaxError, ValueError, RecursionError, MemoryError):
    return None


def may_hold_sites(code: str, tree: ast.Module | None = None) -> bool:
  """False only when no name in ``code`` can resolve to flax's grad or
  value_and_grad, nor to a jax transform, so the pass would neither change nor report anything.

  Note that a file Python cannot parse counts as holding sites, so that
  the pass reports its syntax error. ``tree``: ``code``'s ast, when the
  caller has parsed it already.
  """
  if not could_contain_sites(code):
    return False
  if tree is None:
    tree = parse_quietly(code)
  return tree is None or _references_grad(tree) or _references_jax_transform(tree)
