"""Running the pass over many files: read each, skip those that cannot hold
a site, transform the rest (in worker processes when there are several),
and write the results in the order the files were listed.

Only this process writes, and every write is atomic, so stopping a run at
any moment leaves each file either as it was or fully rewritten. Workers
ignore Ctrl-C and only compute; on an interrupt the pool is cancelled and
the files not yet written stay as they were. A file that fails in any way
(unreadable, undecodable, unparseable, unwritable, or a bug in the pass)
gets an error site and the run goes on with the next one.

A worker that dies (killed, out of memory, a crash in native code) takes
with it every file the pool still held. Each of those is transformed again
in a process of its own, so that only a file that kills that process too
gets an error site, and the pool starts afresh for the files after them.
"""

from __future__ import annotations

import collections
import dataclasses
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import NamedTuple
from concurrent.futures.process import BrokenProcessPool

from vjpify.transformer.codes import code
from vjpify.transformer.diagnostics import FileResult, Site, TransformError
from vjpify.transformer.files.problems import SourceProblem
from vjpify.transformer.files.source import STDIN, read_source
from vjpify.transformer.files.walk import Task
from vjpify.transformer.files.write import (
    copy_atomically, ensure_folder, interrupts_held, source_mode, write_atomically)
from vjpify.transformer.engine.cache import Cache
import vjpify.transformer.find.module_names as module_names
from vjpify.transformer.find.prefilter import could_contain_sites
from vjpify.transformer.pipeline import Decoded, Plan, decode, file_error, plan, transform_decoded
from vjpify.transformer.settings import Settings

# Transforms queued per worker: enough to keep every worker busy while
# results are written in order, few enough to bound memory.
_QUEUED_PER_JOB = 4


def _internal_error(path: str, data: bytes, error: BaseException) -> FileResult:
  return FileResult.failed(path, data, Site.file_error(
      path, code('internal-error'), f'internal error: {type(error).__name__}: {error}; file left unchanged; '
      'please report this with the file'))


def _signal_name(number: int) -> str:
  try:
    return signal.Signals(number).name
  except ValueError:
    return f'signal {number}'


def _worker_died(path: str, data: bytes, exitcode: int | None) -> FileResult:
  if exitcode is not None and exitcode < 0:
    how = f'killed by {_signal_name(-exitcode)}'
  elif exitcode:
    how = f'exited with status {exitcode}'
  else:
    how = 'exited without a result'
  if exitcode == -getattr(signal, 'SIGKILL', 0):
    advice = ('if memory is short (the out-of-memory killer sends SIGKILL), free some and run vjpify again; '
              'otherwise please report this with the file')
  else:
    advice = 'please report this with the file'
  return FileResult.failed(path, data, Site.file_error(
      path, code('worker-died'),
      f'the worker process transforming this file died, also when run again with this file alone ({how}); '
      f'file left unchanged; {advice}'))


class Outcome(NamedTuple):
  """A file's result, with the other files it read (to keep with it in
  the cache); an error comes back as a plain FileResult, never kept."""

  result: FileResult
  reads: tuple[str, ...] = ()


def transform_one(path: str, source: Decoded, planned: Plan, settings: Settings) -> Outcome | FileResult:
  """Transforms one file, decoded and planned (by this process, which sent
  it); problems become an error site, never an exception."""
  mark = len(module_names.ASKED)
  try:
    result = transform_decoded(source, planned, path, settings)
    reads = tuple(module_names.ASKED[mark:])
    del module_names.ASKED[mark:]
    return Outcome(result, reads)
  except TransformError as error:
    return FileResult.failed(path, source.data, error.site)
  except Exception as error:  # A bug in the pass must cost one file, not the run.
    return _internal_error(path, source.data, error)


def _ignore_interrupts() -> None:
  signal.signal(signal.SIGINT, signal.SIG_IGN)


def _transform_and_send(connection, path: str, source: Decoded, planned: Plan, settings: Settings) -> None:
  _ignore_interrupts()
  connection.send(transform_one(path, source, planned, settings))
  connection.close()


class _Done:
  """A result computed in this process, shaped like a finished Future."""

  cache_key: str | None = None

  def __init__(self, result: FileResult | Outcome):
    self._result = result

  def done(self) -> bool:
    return True

  def result(self) -> FileResult | Outcome:
    return self._result


class _InWorker:
  """A file sent to the pool of workers, shaped like a Future.

  If a worker dies, the pool fails every file it still held (running or
  queued); the runner then transforms each of those again and keeps the
  outcome here.
  """

  cache_key: str | None = None

  def __init__(self, runner: _Runner, path: str, source: Decoded, planned: Plan, future):
    self._runner = runner
    self.path = path
    self.source = source
    self.planned = planned
    self.future = future
    self.again: FileResult | Outcome | None = None

  def lost(self) -> bool:
    """Whether the pool failed this file because a worker died."""
    return (self.again is None and self.future.done() and not self.future.cancelled()
            and isinstance(self.future.exception(), BrokenProcessPool))

  def finished(self) -> bool:
    return self.future.done() and not self.future.cancelled() and self.future.exception() is None

  def done(self) -> bool:
    return self.again is not None or self.future.done()

  def result(self) -> FileResult | Outcome:
    if self.again is None:
      try:
        return self.future.result()
      except BrokenProcessPool:
        self._runner.recover()
      except Exception as error:  # The result could not come back; the file itself may be fine.
        return _internal_error(self.path, self.source.data, error)
    return self.again


class _Runner:
  """Starts each task: reads and prefilters it here, and transforms it
  here or, from the second file that needs it, in a pool of workers."""

  def __init__(self, settings: Settings, fresh_workers: bool, cache: Cache | None):
    self._settings = settings
    self._cache = cache
    self._jobs = settings.jobs
    self._fresh_workers = fresh_workers
    self._candidates = 0
    self._pool = None
    # What the current pool may still hold, for recover().
    self._in_pool: list[_InWorker] = []

  def _context(self):
    import multiprocessing
    if not self._fresh_workers:
      return multiprocessing.get_context()
    if 'forkserver' in multiprocessing.get_all_start_methods():
      context = multiprocessing.get_context('forkserver')
      context.set_forkserver_preload(['vjpify.transformer.engine.runner', 'vjpify.transformer.rewrite.command'])
      return context
    return multiprocessing.get_context('spawn')

  def _start_pool(self):
    from concurrent.futures import ProcessPoolExecutor
    return ProcessPoolExecutor(max_workers=self._jobs, mp_context=self._context(), initializer=_ignore_interrupts)

  def _submit(self, path: str, source: Decoded, planned: Plan) -> _InWorker:
    self._in_pool = [item for item in self._in_pool if not item.finished()]
    # Starting the pool or submitting may fork workers; a Ctrl-C landing
    # in a fork handler would be swallowed there, so it waits until the
    # fork is done.
    with interrupts_held():
      self._pool = self._pool or self._start_pool()
      future = self._pool.submit(transform_one, path, source, planned, self._settings)
    item = _InWorker(self, path, source, planned, future)
    self._in_pool.append(item)
    return item

  def _transform(self, path: str, source: Decoded, planned: Plan):
    self._candidates += 1
    # One file is not worth starting worker processes for.
    if self._pool is None and (self._jobs == 1 or self._candidates == 1):
      return _Done(transform_one(path, source, planned, self._settings))
    try:
      return self._submit(path, source, planned)
    except BrokenProcessPool:  # A worker died since the last file went to the pool.
      self.recover()
      return self._submit(path, source, planned)

  def _transform_alone(self, path: str, source: Decoded, planned: Plan) -> FileResult | Outcome:
    context = self._context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_transform_and_send, args=(sender, path, source, planned, self._settings),
                              daemon=True)
    with interrupts_held():
      process.start()
    try:
      sender.close()
      try:
        return receiver.recv()
      except (EOFError, OSError):  # It died before its result was all sent.
        process.join()
        return _worker_died(path, source.data, process.exitcode)
    finally:
      receiver.close()
      if process.is_alive():  # Interrupted while waiting.
        process.kill()
      process.join()

  def recover(self) -> None:
    """Transforms again every file the pool lost when a worker died, each
    in a process of its own, and drops the pool.

    Not in this process: the file may be what killed the worker (native
    code crashing on it, or memory it exhausts), and would then kill the
    whole run. Not together in a new pool either: such a file would take
    the others down with it again. Alone, a file that kills its process
    again is the one at fault and gets an error site; the others, lost only
    for being in the same pool, come out as they would have.
    """
    if self._pool is not None:
      # Only once its threads have stopped has the pool failed every file
      # it held; and with no thread left, forking here is safe.
      self._pool.shutdown(wait=True)
      self._pool = None
    for item in self._in_pool:
      if item.lost():
        item.again = self._transform_alone(item.path, item.source, item.planned)
    self._in_pool = []

  def start(self, task: Task):
    path = task.shown
    if task.problem:
      return _Done(FileResult.failed(path, b'', Site.file_error(path, code('unlistable-folder'), task.problem)))
    if not task.python:
      return _Done(FileResult(path, b'', b''))
    data = b''
    try:
      data = read_source(task.source)
      if not task.transform:
        return _Done(FileResult(path, data, data))
      key = self._cache.key(path, task.source, data) if self._cache and task.source != STDIN else None
      kept = self._cache.get(key, data) if key else None
      if kept is not None:
        return _Done(kept)
      source = decode(data, path)
    except SourceProblem as problem:
      return _Done(FileResult.failed(path, data, file_error(path, problem).site))
    except TransformError as error:
      return _Done(FileResult.failed(path, data, error.site))
    if not could_contain_sites(source.text):
      return _Done(FileResult(path, data, data, (), source.encoding))
    # Here rather than in a worker: it rules out nearly every file, and
    # costs less than sending the file to a worker would. The worker gets
    # the text and the plan, and neither decodes nor prefilters again.
    try:
      planned = plan(source.text)
    except Exception as error:  # A bug in the prefilter must cost one file, not the run.
      return _Done(_internal_error(path, data, error))
    if planned is None:
      pending = _Done(Outcome(FileResult(path, data, data, (), source.encoding)))
    else:
      pending = self._transform(path, source, planned)
    pending.cache_key = key
    return pending

  def close(self) -> None:
    if self._pool is not None:
      self._pool.shutdown(wait=True, cancel_futures=True)
      self._pool = None


def _write(task: Task, result: FileResult) -> FileResult:
  if task.destination is None or result.error:
    return result
  written = True
  try:
    if task.destination == STDIN:
      sys.stdout.buffer.write(result.code)
      sys.stdout.buffer.flush()
    elif not task.python:
      ensure_folder(task.destination)
      written = copy_atomically(task.source, task.destination)
    elif task.destination == task.source:
      if not result.changed:
        return result
      write_atomically(task.source, result.code, expected=result.original)
    else:
      ensure_folder(task.destination)
      written = write_atomically(task.destination, result.code, source_mode(task.source))
  except SourceProblem as problem:
    return FileResult.failed(task.shown, result.original, file_error(task.shown, problem).site)
  return dataclasses.replace(result, destination=task.destination, up_to_date=not written)


def _settle(task: Task, pending, cache: Cache | None) -> FileResult:
  outcome = pending.result()
  if not isinstance(outcome, Outcome):
    return _write(task, outcome)
  if cache is not None and pending.cache_key and not outcome.result.error:
    cache.put(pending.cache_key, outcome.result, outcome.reads)
  return _write(task, outcome.result)


def run(tasks: Sequence[Task], settings: Settings, *, fresh_workers: bool = True,
        cache: Cache | None = None) -> Iterator[tuple[Task, FileResult]]:
  """Processes ``tasks`` and writes their results, yielding each as it is
  written, in the order of ``tasks``.

  Note that closing the iterator early (or an interrupt) cancels the files
  not yet started; those already written stay written.

  Args:
    tasks: from :func:`vjpify.transformer.files.walk.plan`.
    settings: the run's settings; ``jobs`` worker processes at most.
    fresh_workers: start workers from a fresh interpreter rather than by
      forking this process, which is only safe while it runs no threads (a
      process that uses JAX does); the command line, which never does, says
      False to save the start-up.
    cache: where results are kept between runs (``engine.cache``); None
      keeps none.
  """
  runner = _Runner(settings, fresh_workers, cache)
  window: collections.deque = collections.deque()
  try:
    for task in tasks:
      window.append((task, runner.start(task)))
      while window and (len(window) > settings.jobs * _QUEUED_PER_JOB or window[0][1].done()):
        task, pending = window.popleft()
        yield task, _settle(task, pending, cache)
    while window:
      task, pending = window.popleft()
      yield task, _settle(task, pending, cache)
  finally:
    runner.close()

