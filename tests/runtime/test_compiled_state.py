"""The runtime's state: made on first use, the environment read then (a bad value a warning), one lock.

Nothing here compiles: the state's rules are checked on their own, and one
fresh process checks that importing the runtime never fails because of the
environment.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vjpify.runtime.compiled import cache, settings, state
from vjpify.runtime.compiled.settings import Limits


@pytest.mark.parametrize('variable, value, message', [
    pytest.param('VJPIFY_COMPILE', 'fast',
                 "VJPIFY_COMPILE='fast': expected one of tiered, always, never; using the default, tiered", id='mode'),
    pytest.param('VJPIFY_CACHE_BYTES', '1GB',
                 "VJPIFY_CACHE_BYTES='1GB': expected a whole number; using the default, 536870912", id='bytes'),
    pytest.param('VJPIFY_CACHE_ENTRIES', '0',
                 "VJPIFY_CACHE_ENTRIES='0': expected a positive number; using the default, 256", id='entries'),
    pytest.param('VJPIFY_CACHE_ENTRIES', '',
                 "VJPIFY_CACHE_ENTRIES='': expected a whole number; using the default, 256", id='empty'),
])
def test_a_bad_environment_variable_is_a_warning_naming_it(monkeypatch, variable, value, message):
  monkeypatch.setenv(variable, value)
  with pytest.warns(RuntimeWarning) as shown:
    runtime = state.Runtime.from_environment()
  assert [str(warning.message) for warning in shown] == [message]
  assert (runtime.limits, runtime.mode) == (settings.DEFAULT_LIMITS, settings.DEFAULT_MODE)


def test_good_environment_variables_set_the_limits_and_the_mode(monkeypatch):
  for variable, value in (('VJPIFY_COMPILE', 'never'), ('VJPIFY_CACHE_ENTRIES', '3'), ('VJPIFY_CACHE_BYTES', '4096')):
    monkeypatch.setenv(variable, value)
  runtime = state.Runtime.from_environment()
  assert (runtime.limits, runtime.mode) == ((3, 4096), 'never')


_FIRST_USE = """
import warnings
with warnings.catch_warnings(record=True) as at_import:
  warnings.simplefilter('always')
  import vjpify.runtime
with warnings.catch_warnings(record=True) as at_first_use:
  warnings.simplefilter('always')
  vjpify.runtime.compiled.cache_info()
for label, shown in (('import', at_import), ('use', at_first_use)):
  for warning in shown:
    if 'VJPIFY' in str(warning.message):
      print(label, warning.category.__name__, warning.filename, warning.message, sep=' | ')
"""


def test_bad_environment_variables_never_fail_the_import():
  env = {**os.environ, 'VJPIFY_COMPILE': 'fast', 'VJPIFY_CACHE_ENTRIES': 'many', 'VJPIFY_CACHE_BYTES': '-1'}
  process = subprocess.run([sys.executable, '-c', _FIRST_USE], capture_output=True, text=True, env=env, check=False)
  assert process.returncode == 0, process.stderr
  assert process.stdout.splitlines() == [
      "use | RuntimeWarning | <string> | VJPIFY_CACHE_ENTRIES='many': expected a whole number; using the default, 256",
      "use | RuntimeWarning | <string> | VJPIFY_CACHE_BYTES='-1': expected a positive number; "
      'using the default, 536870912',
      "use | RuntimeWarning | <string> | VJPIFY_COMPILE='fast': expected one of tiered, always, never; "
      'using the default, tiered',
  ]


def test_the_state_is_made_once_and_kept():
  assert state.state() is state.state()


def test_a_site_has_one_record_for_what_it_learnt_and_reports():
  runtime = state.Runtime()
  site = runtime.site('model.py', 14, 'loss')
  assert runtime.site('model.py', 14, 'loss') is site
  runtime.count('calls')
  runtime.ran(site, 'called with keyword arguments')
  site.retraced(None)
  [report] = runtime.explain().sites
  assert report is site.report
  assert str(report) == ('model.py:14 (loss): 1 calls, 0 compiled, 1 uncompiled, 1 traces\n'
                         '  uncompiled 1x: called with keyword arguments')
  assert runtime.info() == cache.CacheInfo(calls=1, traces=0, fallbacks=1, entries=0)
  runtime.clear()
  assert not runtime.explain().sites and runtime.site('model.py', 14, 'loss') is not site


def _entry(runtime: state.Runtime, key: str, size: int) -> cache.Entry:
  entry = cache.Entry(lambda *arguments: None)
  runtime.bucket(key).entries.append(entry)
  runtime.grew(entry, size)
  return entry


def test_memory_is_handed_back_once_evictions_freed_enough(monkeypatch):
  loads, trims = [], []
  monkeypatch.setattr(state, '_load_malloc_trim', lambda: loads.append('libc') or trims.append)
  runtime = state.Runtime(Limits(entries=1, bytes=2**40))
  _entry(runtime, 'small', 1)
  _entry(runtime, 'large', cache.TRIM_EVERY_BYTES)  # evicts 'small'
  assert (runtime.size(), runtime.stats['evictions'], loads) == ((1, cache.TRIM_EVERY_BYTES), 1, [])
  _entry(runtime, 'next', 1)  # evicts 'large': more than TRIM_EVERY_BYTES freed
  _entry(runtime, 'last', 1)
  assert (runtime.size(), runtime.stats['evictions'], loads, trims) == ((1, 1), 3, ['libc'], [0])


def test_lower_limits_evict_the_least_recently_used_keys_first():
  runtime = state.Runtime()
  for key in 'abc':
    _entry(runtime, key, 1)
  runtime.bucket('a')  # now the most recently used
  assert runtime.set_limits(entries=2) == settings.DEFAULT_LIMITS
  assert runtime.size() == (2, 2)
  runtime.set_limits(bytes=1)  # one key is always kept
  assert runtime.size() == (1, 1)
  assert runtime.bucket('a').entries  # kept; 'b' and 'c' were evicted
