"""The Python API for build systems: transform a source string, a file's
bytes or a file; :func:`vjpify.transformer.transform_tree` (in ``runner``)
does whole trees. Everything is exported from ``vjpify.transformer``.

Example::

    from vjpify.transformer import transform_file, transform_source

    result = transform_source(code, path='model.py')
    if result.changed:
      print(result.code)
    for site in result.sites:
      print(site.format())

    result = transform_file('model.py', write=True)  # atomic, in place

libcst is imported on first use rather than with this module, so that the
command line starts without it and loads it only for files that may hold a
site.
"""

from __future__ import annotations

import ast
import dataclasses

from vjpify.transformer.diagnostics import ERROR, Site
from vjpify.transformer.files.problems import SourceProblem
from vjpify.transformer.files.source import decode_source, encode_source, read_source
from vjpify.transformer.files.write import write_atomically
from vjpify.transformer.find.prefilter import could_contain_sites, may_hold_sites, parse_quietly

__all__ = [
    'FileResult', 'TransformError', 'TransformResult', 'could_contain_sites', 'file_error', 'may_hold_sites',
    'transform_bytes', 'transform_file', 'transform_source',
]


@dataclasses.dataclass(frozen=True)
class TransformResult:
  """The new source and what happened at every site, in source order."""

  code: str
  sites: tuple[Site, ...]
  original: str

  @property
  def changed(self) -> bool:
    return self.code != self.original


@dataclasses.dataclass(frozen=True)
class FileResult:
  """What happened to one file, as bytes.

  ``code`` is what the file holds after the transform: its bytes in its own
  encoding, BOM and line endings included. ``sites`` lists every site in
  source order; a file that could not be transformed has a single site of
  kind ``file`` with action ``error``, and ``code == original``.
  ``destination`` is where ``code`` was written, if anywhere.
  """

  path: str
  original: bytes
  code: bytes
  sites: tuple[Site, ...] = ()
  encoding: str = 'utf-8'
  destination: str | None = None

  @property
  def changed(self) -> bool:
    return self.code != self.original

  @property
  def error(self) -> Site | None:
    return next((s for s in self.sites if s.action == ERROR), None)


class TransformError(Exception):
  """The input could not be transformed; ``site`` says where and why."""

  def __init__(self, site: Site):
    super().__init__(site.format())
    self.site = site


def file_error(path: str, problem: SourceProblem) -> TransformError:
  """The error for a file that cannot be read, decoded or written."""
  return TransformError(Site(path, problem.line, problem.column, 'file', ERROR, problem.reason))


def _syntax_error(code: str, path: str) -> SyntaxError | None:
  """The compiler's complaint about ``code``, or None if it compiles."""
  try:
    compile(code, path, 'exec', dont_inherit=True)
  except SyntaxError as error:
    return error
  return None


def _file_error_at(path: str, error: SyntaxError, what: str) -> TransformError:
  return TransformError(Site(
      path, error.lineno or 1, error.offset or 1, 'file', ERROR,
      f'{what}: {error.msg}; file left unchanged; fix the syntax error'))


def _rewrite_error(new_code: str, original: str, path: str, sites: tuple[Site, ...]) -> TransformError | None:
  """Why the rewritten code cannot be written, or None when it compiles."""
  broken = _syntax_error(new_code, path)
  if broken is None:
    return None
  # LibCST accepts some code that the compiler rejects (a misplaced return,
  # say); that is the file's fault, not the rewrite's.
  original_error = _syntax_error(original, path)
  if original_error is not None:
    return _file_error_at(path, original_error, 'does not compile')
  first = next((s for s in sites if s.action == 'rewritten'), None)
  line, column = (first.line, first.column) if first else (1, 1)
  return TransformError(Site(
      path, line, column, 'file', ERROR,
      f'internal error: the rewritten file does not compile ({broken.msg}); '
      'file left unchanged; please report this with the file'))


def _parse_error(code: str, path: str, error) -> TransformError:
  # Python's own message ("'(' was never closed") is the one users know;
  # LibCST's is the fallback for code the compiler accepts but LibCST does not.
  syntax_error = _syntax_error(code, path)
  if syntax_error is not None:
    return _file_error_at(path, syntax_error, 'cannot parse')
  return TransformError(Site(
      path, error.raw_line, error.raw_column + 1, 'file', ERROR,
      f'cannot parse: {error.message}; file left unchanged; '
      'the file compiles, so please report this with the file'))


def _run_pass(code: str, path: str, jit: bool, original_code: str | None = None) -> tuple[str, list[Site]]:
  import libcst as cst
  from libcst.codemod import CodemodContext

  from vjpify.transformer.rewrite.command import LowerGradToVjp

  command = LowerGradToVjp(CodemodContext(filename=path), jit=jit, original_code=original_code)
  return command.transform_module(cst.parse_module(code)).code, command.sites


def _run_pass_reduced(code: str, tree: ast.Module, path: str, jit: bool) -> tuple[str, list[Site]] | None:
  """The pass's result on the whole file (whose ast is ``tree``), computed
  on a cut-down copy; None when no copy can be made or the pass cannot run
  on it."""
  import libcst as cst

  from vjpify.transformer.find.reduction import reduce_source

  reduction = reduce_source(code, tree)
  if reduction is None:
    return None
  try:
    new_code, sites = _run_pass(reduction.code, path, jit, code)
  except (cst.ParserSyntaxError, cst.CSTValidationError, RecursionError):
    return None  # the whole file gets the same error, with its own positions
  restored = reduction.restore(new_code)
  return None if restored is None else (restored, sites)


def transform_source(code: str, path: str = '<string>', *, prefilter: bool = True, jit: bool = True,
                     reduce: bool = True) -> TransformResult:
  """Rewrites every provably safe site in ``code``.

  Note that sites the pass cannot prove safe are left byte for byte as they
  were and reported in ``sites`` with action ``skipped``.

  Args:
    code: Python source text.
    path: shown in diagnostics.
    prefilter: skip the full pass for files that cannot hold a site (see
      ``vjpify.transformer.find.prefilter``); the result is the same either way.
    jit: wrap each site's ``fn`` in ``vjpify.runtime.compiled``, so that
      eager calls run as one cached ``jax.jit`` program, with values equal to
      ``nn.grad``'s up to float rounding; False for plain ``nn.vjp`` code,
      bit for bit like ``nn.grad`` and as slow.
    reduce: run the pass on a copy with the functions and classes that
      cannot hold a site cut down to stubs (see
      ``vjpify.transformer.find.reduction``); the result is the same either way.

  Returns:
    A :class:`TransformResult`.

  Raises:
    TransformError: ``code`` does not parse, or the rewrite does not compile.
  """
  # The cheap text test first: most files end there, unparsed.
  if prefilter and not could_contain_sites(code):
    return TransformResult(code, (), code)
  tree = parse_quietly(code) if prefilter or reduce else None
  if prefilter and tree is not None and not may_hold_sites(code, tree):
    return TransformResult(code, (), code)
  import libcst as cst

  try:
    done = _run_pass_reduced(code, tree, path, jit) if reduce and tree is not None else None
    new_code, found = done or _run_pass(code, path, jit)
  except cst.ParserSyntaxError as error:
    raise _parse_error(code, path, error) from None
  except cst.CSTValidationError as error:
    # LibCST's tokenizer can accept what its node validation then rejects
    # (a name with a code point this Python's Unicode tables do not know).
    syntax_error = _syntax_error(code, path)
    if syntax_error is not None:
      raise _file_error_at(path, syntax_error, 'cannot parse') from None
    raise TransformError(Site(
        path, 1, 1, 'file', ERROR,
        f'cannot parse: {error}; file left unchanged; '
        'the file compiles, so please report this with the file')) from None
  except RecursionError:
    # LibCST's visitors recurse once per nesting level; Python compiles code
    # nested deeper than that (long elif chains, thousands of adjacent strings).
    raise TransformError(Site(
        path, 1, 1, 'file', ERROR,
        'nested too deeply for the pass (Python recursion limit reached); '
        'file left unchanged; split the deepest expression or elif chain to have it rewritten')) from None
  sites = tuple(sorted(found, key=lambda s: (s.line, s.column)))
  if new_code != code:
    error = _rewrite_error(new_code, code, path, sites)
    if error:
      raise error
  return TransformResult(new_code, sites, code)


def transform_bytes(data: bytes, path: str = '<bytes>', *, jit: bool = True) -> FileResult:
  """Rewrites the contents of a Python file given as bytes.

  Note that the file is decoded as Python decodes it (BOM, coding
  declaration, else UTF-8) and encoded back the same way; line endings,
  tabs and trailing whitespace outside the rewritten calls are kept exactly.

  Args:
    data: the file's bytes.
    path: shown in diagnostics.
    jit: as for :func:`transform_source`.

  Returns:
    A :class:`FileResult`; nothing is written.

  Raises:
    TransformError: ``data`` is not decodable Python source, does not parse,
      or the rewrite does not compile.
  """
  try:
    text, encoding = decode_source(data)
  except SourceProblem as problem:
    raise file_error(path, problem) from None
  result = transform_source(text, path, jit=jit)
  if not result.changed:
    return FileResult(path, data, data, result.sites, encoding)
  try:
    if encode_source(text, encoding) != data:
      raise SourceProblem(f'decoding and re-encoding the file as {encoding} does not give back '
                          'its bytes; file left unchanged; save it as UTF-8')
    code = encode_source(result.code, encoding)
  except SourceProblem as problem:
    raise file_error(path, problem) from None
  return FileResult(path, data, code, result.sites, encoding)


def transform_file(path: str, *, write: bool = False, jit: bool = True) -> FileResult:
  """Rewrites one Python file, in place if ``write``.

  Note that the file is replaced atomically (a temporary file in the same
  folder renamed over it) with its mode kept, and only if its bytes change.

  Args:
    path: the file.
    write: write the result back to ``path``.
    jit: as for :func:`transform_source`.

  Returns:
    A :class:`FileResult`; ``destination`` is ``path`` if it was written.

  Raises:
    TransformError: the file cannot be read, transformed or written.
  """
  try:
    data = read_source(path)
  except SourceProblem as problem:
    raise file_error(path, problem) from None
  result = transform_bytes(data, path, jit=jit)
  if write and result.changed:
    try:
      write_atomically(path, result.code)
    except SourceProblem as problem:
      raise file_error(path, problem) from None
    result = dataclasses.replace(result, destination=path)
  return result
