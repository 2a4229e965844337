"""The wrapper ``compiled(fn)`` returns, and the path of one call.

A call's path is a short sequence, each step a function here: the module's
scopes (or why the call cannot run compiled at all), the key and the entry
whose guards pass (``_lookup``), a new entry once the key has paid for
compiling (``_new_entry``, else the call is warming), the trace under watch
and its vetting (``_trace_and_vet``), and the compiled run with the replay of
what the trace did in Python (``_run``). It ends in an :data:`Outcome`:
:class:`Ran`, :class:`Uncompiled` or :class:`Warming`. What the cache keeps,
and its rules, belong to the runtime's state (``state.Runtime``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import threading
import time
import types
import warnings
from typing import Any, NamedTuple, Union

import flax
import jax

from vjpify.runtime import internals
from vjpify.runtime.compiled import cache, heldwarnings, keys, monitor, plumbing, vetting
from vjpify.runtime.compiled.fingerprint import Fingerprinter, Unguardable
from vjpify.runtime.compiled.guards import GlobalGuard, RegistryGuard
from vjpify.runtime.compiled.recorder import EffectFound, Recorder
from vjpify.runtime.compiled.sites import Site
from vjpify.runtime.compiled.state import Runtime, state

__all__ = ['FLAX_COMPILES', 'Outcome', 'Ran', 'Uncompiled', 'Warming', 'wrap']

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
  state().count('traces')
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
                   arguments: tuple, site: Site, why: str | None) -> tuple[str | None, list]:
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


class Ran(NamedTuple):
  """The call ran compiled: what ``fn`` returned."""

  value: Any


class Uncompiled(NamedTuple):
  """The call runs ``fn`` as ``nn.vjp`` calls it, for this reason."""

  reason: str


class Warming(NamedTuple):
  """A call that could run compiled but has not yet paid for compiling: it runs uncompiled, and is timed."""

  bucket: cache.Bucket
  signature: Any


Outcome = Union[Ran, Uncompiled, Warming]


class _Found(NamedTuple):
  """A call's bucket, the entry whose guards pass (None if none does), and the last guard that failed."""

  fingerprinter: Fingerprinter
  bucket: cache.Bucket
  entry: cache.Entry | None
  failed: GlobalGuard | None
  # What the last failed guard found (kept from a first lookup when the second passes).
  failure: str | None


def _find(runtime: Runtime, target: Any, module: Any, scopes: plumbing.Scopes, counters: tuple, site: Site,
          failure: str | None) -> _Found | Uncompiled:
  """Keys the call and looks the key up."""
  fingerprinter = Fingerprinter(arrays=False, places=scopes.place_of)
  try:
    key = keys.call_key(fingerprinter, target, module, scopes, counters, site)
  except Unguardable as error:
    return Uncompiled(f'cannot key: {error}')
  except RecursionError:
    return Uncompiled('cannot key: a value nested too deeply')
  bucket = runtime.bucket(key)
  if bucket.problem is not None:
    return Uncompiled(bucket.problem)
  entry, failed = bucket.find()
  if entry is not None and entry.problem is not None:
    return Uncompiled(entry.problem)
  return _Found(fingerprinter, bucket, entry, failed, failure if failed is None else failed.failure())


def _lookup(runtime: Runtime, target: Any, module: Any, scopes: plumbing.Scopes, counters: tuple,
            site: Site) -> _Found | Uncompiled:
  """The call's bucket and entry.

  A guard that fails makes its value part of the site's key (it becomes
  volatile), this call included: the call is keyed and looked up once more.
  A guard that fails on that second lookup becomes volatile too, for the
  calls after this one.
  """
  found = _find(runtime, target, module, scopes, counters, site, None)
  if not isinstance(found, _Found) or found.failed is None or not runtime.make_volatile(site, found.failed):
    return found
  found = _find(runtime, target, module, scopes, counters, site, found.failure)
  if isinstance(found, _Found) and found.failed is not None:
    runtime.make_volatile(site, found.failed)
  return found


def _new_entry(runtime: Runtime, found: _Found, target: Any, arguments: tuple,
               site: Site) -> cache.Entry | Uncompiled | Warming:
  """A new entry for the call's key, once its calls have paid for compiling one; else why not."""
  if len(found.bucket.entries) >= cache.MAX_ENTRIES_PER_KEY:
    return Uncompiled(f'recompile limit: {cache.MAX_ENTRIES_PER_KEY} entries for this key, and {found.failure}')
  signature = internals.abstract_signature(arguments)
  if not runtime.earned(found.bucket, signature, site):
    runtime.watch_own_globals(site, target)
    return Warming(found.bucket, signature)
  return cache.Entry(_trace)


def _vetted(runtime: Runtime, found: _Found, entry: cache.Entry, call: plumbing.Call, target: Any,
            arguments: tuple, site: Site) -> Uncompiled | None:
  """Traces ``entry`` under watch and checks the program; None when it may run compiled, else why not."""
  problem, guards = _trace_and_vet(entry, call, target, found.fingerprinter, arguments, site, found.failure)
  runtime.guard(entry, guards)
  if problem is None:
    return None
  call.restore_counters()
  runtime.refuse_entry(found.bucket, entry, problem)
  return Uncompiled(problem)


def _run(runtime: Runtime, found: _Found, entry: cache.Entry, call: plumbing.Call, target: Any,
         arguments: tuple, site: Site) -> Outcome:
  """Runs ``entry``, tracing and vetting it first where jax must trace it; then replays what the trace did."""
  _calls.stack.append(call)
  _calls.watched.append(False)
  try:
    try:
      out_traced, updates_traced = entry.run(*arguments)
    except _NeedsTrace:
      if entry.record is not None:  # new shapes for a compiled entry: they pay for themselves too
        signature = internals.abstract_signature(arguments)
        if not runtime.earned(found.bucket, signature, site):
          return Warming(found.bucket, signature)
      started, resident = time.perf_counter(), cache.resident_bytes()
      refused = _vetted(runtime, found, entry, call, target, arguments, site)
      if refused is not None:
        return refused
      out_traced, updates_traced = jax.block_until_ready(entry.run(*arguments))
      runtime.compiled_at(site, entry, time.perf_counter() - started, resident)
  except _NeedsTrace:
    call.restore_counters()
    return Uncompiled(runtime.refuse(found.bucket, 'jax traced the compiled function again outside a watched trace'))
  except Exception as error:  # pylint: disable=broad-except
    call.restore_counters()
    return Uncompiled(runtime.refuse(found.bucket, f'the compiled call failed: {_first_line(error)}'))
  finally:
    _calls.stack.pop()
    _calls.watched.pop()
  runtime.admit(found.bucket, entry, call)
  return Ran(plumbing.replay(call, call.record or entry.record, out_traced, updates_traced))


def _call_compiled(runtime: Runtime, target: Any, module: Any, primals: tuple, kwargs: dict,
                   site: Site) -> Outcome:
  """How one call runs: scopes, key, lookup, then warm, or trace and vet, and run."""
  scopes = _scopes_or_reason(module, primals, kwargs)
  if isinstance(scopes, str):
    return Uncompiled(scopes)
  counters = plumbing.counters_of(scopes)
  runtime.check_own_globals(site)
  found = _lookup(runtime, target, module, scopes, counters, site)
  if isinstance(found, Uncompiled):
    return found
  call = plumbing.Call(target, module, scopes, counters, tuple(found.fingerprinter.lifted))
  arguments = call.arguments(primals)
  entry = found.entry
  if entry is None:
    made = _new_entry(runtime, found, target, arguments, site)
    if not isinstance(made, cache.Entry):
      return made
    entry = made
  return _run(runtime, found, entry, call, target, arguments, site)


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


def wrap(fn: Any, caller: types.FrameType) -> Any:
  """``compiled(fn)`` called from ``caller``: the function to give ``nn.vjp``, or ``fn`` itself."""
  runtime = state()
  target = _unbound(fn)
  if target is None:
    # nn.vjp gets fn itself; explain() still lists the site, and why.
    name = getattr(fn, '__name__', type(fn).__name__)
    runtime.count('calls')
    runtime.ran(runtime.site(caller.f_code.co_filename, caller.f_lineno, name), _not_wrapped(fn))
    return fn
  method = internals.wrap_method_once(target)
  site = runtime.site(caller.f_code.co_filename, caller.f_lineno, target.__name__)

  @functools.wraps(target)
  def call_compiled(module, *primals, **kwargs):
    runtime.count('calls')
    outcome = _call_compiled(runtime, target, module, primals, kwargs, site)
    if isinstance(outcome, Ran):
      runtime.ran(site, None)
      return outcome.value
    if isinstance(outcome, Warming):
      runtime.ran(site, _WARMING)
      started = time.perf_counter()
      out = method(module, *primals, **kwargs)
      runtime.warmed(site, outcome.bucket, outcome.signature, time.perf_counter() - started)
      return out
    runtime.ran(site, outcome.reason)
    return method(module, *primals, **kwargs)

  # nn.vjp enters the module's method context around a function it is given;
  # the wrapped method enters it itself, on whichever module runs it.
  call_compiled.method_handler_wrapped = True  # type: ignore[attr-defined]
  return call_compiled
