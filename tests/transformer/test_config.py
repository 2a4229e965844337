"""Configuration and the options that mirror it: ``settings_for`` as other
fronts call it, the command line's ``--strict``, ``--extend-exclude`` and
``--config``, and the API's ``settings=``. The projects under
``fixtures/projects/`` pin the messages of bad configurations."""

from __future__ import annotations

import os

import pytest

from support.cli import SOURCE, vjpify, write

from vjpify.transformer import ConfigError, Settings, settings_for, transform_source
from vjpify.transformer.config.table import key_position

# A Module whose base comes from a package that is nowhere.
EXTERNAL = SOURCE.replace('class Model(nn.Module):', 'from extlib import Block\n\n\nclass Model(Block):')


def test_settings_for_reads_the_nearest_table_and_puts_overrides_on_top(tmp_path):
  write(tmp_path / 'pyproject.toml', '[tool.vjpify]\nno-jit = true\njobs = 3\nstrict = true\n'
        'module-bases = ["extlib.Block"]\nextend-exclude = ["gen/*.py", "*_pb2.py"]\n')
  write(tmp_path / 'pkg' / 'pyproject.toml', '[project]\nname = "inner"\n')  # no table: looked past
  settings = settings_for(str(tmp_path / 'pkg' / 'model.py'), jobs=1)
  assert settings == Settings(jit=False, jobs=1, strict=True, module_bases=('extlib.Block',),
                              extend_exclude=(f'{tmp_path}/gen/*.py', '*_pb2.py'))


def test_settings_for_without_configuration_gives_the_defaults(tmp_path):
  assert settings_for(str(tmp_path), defaults=Settings(jobs=5)) == Settings(jobs=5)


def test_settings_for_rejects_unknown_overrides(tmp_path):
  with pytest.raises(TypeError, match='unknown settings no_jit'):
    settings_for(str(tmp_path), no_jit=True)


def test_config_names_another_file(tmp_path):
  write(tmp_path / 'ci.toml', '[tool.vjpify]\nexclude = ["vendored"]\n')
  assert settings_for(str(tmp_path), config=str(tmp_path / 'ci.toml')).default_exclude == ('vendored',)


def test_config_errors_name_the_file_and_line(tmp_path):
  path = write(tmp_path / 'pyproject.toml', '[project]\nname = "x"\n\n[tool.vjpify]\nstrict = "yes"\n')
  with pytest.raises(ConfigError) as caught:
    settings_for(str(tmp_path))
  assert (caught.value.line, caught.value.column) == (5, 1)
  assert caught.value.format().endswith(
      ":5:1: VJ106 'strict' in [tool.vjpify] must be true or false, not 'yes' (a string); nothing was rewritten; "
      'fix the value')
  assert caught.value.path.endswith(str(path.name))


@pytest.mark.parametrize('text, position', [
    pytest.param('[tool.vjpify]\n\n  jobs = 2\n', (3, 3), id='in-the-table'),
    pytest.param('[tool]\nvjpify.jobs = 2\n', (2, 8), id='dotted-under-tool'),
    pytest.param('tool.vjpify.jobs = 2\n', (1, 13), id='dotted-at-top'),
    pytest.param('[tool.vjpify]\n"jobs" = 2\n', (2, 1), id='quoted'),
    pytest.param('[tool.black]\njobs = 1\n[tool.vjpify]\nstrict = true\n', (3, 1), id='other-table-header'),
])
def test_key_positions(text, position):
  assert key_position(text, 'jobs') == position


def test_strict_option_fails_on_sites_left_unchanged(tmp_path):
  write(tmp_path / 'model.py', SOURCE)
  result = vjpify('--strict', '--check', '-q', 'model.py', cwd=tmp_path)
  assert result.returncode == 1
  # Even --quiet shows the sites that fail a strict run, and nothing else.
  assert result.stderr.splitlines() == [
      'model.py:12:10: VJ202 nn.grad(...) is not inside a flax.linen.Module subclass defined in this file; '
      'left unchanged; call it from a Module method to have it rewritten']


def test_strict_counts_no_site_an_opt_out_comment_asked_for(tmp_path):
  write(tmp_path / 'model.py', SOURCE.replace('return nn.grad(f, m, x)', 'return nn.grad(f, m, x)  # vjpify: skip'))
  result = vjpify('--strict', 'model.py', cwd=tmp_path)
  assert result.returncode == 1  # the file is rewritten
  assert 'strict' not in result.stderr
  again = vjpify('--strict', 'model.py', cwd=tmp_path)
  assert again.returncode == 0, again.stderr


def test_extend_exclude_option_adds_to_the_defaults(tmp_path):
  for name in ('a/model.py', 'gen/model.py', 'build/model.py', 'a/model_pb2.py'):
    write(tmp_path / name, SOURCE)
  result = vjpify('--check', '--extend-exclude', 'gen', '--extend-exclude', '*_pb2.py', '.', cwd=tmp_path)
  assert [line for line in result.stderr.splitlines() if line.startswith('Would')] == [
      f'Would rewrite {os.path.join("a", "model.py")}']


def test_configuration_applies_and_a_missing_config_file_is_an_error(tmp_path):
  write(tmp_path / 'pyproject.toml', '[tool.vjpify]\nmodule-bases = ["extlib.Block"]\nno-jit = true\n')
  write(tmp_path / 'model.py', EXTERNAL)
  result = vjpify('--diff', 'model.py', cwd=tmp_path)
  assert result.returncode == 1 and '+        lambda mdl, x: mdl(x), nn.Dense(3), x,' in result.stdout
  bad = vjpify('--config', 'missing.toml', 'model.py', cwd=tmp_path)
  assert bad.returncode == 2
  assert bad.stderr == ('missing.toml: VJ101 cannot read the configuration: no such file or directory; '
                        'nothing was rewritten; check the path\n')


def test_api_takes_settings(tmp_path):
  assert not transform_source(EXTERNAL, str(tmp_path / 'model.py')).sites[0].action == 'rewritten'
  settings = Settings(module_bases=('extlib.Block',))
  result = transform_source(EXTERNAL, str(tmp_path / 'model.py'), settings=settings, jit=False)
  assert result.sites[0].action == 'rewritten' and 'compiled' not in result.code


def test_force_exclude_and_respect_gitignore_keys_act_as_their_options(tmp_path):
  write(tmp_path / 'pyproject.toml', '[tool.vjpify]\nforce-exclude = true\nextend-exclude = ["gen"]\n'
                                     'respect-gitignore = false\n')
  write(tmp_path / '.gitignore', 'ignored/\n')
  for name in ('gen/model.py', 'ignored/model.py', 'a/model.py'):
    write(tmp_path / name, SOURCE)
  named = vjpify('--check', os.path.join('gen', 'model.py'), cwd=tmp_path)
  assert (named.returncode, named.stderr) == (0, 'vjpify: 0 files scanned, 0 would change, 0 sites would be '
                                                 'rewritten, 0 skipped, 0 errors\n')
  walked = vjpify('--check', '.', cwd=tmp_path)
  assert [line for line in walked.stderr.splitlines() if line.startswith('Would')] == [
      f'Would rewrite {os.path.join("a", "model.py")}', f'Would rewrite {os.path.join("ignored", "model.py")}']
  # The command line wins over the configuration.
  named = vjpify('--check', '--no-force-exclude', os.path.join('gen', 'model.py'), cwd=tmp_path)
  assert named.returncode == 1


def test_stdin_filename_finds_the_configuration_of_that_path(tmp_path):
  write(tmp_path / 'proj/pyproject.toml', '[tool.vjpify]\nno-jit = true\n')
  result = vjpify('--stdin-filename', 'proj/model.py', '-', cwd=tmp_path, stdin=SOURCE.encode())
  assert result.returncode == 1 and b'compiled' not in result.stdout and b'nn.vjp' in result.stdout


def test_the_command_line_undoes_what_the_configuration_turned_on(tmp_path):
  write(tmp_path / 'pyproject.toml', '[tool.vjpify]\nno-jit = true\nstrict = true\n')
  write(tmp_path / 'model.py', EXTERNAL)
  configured = vjpify('--diff', 'model.py', cwd=tmp_path)
  assert configured.returncode == 1 and 'vjpify: strict: 2 sites left unchanged' in configured.stderr
  undone = vjpify('--diff', '--no-strict', 'model.py', cwd=tmp_path)
  assert undone.returncode == 0 and 'strict' not in undone.stderr
  write(tmp_path / 'model.py', SOURCE)
  assert 'compiled' not in vjpify('--diff', 'model.py', cwd=tmp_path).stdout
  assert 'compiled(' in vjpify('--diff', '--jit', 'model.py', cwd=tmp_path).stdout
