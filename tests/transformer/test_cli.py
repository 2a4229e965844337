"""The command line's contract, through the real CLI in subprocesses: modes
(in place, --check, --diff, stdin), exit codes, messages, the JSON report,
colour, the progress bar, parallel runs and start-up imports."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from support.cli import (  # noqa: F401 (project is a fixture)
    COMPILED_SITE, PLAIN, PLAIN_SITE, REWRITTEN, SKIPPED_DIAGNOSTIC, SOURCE, TIMEOUT_S, assert_no_traceback, cli_env,
    console_script, project, snapshot, vjpify, write)


def test_rewrites_in_place_and_reports_each_file(project):
  result = vjpify('model.py', 'plain.py', cwd=project)
  assert result.returncode == 1, result.stderr
  assert (project / 'model.py').read_text() == REWRITTEN
  assert (project / 'plain.py').read_text() == PLAIN
  lines = result.stderr.splitlines()
  assert 'Rewriting model.py' in lines
  assert not any('plain.py' in line for line in lines)
  assert f'model.py{SKIPPED_DIAGNOSTIC}' in result.stderr
  assert lines[-1] == 'vjpify: 2 files scanned, 1 changed, 1 site rewritten, 1 skipped, 0 errors'
  assert result.stdout == ''


def test_second_run_finds_nothing_to_do(project):
  vjpify('model.py', cwd=project)
  before = snapshot(project)
  result = vjpify('model.py', 'plain.py', cwd=project)
  assert result.returncode == 0, result.stderr
  assert 'Rewriting' not in result.stderr
  assert snapshot(project) == before


def test_check_lists_what_would_change_and_writes_nothing(project):
  before = snapshot(project)
  result = vjpify('--check', 'model.py', 'plain.py', cwd=project)
  assert result.returncode == 1
  assert 'Would rewrite model.py' in result.stderr.splitlines()
  assert 'Rewriting' not in result.stderr
  assert 'vjpify: 2 files scanned, 1 would change, 1 site would be rewritten' in result.stderr
  assert snapshot(project) == before


def test_check_is_clean_on_a_clean_tree(project):
  result = vjpify('--check', 'plain.py', cwd=project)
  assert result.returncode == 0
  assert 'Would rewrite' not in result.stderr


def test_diff_prints_a_patch_that_applies(project, tmp_path_factory):
  before = snapshot(project)
  result = vjpify('--diff', 'model.py', cwd=project)
  assert result.returncode == 1
  assert snapshot(project) == before
  assert result.stdout.startswith('--- model.py\n+++ model.py\n@@ ')
  assert '\033' not in result.stdout
  other = tmp_path_factory.mktemp('apply')
  write(other / 'model.py', SOURCE)
  subprocess.run(['git', 'apply', '-p0', '-'], cwd=other, input=result.stdout.encode(), check=True)
  assert (other / 'model.py').read_text() == REWRITTEN


@pytest.mark.parametrize('color, env, colored', [
    pytest.param('always', {}, True, id='always'),
    pytest.param('always', {'NO_COLOR': '1'}, True, id='always-beats-NO_COLOR'),
    pytest.param('never', {}, False, id='never'),
    pytest.param('never', {'FORCE_COLOR': '1'}, False, id='never-beats-FORCE_COLOR'),
    pytest.param('auto', {}, False, id='auto-in-a-pipe'),
    pytest.param('auto', {'FORCE_COLOR': '1'}, True, id='FORCE_COLOR-in-a-pipe'),
    pytest.param('auto', {'FORCE_COLOR': 'true'}, True, id='FORCE_COLOR-any-value'),
    pytest.param('auto', {'FORCE_COLOR': ''}, False, id='FORCE_COLOR-empty'),
    pytest.param('auto', {'FORCE_COLOR': '1', 'NO_COLOR': '1'}, False, id='NO_COLOR-beats-FORCE_COLOR'),
])
def test_diff_colour_in_a_pipe(project, color, env, colored):
  result = vjpify('--diff', f'--color={color}', 'model.py', cwd=project, env=cli_env(**env))
  assert ('\033[32m+' in result.stdout) == colored
  assert result.returncode == 1


def _run_on_terminal(args, cwd, env, stream='stdout'):
  """Runs the CLI with ``stream`` attached to an 80-column pseudo-terminal;
  returns (exit status, what the terminal showed)."""
  leader, follower = pty.openpty()
  fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 80, 0, 0))
  streams = {'stdout': subprocess.PIPE, 'stderr': subprocess.PIPE, stream: follower}
  process = subprocess.Popen([sys.executable, '-m', 'vjpify.transformer', *args], cwd=cwd, env=env,
                             stdin=subprocess.DEVNULL, **streams)
  os.close(follower)
  shown = b''
  while True:
    try:
      chunk = os.read(leader, 65536)
    except OSError:  # EIO: the child closed the terminal.
      break
    if not chunk:
      break
    shown += chunk
  os.close(leader)
  process.communicate(timeout=TIMEOUT_S)
  return process.returncode, shown.decode('utf-8', 'replace')


@pytest.mark.parametrize('env, colored', [
    pytest.param({}, True, id='auto-on-a-terminal'),
    pytest.param({'NO_COLOR': '1'}, False, id='NO_COLOR'),
])
def test_diff_colour_on_a_terminal(project, env, colored):
  status, shown = _run_on_terminal(['--diff', 'model.py'], project, cli_env(**env))
  assert status == 1
  assert '+++ model.py' in shown
  assert ('\033[32m+' in shown) == colored


# TQDM_DELAY=0 shows the bar at once instead of after a second, so that
# whether it shows does not depend on how fast the machine is.
_NO_DELAY = {'TQDM_DELAY': '0'}


@pytest.fixture
def three_models(tmp_path):
  for i in range(3):
    write(tmp_path / f'm{i}.py', SOURCE)
  return tmp_path


def test_progress_bar_on_a_terminal(three_models):
  status, shown = _run_on_terminal(['--check', '.'], three_models, cli_env(**_NO_DELAY), stream='stderr')
  assert status == 1
  assert '/3 [' in shown and 'file/s' in shown


@pytest.mark.parametrize('args, env', [
    pytest.param(['--check', '.'], {'PRE_COMMIT': '1'}, id='pre-commit'),
    pytest.param(['--check', '--quiet', '.'], {}, id='quiet'),
])
def test_no_progress_bar_under_pre_commit_or_quiet(three_models, args, env):
  status, shown = _run_on_terminal(args, three_models, cli_env(**_NO_DELAY, **env), stream='stderr')
  assert status == 1
  assert 'file/s' not in shown and '/3' not in shown


@pytest.mark.parametrize('size, shown_line', [
    pytest.param(2**20, True, id='a-long-file'),
    pytest.param(2**16, False, id='a-short-file'),
])
def test_one_long_file_shows_its_progress_on_a_terminal(tmp_path, size, shown_line):
  filler = 'TABLE = [\n' + '    [0.5, 1.5, 2.5],\n' * (size // 20) + ']\n'
  write(tmp_path / 'big.py', SOURCE + '\n\n' + filler)
  status, shown = _run_on_terminal(['--check', 'big.py'], tmp_path, cli_env(**_NO_DELAY), stream='stderr')
  assert status == 1
  assert ('vjpify: big.py (' in shown) == shown_line


def test_no_progress_bar_in_a_pipe(three_models):
  result = vjpify('--check', '.', cwd=three_models, env=cli_env(**_NO_DELAY))
  assert result.returncode == 1
  assert '\r' not in result.stderr and 'file/s' not in result.stderr


def test_stdin_to_stdout(tmp_path):
  result = vjpify('-', cwd=tmp_path, stdin=SOURCE.encode())
  assert result.returncode == 1
  assert result.stdout == REWRITTEN.encode()
  assert 'Rewriting' not in result.stderr
  assert f'-{SKIPPED_DIAGNOSTIC}' in result.stderr


def test_fn_is_compiled_unless_no_jit(tmp_path):
  compiled_run = vjpify('-', cwd=tmp_path, stdin=SOURCE.encode()).stdout.decode()
  assert COMPILED_SITE in compiled_run
  assert 'from vjpify.runtime import compiled, grad_from_vjp\n' in compiled_run
  plain_run = vjpify('--no-jit', '-', cwd=tmp_path, stdin=SOURCE.encode()).stdout.decode()
  assert PLAIN_SITE in plain_run
  assert 'from vjpify.runtime import grad_from_vjp\n' in plain_run


def test_no_jit_reaches_worker_processes(tmp_path):
  for i in range(4):
    write(tmp_path / f'model{i}.py', SOURCE)
  result = vjpify('--no-jit', '--jobs=2', '.', cwd=tmp_path)
  assert result.returncode == 1, result.stderr
  for i in range(4):
    assert PLAIN_SITE in (tmp_path / f'model{i}.py').read_text()


def test_stdin_unchanged_is_echoed(tmp_path):
  result = vjpify('-', cwd=tmp_path, stdin=PLAIN.encode())
  assert result.returncode == 0
  assert result.stdout == PLAIN.encode()


def test_stdin_check_and_diff(tmp_path):
  check = vjpify('--check', '-', cwd=tmp_path, stdin=SOURCE.encode())
  assert check.returncode == 1 and check.stdout == b''
  diff = vjpify('--diff', '-', cwd=tmp_path, stdin=SOURCE.encode())
  assert diff.returncode == 1 and diff.stdout.startswith(b'--- -\n+++ -\n')


def test_stdin_error_writes_nothing(tmp_path):
  result = vjpify('-', cwd=tmp_path, stdin=b'import flax\ngrad(\n')
  assert result.returncode == 2
  assert result.stdout == b''
  assert "-:2:5: VJ001 cannot parse: '(' was never closed" in result.stderr
  assert_no_traceback(result)


def test_exit_zero_even_if_changed(project):
  result = vjpify('--exit-zero-even-if-changed', 'model.py', cwd=project)
  assert result.returncode == 0
  assert (project / 'model.py').read_text() == REWRITTEN
  assert 'Rewriting model.py' in result.stderr


def test_exit_zero_even_if_changed_does_not_hide_check(project):
  assert vjpify('--exit-zero-even-if-changed', '--check', 'model.py', cwd=project).returncode == 1


def test_exit_zero_even_if_changed_does_not_hide_errors(project):
  write(project / 'broken.py', 'import flax\ngrad(\n')
  assert vjpify('--exit-zero-even-if-changed', '.', cwd=project).returncode == 2


def test_report_lists_every_site(project):
  write(project / 'broken.py', 'import flax\ngrad(\n')
  result = vjpify('--report', 'report.json', '.', cwd=project)
  assert result.returncode == 2
  report = json.loads((project / 'report.json').read_text())
  assert report['summary'] == {
      'files_scanned': 3, 'files_changed': 1, 'sites_rewritten': 1, 'sites_skipped': 1, 'errors': 1}
  assert [(s['path'], s['line'], s['col'], s['kind'], s['action']) for s in report['sites']] == [
      ('broken.py', 2, 5, 'file', 'error'),
      ('model.py', 8, 12, 'grad', 'rewritten'),
      ('model.py', 12, 10, 'grad', 'skipped'),
  ]
  assert all(set(s) == {'path', 'line', 'col', 'code', 'kind', 'action', 'reason'} for s in report['sites'])
  assert [s['code'] for s in report['sites']] == ['VJ001', 'VJ990', 'VJ202']
  assert 'not inside a flax.linen.Module' in report['sites'][2]['reason']


def test_report_under_check_writes_only_the_report(project):
  before = snapshot(project)
  result = vjpify('--check', '--report', 'report.json', 'model.py', cwd=project)
  assert result.returncode == 1
  assert json.loads((project / 'report.json').read_text())['summary']['files_changed'] == 1
  (project / 'report.json').unlink()
  assert snapshot(project) == before


def test_unwritable_report_is_an_error(project):
  (project / 'report.json').mkdir()
  result = vjpify('--report', 'report.json', 'model.py', cwd=project)
  assert result.returncode == 2
  assert ('vjpify: error: --report report.json: cannot write the file: it is a directory; '
          'file left unchanged; give the path of a file, not of a folder\n') in result.stderr
  assert (project / 'model.py').read_text() == REWRITTEN
  assert_no_traceback(result)


def test_quiet_prints_only_errors(project):
  write(project / 'broken.py', 'import flax\ngrad(\n')
  result = vjpify('--quiet', '.', cwd=project)
  assert result.returncode == 2
  assert result.stderr.splitlines() == ["broken.py:2:5: VJ001 cannot parse: '(' was never closed; "
                                        'file left unchanged; fix the syntax error']
  assert (project / 'model.py').read_text() == REWRITTEN


def test_console_script_behaves_like_python_dash_m(tmp_path):
  outcomes = []
  for command in ((sys.executable, '-m', 'vjpify'), (sys.executable, '-m', 'vjpify.transformer'),
                  (console_script(),)):
    root = tmp_path / command[-1].replace('/', '_')
    write(root / 'model.py', SOURCE)
    write(root / 'broken.py', 'import flax\ngrad(\n')
    result = vjpify('.', cwd=root, command=command)
    outcomes.append((result.returncode, result.stdout, result.stderr, (root / 'model.py').read_text()))
  assert outcomes[0] == outcomes[1] == outcomes[2]
  assert outcomes[0][0] == 2


def test_parallel_run_matches_serial_run(tmp_path):
  roots = []
  for jobs in ('1', '2'):
    root = tmp_path / f'jobs{jobs}'
    for i in range(6):
      write(root / f'pkg{i % 3}' / f'm{i}.py', SOURCE if i % 4 else PLAIN)
    write(root / 'pkg0' / 'broken.py', 'import flax\ngrad(\n')
    result = vjpify(f'--jobs={jobs}', '.', cwd=root)
    assert result.returncode == 2
    roots.append((result.stderr, {k: v[0] for k, v in snapshot(root).items()}))
  assert roots[0] == roots[1]


@pytest.mark.parametrize('args, message', [
    pytest.param(['--bogus', 'x.py'], 'unrecognized arguments: --bogus', id='unknown-option'),
    pytest.param([], 'the following arguments are required: PATH', id='no-paths'),
    pytest.param(['--jobs=0', 'x.py'], 'expected a whole number of at least 1', id='zero-jobs'),
    pytest.param(['--jobs=many', 'x.py'], 'expected a whole number of at least 1', id='jobs-not-a-number'),
    pytest.param(['--copy-other-files', 'x.py'], '--copy-other-files needs --out-dir', id='copy-without-out-dir'),
    pytest.param(['--color=sometimes', 'x.py'], "invalid choice: 'sometimes'", id='bad-colour'),
    pytest.param(['-', '-'], "'-' (standard input) can be given only once", id='stdin-twice'),
])
def test_bad_arguments_exit_2(tmp_path, args, message):
  result = vjpify(*args, cwd=tmp_path)
  assert result.returncode == 2
  assert message in result.stderr
  assert_no_traceback(result)


def test_help_and_version(tmp_path):
  help_result = vjpify('--help', cwd=tmp_path)
  assert help_result.returncode == 0
  assert 'Exit status: 0 nothing to change, 1 files changed' in help_result.stdout
  version = vjpify('--version', cwd=tmp_path)
  assert version.returncode == 0 and version.stdout.startswith('vjpify ')


_BLOCKED_IMPORTS = '''
import sys
for name in {blocked!r}:
  sys.modules[name] = None  # makes "import name" raise ImportError
from vjpify.transformer.cli.main import main
raise SystemExit(main(sys.argv[1:]))
'''


def test_never_imports_jax_or_flax(project):
  program = _BLOCKED_IMPORTS.format(blocked=['jax', 'flax'])
  result = vjpify('model.py', cwd=project, command=(sys.executable, '-c', program))
  assert result.returncode == 1, result.stderr
  assert (project / 'model.py').read_text() == REWRITTEN


def test_files_without_sites_are_not_parsed(project):
  # Without libcst importable, only the prefilter can have handled these.
  write(project / 'mentions_flax.py', 'import flax\n')
  write(project / 'mentions_grad.py', 'from jax import grad\n')
  program = _BLOCKED_IMPORTS.format(blocked=['libcst'])
  result = vjpify('plain.py', 'mentions_flax.py', 'mentions_grad.py', cwd=project,
                  command=(sys.executable, '-c', program))
  assert result.returncode == 0, result.stderr
  assert 'vjpify: 3 files scanned, 0 changed' in result.stderr
