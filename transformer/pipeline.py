"""One file through the pass, the spine of the transformer.

1. ``find.prefilter``: a text test rules out files that cannot hold a
   site; then ``find.selection`` cuts the file at its top-level statements
   and keeps only those the pass must see (most files end here, with none,
   never parsed by LibCST), else a look at the whole file's ``ast``.
2. ``find.reduction``: the pass runs on that copy, with every definition
   that cannot matter to it cut down to a stub.
3. ``rewrite.command``: the LibCST command finds the sites, decides each
   one, and rewrites those it may.
4. Checks on what comes out: the stubs are restored, the sites sorted, and
   new code that does not compile is refused.

Bytes go through ``files.source`` on the way in and out. Everything here
raises :class:`TransformError` for input it cannot transform; libcst is
imported on first use, so that the command line starts without it.
"""

from __future__ import annotations

import ast
from typing import NamedTuple

from vjpify.transformer.codes import code as _code
from vjpify.transformer.diagnostics import REWRITTEN, FileResult, Site, TransformError, TransformResult
from vjpify.transformer.files.problems import SourceProblem
from vjpify.transformer.files.source import decode_source, encode_source
from vjpify.transformer.find.prefilter import could_contain_sites, may_hold_sites, parse_quietly
from vjpify.transformer.find.selection import NO_SITES, Selection, select
from vjpify.transformer.settings import Settings

# The advice when LibCST rejects a file that Python compiles: the fault is vjpify's.
_REPORT_IT = 'the file compiles, so please report this with the file'


def file_error(path: str, problem: SourceProblem) -> TransformError:
  """The error for a file that cannot be read, decoded, encoded or written."""
  return TransformError(Site.file_error(path, problem.code, problem.reason, problem.line, problem.column))


def _syntax_error(code: str, path: str) -> SyntaxError | None:
  """The compiler's complaint about ``code``, or None if it compiles."""
  try:
    compile(code, path, 'exec', dont_inherit=True)
  except SyntaxError as error:
    return error
  return None


def _file_error_at(path: str, error: SyntaxError, what: str, code: str = 'syntax-error') -> TransformError:
  return TransformError(Site.file_error(
      path, _code(code), f'{what}: {error.msg}; file left unchanged; fix the syntax error', error.lineno or 1,
      error.offset or 1))


def syntax_error(code: str, path: str) -> TransformError | None:
  """The error for ``code`` if Python cannot parse it, else None: for
  callers that promise one even where the prefilter parses nothing."""
  if parse_quietly(code) is not None:
    return None
  error = _syntax_error(code, path)
  return None if error is None else _file_error_at(path, error, 'cannot parse')


def _rewrite_error(new_code: str, original: str, path: str, sites: tuple[Site, ...]) -> TransformError | None:
  """Why the rewritten code cannot be written, or None when it compiles."""
  broken = _syntax_error(new_code, path)
  if broken is None:
    return None
  # LibCST accepts some code that the compiler rejects (a misplaced return,
  # say); that is the file's fault, not the rewrite's.
  original_error = _syntax_error(original, path)
  if original_error is not None:
    return _file_error_at(path, original_error, 'does not compile', 'does-not-compile')
  first = next((s for s in sites if s.action == REWRITTEN), None)
  line, column = (first.line, first.column) if first else (1, 1)
  return TransformError(Site.file_error(
      path, _code('invalid-rewrite'), f'internal error: the rewritten file does not compile ({broken.msg}); '
      'file left unchanged; please report this with the file', line, column))


def _parse_error(code: str, path: str, error) -> TransformError:
  # Python's own message ("'(' was never closed") is the one users know;
  # LibCST's is the fallback for code the compiler accepts but LibCST does not.
  syntax_error = _syntax_error(code, path)
  if syntax_error is not None:
    return _file_error_at(path, syntax_error, 'cannot parse')
  return TransformError(Site.file_error(
      path, _code('parser-disagrees'), f'cannot parse: {error.message}; file left unchanged; {_REPORT_IT}',
      error.raw_line, error.raw_column + 1))


def _run_pass(code: str, path: str, settings: Settings, original: str) -> tuple[str, list[Site]]:
  """The pass on ``code``: the whole file, ``original``, or a copy of it."""
  import libcst as cst
  from libcst.codemod import CodemodContext

  from vjpify.transformer.rewrite.command import LowerGradToVjp
  from vjpify.transformer.rewrite.style import FileStyle

  command = LowerGradToVjp(CodemodContext(filename=path), settings, FileStyle.of(original))
  return command.transform_module(cst.parse_module(code)).code, command.sites


def _run_pass_reduced(code: str, tree: ast.Module, path: str, settings: Settings,
                      original: str | None = None) -> tuple[str, list[Site]] | None:
  """The pass's result on ``code`` (whose ast is ``tree``; the file, or the
  part of ``original`` it must see), computed on a cut-down copy; None when
  no copy can be made or the pass cannot run on it."""
  import libcst as cst

  from vjpify.transformer.find.reduction import reduce_source

  reduction = reduce_source(code, tree)
  if reduction is None:
    return None
  try:
    new_code, sites = _run_pass(reduction.code, path, settings, original or code)
  except (cst.ParserSyntaxError, cst.CSTValidationError, RecursionError):
    return None  # the whole file gets the same error, with its own positions
  restored = reduction.restore(new_code)
  return None if restored is None else (restored, sites)


def _checked(code: str, path: str, run) -> TransformResult:
  """What ``run()`` (the pass, on the whole file or a copy of it) makes of
  ``code``, with LibCST's failures as errors and new code that does not
  compile refused."""
  import libcst as cst

  try:
    new_code, found = run()
  except cst.ParserSyntaxError as error:
    raise _parse_error(code, path, error) from None
  except cst.CSTValidationError as error:
    # LibCST's tokenizer can accept what its node validation then rejects
    # (a name with a code point this Python's Unicode tables do not know).
    syntax_error = _syntax_error(code, path)
    if syntax_error is not None:
      raise _file_error_at(path, syntax_error, 'cannot parse') from None
    raise TransformError(Site.file_error(
        path, _code('parser-disagrees'), f'cannot parse: {error}; file left unchanged; {_REPORT_IT}')) from None
  except RecursionError:
    # LibCST's visitors recurse once per nesting level; Python compiles code
    # nested deeper than that (long elif chains, thousands of adjacent strings).
    raise TransformError(Site.file_error(
        path, _code('too-deeply-nested'), 'nested too deeply for the pass (Python recursion limit reached); '
        'file left unchanged; split the deepest expression or elif chain to have it rewritten')) from None
  sites = tuple(sorted(found, key=lambda s: (s.line, s.column)))
  if new_code != code:
    error = _rewrite_error(new_code, code, path, sites)
    if error:
      raise error
  return TransformResult(new_code, sites, code)


def whole_pass(code: str, path: str, settings: Settings) -> TransformResult:
  """The pass on the whole of ``code``: nothing ruled out, nothing cut."""
  return _checked(code, path, lambda: _run_pass(code, path, settings, code))


def reduced_pass(code: str, tree: ast.Module | None, path: str, settings: Settings) -> TransformResult:
  """The pass's result on the whole of ``code`` (whose ast is ``tree``, None
  when Python cannot parse it), computed on the cut-down copy where one can
  be made."""
  def run():
    done = _run_pass_reduced(code, tree, path, settings) if tree is not None else None
    return done or _run_pass(code, path, settings, code)

  return _checked(code, path, run)


class Plan(NamedTuple):
  """How a file that may hold a site goes through the pass: on the part
  ``selection`` keeps, or (None) whole, its ``ast`` being ``tree`` when
  known (never sent to another process: it is parsed again there)."""

  selection: Selection | None
  tree: ast.Module | None = None

  def __reduce__(self):
    return Plan, (self.selection,)


def plan(code: str) -> Plan | None:
  """None when ``code`` cannot hold a site; else how to transform it. Both
  prefilter tests run here, once per file."""
  # The cheap text test first: most files end there, unparsed.
  if not could_contain_sites(code):
    return None
  selection = select(code)
  if selection is NO_SITES:
    return None
  tree = parse_quietly(code if selection is None else selection.code)
  if tree is not None and not may_hold_sites(code if selection is None else selection.code, tree):
    return None
  return Plan(selection, tree)


def _selected_pass(code: str, planned: Plan, path: str, settings: Settings) -> TransformResult | None:
  """The pass on the part of ``code`` that ``planned`` keeps, the rest
  spliced back as it was; None when it must run on the whole file instead
  (LibCST or the compiler rejects the part, so the whole gets its error)."""
  import libcst as cst

  part = planned.selection.code
  try:
    done = _run_pass_reduced(part, planned.tree, path, settings, code) if planned.tree is not None else None
    new_part, found = done or _run_pass(part, path, settings, code)
  except (cst.ParserSyntaxError, cst.CSTValidationError, RecursionError):
    return None
  # Every statement left out compiled alone; the part must compile too.
  if new_part != part and _syntax_error(new_part, path) is not None:
    return None
  new_code = planned.selection.restore(new_part)
  if new_code is None:
    return None
  return TransformResult(new_code, tuple(sorted(found, key=lambda s: (s.line, s.column))), code)


def transform_planned(code: str, planned: Plan | None, path: str, settings: Settings) -> TransformResult:
  """The result on ``code`` of the pass as :func:`plan` planned it."""
  if planned is None:
    return TransformResult(code, (), code)
  if planned.selection is not None:
    if planned.tree is None:
      planned = planned._replace(tree=parse_quietly(planned.selection.code))
    done = _selected_pass(code, planned, path, settings)
    if done is not None:
      return done
    return reduced_pass(code, parse_quietly(code), path, settings)
  return reduced_pass(code, planned.tree, path, settings)


def transform_text(code: str, path: str, settings: Settings) -> TransformResult:
  """Rewrites every provably safe site in ``code``; see
  :func:`vjpify.transformer.transform_source`."""
  return transform_planned(code, plan(code), path, settings)


class Decoded(NamedTuple):
  """A file's bytes and its text, decoded once."""

  data: bytes
  text: str
  encoding: str


def decode(data: bytes, path: str) -> Decoded:
  """``data`` decoded as Python decodes a source file."""
  try:
    text, encoding = decode_source(data)
  except SourceProblem as problem:
    raise file_error(path, problem) from None
  return Decoded(data, text, encoding)


def transform_data(data: bytes, path: str, settings: Settings) -> FileResult:
  """Rewrites a Python file's bytes, decoded and encoded back as Python
  does; see :func:`vjpify.transformer.transform_bytes`."""
  source = decode(data, path)
  return transform_decoded(source, plan(source.text), path, settings)


def transform_decoded(source: Decoded, planned: Plan | None, path: str, settings: Settings) -> FileResult:
  """The result for a file decoded and planned already."""
  data, text, encoding = source
  result = transform_planned(text, planned, path, settings)
  if not result.changed:
    return FileResult(path, data, data, result.sites, encoding)
  try:
    if encode_source(text, encoding) != data:
      raise SourceProblem(_code('encoding-round-trip'),
                          f'decoding and re-encoding the file as {encoding} does not give back '
                          'its bytes; file left unchanged; save it as UTF-8')
    code = encode_source(result.code, encoding)
  except SourceProblem as problem:
    raise file_error(path, problem) from None
  return FileResult(path, data, code, result.sites, encoding)
