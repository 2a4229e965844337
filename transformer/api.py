"""The Python API for build systems: transform a source string, a file's
bytes, a file, or whole trees. Everything is exported from
``vjpify.transformer``.

Example::

    from vjpify.transformer import transform_file, transform_source

    result = transform_source(code, path='model.py')
    if result.changed:
      print(result.code)
    for site in result.sites:
      print(site.format())

    result = transform_file('model.py', write=True)  # atomic, in place

Each function takes the run's :class:`~vjpify.transformer.settings.Settings`
(``settings=``; ``settings_for(path)`` gives those of a project's
``[tool.vjpify]``), puts the keyword arguments given on top, and hands the
work to ``pipeline`` (one file) or ``engine.runner`` (many). libcst is
imported on first use rather than with this module, so that the command
line starts without it and loads it only for files that may hold a site.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from vjpify.transformer.engine.runner import run
from vjpify.transformer.diagnostics import FileResult, TransformResult
from vjpify.transformer.files.problems import SourceProblem
from vjpify.transformer.files.source import read_source
from vjpify.transformer.files.walk import plan
from vjpify.transformer.files.write import write_atomically
from vjpify.transformer.pipeline import file_error, syntax_error, transform_data, transform_text
from vjpify.transformer.settings import Settings

__all__ = ['transform_bytes', 'transform_file', 'transform_source', 'transform_tree']


def _parsed(result, path: str):
  """``result``, unless its text does not parse: files that cannot hold a
  site skip the pass unparsed, but these functions promise the error."""
  if not result.sites:
    code = result.original if isinstance(result.original, str) else result.original.decode(result.encoding)
    error = syntax_error(code, path)
    if error is not None:
      raise error
  return result


def _settings(settings: Settings | None, **given) -> Settings:
  """``settings`` (the defaults when None) with every keyword given (not
  None) in place of its value."""
  return (settings or Settings())._replace(**{k: v for k, v in given.items() if v is not None})


def transform_source(code: str, path: str = '<string>', *, jit: bool | None = None,
                     settings: Settings | None = None, lift_jax_transforms: bool | None = None) -> TransformResult:
  """Rewrites every provably safe site in ``code``.

  Note that sites the pass cannot prove safe are left byte for byte as they
  were and reported in ``sites`` with action ``skipped``.

  Args:
    code: Python source text.
    path: shown in diagnostics; also where the project is, whose files the
      bases of the file's classes are traced through (none for a path in
      angle brackets).
    jit: wrap each site's ``fn`` in ``vjpify.runtime.compiled``, so that
      eager calls run as one cached ``jax.jit`` program, with values equal to
      ``nn.grad``'s up to float rounding; False for plain ``nn.vjp`` code,
      bit for bit like ``nn.grad`` and as slow. None: ``settings.jit``.
    settings: the run's settings (``module_bases`` and the others); by
      default, the defaults. Configuration is not read unless asked for:
      pass ``settings_for(path)``.
    lift_jax_transforms: lift ``jax.grad``, ``jax.value_and_grad`` and
      ``jax.vjp`` over bound Modules to ``nn.vjp`` code, rather than only
      report them. None: ``settings.lift_jax_transforms``.

  Returns:
    A :class:`TransformResult`.

  Raises:
    TransformError: ``code`` does not parse, or the rewrite does not compile.
  """
  return _parsed(transform_text(code, path, _settings(settings, jit=jit, lift_jax_transforms=lift_jax_transforms)), path)


def transform_bytes(data: bytes, path: str = '<bytes>', *, jit: bool | None = None,
                    settings: Settings | None = None, lift_jax_transforms: bool | None = None) -> FileResult:
  """Rewrites the contents of a Python file given as bytes.

  Note that the file is decoded as Python decodes it (BOM, coding
  declaration, else UTF-8) and encoded back the same way; line endings,
  tabs and trailing whitespace outside the rewritten calls are kept exactly.

  Args:
    data: the file's bytes.
    path: as for :func:`transform_source`.
    jit: as for :func:`transform_source`.
    settings: as for :func:`transform_source`.
    lift_jax_transforms: as for :func:`transform_source`.

  Returns:
    A :class:`FileResult`; nothing is written.

  Raises:
    TransformError: ``data`` is not decodable Python source, does not parse,
      or the rewrite does not compile.
  """
  return _parsed(transform_data(data, path, _settings(settings, jit=jit, lift_jax_transforms=lift_jax_transforms)), path)


def transform_file(path: str, *, write: bool = False, jit: bool | None = None,
                   settings: Settings | None = None, lift_jax_transforms: bool | None = None) -> FileResult:
  """Rewrites one Python file, in place if ``write``.

  Note that the file is replaced atomically (a temporary file in the same
  folder renamed over it) with its mode kept, and only if its bytes change.

  Args:
    path: the file.
    write: write the result back to ``path``.
    jit: as for :func:`transform_source`.
    settings: as for :func:`transform_source`.
    lift_jax_transforms: as for :func:`transform_source`.

  Returns:
    A :class:`FileResult`; ``destination`` is ``path`` if it was written.

  Raises:
    TransformError: the file cannot be read, transformed or written.
  """
  try:
    data = read_source(path)
  except SourceProblem as problem:
    raise file_error(path, problem) from None
  result = _parsed(transform_data(data, path, _settings(settings, jit=jit, lift_jax_transforms=lift_jax_transforms)), path)
  if write and result.changed:
    try:
      write_atomically(path, result.code)
    except SourceProblem as problem:
      raise file_error(path, problem) from None
    result = dataclasses.replace(result, destination=path)
  return result


def transform_tree(
    paths: Sequence[str],
    *,
    write: bool = False,
    out_dir: str | None = None,
    exclude: Sequence[str] | None = None,
    copy_other_files: bool = False,
    jobs: int | None = None,
    jit: bool | None = None,
    settings: Settings | None = None,
    respect_gitignore: bool | None = None,
    lift_jax_transforms: bool | None = None,
) -> list[FileResult]:
  """Transforms every ``*.py`` file under ``paths``.

  Note that problems with single files (unreadable, not Python, does not
  parse) do not raise: such a file's result has an ``error`` site and is
  left as it was. Folders are walked as the command line walks them,
  ``.gitignore`` included.

  Example::

      from vjpify.transformer import transform_tree

      for result in transform_tree(['src'], out_dir='build/src'):
        for site in result.sites:
          print(site.format())

  Args:
    paths: files and folders.
    write: rewrite the files in place.
    out_dir: instead, mirror the inputs into this folder: rewritten files
      rewritten, other ``*.py`` files copied; the inputs are not touched.
    exclude: globs matched against each path and base name in folders; None:
      ``settings.exclude`` (none by default).
    copy_other_files: with ``out_dir``, mirror the non-Python files too.
    jobs: worker processes; None: ``settings.jobs`` (1 by default).
    jit: as for :func:`transform_source`.
    settings: as for :func:`transform_source`; its ``default_exclude`` and
      ``extend_exclude`` apply to the folder walks.
    respect_gitignore: skip what ``.gitignore`` files ignore in folders; None:
      ``settings.respect_gitignore`` (True by default).
    lift_jax_transforms: as for :func:`transform_source`.

  Returns:
    One :class:`FileResult` per Python file, in walk order.

  Raises:
    ValueError: both ``write`` and ``out_dir``, or an ``out_dir`` that
      overlaps an input.
  """
  if write and out_dir is not None:
    raise ValueError('write=True and out_dir both given; choose one')
  settings = _settings(settings, jit=jit, exclude=None if exclude is None else tuple(exclude), jobs=jobs,
                       respect_gitignore=respect_gitignore, lift_jax_transforms=lift_jax_transforms)
  tasks = plan(paths, out_dir=out_dir, write=write or out_dir is not None,
               exclude=settings.exclude, copy_other_files=copy_other_files,
               default_exclude=settings.default_exclude, extend_exclude=settings.extend_exclude,
               respect_gitignore=settings.respect_gitignore)
  return [result for task, result in run(tasks, settings) if task.python]
