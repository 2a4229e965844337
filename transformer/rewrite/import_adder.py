"""LibCST's import adder, made to write imports as a careful person would:
a name merged into an existing ``from m import ...`` goes where sorting puts
it, with the import's own commas and line breaks, and the new imports go
below a docstring written in several pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import libcst as cst
from libcst.codemod.visitors import AddImportsVisitor
from libcst.helpers import get_full_name_for_node

from vjpify.transformer.rewrite.whitespace import split_after_last, without_comments


def _sort_key(names: Sequence[str]) -> Callable[[str], str] | None:
  """The order ``names`` are kept in (ASCII or ignoring case), if any."""
  for key in (str, str.lower):
    if list(names) == sorted(names, key=key):
      return key
  return None


def _separator(node: cst.ImportFrom) -> cst.Comma:
  """The comma-and-whitespace between two names of this import."""
  names = node.names
  for alias in names[:-1]:
    if isinstance(alias.comma, cst.Comma):
      return alias.comma.with_changes(whitespace_after=without_comments(alias.comma.whitespace_after))
  if node.lpar is not None and isinstance(node.lpar.whitespace_after, cst.ParenthesizedWhitespace):
    return cst.Comma(whitespace_after=without_comments(node.lpar.whitespace_after))
  return cst.Comma(whitespace_after=cst.SimpleWhitespace(' '))


def _is_docstring(statement: cst.CSTNode) -> bool:
  return (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
          and isinstance(statement.body[0], cst.Expr)
          and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))


def _is_import(statement: cst.CSTNode) -> bool:
  return (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
          and isinstance(statement.body[0], (cst.Import, cst.ImportFrom)))


class OrderedAddImportsVisitor(AddImportsVisitor):
  """LibCST's AddImportsVisitor, except that a name merged into an existing
  ``from m import ...`` goes where sorting puts it (or last, when the names
  are not sorted), with the import's own commas and line breaks, and that a
  docstring in several pieces stays first.

  It also skips the parts of the file that cannot change: LibCST looks only
  at the imports that open the file and merges names only into those, so
  walking every function and class body is wasted time."""

  def visit_Module(self, node: cst.Module) -> None:
    # LibCST gathers the opening imports by visiting the whole module; the
    # opening statements (and the one that ends them) are all it reads.
    end = 1
    while end < len(node.body) and _is_import(node.body[end]):
      end += 1
    super().visit_Module(node.with_changes(body=node.body[:end + 1]))

  def visit_IndentedBlock(self, node: cst.IndentedBlock) -> bool:
    return False

  def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> bool:
    return False

  def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
    return any(isinstance(statement, cst.ImportFrom) for statement in node.body)

  def leave_ImportFrom(self, original_node: cst.ImportFrom, updated_node: cst.ImportFrom) -> cst.ImportFrom:
    merged = super().leave_ImportFrom(original_node, updated_node)
    if merged is updated_node or isinstance(updated_node.names, cst.ImportStar):
      return merged
    added = list(merged.names[:len(merged.names) - len(updated_node.names)])
    names = list(updated_node.names)
    separator = _separator(updated_node)
    key = _sort_key([get_full_name_for_node(a.name) for a in names])
    for alias in added:
      name = get_full_name_for_node(alias.name)
      index = len(names)
      if key is not None:
        index = next((i for i, a in enumerate(names) if key(get_full_name_for_node(a.name)) > key(name)), len(names))
      if index < len(names):
        names.insert(index, alias.with_changes(comma=separator))
      elif isinstance(names[-1].comma, cst.Comma):
        # A trailing comma stays trailing, after the new last name.
        last = names[-1]
        after_last, closing = split_after_last(last.comma.whitespace_after, separator.whitespace_after)
        names[-1] = last.with_changes(comma=separator.with_changes(whitespace_after=after_last))
        names.append(alias.with_changes(comma=last.comma.with_changes(whitespace_after=closing)))
      else:
        names[-1] = names[-1].with_changes(comma=separator)
        names.append(alias)
    return updated_node.with_changes(names=names)

  def _split_module(self, orig_module: cst.Module, updated_module: cst.Module):
    # LibCST only keeps new imports below a docstring written as one string;
    # "a" "b" is a docstring too, and a __future__ import must stay first.
    before, block, after = super()._split_module(orig_module, updated_module)
    if before or not orig_module.body or not _is_docstring(orig_module.body[0]):
      return before, block, after
    body = list(updated_module.body)
    end = 1
    while end < len(body) and _is_import(orig_module.body[end]):
      end += 1
    return body[:1], body[1:end], body[end:]
