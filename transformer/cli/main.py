"""The ``vjpify`` command line (also ``python -m vjpify``).

Exit status: 0 when nothing needed changing; 1 when files were rewritten,
or would be under ``--check`` / ``--diff``; 2 when anything went wrong
(a file unreadable, undecodable, unparseable or unwritable, a worker
process that died on a file, or bad arguments), after every other file has
still been processed; the closing lines then name the files that failed.
``--out-dir`` is code generation, as a compiler is: writing the outputs is
what was asked, so it exits 0 when they are written, 1 only under
``--check`` or ``--diff``.

The habits users bring from ruff and black hold: ``--exclude`` applies
in folder walks and ``--force-exclude`` to the paths given too;
``.gitignore`` is respected in walks (``--no-respect-gitignore``);
``--stdin-filename`` names standard input; ``--report -`` writes the report
to standard output; ``FORCE_COLOR`` and ``NO_COLOR`` are honoured.

It never imports jax or flax, and imports libcst only once a file may hold
a site, so a commit that touches no flax code costs about a bare Python
start-up.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from vjpify.transformer.codes import selection
from vjpify.transformer.config.load import ConfigError, common_folder, config_values
from vjpify.transformer.diagnostics import ERROR, LEFT_UNCHANGED, SKIPPED
from vjpify.transformer.files.problems import SourceProblem
from vjpify.transformer.files.source import STDIN
from vjpify.transformer.files.write import write_atomically
from vjpify.transformer.cli.console import Console, color_wanted, progress_wanted, unified_diff
from vjpify.transformer.files.walk import DEFAULT_EXCLUDES, PlanError, plan
from vjpify.transformer.settings import Settings, default_jobs
from vjpify.transformer.cli.report import Summary, no_files_line
from vjpify.transformer.engine.cache import Cache, folder_for, wanted
from vjpify.transformer.engine.runner import run

EXIT_CLEAN = 0
EXIT_CHANGED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class _Version(argparse.Action):
  """Looks the version up only when asked, to keep start-up fast."""

  def __init__(self, option_strings, dest, **kwargs):
    super().__init__(option_strings, dest, nargs=0, help='show the version and exit')

  def __call__(self, parser, namespace, values, option_string=None):
    from importlib.metadata import version
    print(f'vjpify {version("vjpify")}')
    parser.exit()


def _positive(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise argparse.ArgumentTypeError(f'expected a whole number of at least 1, got {text!r}')
  return value


def _codes(text: str) -> tuple[str, ...]:
  try:
    return selection(text)
  except ValueError as error:
    raise argparse.ArgumentTypeError(str(error)) from None


def argument_parser() -> argparse.ArgumentParser:
  """The command line's options, as ``vjpify --help`` lists them."""
  parser = argparse.ArgumentParser(
      prog='vjpify',
      description='Rewrite flax.linen grad and value_and_grad calls in Module methods into explicit nn.vjp code.',
      epilog='Exit status: 0 nothing to change, 1 files changed (or would be), 2 errors; '
             'with --out-dir, 0 once the outputs are written (1 only under --check or --diff).')
  parser.add_argument('paths', nargs='+', metavar='PATH',
                      help="files and folders to rewrite in place; folders are walked for *.py; '-' reads "
                           'standard input and writes standard output')
  mode = parser.add_argument_group('what to do')
  mode.add_argument('--check', action='store_true', help='write nothing; list the files that would change')
  mode.add_argument('--diff', action='store_true', help='write nothing; print a unified diff of each change')
  mode.add_argument('--out-dir', metavar='DIR',
                    help='leave the inputs alone and mirror them into DIR: rewritten files rewritten, '
                         'other *.py files copied')
  mode.add_argument('--copy-other-files', action='store_true',
                    help='with --out-dir, also copy the files that are not *.py')
  mode.add_argument('--exclude', action='append', default=[], metavar='GLOB',
                    help='in folder walks, skip paths or names matching GLOB (repeatable); '
                         f'always skipped inside folders: {", ".join(DEFAULT_EXCLUDES)}, virtual environments')
  mode.add_argument('--extend-exclude', action='append', default=[], metavar='GLOB',
                    help='in folder walks, also skip paths or names matching GLOB (repeatable), as the '
                         'default excludes are skipped')
  mode.add_argument('--force-exclude', action=argparse.BooleanOptionalAction, default=None,
                    help='apply --exclude and the folders always skipped to the paths given too, as pre-commit '
                         'names every file (for standard input, to --stdin-filename)')
  mode.add_argument('--respect-gitignore', action=argparse.BooleanOptionalAction, default=None,
                    help='in folder walks, skip what .gitignore files ignore (default: on)')
  mode.add_argument('--stdin-filename', metavar='PATH',
                    help="the path that messages, diffs and the report give to '-' (standard input)")
  mode.add_argument('--no-jit', dest='jit', action='store_false', default=None,
                    help="leave fn as it is rather than wrap it in vjpify.runtime's cached jax.jit: eager "
                         'gradients then match nn.grad bit for bit, and run as slowly')
  # The opposites of options a [tool.vjpify] key may set, as ruff pairs them.
  mode.add_argument('--jit', dest='jit', action='store_true', default=None, help=argparse.SUPPRESS)
  mode.add_argument('--strict', action=argparse.BooleanOptionalAction, default=None,
                    help='exit 1 when any site is left unchanged, except those a # vjpify: skip comment '
                         'asks to leave and those whose code is ignored')
  mode.add_argument('--ignore', action='append', default=[], type=_codes, metavar='CODES',
                    help='do not report sites left unchanged with these codes or code prefixes, comma-separated '
                         '(VJ205,VJ21), nor fail --strict on them; adds to the ignore key (docs/diagnostics.md)')
  mode.add_argument('--lift-jax-transforms', action=argparse.BooleanOptionalAction, default=None,
                    help='lift jax.grad, jax.value_and_grad and jax.vjp over bound Modules to nn.vjp code '
                         '(default: report them and leave them unchanged)')
  mode.add_argument('--strict-jax-transforms', action=argparse.BooleanOptionalAction, default=None,
                    help='under --strict, fail on the jax transforms over bound Modules left unchanged too')
  mode.add_argument('--exit-zero-even-if-changed', action='store_true',
                    help='exit 0 after rewriting files, as long as there was no error')
  mode.add_argument('--cache', action=argparse.BooleanOptionalAction, default=None,
                    help='keep results between runs for files that have not changed, in .vjpify_cache in the '
                         'project root or $VJPIFY_CACHE_DIR (default: on; VJPIFY_NO_CACHE=1 turns it off)')
  mode.add_argument('--config', metavar='PATH',
                    help='read [tool.vjpify] from this TOML file rather than from the nearest pyproject.toml '
                         'that has the table')
  shown = parser.add_argument_group('output')
  shown.add_argument('--report', metavar='FILE',
                     help="write a JSON report of every site to FILE ('-': standard output)")
  shown.add_argument('-q', '--quiet', action='store_true',
                     help='print only errors: no Rewriting lines, skipped sites, summary or progress bar')
  shown.add_argument('--color', choices=('auto', 'always', 'never'), default='auto',
                     help='colour diffs: auto (the default) on a terminal or when FORCE_COLOR is set, '
                          'never when NO_COLOR is set')
  shown.add_argument('-j', '--jobs', type=_positive, default=None, metavar='N',
                     help='worker processes (default: all cores)')
  shown.add_argument('--version', action=_Version)
  return parser


def _show(console: Console, args: argparse.Namespace, settings: Settings, task, result, color: bool) -> None:
  for site in result.sites:
    if site.code in settings.ignore:
      continue
    # Under --strict a site left unchanged fails the run, so even --quiet shows it.
    failing = settings.strict and site.left_unchanged
    if site.action == ERROR or failing or (site.action in LEFT_UNCHANGED and not args.quiet):
      console.message(site.format())
  if not result.changed or result.error:
    return
  if args.diff:
    encoding = 'utf-8' if result.encoding == 'utf-8-sig' else result.encoding
    diff = unified_diff(result.path, result.original.decode(result.encoding), result.code.decode(result.encoding),
                        color=color)
    console.output(diff.encode(encoding, 'replace'))
  if args.quiet or task.source == STDIN:
    return
  if args.check or args.diff:
    console.message(f'Would rewrite {result.path}')
  elif result.up_to_date:
    console.message(f'Up to date {result.path} -> {task.destination}')
  elif task.destination != task.source:
    console.message(f'Rewriting {result.path} -> {task.destination}')
  else:
    console.message(f'Rewriting {result.path}')


def _write_report(path: str, summary: Summary) -> bool:
  data = summary.as_json().encode('utf-8')
  if path == STDIN:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return True
  try:
    write_atomically(path, data)
  except SourceProblem as problem:
    print(f'vjpify: error: --report {path}: {problem.reason}', file=sys.stderr)
    return False
  return True


def _long_file(tasks) -> tuple[str, int] | None:
  """The name and size of the run's only file, for the progress line."""
  if len(tasks) != 1 or tasks[0].source == STDIN:
    return None
  try:
    return tasks[0].shown, os.path.getsize(tasks[0].source)
  except OSError:
    return None


def _cache(args: argparse.Namespace, settings: Settings) -> Cache | None:
  if not wanted(settings):
    return None
  named = [args.stdin_filename if p == STDIN and args.stdin_filename else p for p in args.paths if p != STDIN]
  return Cache(folder_for(named or ['.']), settings)


def _run(args: argparse.Namespace, settings: Settings) -> int:
  writing = not (args.check or args.diff)
  try:
    tasks = plan(args.paths, out_dir=args.out_dir, write=writing, exclude=settings.exclude,
                 copy_other_files=args.copy_other_files, default_exclude=settings.default_exclude,
                 extend_exclude=settings.extend_exclude, force_exclude=settings.force_exclude,
                 respect_gitignore=settings.respect_gitignore, stdin_filename=args.stdin_filename)
  except PlanError as error:
    print(f'vjpify: error: {error}', file=sys.stderr)
    return EXIT_ERROR
  # Paths that --force-exclude skips are skipped silently, as documented.
  if not tasks and not args.quiet and not settings.force_exclude:
    print(no_files_line(args.paths), file=sys.stderr)
  summary = Summary(ignore=frozenset(settings.ignore))
  color = color_wanted(args.color, sys.stdout)
  with Console(len(tasks), progress_wanted(args.quiet, sys.stderr), _long_file(tasks)) as console:
    for task, result in run(tasks, settings, fresh_workers=False, cache=_cache(args, settings)):
      summary.add(result, task.python and task.transform)
      _show(console, args, settings, task, result, color)
      console.advance()
  report_written = args.report is None or _write_report(args.report, summary)
  if not args.quiet:
    stdin_name = args.stdin_filename if STDIN in args.paths else None
    print(summary.line(would=not writing, out_dir=args.out_dir, stdin_name=stdin_name), file=sys.stderr)
    if writing and args.out_dir is not None:
      print(summary.outputs_line(args.out_dir), file=sys.stderr)
    failed = summary.failed_line()
    if failed:
      print(failed, file=sys.stderr)
  unwanted = summary.strict_line() if settings.strict else None
  if unwanted and not args.quiet:
    print(unwanted, file=sys.stderr)
  if summary.errors or not report_written:
    return EXIT_ERROR
  # Rewriting is what was asked for when generating into --out-dir.
  rewriting_succeeds = writing and (args.exit_zero_even_if_changed or args.out_dir is not None)
  if unwanted or (summary.files_changed and not rewriting_succeeds):
    return EXIT_CHANGED
  return EXIT_CLEAN


def _settings(args: argparse.Namespace) -> Settings:
  """The run's settings: the configuration's (``--config``, else the
  nearest ``[tool.vjpify]`` above the paths, standard input counting as
  ``--stdin-filename`` as ruff counts it), under the options given."""
  named = [args.stdin_filename if p == STDIN and args.stdin_filename else p for p in args.paths]
  values = config_values(common_folder(named), args.config)
  return Settings.from_args(args, Settings(jobs=default_jobs())._replace(**values))


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
  """Refuses combinations that cannot mean anything (argparse exits 2)."""
  if args.copy_other_files and args.out_dir is None:
    parser.error('--copy-other-files needs --out-dir DIR')
  if args.stdin_filename is not None and STDIN not in args.paths:
    parser.error("--stdin-filename names standard input; pass '-' as a path too")
  if args.report == STDIN:
    if args.diff:
      parser.error('--report - and --diff would both write to standard output; give --report a file')
    if STDIN in args.paths and not args.check:
      parser.error("--report - and '-' would both write to standard output; give --report a file")


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; returns the exit status."""
  parser = argument_parser()
  args = parser.parse_args(argv)
  _check_arguments(parser, args)
  try:
    settings = _settings(args)
  except ConfigError as error:
    print(error.format(), file=sys.stderr)
    return EXIT_ERROR
  try:
    return _run(args, settings)
  except KeyboardInterrupt:
    print('vjpify: interrupted; every file is either as it was or fully rewritten', file=sys.stderr)
    return EXIT_INTERRUPTED
  except BrokenPipeError:
    # The reader of our output went away (``vjpify --diff . | head``);
    # point stdout at nothing so that the exit flush does not fail again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_ERROR
