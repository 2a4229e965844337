"""Reading the ``[tool.vjpify]`` table of one TOML file and checking it: each
key is named like the command line's long option, and each value must have
the option's type. An unknown key, a wrong type or a file that is not TOML
is a :class:`ConfigError` naming the key, the file and the line.

``tomllib`` (``tomli`` before Python 3.11) gives the values but not where
they are, so the line of a key is found in the text: the ``[tool.vjpify]``
header and the key's line below it (or a dotted ``vjpify.key`` or
``tool.vjpify.key`` line).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Mapping

from vjpify.transformer.codes import code, selected
from vjpify.transformer.files.problems import os_problem

TABLE = '[tool.vjpify]'

# The advice of every configuration error: the run stops before any file.
_OUTCOME = 'nothing was rewritten'


class ConfigError(Exception):
  """The configuration cannot be used; ``format()`` gives the line to show:
  ``path:line:col: CODE what was found; what vjpify did; what to do``
  (``path: CODE ...`` when no line is to blame, as for an unreadable file)."""

  def __init__(self, path: str, code: str, reason: str, line: int | None = None, column: int | None = None):
    where = path if line is None else f'{path}:{line}:{column}'
    super().__init__(f'{where}: {code} {reason}')
    self.path = path
    self.code = code
    self.line = line
    self.column = column
    self.reason = reason

  def format(self) -> str:
    return str(self)


def _bad_item(value: list, good) -> str | None:
  for item in value:
    if not good(item):
      return f'{item!r} (an item of the list)'
  return None


def _names(value: object) -> str | None:
  """What is wrong with ``value`` as a list of strings; None when nothing."""
  if not isinstance(value, list):
    return _describe(value)
  return _bad_item(value, lambda item: isinstance(item, str))


def _qualified_names(value: object) -> str | None:
  return _names(value) or _bad_item(
      value, lambda item: bool(item) and all(part.isidentifier() for part in item.split('.')))


def _whole_number(value: object) -> str | None:
  good = isinstance(value, int) and not isinstance(value, bool) and value >= 1
  return None if good else _describe(value)


def _boolean(value: object) -> str | None:
  return None if isinstance(value, bool) else _describe(value)


def _codes(value: object) -> str | None:
  return _names(value) or _bad_item(value, lambda item: bool(selected(item)))


def _selected_codes(folder: str) -> Callable[[list[str]], tuple[str, ...]]:
  # A prefix stands for every code it starts, as ruff's selectors do.
  return lambda prefixes: tuple(dict.fromkeys(c for prefix in prefixes for c in selected(prefix)))


def _globs(folder: str) -> Callable[[list[str]], tuple[str, ...]]:
  # A glob with a slash names a path relative to the configuration's folder,
  # as in ruff; one without, any file or folder of that name.
  def anchored(globs: list[str]) -> tuple[str, ...]:
    return tuple(os.path.join(folder, g).replace(os.sep, '/') if '/' in g.rstrip('/') else g.rstrip('/')
                 for g in globs)
  return anchored


# key: (what is wrong with a value, or None; what it must be; the Settings
# field it sets; its conversion, given the configuration's folder)
_KEYS: dict[str, tuple[Callable[[object], str | None], str, str, Callable[[str], Callable]]] = {
    'cache': (_boolean, 'true or false', 'cache', lambda folder: bool),
    'exclude': (_names, 'a list of globs (strings)', 'default_exclude', _globs),
    'extend-exclude': (_names, 'a list of globs (strings)', 'extend_exclude', _globs),
    'force-exclude': (_boolean, 'true or false', 'force_exclude', lambda folder: bool),
    'ignore': (_codes, 'a list of codes of sites left unchanged, or prefixes of them, such as "VJ205" or "VJ2"',
               'ignore', _selected_codes),
    'jobs': (_whole_number, 'a whole number of at least 1', 'jobs', lambda folder: int),
    'lift-jax-transforms': (_boolean, 'true or false', 'lift_jax_transforms', lambda folder: bool),
    'module-bases': (_qualified_names, 'a list of qualified names such as "mylib.layers.Base"', 'module_bases',
                     lambda folder: tuple),
    'no-jit': (_boolean, 'true or false', 'jit', lambda folder: lambda v: not v),
    'respect-gitignore': (_boolean, 'true or false', 'respect_gitignore', lambda folder: bool),
    'strict': (_boolean, 'true or false', 'strict', lambda folder: bool),
    'strict-jax-transforms': (_boolean, 'true or false', 'strict_jax_transforms', lambda folder: bool),
}
KEYS = tuple(sorted(_KEYS))


def _toml():
  if sys.version_info >= (3, 11):
    import tomllib
    return tomllib
  import tomli
  return tomli


def _describe(value: object) -> str:
  kinds = {bool: 'true or false', int: 'a number', float: 'a number', str: 'a string', list: 'a list',
           dict: 'a table'}
  shown = repr(value) if not isinstance(value, bool) else str(value).lower()
  return f'{shown} ({kinds.get(type(value), type(value).__name__)})'


def table_position(text: str) -> tuple[int, int] | None:
  """Where ``tool.vjpify`` is given a value that is not a table: a
  ``vjpify = ...`` line under ``[tool]``, or a ``tool.vjpify = ...`` line
  before any table; None when neither is found."""
  table = None
  for number, line in enumerate(text.splitlines(), start=1):
    header = re.match(r'\s*\[\s*([^\]]*?)\s*\]', line)
    if header:
      table = re.sub(r'\s+', '', header.group(1))
      continue
    key = r'(?:vjpify|"vjpify"|\'vjpify\')'
    pattern = {'tool': rf'\s*({key})\s*=', None: rf'\s*tool\s*\.\s*({key})\s*='}.get(table)
    found = re.match(pattern, line) if pattern else None
    if found:
      return number, found.start(1) + 1
  return None


def key_position(text: str, key: str) -> tuple[int, int] | tuple[None, None]:
  """The line and column where ``key`` of ``[tool.vjpify]`` is written in
  ``text``; the table's header when the key's own line cannot be told."""
  lines = text.splitlines()
  header = re.compile(r'\s*\[\s*tool\s*\.\s*(?:"vjpify"|\'vjpify\'|vjpify)\s*\]')
  quoted = rf'(?:{re.escape(key)}|"{re.escape(key)}"|\'{re.escape(key)}\')'
  in_table = False
  table_line = None
  for number, line in enumerate(lines, start=1):
    if header.match(line):
      in_table, table_line = True, number
      continue
    if re.match(r'\s*\[', line):
      in_table = False
    pattern = rf'\s*(?:(?:tool\s*\.\s*)?vjpify\s*\.\s*)?({quoted})\s*=' if not in_table else rf'\s*({quoted})\s*='
    found = re.match(pattern, line)
    if found and (in_table or 'vjpify' in line[:found.start(1)]):
      return number, found.start(1) + 1
  return (table_line, 1) if table_line else (None, None)


def _syntax_error(path: str, error: Exception) -> ConfigError:
  message = str(error)
  where = re.search(r'\s*\(at line (\d+), column (\d+)\)', message)
  line, column = (int(where.group(1)), int(where.group(2))) if where else (None, None)
  if where:
    message = message[:where.start()] + message[where.end():]
  return ConfigError(path, code('config-not-toml'), f'is not valid TOML ({message}); {_OUTCOME}; fix the syntax',
                     line, column)


def read_table(path: str) -> tuple[Mapping[str, object] | None, str]:
  """The ``[tool.vjpify]`` table of the TOML file ``path`` (None when it has
  none) and the file's text.

  Raises:
    ConfigError: the file cannot be read or is not TOML.
  """
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as error:
    problem = os_problem(error, code('config-unreadable'), 'read the configuration', _OUTCOME, 'check the path')
    raise ConfigError(path, problem.code, problem.reason) from None
  try:
    text = data.decode('utf-8')
    document = _toml().loads(text)
  except UnicodeDecodeError as error:
    raise ConfigError(path, code('config-not-utf8'), f'is not UTF-8 text ({error.reason}); {_OUTCOME}; '
                      'save it as UTF-8') from None
  except _toml().TOMLDecodeError as error:
    raise _syntax_error(path, error) from None
  tool = document.get('tool')
  table = tool.get('vjpify') if isinstance(tool, dict) else None
  if table is not None and not isinstance(table, dict):
    line, column = table_position(text) or (None, None)
    raise ConfigError(path, code('config-not-a-table'), f'tool.vjpify is {_describe(table)}, not a table; '
                      f'{_OUTCOME}; write the settings under {TABLE}', line, column)
  return table, text


def settings_values(path: str, table: Mapping[str, object], text: str) -> dict[str, object]:
  """The ``Settings`` fields that ``table`` (read from ``path``, whose text
  is ``text``) sets.

  Raises:
    ConfigError: a key is unknown or its value has the wrong type.
  """
  folder = os.path.dirname(os.path.abspath(path))
  values: dict[str, object] = {}
  for key, value in table.items():
    if key not in _KEYS:
      line, column = key_position(text, key)
      close = difflib.get_close_matches(key, KEYS, n=1)
      hint = f"did you mean '{close[0]}'? " if close else ''
      raise ConfigError(path, code('config-unknown-key'), f"unknown key '{key}' in {TABLE}; {_OUTCOME}; {hint}"
                        f'the keys are {", ".join(KEYS)}', line, column)
    check, expected, field, convert = _KEYS[key]
    wrong = check(value)
    if wrong:
      line, column = key_position(text, key)
      bad = code('config-unknown-code' if key == 'ignore' and not _names(value) else 'config-bad-value')
      raise ConfigError(path, bad, f"'{key}' in {TABLE} must be {expected}, not {wrong}; "
                        f'{_OUTCOME}; fix the value', line, column)
    values[field] = convert(folder)(value)
  return values
