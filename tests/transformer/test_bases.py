"""Tracing bases through other files, piece by piece: finding modules as
Python's path finder does, reading what a module binds, and where a trace
stops. The fixture projects (``tests/transformer/test_projects.py``) run it whole."""

from __future__ import annotations

import os

from support.cli import write

from vjpify.transformer.find import module_names
from vjpify.transformer.find.bases import MAX_DEPTH, BaseTracer
from vjpify.transformer.find.project import find_submodule, module_name, project_root, search_folders


def test_a_regular_package_wins_and_namespace_portions_join(tmp_path):
  write(tmp_path / 'a' / 'ns' / 'x.py', '')
  write(tmp_path / 'b' / 'ns' / 'y.py', '')
  write(tmp_path / 'c' / 'pkg' / '__init__.py', '')
  write(tmp_path / 'd' / 'pkg.py', '')
  folders = [str(tmp_path / f) for f in 'abcd']
  assert find_submodule('ns', folders).folders == (str(tmp_path / 'a' / 'ns'), str(tmp_path / 'b' / 'ns'))
  assert find_submodule('ns', folders).file is None
  assert find_submodule('pkg', folders).file == str(tmp_path / 'c' / 'pkg' / '__init__.py')
  assert find_submodule('nothing', folders) is None


def test_project_root_and_search_folders(tmp_path):
  write(tmp_path / 'setup.cfg', '')
  write(tmp_path / 'src' / 'pkg' / '__init__.py', '')
  model = write(tmp_path / 'src' / 'pkg' / 'sub' / 'model.py', '')
  write(tmp_path / 'src' / 'pkg' / 'sub' / '__init__.py', '')
  assert project_root(str(model)) == str(tmp_path)
  project, installed = search_folders(str(model), str(tmp_path))
  assert project == (str(tmp_path), str(tmp_path / 'src'), str(tmp_path / 'src' / 'pkg' / 'sub'))
  assert os.getcwd() not in installed
  assert module_name(str(model)) == 'pkg.sub.model'


def test_module_names_reads_top_level_bindings_and_rereads_changed_files(tmp_path):
  path = write(tmp_path / 'm.py', 'try:\n  from x import A\nexcept ImportError:\n  A = object\nx.y = 1\n'
               'def f():\n  B = 1\n')
  names = module_names.module_names(str(path))
  assert [b.kind for b in names.bindings['A']] == ['import', 'alias']
  assert 'B' not in names.bindings and 'x' not in names.bindings  # inside a function; an attribute
  write(path, 'class A:\n  pass\n')
  assert [b.kind for b in module_names.module_names(str(path)).bindings['A']] == ['class']


def test_stdlib_and_builtin_bases_are_not_modules(tmp_path):
  path = write(tmp_path / 'base.py', 'import abc\nimport typing\n\n\nclass Base(abc.ABC, typing.Generic, Exception):\n'
               '  pass\n')
  tracer = BaseTracer(str(tmp_path / 'model.py'))
  assert tracer.trace('.base.Base', 1).module is False
  assert tracer.trace('typing.Protocol', 1).module is False
  assert os.path.exists(path)


def test_a_chain_longer_than_the_limit_stops_with_a_reason(tmp_path):
  write(tmp_path / 'pyproject.toml', '')
  write(tmp_path / 'm0.py', 'import flax.linen as nn\n\n\nclass B0(nn.Module):\n  pass\n')
  files = MAX_DEPTH
  for i in range(1, files):
    write(tmp_path / f'm{i}.py', f'from m{i - 1} import B{i - 1}\n\n\nclass B{i}(B{i - 1}):\n  pass\n')
  tracer = BaseTracer(str(tmp_path / 'model.py'))
  assert tracer.trace(f'm{files // 4}.B{files // 4}', 1).module is True
  far = BaseTracer(str(tmp_path / 'model.py')).trace(f'm{files - 1}.B{files - 1}', 1)
  assert far.module is None and f'more than {MAX_DEPTH} imports, aliases and bases away' in far.stop
