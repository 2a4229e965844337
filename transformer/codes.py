"""Every reason vjpify reports, as a stable code: the table the messages,
the JSON report, ``# vjpify: skip[CODE]`` comments, the ``ignore`` key of
``[tool.vjpify]`` and ``--strict`` all read, as ruff's rule codes are.

A code never changes meaning once released; a reason that goes away keeps
its number unused. The hundreds say what kind of reason it is:

- ``VJ0xx``: a file vjpify could not read, decode, parse or write (an error);
- ``VJ1xx``: a configuration vjpify cannot use (an error; the run stops);
- ``VJ2xx``: an ``nn.grad`` / ``nn.value_and_grad`` site left unchanged;
- ``VJ3xx``: a ``jax.grad`` / ``jax.value_and_grad`` / ``jax.vjp`` over a
  bound Module, reported or left unchanged (``docs/jax-transforms.md``);
- ``VJ9xx``: sites left unchanged at the user's request, and rewrites.

The table of ``docs/diagnostics.md`` is :func:`table_markdown`;
``tests/test_diagnostic_codes.py`` checks that the page agrees, and
regenerates it under ``VJPIFY_OVERWRITE=1``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# What a code stands for.
FILE_ERROR = 'file error'
CONFIG_ERROR = 'configuration error'
LEFT_UNCHANGED = 'site left unchanged'
REQUESTED = 'left unchanged at the user\'s request'
REWRITE = 'rewrite'


class Code(NamedTuple):
  """One reason: ``code`` as users write it (``VJ201``), a short ``name``
  in kebab case as ruff names its rules, its ``kind`` (one of the constants
  above) and a one-line ``summary`` for the documentation."""

  code: str
  name: str
  kind: str
  summary: str


TABLE: tuple[Code, ...] = (
    Code('VJ001', 'syntax-error', FILE_ERROR, 'the file does not parse as Python'),
    Code('VJ002', 'does-not-compile', FILE_ERROR,
         'the file parses but Python refuses to compile it (a misplaced return, say)'),
    Code('VJ003', 'too-deeply-nested', FILE_ERROR, "the file is nested deeper than the pass's recursion allows"),
    Code('VJ010', 'unreadable', FILE_ERROR, 'the file cannot be read (missing, permission denied, ...)'),
    Code('VJ011', 'not-a-regular-file', FILE_ERROR, 'the path is a pipe, socket or device, not a file'),
    Code('VJ012', 'unlistable-folder', FILE_ERROR, 'a folder of a walk cannot be listed'),
    Code('VJ020', 'binary-file', FILE_ERROR, 'the file holds a NUL byte, so it is not Python source'),
    Code('VJ021', 'undecodable', FILE_ERROR, 'a byte is not valid in the encoding the file declares (or UTF-8)'),
    Code('VJ022', 'bad-coding-declaration', FILE_ERROR, 'the coding declaration names no usable encoding'),
    Code('VJ023', 'encoding-round-trip', FILE_ERROR,
         'decoding and re-encoding the file does not give back its bytes'),
    Code('VJ030', 'unwritable', FILE_ERROR, 'the file cannot be written (read-only, permission denied, disk full)'),
    Code('VJ031', 'changed-while-running', FILE_ERROR, 'the file changed between reading and writing it'),
    Code('VJ032', 'not-copied', FILE_ERROR, 'a file cannot be copied into the output folder'),
    Code('VJ033', 'no-output-folder', FILE_ERROR, 'a folder of the output cannot be created'),
    Code('VJ090', 'internal-error', FILE_ERROR, 'the pass failed on the file (a bug: please report it)'),
    Code('VJ091', 'worker-died', FILE_ERROR, 'the worker process transforming the file died'),
    Code('VJ092', 'invalid-rewrite', FILE_ERROR,
         'the rewritten file would not compile, so it was not written (a bug: please report it)'),
    Code('VJ093', 'parser-disagrees', FILE_ERROR,
         'LibCST cannot parse a file that Python compiles (a bug: please report it)'),
    Code('VJ094', 'unencodable-rewrite', FILE_ERROR, "the new text cannot be encoded in the file's encoding"),
    Code('VJ101', 'config-unreadable', CONFIG_ERROR, 'the configuration file cannot be read'),
    Code('VJ102', 'config-not-utf8', CONFIG_ERROR, 'the configuration file is not UTF-8 text'),
    Code('VJ103', 'config-not-toml', CONFIG_ERROR, 'the configuration file is not valid TOML'),
    Code('VJ104', 'config-not-a-table', CONFIG_ERROR, 'tool.vjpify is a value, not a table'),
    Code('VJ105', 'config-unknown-key', CONFIG_ERROR, '[tool.vjpify] has a key vjpify does not know'),
    Code('VJ106', 'config-bad-value', CONFIG_ERROR, 'a key of [tool.vjpify] has a value of the wrong type'),
    Code('VJ107', 'config-unknown-code', CONFIG_ERROR,
         '`ignore` names something that is not the code of a site left unchanged, nor a prefix of one'),
    Code('VJ201', 'ambiguous-name', LEFT_UNCHANGED,
         'the callee may be flax.linen.grad or something else, depending on how the file runs'),
    Code('VJ202', 'outside-module', LEFT_UNCHANGED, 'the call is not inside a Module class defined in the file'),
    Code('VJ203', 'untraced-base', LEFT_UNCHANGED,
         'the class has a base vjpify cannot trace to flax.linen.Module (see module-bases)'),
    Code('VJ204', 'not-a-module', LEFT_UNCHANGED, 'the call is in a class that is not a Module'),
    Code('VJ205', 'class-body', LEFT_UNCHANGED, 'the call runs in a class body, not in a method'),
    Code('VJ206', 'self-documenting-field', LEFT_UNCHANGED, 'the call is inside an f-string field `{...=}`'),
    Code('VJ207', 'fstring-quotes', LEFT_UNCHANGED,
         '`**keywords` inside f-strings that use both quote characters'),
    Code('VJ208', 'repeated-keyword', LEFT_UNCHANGED, 'a keyword is passed twice, which Python rejects'),
    Code('VJ209', 'unknown-keyword', LEFT_UNCHANGED, 'a keyword the transform does not accept'),
    Code('VJ210', 'reduce-axes-with-mapping', LEFT_UNCHANGED,
         '`reduce_axes` next to a `**mapping` that may repeat it'),
    Code('VJ211', 'fn-or-mdl-count', LEFT_UNCHANGED, '`fn` or `mdl` missing or passed twice'),
    Code('VJ212', 'reference', LEFT_UNCHANGED, 'the transform is named without being called'),
    Code('VJ301', 'jax-transform-reported', LEFT_UNCHANGED,
         'a jax transform over a bound Module, reported and left as it is (lift it with --lift-jax-transforms)'),
    Code('VJ302', 'jax-transform-not-lowered', LEFT_UNCHANGED,
         'a jax transform over a bound Module that vjpify cannot lower to nn.vjp (jacfwd, jvp, ...)'),
    Code('VJ303', 'jax-transform-draws-rng', LEFT_UNCHANGED,
         'the transformed function draws random numbers, which lifted could come from other streams'),
    Code('VJ304', 'jax-transform-partial-argnums', LEFT_UNCHANGED,
         'argnums differentiates only some arguments, and lifted the others would be traced too'),
    Code('VJ305', 'jax-transform-captures-locals', LEFT_UNCHANGED,
         'the transformed function uses locals of the method around it, maybe submodules bound outside'),
    Code('VJ306', 'jax-transform-argument-form', LEFT_UNCHANGED,
         'the transform is called with arguments nn.vjp cannot pass on as they are'),
    Code('VJ307', 'jax-transform-not-applied', LEFT_UNCHANGED,
         'the transform is neither called at once nor stored in a name called once in the same function'),
    Code('VJ308', 'jax-transform-shared-function', LEFT_UNCHANGED,
         'the transformed function is decorated or used elsewhere, and lifting adds a parameter to it'),
    Code('VJ309', 'jax-transform-not-a-method', LEFT_UNCHANGED,
         'the transformed attribute is not a method defined in the class'),
    Code('VJ310', 'jax-transform-signature', LEFT_UNCHANGED,
         "the transformed function's parameters do not take the arguments one by one"),
    Code('VJ311', 'jax-transform-nested', LEFT_UNCHANGED,
         'a jax transform over a bound Module nested in another one'),
    Code('VJ901', 'skip-comment', REQUESTED, 'the line is marked `# vjpify: skip`'),
    Code('VJ902', 'skip-file-comment', REQUESTED, 'the file is marked `# vjpify: skip-file`'),
    Code('VJ903', 'skip-code-comment', REQUESTED,
         "the line is marked `# vjpify: skip[CODE]` with the site's code"),
    Code('VJ990', 'rewritten', REWRITE, 'the call was rewritten to explicit nn.vjp'),
    Code('VJ991', 'rewritten-reduce-axes', REWRITE,
         'the call was rewritten, with `reduce_axes` kept through the runtime helper'),
    Code('VJ992', 'lifted', REWRITE, 'a jax transform over a bound Module was lifted to explicit nn.vjp'),
)

BY_CODE: dict[str, Code] = {entry.code: entry for entry in TABLE}
BY_NAME: dict[str, Code] = {entry.name: entry for entry in TABLE}

# What the ``ignore`` key may name: the reasons a site is left unchanged,
# vjpify's own or the user's. Errors and rewrites cannot be hidden.
IGNORABLE = tuple(entry.code for entry in TABLE if entry.kind in (LEFT_UNCHANGED, REQUESTED))

_CODE_SYNTAX = re.compile(r'VJ\d{1,3}')


class Reason(NamedTuple):
  """What a diagnostic says: its ``code`` and its ``text``, which reads
  ``what was found; what vjpify did; what the user can do``."""

  code: str
  text: str


def reason(name: str, text: str) -> Reason:
  """The reason ``text`` under the code named ``name``."""
  return Reason(code(name), text)


def code(name: str) -> str:
  """The code of the reason ``name`` (``'syntax-error'`` gives ``'VJ001'``);
  a name not in the table is a KeyError, so a typo fails at once."""
  return BY_NAME[name].code


def kind(value: str | None) -> str | None:
  """The kind of the code ``value``; None for None or an unknown code."""
  entry = BY_CODE.get(value) if value else None
  return entry.kind if entry else None


def selected(prefix: str) -> tuple[str, ...]:
  """The ignorable codes that ``prefix`` selects, as ruff selects its rules:
  a whole code (``VJ205``) or the start of some (``VJ2``, ``VJ20``)."""
  if not _CODE_SYNTAX.fullmatch(prefix):
    return ()
  return tuple(c for c in IGNORABLE if c.startswith(prefix))


def selection(text: str) -> tuple[str, ...]:
  """The codes that a comma-separated list of codes and prefixes selects
  (the command line's ``--ignore VJ205,VJ21``).

  Raises:
    ValueError: an entry selects no code; the message names it.
  """
  chosen: dict[str, None] = {}
  for entry in filter(None, (part.strip() for part in text.split(','))):
    found = selected(entry)
    if not found:
      raise ValueError(f'{entry!r} is not the code of a site left unchanged, nor a prefix of one '
                       '(the codes are listed in docs/diagnostics.md)')
    chosen.update(dict.fromkeys(found))
  return tuple(chosen)


def table_markdown() -> str:
  """The table of ``docs/diagnostics.md``: one row per code."""
  rows = ['| code | name | kind | what it means |', '| --- | --- | --- | --- |']
  rows += [f'| `{e.code}` | `{e.name}` | {e.kind} | {e.summary} |' for e in TABLE]
  return '\n'.join(rows) + '\n'
