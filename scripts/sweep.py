"""Real-code sweep: runs vjpify over every ``.py`` file of installed packages
and checks that code without a site comes out byte for byte as it went in.

Two modes share one loop. ``api`` goes through ``transform_source``, whose
cheap text test skips files that cannot name flax's grad; ``full`` parses
every file and runs the LibCST command itself, to show that the pass, not
just the text test, leaves site-free code alone. Each file is transformed a
second time from the first output, which must not change it again
(``--passes 1`` leaves that out). Any exception other than a reported syntax
error counts as a crash.

Example::

    python scripts/sweep.py                  # api mode over the default packages
    python scripts/sweep.py --mode full      # parse and run the pass on every file
    python scripts/sweep.py --mode both jax  # both modes, one package

Exit status 1 when any file changed, crashed or changed again.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import pathlib
import resource
import sys
import time
import tokenize
import traceback
from collections.abc import Callable, Iterable, Sequence

import libcst as cst
from libcst.codemod import CodemodContext

from vjpify.transformer import LowerGradToVjp, TransformError, transform_source

DEFAULT_PACKAGES = ('jax', 'flax', 'optax', 'numpy', 'libcst')

# What a file's sweep came to.
IDENTICAL = 'identical'
CHANGED = 'changed'
UNSTABLE = 'changed again'
UNPARSEABLE = 'unparseable'
CRASHED = 'crashed'
PROBLEMS = frozenset({CHANGED, UNSTABLE, CRASHED})


@dataclasses.dataclass(frozen=True)
class Outcome:
  path: pathlib.Path
  status: str
  detail: str = ''


@dataclasses.dataclass(frozen=True)
class Report:
  mode: str
  outcomes: tuple[Outcome, ...]
  seconds: float
  peak_rss_mib: float

  def count(self, status: str) -> int:
    return sum(o.status == status for o in self.outcomes)

  @property
  def problems(self) -> tuple[Outcome, ...]:
    return tuple(o for o in self.outcomes if o.status in PROBLEMS)

  def summary(self) -> str:
    counts = ', '.join(f'{self.count(s)} {s}' for s in (IDENTICAL, CHANGED, UNSTABLE, UNPARSEABLE, CRASHED))
    return (f'{self.mode}: {len(self.outcomes)} files in {self.seconds:.1f} s '
            f'({counts}); peak RSS {self.peak_rss_mib:.0f} MiB')


def package_files(packages: Iterable[str]) -> list[pathlib.Path]:
  """Every ``.py`` file under the installed packages, in a stable order."""
  files: list[pathlib.Path] = []
  for name in packages:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
      raise SystemExit(f'package {name!r} is not installed; install it or leave it out')
    for location in spec.submodule_search_locations:
      files.extend(sorted(pathlib.Path(location).rglob('*.py')))
  return files


def read_source(path: pathlib.Path) -> tuple[str, str, bytes]:
  """The file's text with its newlines as they are, its encoding and bytes."""
  raw = path.read_bytes()
  encoding, _ = tokenize.detect_encoding(iter(raw.splitlines(keepends=True)).__next__)
  return raw.decode(encoding), encoding, raw


def via_api(code: str, path: str) -> str:
  """The output ``transform_source`` gives, prefilter and all."""
  return transform_source(code, path).code


def via_command(code: str, path: str) -> str:
  """The output of the LibCST command on a full parse, skipping no file."""
  tree = cst.parse_module(code)
  return LowerGradToVjp(CodemodContext(filename=path)).transform_module(tree).code


MODES: dict[str, Callable[[str, str], str]] = {'api': via_api, 'full': via_command}


def sweep_file(path: pathlib.Path, transform: Callable[[str, str], str], passes: int = 2) -> Outcome:
  try:
    code, encoding, raw = read_source(path)
  except (SyntaxError, UnicodeDecodeError) as error:
    return Outcome(path, UNPARSEABLE, f'cannot decode: {error}')
  try:
    first = transform(code, str(path))
    if first.encode(encoding) != raw:
      return Outcome(path, CHANGED, f'{len(raw)} bytes in, {len(first.encode(encoding))} out')
    if passes > 1 and transform(first, str(path)) != first:
      return Outcome(path, UNSTABLE)
  except (TransformError, cst.ParserSyntaxError) as error:
    return Outcome(path, UNPARSEABLE, str(error).splitlines()[0])
  except Exception:  # A crash is the finding: record it and go on.
    return Outcome(path, CRASHED, traceback.format_exc())
  return Outcome(path, IDENTICAL)


def _peak_rss_mib() -> float:
  # ru_maxrss is in KiB on Linux.
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sweep(paths: Sequence[pathlib.Path], mode: str, passes: int = 2,
          show: Callable[[Outcome], None] = lambda outcome: None) -> Report:
  """Transforms every file in ``paths`` with the given mode, a second time
  from the first output unless ``passes`` is 1; ``show`` sees each outcome
  as it comes."""
  transform = MODES[mode]
  start = time.perf_counter()
  outcomes = []
  for path in paths:
    outcomes.append(sweep_file(path, transform, passes))
    show(outcomes[-1])
  return Report(mode, tuple(outcomes), time.perf_counter() - start, _peak_rss_mib())


def _show(outcome: Outcome) -> None:
  if outcome.status != IDENTICAL:
    print(f'{outcome.path}: {outcome.status}: {outcome.detail}'.rstrip(': '), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('packages', nargs='*', default=DEFAULT_PACKAGES)
  parser.add_argument('--mode', choices=(*MODES, 'both'), default='api')
  parser.add_argument('--passes', type=int, choices=(1, 2), default=2,
                      help='1 skips the second pass (it doubles the time of a full sweep)')
  args = parser.parse_args(argv)
  paths = package_files(args.packages)
  modes = tuple(MODES) if args.mode == 'both' else (args.mode,)
  failed = False
  for mode in modes:
    report = sweep(paths, mode, args.passes, _show)
    print(report.summary(), flush=True)
    failed |= bool(report.problems)
  return int(failed)


if __name__ == '__main__':
  sys.exit(main())
