"""A cut-down copy of a file for the pass to analyse, and the way back.

LibCST's metadata (scopes, qualified names, positions) costs many times the
parse, over the whole file, while sites sit in a few methods. So the pass
runs on a copy in which every function and class that cannot matter to it is
cut down to a stub on its own lines: ``def name():`` or ``class Name(bases):``
and a body of one marked string literal spanning the rest of its lines (one
node, where a comment per line would cost the pass a node per line).
Whatever the pass reads is kept: the line and column of every kept node, the
names each scope binds where they can matter, imports, class bases, the
indentation of the first indented block (LibCST's default indentation) and
every line ending. The pass's output then gets the original lines back in
place of the stub lines, which it never changes.

A function or class stays whole when it may hold a site, by the test that
also chooses the top-level statements the pass sees
(``find.spelling.keeps_whole``): an identifier in it is the name of one
of flax's or jax's grad transforms or a name the pass may emit; a string in
it that is not a statement of its own (an annotation may be one) has such
a name among its identifiers; it names something a grad import binds, or
the module that ``import jax`` binds where the file spells a jax transform
through it (lifting removes that import only if nothing reads it); it
draws random numbers by name (``make_rng``, which lifting reads); or it
declares ``global`` or ``nonlocal`` names (which bind names in other
scopes). Comments and docstrings name nothing the pass reads. The layout
decisions that read the whole file (its line length, its preferred quote)
are made on the original by the pass itself.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import re

from vjpify.transformer.find.spelling import grad_import_names, jax_transform_modules, keeps_whole

_LINE = re.compile(r'[^\r\n]*(?:\r\n|\n)|[^\r\n]+\Z')
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclasses.dataclass(frozen=True)
class Reduction:
  """``code``: the cut-down file; ``stubs`` and ``originals``: for each stub
  line, by its marker, the line as in ``code`` and the line it replaced."""

  code: str
  marker: str
  stubs: dict[str, str]
  originals: dict[str, str]

  def restore(self, output: str) -> str | None:
    """``output`` (the pass's result on ``code``) with the original lines in
    place of the stub lines; None when the pass changed or moved a stub line."""
    stub_marker = re.compile(re.escape(self.marker) + r'\d+')
    restored = []
    found = 0
    for line in _LINE.findall(output):
      marked = stub_marker.search(line)
      if marked is None:
        restored.append(line)
        continue
      key = marked.group()
      if self.stubs.get(key) != line:
        return None
      restored.append(self.originals[key])
      found += 1
    return ''.join(restored) if found == len(self.originals) else None


def _leading_space(line: str) -> str:
  return line[:len(line) - len(line.lstrip(' \t\f'))]


class _Reducer:

  def __init__(self, lines: list[str], tree: ast.Module, marker: str):
    self._lines = lines
    self._marker = marker
    # A definition that reads a name of either kind stays whole.
    self._grad_names = grad_import_names(tree.body) | jax_transform_modules(tree.body)
    self.replaced: dict[int, str] = {}

  def _indented_body(self, node: ast.stmt) -> str | None:
    """The leading whitespace of the first body line, when the body is an
    indented block rather than a suite on the header's line."""
    first = node.body[0]
    line = self._lines[first.lineno - 1]
    # col_offset counts UTF-8 bytes.
    if first.lineno == node.lineno or line.encode('utf-8')[:first.col_offset].strip(b' \t\f'):
      return None
    return _leading_space(line)

  def _stub(self, node: ast.stmt, first: int) -> None:
    body_lead = self._indented_body(node)
    if body_lead is None or node.end_lineno - first < 1:
      return
    lead = _leading_space(self._lines[first - 1])
    if isinstance(node, ast.ClassDef):
      arguments = [ast.unparse(b) for b in node.bases]
      arguments += [f'{k.arg}={ast.unparse(k.value)}' if k.arg else f'**{ast.unparse(k.value)}' for k in node.keywords]
      header = f'class {node.name}({", ".join(arguments)}):'
    else:
      header = f'def {node.name}():'
    self.replaced[first] = f'{lead}{header}  {self._marker}{first}'
    last = node.end_lineno
    for number in range(first + 1, last + 1):
      opening = f'{body_lead}"""' if number == first + 1 else ''
      closing = '"""' if number == last else ''
      self.replaced[number] = f'{opening}{self._marker}{number}{closing}'

  def reduce(self, body: list[ast.stmt]) -> None:
    for node in body:
      if not isinstance(node, _DEFINITIONS):
        continue
      first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
      if keeps_whole(node, self._grad_names):
        # The defs nested in a function that is kept may be what a jax
        # transform there differentiates: the pass reads their bodies.
        if isinstance(node, ast.ClassDef):
          self.reduce(node.body)
      else:
        self._stub(node, first)


def reduce_source(code: str, tree: ast.Module) -> Reduction | None:
  """The cut-down copy of ``code`` (whose ``ast`` is ``tree``), or None when
  nothing can be cut or the file's line breaks are not plain ones."""
  if '\r' in code.replace('\r\n', ''):
    return None  # a lone CR ends a line for LibCST but not for this module
  lines = _LINE.findall(code)
  marker = next(f'#vjpify-stub-{n}-' for n in itertools.count() if f'#vjpify-stub-{n}-' not in code)
  reducer = _Reducer(lines, tree, marker)
  reducer.reduce(tree.body)
  if not reducer.replaced:
    return None
  reduced = []
  stubs = {}
  originals = {}
  for number, line in enumerate(lines, start=1):
    new = reducer.replaced.get(number)
    if new is None:
      reduced.append(line)
      continue
    key = f'{marker}{number}'
    stubs[key] = new + line[len(line.rstrip('\r\n')):]
    originals[key] = line
    reduced.append(stubs[key])
  return Reduction(''.join(reduced), marker, stubs, originals)
