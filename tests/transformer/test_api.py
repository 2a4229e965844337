"""The Python API for build systems: source strings, bytes, files and trees,
and the LibCST codemod command run by LibCST's own runner."""

from __future__ import annotations

import os
import subprocess
import sys

import libcst as cst
import pytest
from libcst.codemod import CodemodContext

from support.cli import COMPILED_SITE, PLAIN, PLAIN_SITE, REWRITTEN, SOURCE, cli_env, snapshot, write

import vjpify.transformer as transformer
from vjpify.transformer import (
    FileResult, TransformError, transform_bytes, transform_file, transform_source, transform_tree)


def test_transform_source_returns_code_and_sites():
  result = transform_source(SOURCE, 'model.py')
  assert result.changed and result.code == REWRITTEN and result.original == SOURCE
  assert [(s.line, s.column, s.kind, s.action) for s in result.sites] == [
      (8, 12, 'grad', 'rewritten'), (12, 10, 'grad', 'skipped')]


@pytest.mark.parametrize('call', [
    pytest.param(lambda: transform_source('def f(:\n', 'x.py'), id='source'),
    pytest.param(lambda: transform_bytes(b'def f(:\n', 'x.py'), id='bytes'),
])
def test_code_that_does_not_parse_raises_even_without_flax(call):
  # The prefilter rules the text out unparsed, but the API promises the error.
  with pytest.raises(TransformError) as caught:
    call()
  assert str(caught.value) == 'x.py:1:7: VJ001 cannot parse: invalid syntax; file left unchanged; fix the syntax error'
  assert caught.value.site.code == 'VJ001'


@pytest.mark.parametrize('data, expected', [
    pytest.param(SOURCE.replace('\n', '\r\n').encode(), REWRITTEN.replace('\n', '\r\n').encode(), id='crlf'),
    pytest.param(b'\xef\xbb\xbf' + SOURCE.encode(), b'\xef\xbb\xbf' + REWRITTEN.encode(), id='bom'),
    pytest.param(PLAIN.encode(), PLAIN.encode(), id='unchanged'),
])
def test_transform_bytes_keeps_the_files_own_bytes(data, expected):
  result = transform_bytes(data, 'model.py')
  assert result.code == expected and result.original == data
  assert result.changed == (data != expected)


@pytest.mark.parametrize('data, reason', [
    pytest.param(b'x = "caf\xe9"  # flax grad\n', 'byte 0xe9 is not valid UTF-8', id='not-utf8'),
    pytest.param(b'flax grad\x00', 'contains a NUL byte', id='binary'),
    pytest.param(b'import flax\ngrad(\n', "cannot parse: '(' was never closed", id='syntax'),
])
def test_transform_bytes_raises_with_the_site(data, reason):
  with pytest.raises(TransformError) as caught:
    transform_bytes(data, 'bad.py')
  assert caught.value.site.path == 'bad.py' and caught.value.site.action == 'error'
  assert reason in caught.value.site.reason


def test_transform_file_reads_and_optionally_writes(tmp_path):
  path = write(tmp_path / 'model.py', SOURCE)
  looked = transform_file(str(path))
  assert looked.changed and looked.destination is None
  assert path.read_text() == SOURCE
  written = transform_file(str(path), write=True)
  assert written.destination == str(path) and path.read_text() == REWRITTEN


def test_transform_file_raises_for_a_missing_file(tmp_path):
  with pytest.raises(TransformError, match='no such file or directory'):
    transform_file(str(tmp_path / 'missing.py'))


def test_transform_tree_reports_without_writing(tmp_path):
  write(tmp_path / 'pkg/model.py', SOURCE)
  write(tmp_path / 'pkg/plain.py', PLAIN)
  write(tmp_path / 'pkg/broken.py', 'import flax\ngrad(\n')
  before = snapshot(tmp_path)
  results = transform_tree([str(tmp_path / 'pkg')])
  assert snapshot(tmp_path) == before
  by_name = {os.path.basename(r.path): r for r in results}
  assert sorted(by_name) == ['broken.py', 'model.py', 'plain.py']
  assert by_name['model.py'].code == REWRITTEN.encode()
  assert by_name['broken.py'].error is not None and not by_name['broken.py'].changed
  assert not by_name['plain.py'].changed and by_name['plain.py'].sites == ()


@pytest.mark.parametrize('jobs', [1, 2])
def test_transform_tree_in_place(tmp_path, jobs):
  for i in range(3):
    write(tmp_path / f'm{i}.py', SOURCE)
  results = transform_tree([str(tmp_path)], write=True, jobs=jobs)
  assert all(isinstance(r, FileResult) and r.destination == r.path for r in results)
  assert {p.read_text() for p in tmp_path.iterdir()} == {REWRITTEN}


def test_transform_tree_into_an_output_folder(tmp_path):
  write(tmp_path / 'src/model.py', SOURCE)
  write(tmp_path / 'src/notes.txt', 'notes\n')
  results = transform_tree([str(tmp_path / 'src')], out_dir=str(tmp_path / 'out'), copy_other_files=True)
  assert [r.destination for r in results] == [str(tmp_path / 'out/model.py')]
  assert (tmp_path / 'out/model.py').read_text() == REWRITTEN
  assert (tmp_path / 'out/notes.txt').read_text() == 'notes\n'
  assert (tmp_path / 'src/model.py').read_text() == SOURCE


def test_transform_tree_rejects_conflicting_destinations(tmp_path):
  with pytest.raises(ValueError, match='choose one'):
    transform_tree([str(tmp_path)], write=True, out_dir=str(tmp_path / 'out'))
  with pytest.raises(ValueError, match='inside the input'):
    transform_tree([str(tmp_path)], out_dir=str(tmp_path / 'out'))


def test_package_import_does_not_load_libcst():
  check = ('import sys, vjpify.transformer as t; assert "libcst" not in sys.modules; '
           't.LowerGradToVjp; assert "libcst" in sys.modules')
  subprocess.run([sys.executable, '-c', check], check=True, env=cli_env())


def test_everything_in_all_is_importable():
  for name in transformer.__all__:
    assert getattr(transformer, name) is not None


def test_libcst_codemod_runner(tmp_path):
  write(tmp_path / 'src/model.py', SOURCE)
  write(tmp_path / 'src/plain.py', PLAIN)
  # --no-format: LibCST would otherwise reformat the whole file with black.
  result = subprocess.run(
      [sys.executable, '-m', 'libcst.tool', 'codemod', '--no-format', '-x',
       'vjpify.transformer.LowerGradToVjp', 'src'],
      cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert (tmp_path / 'src/model.py').read_text() == REWRITTEN
  assert (tmp_path / 'src/plain.py').read_text() == PLAIN
  assert 'is not inside a flax.linen.Module subclass' in result.stderr


def test_the_command_has_no_matcher_decorated_methods():
  # The command skips LibCST's matcher dispatch, which would silently stop
  # calling any @m.visit/@m.leave/@m.call_if_* method added to it.
  decorator_marks = ('_call_if_inside_matcher', '_call_if_not_inside_matcher', '_visit_matcher', '_leave_matcher')
  command = transformer.LowerGradToVjp
  decorated = [name for name in dir(command) for mark in decorator_marks if hasattr(getattr(command, name), mark)]
  assert decorated == []


def test_libcst_codemod_runner_takes_no_jit(tmp_path):
  write(tmp_path / 'src/model.py', SOURCE)
  result = subprocess.run(
      [sys.executable, '-m', 'libcst.tool', 'codemod', '--no-format', '-x',
       'vjpify.transformer.LowerGradToVjp', '--no-jit', 'src'],
      cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert PLAIN_SITE in (tmp_path / 'src/model.py').read_text()


@pytest.mark.parametrize('jit', [True, False])
def test_the_command_takes_jit_as_it_did_before_settings(jit):
  command = transformer.LowerGradToVjp(CodemodContext(filename='model.py'), jit=jit)
  assert (COMPILED_SITE if jit else PLAIN_SITE) in command.transform_module(cst.parse_module(SOURCE)).code


@pytest.mark.parametrize('jit', [True, False])
def test_every_entry_point_passes_jit_on(tmp_path, jit):
  site = COMPILED_SITE if jit else PLAIN_SITE
  assert site in transform_source(SOURCE, jit=jit).code
  assert site in transform_bytes(SOURCE.encode(), jit=jit).code.decode()
  write(tmp_path / 'one.py', SOURCE)
  assert site in transform_file(str(tmp_path / 'one.py'), jit=jit).code.decode()
  for i in range(3):
    write(tmp_path / 'tree' / f'model{i}.py', SOURCE)
  results = transform_tree([str(tmp_path / 'tree')], jobs=2, jit=jit)
  assert [site in r.code.decode() for r in results] == [True] * 3
