"""Ctrl-C in the middle of a run, as a terminal delivers it (SIGINT to the
whole process group, workers included): every file is left either as it
was or fully rewritten, and nothing else is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from support.cli import REWRITTEN, SOURCE, TIMEOUT_S, cli_env, write

_FILES = 120

# python -m vjpify.transformer, except that Ctrl-C raises KeyboardInterrupt
# even when the test runner was started in the background, which makes
# every child ignore SIGINT (a terminal's foreground job does not).
_CTRL_C_AS_ON_A_TERMINAL = (
    'import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); '
    "runpy.run_module('vjpify.transformer', run_name='__main__')")


def test_interrupt_leaves_every_file_old_or_new(tmp_path):
  for i in range(_FILES):
    write(tmp_path / f'pkg{i % 4}' / f'model{i:03}.py', SOURCE)
  process = subprocess.Popen(
      [sys.executable, '-c', _CTRL_C_AS_ON_A_TERMINAL, '--jobs=2', '.'], cwd=tmp_path, env=cli_env(),
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
  seen = []
  for line in process.stderr:
    seen.append(line)
    if line.startswith('Rewriting'):
      os.killpg(process.pid, signal.SIGINT)
      break
  _, rest = process.communicate(timeout=TIMEOUT_S)
  stderr = ''.join(seen) + (rest or '')
  assert process.returncode == 130, stderr
  assert 'vjpify: interrupted; every file is either as it was or fully rewritten' in stderr
  assert 'Traceback' not in stderr
  contents = [p.read_text() for p in sorted(tmp_path.rglob('*')) if p.is_file()]
  assert len(contents) == _FILES  # no temporary files left behind
  assert set(contents) <= {SOURCE, REWRITTEN}
  assert REWRITTEN in contents and SOURCE in contents  # the run really was cut short
