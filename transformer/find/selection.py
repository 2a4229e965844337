"""Choosing the top-level statements the pass must see, so that LibCST's
cost follows the sites rather than the file.

LibCST parses and builds scope metadata for everything it is handed, tens
of times slower than Python's own parser. So the file is cut at its
top-level statements (with Python's own parser and compiler, statement by
statement), and LibCST is handed a copy that holds only:

- the statements that may hold a site (:func:`may_hold_site`, the one place
  that says which statements matter, from the names they spell);
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

from vjpify.transformer.find.targets import (
    GRAD_NAMES, HELPER_ALIAS_PREFIX, JAX_NAMES, RNG_METHOD, RUNTIME_HELPERS, VJP_ALIAS_PREFIX)

# Words a statement that matters must spell: the names of flax's grad
# transforms (sites and references), the names the pass may emit (it must
# see wherever the file binds or reads them), and the words of strings
# that may be annotations naming them. A new kind of site adds its words
# here; :func:`may_hold_site` reads the rest from the ast.
KEEP_WORDS = re.compile(r'grad|vjp|compiled|jvp|jac|hessian|linearize')
KEEP_NAME = re.compile(
    f'(?:(?:{HELPER_ALIAS_PREFIX}|{VJP_ALIAS_PREFIX})_)?'
    f'(?:{"|".join(sorted({*GRAD_NAMES, *JAX_NAMES, RNG_METHOD, "vjp", *RUNTIME_HELPERS}))})'
    r'(?:_\d+)?')
# Where a top-level statement may start: a line that opens with neither
# whitespace, a comment, a closing bracket nor a clause of the statement
# before. A start inside a string or brackets is caught by compiling.
_START = re.compile(r'^(?![ \t\f\r\n#)\]}]|(?:else|elif|except|finally)\b)', re.M)
_NEWLINE = re.compile(r'\r\n|\n')
_IMPORT = re.compile(r'\bimport\b')
# Where an ast node spells an identifier of its own, rather than in a child.
_NAME_FIELDS = {
    ast.Name: ('id',), ast.Attribute: ('attr',), ast.arg: ('arg',), ast.keyword: ('arg',),
    ast.FunctionDef: ('name',), ast.AsyncFunctionDef: ('name',), ast.ClassDef: ('name',),
    ast.alias: ('name', 'asname'), ast.ImportFrom: ('module',), ast.ExceptHandler: ('name',),
    ast.MatchAs: ('name',), ast.MatchStar: ('name',), ast.MatchMapping: ('rest',), ast.MatchClass: ('kwd_attrs',),
}
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def words(node: ast.AST) -> list[str]:
  """The identifiers ``node`` itself spells (not its children's)."""
  found = []
  for field in _NAME_FIELDS.get(type(node), ()):
    value = getattr(node, field, None)
    if isinstance(value, str):
      found.append(value)
    elif isinstance(value, list):
      found.extend(v for v in value if isinstance(v, str))
  return found


def grad_import_names(statements: list[ast.stmt]) -> frozenset[str]:
  """Names bound by an import of something called grad-like under another
  name (``from flax.linen import grad as g``)."""
  return frozenset(a.asname for node in statements if isinstance(node, ast.ImportFrom)
                   for a in node.names if a.asname and KEEP_WORDS.search(a.name))


def may_hold_site(node: ast.stmt, grad_names: frozenset[str] = frozenset()) -> bool:
  """Whether the pass may read or change anything in ``node``: whether it
  spells a grad transform or a name the pass may emit, has a string that
  may be an annotation naming one, uses a name in ``grad_names`` (from
  :func:`grad_import_names`), or declares ``global``/``nonlocal`` names.

  The cut-down copy of ``find.reduction`` keeps a definition whole by the
  same test, and every new kind of site is one more word here."""
  if getattr(node, 'type_params', None):
    return True  # a stub could not keep the names its bases use
  inert = set()
  for child in ast.walk(node):
    if isinstance(child, (ast.Global, ast.Nonlocal)):
      return True
    if isinstance(child, ast.Name) and child.id in grad_names:
      return True
    if isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant):
      # A string statement (a docstring) names nothing; any other string
      # might be an annotation, which LibCST reads names from.
      inert.add(child.value)
    elif isinstance(child, ast.Constant):
      if isinstance(child.value, str) and child not in inert and KEEP_WORDS.search(child.value):
        return True
    elif any(KEEP_NAME.fullmatch(word) for word in words(child)):
      return True
  return False


def _module_bindings(statements: list[ast.stmt]) -> set[str]:
  """Every name ``statements`` may bind at module level (a superset: names
  bound in comprehensions count, and any ``global`` name)."""
  bound: set[str] = set()
  stack: list[ast.AST] = list(statements)
  while stack:
    node = stack.pop()
    if isinstance(node, _SCOPES):
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


def _imports_at_module_level(statements: list[ast.stmt]) -> list[ast.alias] | None:
  """The aliases ``statements`` import outside functions and classes;
  None when there are none."""
  aliases = []
  stack: list[ast.AST] = list(statements)
  while stack:
    node = stack.pop()
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      aliases.extend(node.names)
    elif not isinstance(node, _SCOPES):
      stack.extend(ast.iter_child_nodes(node))
  return aliases or None


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


def _words(chunk: _Chunk) -> set[str]:
  """The names and attribute names ``chunk`` spells."""
  return {word for s in chunk.statements() for n in ast.walk(s) for word in words(n)}


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
    aliases = _imports_at_module_level(chunks[index].statements())
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
  site_text = re.compile('|'.join([KEEP_WORDS.pattern, r'\bglobal\b', r'\bnonlocal\b', *map(re.escape, grad_names)]))
  sites = {index for index in _matching(site_text, code, chunks, starts)
           if any(may_hold_site(s, grad_names) for s in chunks[index].statements())}
  kept |= sites
  if jax_modules and any(_words(chunks[i]) & JAX_NAMES for i in sites):
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
