"""What the rewrite of a file must guarantee, checked on any input
(``check_rewrite``); the property tests, the reduction tests and the
planted-sites sweep (``scripts/inject_sites.py``) share it.

The guarantees:

- the output compiles, and a second pass leaves it as it is;
- outside the rewritten call sites, input and output are the same text,
  except for import statements that bind vjpify's runtime helpers or flax's
  vjp (added), grad imports that fell out of use (removed, with the blank
  lines above them), and the blank line LibCST's import adder puts after the
  import block;
- inside a rewritten site, the user's arguments are kept verbatim, in order
  (continuation lines may be re-indented, and ``fn`` may be wrapped in the
  runtime's ``compiled``), and every string literal keeps its value.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import difflib
import re
from collections.abc import Iterable, Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider, QualifiedNameProvider

from vjpify.transformer import TransformResult, transform_source
from vjpify.transformer.diagnostics import REWRITTEN
from vjpify.transformer.find.arguments import fn_argument
from vjpify.transformer.find.targets import (
    COMPILE_HELPER, EXTRACTION_HELPER, GRAD_TRANSFORMS, RUNTIME_HELPERS, RUNTIME_MODULE, VJP_KEYWORDS)

# Bindings the rewrite may add or remove, as (module, name) pairs.
ADDABLE = frozenset({(RUNTIME_MODULE, h) for h in RUNTIME_HELPERS} | {('flax.linen', 'vjp')})
REMOVABLE = frozenset(tuple(name.rsplit('.', 1)) for name in GRAD_TRANSFORMS)
HELPER_NAMES = frozenset(f'{RUNTIME_MODULE}.{h}' for h in EXTRACTION_HELPER.values())

# Where LibCST starts a new line.
_NEWLINE = re.compile(r'\r\n|\r|\n')
_INDENTATION = re.compile(r'(?:\r\n|\r|\n)[ \t]*')


class RewriteBroken(AssertionError):
  """A rewrite broke one of the guarantees; the message says which and where."""


# --- Locating sites --------------------------------------------------------

def _line_starts(code: str) -> list[int]:
  return [0] + [m.end() for m in _NEWLINE.finditer(code)]


def _spans(wrapper: MetadataWrapper, calls: Iterable[cst.Call], starts: list[int]) -> list[tuple[int, int, cst.Call]]:
  positions = wrapper.resolve(PositionProvider)
  spans = []
  for call in calls:
    where = positions[call]
    spans.append((starts[where.start.line - 1] + where.start.column, starts[where.end.line - 1] + where.end.column, call))
  return sorted(spans, key=lambda s: (s[0], -s[1]))


def _outermost(spans: list[tuple[int, int, cst.Call]]) -> list[tuple[int, int, cst.Call]]:
  kept: list[tuple[int, int, cst.Call]] = []
  for span in spans:
    if not kept or span[0] >= kept[-1][1]:
      kept.append(span)
  return kept


def _calls_where(wrapper: MetadataWrapper, wanted) -> list[cst.Call]:
  class Finder(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (QualifiedNameProvider,)

    def __init__(self) -> None:
      super().__init__()
      self.found: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
      if wanted(node, {q.name for q in self.get_metadata(QualifiedNameProvider, node.func, ())}):
        self.found.append(node)

  finder = Finder()
  wrapper.visit(finder)
  return finder.found


def input_sites(code: str, result: TransformResult) -> list[tuple[int, int, cst.Call]]:
  """Character spans of the calls ``result`` says were rewritten, nested ones too."""
  wrapper = MetadataWrapper(cst.parse_module(code))
  positions = wrapper.resolve(PositionProvider)
  rewritten = {(s.line, s.column - 1) for s in result.sites if s.action == REWRITTEN}

  def wanted(call: cst.Call, names: set[str]) -> bool:
    start = positions[call].start
    return (start.line, start.column) in rewritten and bool(names & GRAD_TRANSFORMS.keys())

  calls = _calls_where(wrapper, wanted)
  found = {(positions[c].start.line, positions[c].start.column) for c in calls}
  if found != rewritten:
    raise RewriteBroken(f'sites reported at {sorted(rewritten - found)} are not grad calls in the input')
  return _spans(wrapper, calls, _line_starts(code))


def output_sites(code: str) -> list[tuple[int, int, cst.Call]]:
  """Character spans of the runtime helper calls in ``code``, outermost only.

  A call of a helper's name that nothing binds is not one: the rewrite never
  imports a name the file reads, so the call stays as unbound as it was."""
  wrapper = MetadataWrapper(cst.parse_module(code))

  def wanted(call: cst.Call, names: set[str]) -> bool:
    return bool(names & HELPER_NAMES)

  calls = _calls_where(wrapper, wanted)
  return _outermost(_spans(wrapper, calls, _line_starts(code)))


# --- Comparing what lies outside the sites ---------------------------------

def _mask(code: str, spans: Sequence[tuple[int, int, cst.Call]]) -> str:
  pieces, last = [], 0
  for index, (start, end, _) in enumerate(spans):
    pieces += [code[last:start], f'__vjpify_site_{index}__']
    last = end
  return ''.join(pieces) + code[last:]


@dataclasses.dataclass(frozen=True)
class _Unit:
  """A line, or a whole import statement, compared as one piece of text."""

  line: int
  text: str
  bindings: frozenset[tuple[str, str]] | None  # None: not an import

  @property
  def blank(self) -> bool:
    return self.bindings is None and not self.text.strip()


def _bindings(statement: cst.BaseSmallStatement) -> set[tuple[str, str]]:
  if isinstance(statement, cst.Import):
    return {(cst.helpers.get_full_name_for_node(a.name), a.evaluated_alias or '') for a in statement.names}
  module = cst.helpers.get_full_name_for_node(statement.module) if statement.module else ''
  if isinstance(statement.names, cst.ImportStar):
    return {(module, '*')}
  return {(module, a.evaluated_name) for a in statement.names}


def _units(code: str) -> list[_Unit]:
  """The lines of ``code``, with each import-only statement line as one unit."""
  wrapper = MetadataWrapper(cst.parse_module(code))
  positions = wrapper.resolve(PositionProvider)
  imports: dict[int, tuple[int, frozenset]] = {}

  class Finder(cst.CSTVisitor):
    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
      if all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in node.body):
        where = positions[node]
        imports[where.start.line] = (where.end.line, frozenset().union(*map(_bindings, node.body)))

  wrapper.module.visit(Finder())
  lines = _NEWLINE.split(code)
  units, number = [], 1
  while number <= len(lines):
    if number in imports:
      end, bindings = imports[number]
      units.append(_Unit(number, '\n'.join(lines[number - 1:end]), bindings))
      number = end + 1
    else:
      units.append(_Unit(number, lines[number - 1], None))
      number += 1
  return units


def _check_outside(before: str, after: str) -> None:
  old, new = _units(before), _units(after)
  matcher = difflib.SequenceMatcher(None, [u.text for u in old], [u.text for u in new], autojunk=False)
  removed: set[tuple[str, str]] = set()
  added: set[tuple[str, str]] = set()
  for tag, i1, i2, j1, j2 in matcher.get_opcodes():
    if tag == 'equal':
      continue
    gone, came = old[i1:i2], new[j1:j2]
    where = f'input line {old[min(i1, len(old) - 1)].line}, output line {new[min(j1, len(new) - 1)].line}'
    if any(u.bindings is None and not u.blank for u in gone + came):
      raise RewriteBroken(f'text outside the sites changed at {where}:\n'
                          + ''.join(f'- {u.text}\n' for u in gone) + ''.join(f'+ {u.text}\n' for u in came))
    if all(u.bindings is None for u in came + gone):
      raise RewriteBroken(f'blank lines added or removed away from any import at {where}')
    removed |= set().union(*(u.bindings or () for u in gone)) - set().union(*(u.bindings or () for u in came))
    added |= set().union(*(u.bindings or () for u in came)) - set().union(*(u.bindings or () for u in gone))
  both = removed & added
  if removed - both - REMOVABLE:
    raise RewriteBroken(f'imports removed that are not grad imports: {sorted(removed - both - REMOVABLE)}')
  if added - both - ADDABLE:
    raise RewriteBroken(f'imports added that the rewrite does not need: {sorted(added - both - ADDABLE)}')


# --- Comparing what lies inside the sites ----------------------------------

def _argument_texts(call: cst.Call, code_for) -> list[tuple[str, str, str]]:
  # Continuation lines may be re-indented to keep their visual alignment.
  return [(a.star, a.keyword.value if a.keyword else '', _INDENTATION.sub('\n', code_for(a.value)))
          for a in call.args]


def _unwrapped_mapping(arg: cst.Arg) -> cst.Arg:
  """``**helper('grad', options)`` as the ``**options`` it was written as."""
  if arg.star == '**' and isinstance(arg.value, cst.Call) and arg.value.args:
    return arg.with_changes(value=arg.value.args[-1].value)
  return arg


def _unwrapped_fn(args: Sequence[cst.Arg]) -> list[cst.Arg]:
  """``args`` with ``compiled(fn)`` as the ``fn`` it was written as; the
  helper's name may carry the prefix the rewrite adds to avoid a clash."""
  args = list(args)
  index = fn_argument(args)
  if index is None:
    return args
  value = args[index].value
  if (isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and len(value.args) == 1
      and re.fullmatch(rf'(vjpify_)?{COMPILE_HELPER}(_\d+)?', value.func.value)):
    args[index] = args[index].with_changes(value=value.args[0].value)
  return args


def _check_inside(old_sites, new_sites, nested, present, before: str) -> None:
  old_code_for = cst.parse_module(before).code_for_node
  extra = [('', name, value) for name, value in VJP_KEYWORDS]
  for (start, end, old), (_, _, new) in zip(old_sites, new_sites):
    if any(start <= s and e <= end for s, e, _ in nested if (s, e) != (start, end)):
      continue  # its arguments hold a rewritten site, so they changed
    if (start, end) in present:
      continue  # a helper call the input already had
    if len(new.args) != 1 or not isinstance(new.args[0].value, cst.Call):
      raise RewriteBroken(f'the rewrite of {before[start:end]!r} is not helper(vjp(...))')
    written = _argument_texts(old, old_code_for)
    # An empty reduce_axes is dropped; a non-empty one is kept for a runtime
    # helper that takes flax's vjp as its first argument.
    allowed = [written + extra, [a for a in written if a[1] != 'reduce_axes'] + extra]
    vjp_call = new.args[0].value
    args = _unwrapped_fn([_unwrapped_mapping(a) for a in vjp_call.args])
    got = _argument_texts(vjp_call.with_changes(args=args), old_code_for)
    if got not in allowed and got[1:] not in allowed:
      raise RewriteBroken(f'the arguments of {before[start:end]!r} changed: {got} is none of {allowed}')


def _string_constants(code: str) -> collections.Counter:
  return collections.Counter(
      node.value for node in ast.walk(ast.parse(code))
      if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)))


def _check_strings(before: str, after: str) -> None:
  """Every string literal survives with its value: re-indenting a site must
  never reach into a multi-line string."""
  old, new = _string_constants(before), _string_constants(after)
  # The keyword check names its transform in a string of its own.
  added = new - old
  for name in EXTRACTION_HELPER:
    added.pop(name, None)
  if added or old - new:
    raise RewriteBroken(f'string literals changed: lost {sorted(old - new)}, gained {sorted(added)}')


# --- The whole check -------------------------------------------------------

def check_rewrite(code: str, path: str = '<planted>') -> TransformResult:
  """Transforms ``code`` and checks every guarantee; raises RewriteBroken."""
  result = transform_source(code, path)
  compile(result.code, path, 'exec', dont_inherit=True)
  again = transform_source(result.code, path)
  if again.code != result.code:
    raise RewriteBroken('a second pass changed the output again:\n' + _diff(result.code, again.code))
  if not result.changed:
    return result
  every_site = input_sites(code, result)
  # Helper calls the input already had (a file rewritten before) stay as they are.
  present = output_sites(code)
  old_sites = _outermost(sorted(every_site + present, key=lambda s: (s[0], -s[1])))
  new_sites = output_sites(result.code)
  if len(old_sites) != len(new_sites):
    raise RewriteBroken(f'{len(old_sites)} outermost sites rewritten but {len(new_sites)} helper calls in the output')
  try:
    _check_outside(_mask(code, old_sites), _mask(result.code, new_sites))
    _check_inside(old_sites, new_sites, every_site, {(s, e) for s, e, _ in present}, code)
    _check_strings(code, result.code)
  except RewriteBroken as error:
    raise RewriteBroken(f'{error}\n{_diff(code, result.code)}') from None
  return result


def _diff(before: str, after: str) -> str:
  return ''.join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), 'input', 'output'))
