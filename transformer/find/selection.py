"""Choosing the top-level statements the pass must see, so that LibCST's
cost follows the sites rather than the file.

LibCST parses and builds scope metadata for everything it is handed, tens
of times slower than Python's own parser. So the file is cut at its
top-level statements (with Python's own parser and compiler, statement by
statement), and LibCST is handed a copy that holds only:

- the statements that may hold a site (``find.spelling.may_hold_site``, the one
  place that says which statements matter, from the names they spell);
- every statement that imports at module level (the imports that open the
  file are where new imports go, and the first statement, a docstring or
  not, stays first);
- every statement that binds at module level a name those statements
  mention, and so on until nothing more is needed (a base class defined in
  the file, an alias, a name rebound elsewhere).

Each run of other statements becomes one string literal spanning the same
lines, so that every kept node keeps its line and column; the pass's output
gets the original text back in place of each such literal, by offset.

Every statement left out is compiled alone first, so that a file that does
not compile goes the whole way (and gets today's error). Where the copy
cannot be sure to mean the same to the pass (a star import, a lone CR line
break, a statement that does not compile alone), :func:`select` answers
None and the pass runs on the whole file.
"""

from __future__ import annotations

import ast
import bisect
import dataclasses
import dis
import itertools
import re
import types
import warnings

from vjpify.transformer.find.spelling import (
    KEEP_WORDS, SCOPES, grad_import_names, imports_at_module_level, may_hold_site, words)

# Where a top-level statement may start: a line that opens with neither
# whitespace, a comment, a closing bracket nor a clause of the statement
# before. A start inside a string or brackets is caught by compiling.
_START = re.compile(r'^(?![ \t\f\r\n#)\]}]|(?:else|elif|except|finally)\b)', re.M)
_NEWLINE = re.compile(r'\r\n|\n')
_IMPORT = re.compile(r'\bimport\b')


def _module_bindings(statements: list[ast.stmt]) -> set[str]:
  """Every name ``statements`` may bind at module level (a superset: names
  bound in comprehensions count, and any ``global`` name)."""
  bound: set[str] = set()
  stack: list[ast.AST] = list(statements)
  while stack:
    node = stack.pop()
    if isinstance(node, SCOPES):
      if not isinstance(node, ast.Lambda):
        bound.add(node.name)
        bound.update(n for inner in ast.walk(node) if isinstance(inner, (ast.Global, ast.Nonlocal)) for n in inner.names)
      # What a definition evaluates where it stands: decorators, bases,
      # defaults and annotations (a walrus there binds here).
      body = node.body if isinstance(node.body, list) else [node.body]
      inside = set(map(id, body))
      stack.extend(c for c in ast.iter_child_nodes(node) if id(c) not in inside)
      continue
    if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
      bound.add(node.id)
    elif isinstance(node, ast.alias):
      bound.add(node.asname or node.name.split('.')[0])
    elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar, ast.MatchMapping)):
      bound.update(words(node))
    stack.extend(ast.iter_child_nodes(node))
  return bound


# How module-level code binds a name: every binding but an annotation
# without a value, a walrus in a comprehension and a ``global`` in a
# function stores it by name.
_STORES = frozenset(dis.opmap[name] for name in ('STORE_NAME', 'DELETE_NAME'))
_EXTENDED_ARG = dis.opmap['EXTENDED_ARG']
# Text that may bind a name in a way the module's own stores miss.
_OTHER_BINDINGS = re.compile(r':=|\bglobal\b|\bnonlocal\b')


def _stored_names(code: types.CodeType) -> frozenset[str] | None:
  """The names ``code`` (a module's) stores or deletes by name; None when
  it may bind others (an annotation of a name, which LibCST counts)."""
  if '__annotations__' in code.co_names:
    return None
  stored = set()
  raw = code.co_code
  argument = 0
  for index in range(0, len(raw), 2):
    op, argument = raw[index], argument | raw[index + 1]
    if op == _EXTENDED_ARG:
      argument <<= 8
      continue
    if op in _STORES:
      stored.add(code.co_names[argument])
    argument = 0
  return frozenset(stored)


@dataclasses.dataclass
class _Chunk:
  start: int
  end: int
  text: str
  stored: frozenset[str] | None
  parsed: list[ast.stmt] | None = None

  def statements(self) -> list[ast.stmt]:
    if self.parsed is None:
      self.parsed = ast.parse(self.text).body
    return self.parsed

  def may_bind(self, names: set[str]) -> bool:
    """Whether this chunk may bind any of ``names`` at module level."""
    if self.stored is not None and not _OTHER_BINDINGS.search(self.text):
      return not self.stored.isdisjoint(names)
    return not _module_bindings(self.statements()).isdisjoint(names)


def _compiled(text: str) -> types.CodeType | None:
  try:
    return compile(text, '<chunk>', 'exec', dont_inherit=True)
  except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
    return None


def _chunks(code: str) -> list[_Chunk] | None:
  """``code`` cut at its top-level statements, each of which compiles
  alone; None when some part does not compile, joined to what follows."""
  starts = [0, *(m.start() for m in _START.finditer(code) if 0 < m.start() < len(code)), len(code)]
  chunks = []
  index = 0
  last = len(starts) - 1
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    while index < last:
      # A start inside a string, brackets or a decorated definition fails
      # to compile; join ever more of what follows until it does.
      step = 1
      while (compiled := _compiled(code[starts[index]:starts[min(index + step, last)]])) is None:
        if index + step >= last:
          return None
        step *= 2
      end = min(index + step, last)
      chunks.append(_Chunk(starts[index], starts[end], code[starts[index]:starts[end]], _stored_names(compiled)))
      index = end
  return chunks


def _matching(pattern: re.Pattern, code: str, chunks: list[_Chunk], starts: list[int]) -> set[int]:
  """The chunks in which ``pattern`` matches, from one search of ``code``."""
  found = set()
  position = 0
  while (match := pattern.search(code, position)) is not None:
    index = bisect.bisect_right(starts, match.start()) - 1
    found.add(index)
    position = chunks[index].end  # the rest of this chunk cannot add to it
  return found


def _word_pattern(names: set[str]) -> re.Pattern:
  return re.compile(r'\b(?:' + '|'.join(sorted(map(re.escape, names), key=len, reverse=True)) + r')\b')


def _mentions(chunk: _Chunk) -> set[str]:
  return {n.id for s in chunk.statements() for n in ast.walk(s) if isinstance(n, ast.Name)}


class _Unsure(Exception):
  """The copy might not mean to the pass what the file means."""


def _opens_block(statement: ast.stmt) -> bool:
  body = getattr(statement, 'body', None)
  return isinstance(body, list) and bool(body) and body[0].lineno > statement.lineno


def _kept(code: str, chunks: list[_Chunk]) -> tuple[set[int], set[int]]:
  """The chunks LibCST must see, and those of them that may hold a site."""
  starts = [chunk.start for chunk in chunks]
  # The first indented block sets LibCST's default indentation.
  first_block = next((i for i, c in enumerate(chunks) if any(map(_opens_block, c.statements()))), 0)
  kept = {0, first_block}
  jax_modules: set[str] = set()
  for index in _matching(_IMPORT, code, chunks, starts):
    aliases = imports_at_module_level(chunks[index].statements())
    if aliases is None:
      continue
    if any(alias.name == '*' for alias in aliases):
      raise _Unsure('a star import may bind any name')
    jax_modules |= {alias.asname or alias.name for alias in aliases if alias.name == 'jax'}
    kept.add(index)
  # New imports go after the imports that open the file, which are all
  # kept; the literal standing for the statement that ends them ends them
  # too, since it is no import.
  grad_names = grad_import_names([s for i in kept for s in chunks[i].statements()])
  site_text = re.compile('|'.join([KEEP_WORDS.pattern, *map(re.escape, grad_names)]))
  sites = {index for index in _matching(site_text, code, chunks, starts)
           if any(may_hold_site(s, grad_names) for s in chunks[index].statements())}
  kept |= sites
  if any(_mentions(chunks[i]) & jax_modules for i in sites):
    # Lifting a jax transform may leave ``import jax`` unused, and the
    # import is removed only if no statement the pass sees still uses it.
    users = _matching(_word_pattern(jax_modules), code, chunks, starts)
    kept |= {i for i in users if _mentions(chunks[i]) & jax_modules}
  # Every statement that may bind a name the kept ones mention, and so on.
  needed: set[str] = set()
  new = set().union(*(_mentions(chunks[i]) for i in kept))
  while new:
    needed |= new
    candidates = _matching(_word_pattern(new), code, chunks, starts) - kept
    new = set()
    for index in sorted(candidates):
      if chunks[index].may_bind(needed):
        kept.add(index)
        new |= _mentions(chunks[index]) - needed
  return kept, sites


@dataclasses.dataclass(frozen=True)
class Selection:
  """``code``: the copy LibCST is handed; ``cuts``: for each run of
  statements left out, the literal standing for it and its original text."""

  code: str
  cuts: tuple[tuple[str, str], ...]
  sites_possible: bool = True

  def restore(self, output: str) -> str | None:
    """``output`` (the pass's result on ``code``) with each run's original
    text in place of its literal; None when the pass changed one."""
    pieces = []
    position = 0
    for literal, original in self.cuts:
      found = output.find(literal, position)
      if found < 0:
        return None
      pieces += [output[position:found], original]
      position = found + len(literal)
    pieces.append(output[position:])
    return ''.join(pieces)


NO_SITES = Selection('', (), sites_possible=False)


def _literal(marker: str, number: int, text: str) -> str:
  """A string statement spanning the lines of ``text``, with its line breaks."""
  breaks = _NEWLINE.findall(text)
  if text.endswith(('\n', '\r')):
    return f'"""{marker}{number}-{"".join(breaks[:-1])}"""{breaks[-1]}'
  return f'"""{marker}{number}-{"".join(breaks)}"""'


def select(code: str) -> Selection | None:
  """What of ``code`` the pass must see: :data:`NO_SITES` when no statement
  may hold a site, None when the whole file must go through the pass.

  Note that ``code`` is expected to pass ``prefilter.could_contain_sites``.
  """
  if '\r' in code.replace('\r\n', ''):
    return None  # a lone CR ends a line for LibCST but not for the cut
  chunks = _chunks(code)
  if not chunks:
    return None
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      kept, sites = _kept(code, chunks)
  except (_Unsure, SyntaxError, ValueError, RecursionError, MemoryError):
    return None
  if not sites:
    return NO_SITES
  if len(kept) == len(chunks):
    return None
  marker = next(f'#cut-{n}-' for n in itertools.count() if f'#cut-{n}-' not in code)
  pieces, cuts = [], []
  for is_kept, run in itertools.groupby(range(len(chunks)), key=kept.__contains__):
    text = ''.join(chunks[i].text for i in run)
    if is_kept:
      pieces.append(text)
    else:
      literal = _literal(marker, len(cuts), text)
      pieces.append(literal)
      cuts.append((literal, text))
  return Selection(''.join(pieces), tuple(cuts))
