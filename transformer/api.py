"""The Python API: transform a source string, a file or a tree.

Example::

    from vjpify.transformer import transform_source
    result = transform_source(code, path='model.py')
    if result.changed:
        print(result.code)
    for site in result.sites:
        print(site.format())
"""

from __future__ import annotations

import dataclasses

import libcst as cst
from libcst.codemod import CodemodContext

from vjpify.transformer.command import LowerGradToVjp
from vjpify.transformer.diagnostics import ERROR, Site
from vjpify.transformer.targets import PREFILTER_WORDS


@dataclasses.dataclass(frozen=True)
class TransformResult:
  """The new source and what happened at every site, in source order."""

  code: str
  sites: tuple[Site, ...]
  original: str

  @property
  def changed(self) -> bool:
    return self.code != self.original


class TransformError(Exception):
  """The input could not be transformed; ``site`` says where and why."""

  def __init__(self, site: Site):
    super().__init__(site.format())
    self.site = site


def could_contain_sites(code: str) -> bool:
  """False when ``code`` cannot reference flax's grad, so parsing can be skipped."""
  return all(word in code for word in PREFILTER_WORDS)


def transform_source(code: str, path: str = '<string>') -> TransformResult:
  """Rewrites every provably safe site in ``code``.

  Note that sites the pass cannot prove safe are left byte for byte as they
  were and reported in ``sites`` with action ``skipped``.

  Args:
    code: Python source text.
    path: shown in diagnostics.

  Returns:
    A :class:`TransformResult`.

  Raises:
    TransformError: ``code`` does not parse, or the rewrite does not compile.
  """
  if not could_contain_sites(code):
    return TransformResult(code, (), code)
  try:
    tree = cst.parse_module(code)
  except cst.ParserSyntaxError as error:
    raise TransformError(Site(
        path, error.raw_line, error.raw_column + 1, 'file', ERROR,
        f'cannot parse: {error.message}; file left unchanged; fix the syntax error')) from None
  command = LowerGradToVjp(CodemodContext(filename=path))
  new_code = command.transform_module(tree).code
  sites = tuple(sorted(command.sites, key=lambda s: (s.line, s.column)))
  if new_code != code:
    try:
      compile(new_code, path, 'exec', dont_inherit=True)
    except SyntaxError as error:
      first = next((s for s in sites if s.action == 'rewritten'), None)
      line, column = (first.line, first.column) if first else (1, 1)
      raise TransformError(Site(
          path, line, column, 'file', ERROR,
          f'internal error: the rewritten file does not compile ({error.msg}); '
          'file left unchanged; please report this with the file')) from None
  return TransformResult(new_code, sites, code)
