"""The transformer's tree is its pipeline: each stage imports only what its
package docstring allows, the front stays small, and every module says what
it is for.

The stages, in order: ``find`` (finding and deciding), ``rewrite`` (the
LibCST command, nodes, layout, imports), ``files`` (input and output),
``config`` (``[tool.vjpify]``), ``pipeline`` (one file through them) and
``engine`` (the runner over many files); ``api`` is the public face. The
front ends hand their files to the engine: ``cli`` (the command line) and
``build_hooks`` (the setuptools command and the hatchling hook, each
loading its backend alone, and sharing the command line's closing summary).
``codes``, the table of diagnostic codes, is data that every stage may read.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

TRANSFORMER = pathlib.Path(__file__).resolve().parents[2] / 'transformer'
PACKAGE = 'vjpify.transformer'
MODULES = sorted(TRANSFORMER.rglob('*.py'))

# For each stage or front module, the parts of the transformer it may
# import (a part covers its submodules).
ALLOWED = {
    'codes': (),
    'diagnostics': ('codes',),
    'settings': (),
    'files': ('files', 'codes'),
    'find': ('find', 'codes', 'diagnostics', 'settings'),
    'rewrite': ('rewrite', 'find', 'codes', 'diagnostics', 'settings'),
    'pipeline': ('find', 'rewrite', 'files', 'codes', 'diagnostics', 'settings'),
    'config': ('config', 'files', 'codes', 'settings'),
    'engine': ('engine', 'pipeline', 'find.prefilter', 'find.project', 'find.module_names', 'files', 'codes',
               'diagnostics', 'settings'),
    'cli': ('cli', 'engine', 'find.prefilter', 'files', 'config', 'codes', 'diagnostics', 'settings'),
    'api': ('engine', 'pipeline', 'files', 'diagnostics', 'settings'),
    'build_hooks': ('build_hooks', 'engine', 'cli.report', 'files', 'config', 'diagnostics', 'settings'),
    '__init__': ('api', 'config.load', 'diagnostics', 'find.prefilter', 'rewrite.command', 'settings'),
    '__main__': ('cli.main',),
}

# What the command line loads for every file, before it knows whether any
# may hold a site: libcst must not come with it.
WITHOUT_LIBCST = ('files', 'config', 'engine', 'cli', 'build_hooks', 'pipeline', 'api', 'settings', 'codes',
                  'diagnostics', '__init__',
                  '__main__',
                  'find/prefilter.py', 'find/reduction.py', 'find/selection.py', 'find/spelling.py', 'find/project.py',
                  'find/module_names.py', 'find/targets.py', 'find/__init__.py')


def _part(path: pathlib.Path) -> str:
  relative = path.relative_to(TRANSFORMER)
  return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports(tree: ast.Module) -> list[tuple[str, bool]]:
  """Every module ``tree`` imports, and whether at module level."""
  top = set(map(id, tree.body))
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [(alias.name, id(node) in top) for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      found.append((node.module, id(node) in top))
  return found


def _id(path: pathlib.Path) -> str:
  return str(path.relative_to(TRANSFORMER))


@pytest.mark.parametrize('path', MODULES, ids=_id)
def test_each_module_imports_only_earlier_stages(path):
  allowed = ALLOWED[_part(path)]
  imported = [name[len(PACKAGE) + 1:] for name, _ in _imports(ast.parse(path.read_text()))
              if name.startswith(f'{PACKAGE}.')]
  assert [name for name in imported
          if not any(name == part or name.startswith(f'{part}.') for part in allowed)] == []


@pytest.mark.parametrize('path', [p for p in MODULES if _id(p).startswith(WITHOUT_LIBCST) or _part(p) in WITHOUT_LIBCST],
                         ids=_id)
def test_what_every_file_goes_through_loads_libcst_only_on_demand(path):
  at_module_level = [name for name, top in _imports(ast.parse(path.read_text())) if top]
  assert not [name for name in at_module_level if name.split('.')[0] == 'libcst']


@pytest.mark.parametrize('path', MODULES, ids=_id)
def test_each_module_says_what_it_is_for_and_stays_short(path):
  text = path.read_text()
  assert ast.get_docstring(ast.parse(text))
  assert len(text.splitlines()) <= 400


def test_the_top_of_the_transformer_holds_the_front_only():
  # The front (api, __init__, __main__), the spine (pipeline) and the
  # values every stage shares (settings, diagnostics and their codes).
  assert len(list(TRANSFORMER.glob('*.py'))) <= 7
  assert {p.name for p in TRANSFORMER.iterdir() if p.is_dir() and p.name != '__pycache__'} == {
      'find', 'rewrite', 'files', 'config', 'engine', 'cli', 'build_hooks'}


# Each build backend is imported only by the module that serves it, so that
# a build with one backend never needs the other.
BACKENDS = {'setuptools': 'build_hooks/setuptools_command.py', 'hatchling': 'build_hooks/hatch_hook.py'}


@pytest.mark.parametrize('path', MODULES, ids=_id)
def test_build_backends_are_imported_only_by_their_own_hook(path):
  imported = {name.split('.')[0] for name, _ in _imports(ast.parse(path.read_text()))}
  assert sorted(backend for backend, owner in BACKENDS.items() if backend in imported and _id(path) != owner) == []
