"""``compiled(fn)``: the wrapper, and the path of one call through key, guards, trace and replay."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import threading
import time
import types
import warnings
from typing import Any, NamedTuple

import flax
import jax

from vjpify.runtime import internals
from vjpify.runtime.compiled import cache, heldwarnings, keys, monitor, plumbing, reports, vetting
from vjpify.runtime.compiled.fingerprint import Fingerprinter, Unguardable
from vjpify.runtime.compiled.guards import RegistryGuard
from vjpify.runtime.compiled.recorder import EffectFound, Recorder

__all__ = ['FLAX_COMPILES', 'compiled']

# Older flax releases run the compiled path with different results where a
# module differentiates one of its own setup methods that sows (flax 0.8.0);
# there every call takes the uncompiled path.
FLAX_COMPILES = internals.FLAX_VERSION >= (0, 10)

_WARMING = ('not compiled yet: the calls with this key and these shapes have not yet spent the time compiling '
            'would take (tiered compilation)')


class _NeedsTrace(BaseException):
  """jax is about to trace an entry outside a watched, vetted trace."""


class _Calls(threading.local):
  """The calls being run compiled on this thread, innermost last."""

  def __init__(self):
    self.stack: list[plumbing.Call] = []
    self.watched: list[bool] = []


_calls = _Calls()


def _trace(variables: tuple, rngs: tuple, lifted: tuple, primals: tuple) -> tuple[list, list]:
  """The function every entry jits: the traced call of the innermost wrapper."""
  if not _calls.watched or not _calls.watched[-1]:
    raise _NeedsTrace()
  cache.stats['traces'] += 1
  return plumbing.run_traced(_calls.stack[-1], variables, rngs, lifted, primals)


def _scopes_or_reason(module: Any, primals: tuple, kwargs: dict) -> plumbing.Scopes | str:
  """The scopes this call's module reaches, or why the call cannot run compiled whatever ``fn`` is."""
  if not FLAX_COMPILES:
    return f'flax {flax.__version__} is run uncompiled (compiled code is checked on flax 0.10 and later)'
  if kwargs:
    return 'called with keyword arguments'
  if not isinstance(module, internals.Module):
    return 'not called with a flax Module'
  if internals.interceptors_active():
    return 'inside nn.intercept_methods'
  if internals.call_info_active():
    return 'inside Module.tabulate'
  if jax.config.jax_disable_jit:
    return 'jax.disable_jit() is on'
  if jax.config.jax_debug_nans or jax.config.jax_debug_infs:
    # Compiled code finds a NaN by running again op by op, and says so differently.
    return 'jax_debug_nans or jax_debug_infs is on'
  hook = monitor.foreign_hook()
  if hook is not None:
    return f'{hook} is active (compiled, fn would run none of its Python code where the tool watches)'
  scopes = plumbing.Scopes.of(module)
  if scopes is None:
    return 'the module is unbound, or reaches a flax Variable through its fields'
  roots = scopes.roots
  leaves = jax.tree_util.tree_leaves(([root._variables for root in roots],  # pylint: disable=protected-access
                                      [root.rngs for root in roots], primals))
  if not all(internals.is_concrete(leaf) for leaf in leaves):
    return ('under an outer transformation (jax.jit, vmap, a lifted transform) or with numpy inputs: '
            'the outer compilation covers fn')
  return scopes


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f'{type(error).__name__}: {text[0]}' if text else type(error).__name__


def _warning(shown: warnings.WarningMessage) -> str:
  return (f'a warning ({shown.category.__name__}: {str(shown.message).splitlines()[0]} '
          f'at {shown.filename}:{shown.lineno})')


def _roots(target: Any, module: Any) -> list[Any]:
  fields = [getattr(module, field.name, None) for field in dataclasses.fields(module) if field.name != 'parent']
  return [target, type(module), *fields]


def _partial_guards(recorder: Recorder, fingerprinter: Fingerprinter, entry: cache.Entry) -> list:
  """The guards of a trace that stopped early: what it read until then, or none."""
  try:
    return recorder.guards(fingerprinter.reached_codes | entry.covered_codes,
                           {**fingerprinter.user_modules, **entry.user_modules})
  except Unguardable:
    return []


def _trace_and_vet(entry: cache.Entry, call: plumbing.Call, target: Any, fingerprinter: Fingerprinter,
                   arguments: tuple, site: reports.SiteReport, why: str | None) -> tuple[str | None, list]:
  """Traces ``call`` under watch and checks the program.

  Returns:
    The reason the entry must run uncompiled (None if it may run compiled),
    and the guards under which that holds.
  """
  recorder = Recorder(_roots(target, call.module))
  call.outlives = recorder.outlives
  site.retraced(why)
  _calls.watched[-1] = True
  try:
    # A warning the trace would show is held back, and the call then runs
    # uncompiled and shows it, as the original shows it on every call. The
    # filters are left as they are: a warning they hide is no effect.
    with heldwarnings.held() as shown, monitor.watching(recorder):
      traced = entry.run.trace(*arguments)
  except monitor.MonitorUnavailable as error:
    return f'cannot watch the trace: {error}', []
  except EffectFound:
    return f'fn {recorder.effect}', _partial_guards(recorder, fingerprinter, entry)
  except Unguardable as error:
    return f'cannot guard: {error}', _partial_guards(recorder, fingerprinter, entry)
  except Exception as error:  # pylint: disable=broad-except
    # Tracing fails where eager evaluation works (Python control flow on
    # values); the uncompiled call then raises whatever the original would.
    return f'tracing failed: {_first_line(error)}', _partial_guards(recorder, fingerprinter, entry)
  finally:
    _calls.watched[-1] = False
  if recorder.effect is not None:
    # User code caught what stopped the trace (an except BaseException).
    return f'fn {recorder.effect}', _partial_guards(recorder, fingerprinter, entry)
  if shown:
    return f'the trace issues {_warning(shown[0])}', _partial_guards(recorder, fingerprinter, entry)
  if recorder.finalized is not None:
    return recorder.finalized, _partial_guards(recorder, fingerprinter, entry)
  covered = fingerprinter.reached_codes | entry.covered_codes
  modules = {**fingerprinter.user_modules, **entry.user_modules}
  try:
    guards = recorder.guards(covered, modules)
  except Unguardable as error:
    return f'cannot guard: {error}', []
  if recorder.reads_registries:
    guards.append(RegistryGuard())
  problem = vetting.static_problem(traced.jaxpr)
  if problem is None and vetting.has_custom_rules(traced.jaxpr):
    primal_count = len(jax.tree_util.tree_leaves(arguments[-1]))
    try:
      with heldwarnings.held() as shown, monitor.watching(recorder):
        backward = vetting.probe_backward(traced.jaxpr, primal_count)
      guards += recorder.guards(covered, modules)
      if shown:
        problem = f'the backward pass issues {_warning(shown[0])}'
      elif recorder.finalized is not None:
        problem = recorder.finalized
      else:
        problem = vetting.narrow_problem(backward, 'the backward pass')
    except EffectFound:
      problem = f'the backward pass {recorder.effect}'
    except Unguardable as error:
      return f'cannot guard the backward pass: {error}', []
    except Exception as error:  # pylint: disable=broad-except
      problem = f'the backward pass cannot be traced (a custom rule needs values): {_first_line(error)}'
  if problem is None and recorder.unverified:
    call.run_once = (f'fn stores into an object it reached through a call or an index at {recorder.unverified[0]}; '
                     'whether that state outlives the call cannot be checked before each call')
  entry.covered_codes = covered
  entry.user_modules = modules
  return problem, guards


class _Warming(NamedTuple):
  """A call that could run compiled but has not yet paid for compiling: it runs uncompiled, and is timed."""

  bucket: cache.Bucket
  signature: Any


def _call_compiled(target: Any, module: Any, scopes: plumbing.Scopes, primals: tuple,
                   site: reports.SiteReport, state: cache.SiteState) -> tuple | str | _Warming:
  """Runs ``target`` compiled: a 1-tuple holding its result, the reason to run it as is, or _Warming."""
  counters = plumbing.counters_of(scopes)
  if state.own_globals:
    state.check_own_globals()
  failure = None
  for _ in range(2):
    fingerprinter = Fingerprinter(arrays=False, places=scopes.place_of)
    try:
      key = keys.call_key(fingerprinter, target, module, scopes, counters, state)
    except Unguardable as error:
      return f'cannot key: {error}'
    except RecursionError:
      return 'cannot key: a value nested too deeply'
    bucket = cache.bucket_for(key)
    if bucket.problem is not None:
      return bucket.problem
    entry, failed = bucket.find()
    if entry is not None and entry.problem is not None:
      return entry.problem
    if failed is None:
      break
    failure = failed.failure()
    # The guard's value joins the key from now on, this call included.
    if not state.note_failure(failed):
      break
  call = plumbing.Call(target, module, scopes, counters, tuple(fingerprinter.lifted))
  arguments = call.arguments(primals)
  signature = None
  if entry is None:
    if len(bucket.entries) >= cache.MAX_ENTRIES_PER_KEY:
      return f'recompile limit: {cache.MAX_ENTRIES_PER_KEY} entries for this key, and {failure}'
    signature = internals.abstract_signature(arguments)
    if not cache.earned(bucket, signature, state):
      state.watch_own_globals(target)
      return _Warming(bucket, signature)
    entry = cache.Entry(_trace)
  _calls.stack.append(call)
  _calls.watched.append(False)
  try:
    try:
      out_traced, updates_traced = entry.run(*arguments)
    except _NeedsTrace:
      if entry.record is not None:  # new shapes for a compiled entry: they pay for themselves too
        signature = internals.abstract_signature(arguments)
        if not cache.earned(bucket, signature, state):
          return _Warming(bucket, signature)
      started, resident = time.perf_counter(), cache.resident_bytes()
      problem, guards = _trace_and_vet(entry, call, target, fingerprinter, arguments, site, failure)
      entry.guards.extend(guards)
      if problem is not None:
        call.restore_counters()
        if entry.record is None:
          # A negative entry: while its guards pass, calls run uncompiled
          # without tracing again.
          entry.problem = problem
          bucket.add(entry)
        else:
          bucket.problem = problem  # new shapes of a compiled entry
        return problem
      out_traced, updates_traced = jax.block_until_ready(entry.run(*arguments))
      state.note_compiled(time.perf_counter() - started, state.fastest_uncompiled)
      state.stop_watching_own_globals()
      grown = cache.resident_bytes()
      cache.grew(entry, max(cache.MIN_ENTRY_BYTES, grown - resident if grown and resident else 0))
  except _NeedsTrace:
    call.restore_counters()
    bucket.problem = 'jax traced the compiled function again outside a watched trace'
    return bucket.problem
  except Exception as error:  # pylint: disable=broad-except
    call.restore_counters()
    bucket.problem = f'the compiled call failed: {_first_line(error)}'
    return bucket.problem
  finally:
    _calls.stack.pop()
    _calls.watched.pop()
  if call.record is not None:
    if entry.record is None:
      entry.record = call.record
      # Only now may other threads find it: an entry without its record
      # could not replay what the trace did.
      bucket.add(entry)
    elif not call.record.same_as(entry.record):
      # A retrace (new shapes) did something else Python-side: later calls
      # could not tell which record to replay.
      bucket.problem = 'a trace for new shapes did something else in Python than the first'
  if call.run_once is not None:
    bucket.problem = call.run_once
  return (plumbing.replay(call, call.record or entry.record, out_traced, updates_traced),)


def _unbound(fn: Any) -> types.FunctionType | None:
  """The function ``nn.vjp`` would call for ``fn``, or None when it is not a plain one."""
  if isinstance(fn, types.MethodType) and isinstance(fn.__self__, internals.Module):
    fn = fn.__func__
  if not isinstance(fn, types.FunctionType):
    return None
  # nn.vjp's own test, which reads through functools.wraps as Module methods
  # need; the signature is only built when the code cannot tell.
  if fn.__code__.co_argcount >= 1:
    return fn
  try:
    return fn if inspect.signature(fn).parameters else None
  except (TypeError, ValueError):
    return None


def _not_wrapped(fn: Any) -> str:
  if isinstance(fn, types.FunctionType):
    return 'fn takes no arguments, so nn.vjp cannot give it the module'
  return (f'fn is a {type(fn).__name__}, not a function or a Module method, so it runs as nn.vjp calls it '
          '(a lambda around it can be compiled)')


def compiled(fn: Any) -> Any:
  """Wraps the function given to ``nn.vjp`` so that eager calls run through a cached ``jax.jit``.

  Note that a call runs compiled only when that cannot change what the
  program does: with concrete values (under an outer ``jax.jit``, ``vmap``
  or lifted transform the outer compilation already covers ``fn``), when
  every Python value the trace read can be guarded, and when the trace did
  nothing observable (print, I/O, clocks, Python or numpy randomness,
  mutation of state that outlives the call). Everything else runs ``fn`` as
  ``nn.vjp`` would. ``vjpify.runtime.explain()`` says which calls ran
  compiled, and why the others did not.

  Example::

    x_grad, y_grad = grad_from_vjp(
        nn.vjp(compiled(lambda mdl, x, y: mdl(x, y)), mdl, x, y,
               vjp_variables=False, multi_scope=True))

  Args:
    fn: the function ``nn.vjp`` calls with the module and the primals.

  Returns:
    A function to pass to ``nn.vjp`` in place of ``fn``, with the same
    results, variable mutations, rng streams and Python effects; or ``fn``
    itself when it is not a plain function or a Module method.
  """
  target = _unbound(fn)
  caller = sys._getframe(1)  # pylint: disable=protected-access
  if target is None:
    # nn.vjp gets fn itself; explain() still lists the site, and why.
    name = getattr(fn, '__name__', type(fn).__name__)
    reports.site_at(caller.f_code.co_filename, caller.f_lineno, name).ran(_not_wrapped(fn))
    cache.stats['calls'] += 1
    cache.stats['fallbacks'] += 1
    return fn
  method = internals.wrap_method_once(target)
  where = (caller.f_code.co_filename, caller.f_lineno, target.__name__)
  site = reports.site_at(*where)
  state = cache.site_state(where)

  @functools.wraps(target)
  def call_compiled(module, *primals, **kwargs):
    cache.stats['calls'] += 1
    reason = _scopes_or_reason(module, primals, kwargs)
    if type(reason) is plumbing.Scopes:
      result = _call_compiled(target, module, reason, primals, site, state)
      if type(result) is tuple:
        site.ran(None)
        return result[0]
      if type(result) is _Warming:
        site.ran(_WARMING)
        cache.stats['fallbacks'] += 1
        started = time.perf_counter()
        out = method(module, *primals, **kwargs)
        elapsed = time.perf_counter() - started
        result.bucket.rent[result.signature] += elapsed
        state.note_uncompiled(elapsed)
        return out
      reason = result
    site.ran(reason)
    cache.stats['fallbacks'] += 1
    return method(module, *primals, **kwargs)

  # nn.vjp enters the module's method context around a function it is given;
  # the wrapped method enters it itself, on whichever module runs it.
  call_compiled.method_handler_wrapped = True
  return call_compiled
