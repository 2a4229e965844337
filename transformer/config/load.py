"""Finding the configuration of a file or folder and building the
:class:`~vjpify.transformer.settings.Settings` it asks for.

The configuration is the ``[tool.vjpify]`` table of the nearest
``pyproject.toml`` that has one, from the given path's folder upwards, as
ruff finds its own (``--config PATH`` names a file instead). A
``pyproject.toml`` without the word ``vjpify`` is not even parsed.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

from vjpify.transformer.config.table import ConfigError, read_table, settings_values
from vjpify.transformer.settings import Settings

__all__ = ['ConfigError', 'find_config', 'settings_for']

PYPROJECT = 'pyproject.toml'


def find_config(path: str) -> str | None:
  """The ``pyproject.toml`` whose ``[tool.vjpify]`` table configures
  ``path`` (a file or folder, existing or not), or None.

  Raises:
    ConfigError: a ``pyproject.toml`` on the way mentions vjpify but is not
      valid TOML.
  """
  start = os.path.abspath(path)
  start = pathlib.PurePath(start if os.path.isdir(start) else os.path.dirname(start))
  candidates = (os.path.join(folder, PYPROJECT) for folder in (start, *start.parents))
  for candidate in candidates:
    if os.path.isfile(candidate) and _mentions_vjpify(candidate):
      shown = _shown(candidate)
      if read_table(shown)[0] is not None:
        return shown
  return None


def _shown(path: str) -> str:
  """``path`` as messages name it: relative to the working directory when
  inside it, as ruff and black name files."""
  relative = os.path.relpath(path)
  return path if relative.startswith(os.pardir) else relative


def _mentions_vjpify(path: str) -> bool:
  try:
    with open(path, 'rb') as f:
      return b'vjpify' in f.read()
  except OSError:
    return False


def common_folder(paths: Sequence[str]) -> str:
  """The folder the configuration of a run over ``paths`` is looked for
  from, as black looks for its own: the deepest folder holding them all
  (the working directory for standard input alone)."""
  real = [os.path.abspath(p) for p in paths if p != '-']
  if not real:
    return os.getcwd()
  if len(real) == 1:
    return real[0]
  return os.path.commonpath(real)


def config_values(path: str, config: str | None = None) -> dict[str, object]:
  """The ``Settings`` fields that the configuration of ``path`` (or the
  file ``config``) sets; empty when there is no configuration.

  Raises:
    ConfigError: the configuration is unreadable, not TOML, or has an
      unknown key or a value of the wrong type.
  """
  found = config if config is not None else find_config(path)
  if found is None:
    return {}
  table, text = read_table(found)
  return settings_values(found, table or {}, text)


def settings_for(path: str, config: str | None = None, *, defaults: Settings = Settings(),
                 **overrides) -> Settings:
  """The settings for the files at ``path`` (a file or folder): the
  ``[tool.vjpify]`` table of its configuration on top of ``defaults``, and
  ``overrides`` on top of both.

  Note that relative ``exclude`` and ``extend-exclude`` globs (those with a
  ``/``) are made absolute, anchored at the configuration's folder, so the
  settings mean the same from any working directory.

  Example::

      from vjpify.transformer.config.load import settings_for

      settings = settings_for('src/', jobs=1)   # [tool.vjpify], then jobs=1
      settings.jit, settings.strict, settings.module_bases

  Args:
    path: a file or folder; its configuration is the nearest
      ``pyproject.toml`` with a ``[tool.vjpify]`` table, from its folder up.
    config: a TOML file to read ``[tool.vjpify]`` from instead (the command
      line's ``--config``).
    defaults: the settings the configuration starts from.
    **overrides: ``Settings`` fields (``jit``, ``jobs``, ``strict``,
      ``exclude``, ``extend_exclude``, ``default_exclude``,
      ``module_bases``, ``ignore``) that win over the configuration.

  Returns:
    A :class:`~vjpify.transformer.settings.Settings`.

  Raises:
    ConfigError: the configuration is unreadable, not TOML, or has an
      unknown key or a value of the wrong type; ``format()`` says where.
    TypeError: an override that is not a ``Settings`` field.
  """
  unknown = sorted(set(overrides) - set(Settings._fields))
  if unknown:
    raise TypeError(f'settings_for() got unknown settings {", ".join(unknown)}; '
                    f'the settings are {", ".join(Settings._fields)}')
  return defaults._replace(**config_values(path, config))._replace(**overrides)
