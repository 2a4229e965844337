"""Results kept between runs for files that have not changed, as ruff and
black keep theirs, so that a second run over an unchanged tree costs a read
and a hash per file.

Where: ``.vjpify_cache/`` in the project root (the nearest folder above the
paths with a ``pyproject.toml``, ``setup.py``, ``setup.cfg`` or ``.git``;
else the working directory), as ruff puts ``.ruff_cache``, or the folder
``VJPIFY_CACHE_DIR`` names. The folder holds a ``.gitignore`` of ``*`` and a
``CACHEDIR.TAG``, and folder walks skip it. Off with ``--no-cache``,
``cache = false`` in ``[tool.vjpify]`` or ``VJPIFY_NO_CACHE=1``.

An entry is found by the hash of the file's bytes, its path (as shown and
absolute), the settings that change results, and vjpify's own code (its
version and the size and modification time of every module of the
transformer), so that upgrading or editing vjpify starts afresh. An entry
also names the other files the result read (the files that bases were
traced through), with their size and modification time: a change to any
of them makes the entry stale.

Entries are JSON, never pickles (a cache folder can come with a checkout),
written to a temporary file and renamed into place, so that concurrent runs
never see half an entry; one that cannot be read or does not make sense is
ignored and written again.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import tempfile
from collections.abc import Sequence

from vjpify.transformer.diagnostics import FileResult, Site
from vjpify.transformer.find.project import project_root
from vjpify.transformer.settings import Settings

FOLDER_NAME = '.vjpify_cache'
DIR_VARIABLE = 'VJPIFY_CACHE_DIR'
OFF_VARIABLE = 'VJPIFY_NO_CACHE'
# Bumped when the layout of an entry changes.
_FORMAT = 'v1'
_TAG = 'Signature: 8a477f597d28d172789f06886806bc55\n# This folder is a cache made by vjpify.\n'


@functools.lru_cache(maxsize=None)
def code_fingerprint() -> str:
  """vjpify's version and the size and modification time of every module
  of the transformer: a change to vjpify's own code changes it."""
  from importlib.metadata import PackageNotFoundError, version
  try:
    parts = [version('vjpify')]
  except PackageNotFoundError:
    parts = ['unknown']
  package = pathlib.Path(__file__).resolve().parent.parent
  for path in sorted(package.rglob('*.py')):
    stat = path.stat()
    parts.append(f'{path.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}')
  return hashlib.sha256('\n'.join(parts).encode()).hexdigest()


def wanted(settings: Settings) -> bool:
  """Whether the run keeps a cache: ``settings.cache``, unless
  ``VJPIFY_NO_CACHE`` is set to anything but ``0`` or nothing."""
  return settings.cache and os.environ.get(OFF_VARIABLE, '') in ('', '0')


def folder_for(paths: Sequence[str]) -> str:
  """Where the cache of a run over ``paths`` lives."""
  given = os.environ.get(DIR_VARIABLE)
  if given:
    return given
  common = os.path.commonpath([os.path.abspath(p) for p in paths]) if paths else os.getcwd()
  root = project_root(os.path.join(common, '_')) if os.path.isdir(common) else project_root(common)
  return os.path.join(root or os.getcwd(), FOLDER_NAME)


def _stat(path: str) -> list[int] | None:
  try:
    stat = os.stat(path)
  except OSError:
    return None
  return [stat.st_size, stat.st_mtime_ns]


class Cache:
  """The cache of one run, in ``folder``, for results under ``settings``."""

  def __init__(self, folder: str, settings: Settings):
    self._folder = os.path.join(folder, _FORMAT)
    self._root = folder
    # Only what changes a file's result: not jobs, globs or strictness.
    context = [code_fingerprint(), settings.jit, sorted(settings.module_bases)]
    self._context = json.dumps(context).encode()
    self._ready = False

  def key(self, shown: str, path: str, data: bytes) -> str:
    digest = hashlib.sha256(self._context)
    for part in (shown.encode('utf-8', 'surrogateescape'), os.path.abspath(path).encode('utf-8', 'surrogateescape')):
      digest.update(len(part).to_bytes(8, 'little') + part)
    digest.update(data)
    return digest.hexdigest()

  def _path(self, key: str) -> str:
    return os.path.join(self._folder, key[:2], key)

  def get(self, key: str, data: bytes) -> FileResult | None:
    """The result kept for ``key`` (a file whose bytes are ``data``), or
    None: none kept, stale, or unreadable."""
    try:
      with open(self._path(key), encoding='utf-8') as f:
        entry = json.load(f)
      if any(_stat(path) != stat for path, stat in entry['reads']):
        return None
      code = base64.b64decode(entry['code']) if entry['code'] is not None else data
      sites = tuple(Site(**site) for site in entry['sites'])
      return FileResult(entry['path'], data, code, sites, entry['encoding'])
    except (OSError, ValueError, KeyError, TypeError):
      return None

  def _prepare(self) -> None:
    if self._ready:
      return
    os.makedirs(self._folder, exist_ok=True)
    for name, text in (('.gitignore', '# Made by vjpify.\n*\n'), ('CACHEDIR.TAG', _TAG)):
      marker = os.path.join(self._root, name)
      if not os.path.exists(marker):
        self._write(marker, text.encode())
    self._ready = True

  @staticmethod
  def _write(path: str, data: bytes) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix='.tmp-')
    try:
      with os.fdopen(fd, 'wb') as f:
        f.write(data)
      os.replace(temporary, path)
    except BaseException:
      os.unlink(temporary)
      raise

  def put(self, key: str, result: FileResult, reads: Sequence[str]) -> None:
    """Keeps ``result``, which read the files ``reads`` besides its own; a
    cache that cannot be written is only a slower next run."""
    entry = {
        'path': result.path,
        'encoding': result.encoding,
        'code': base64.b64encode(result.code).decode() if result.changed else None,
        'sites': [dataclasses.asdict(site) for site in result.sites],
        'reads': [[path, _stat(path)] for path in sorted(set(reads))],
    }
    try:
      self._prepare()
      self._write(self._path(key), json.dumps(entry).encode())
    except OSError:
      pass
