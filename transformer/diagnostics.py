"""What the transformer reports: a :class:`Site` for every place the pass
looked at, the results of transforming a text or a file, and the error
raised for input that cannot be transformed.

Every message reads ``path:line:col: what was found; what vjpify did; what
the user can do``.
"""

from __future__ import annotations

import dataclasses

from vjpify.transformer import codes

REWRITTEN = 'rewritten'
SKIPPED = 'skipped'
ERROR = 'error'
# A site left unchanged that is only reported: a jax transform over a bound
# Module, lifted on request (--lift-jax-transforms); --strict does not fail
# on it unless strict-jax-transforms asks.
REPORTED = 'reported'
# The actions of sites left unchanged.
LEFT_UNCHANGED = (SKIPPED, REPORTED)

# The kind of a site that is the file itself (unreadable, does not parse, ...).
FILE = 'file'

# What a skipped site's reason says when an opt-out comment asked for it.
REQUESTED = codes.REQUESTED


@dataclasses.dataclass(frozen=True)
class Site:
  """One place the pass looked at: a call it rewrote or left alone.

  ``line`` and ``column`` are 1-based, as compilers print them, or both
  None for a problem with the file as a whole (it cannot be read, say).
  ``kind`` is ``grad``, ``value_and_grad``, ``reference`` (named but not
  called) or ``file`` (the file itself, for example a syntax error);
  ``jax.grad``, ``jax.value_and_grad`` or ``jax.vjp`` for a jax transform
  over a bound Module. ``code`` is the reason's stable code
  (``vjpify.transformer.codes``).
  """

  path: str
  line: int | None
  column: int | None
  kind: str
  action: str
  reason: str
  code: str

  @classmethod
  def file_error(cls, path: str, code: str, reason: str, line: int | None = None,
                 column: int | None = None) -> Site:
    """The error for a file left as it was: ``reason`` says what was found,
    that the file was left alone, and what to do; ``line`` and ``column``
    point at the cause when there is one."""
    return cls(path, line, column, FILE, ERROR, reason, code)

  def format(self) -> str:
    """``path:line:col: CODE reason``, or ``path: CODE reason`` for the file
    as a whole."""
    where = self.path if self.line is None else f'{self.path}:{self.line}:{self.column}'
    return f'{where}: {self.code} {self.reason}'

  @property
  def requested(self) -> bool:
    """Whether the site was left alone because a ``# vjpify: skip`` or
    ``# vjpify: skip-file`` comment asked for it."""
    return codes.kind(self.code) == codes.REQUESTED

  @property
  def left_unchanged(self) -> bool:
    """Whether the site was left unchanged for a reason of vjpify's own:
    what ``--strict`` fails on (a site only reported does not)."""
    return self.action == SKIPPED and codes.kind(self.code) == codes.LEFT_UNCHANGED

  def as_dict(self) -> dict[str, object]:
    """The site as the JSON report gives it."""
    return {'path': self.path, 'line': self.line, 'col': self.column, 'code': self.code, 'kind': self.kind,
            'action': self.action, 'reason': self.reason}


class TransformError(Exception):
  """The input could not be transformed; ``site`` says where and why."""

  def __init__(self, site: Site):
    super().__init__(site.format())
    self.site = site


@dataclasses.dataclass(frozen=True)
class TransformResult:
  """The new source and what happened at every site, in source order."""

  code: str
  sites: tuple[Site, ...]
  original: str

  @property
  def changed(self) -> bool:
    return self.code != self.original


@dataclasses.dataclass(frozen=True)
class FileResult:
  """What happened to one file, as bytes.

  ``code`` is what the file holds after the transform: its bytes in its own
  encoding, BOM and line endings included. ``sites`` lists every site in
  source order; a file that could not be transformed has a single site of
  kind ``file`` with action ``error``, and ``code == original``.
  ``destination`` is where ``code`` was written, if anywhere;
  ``up_to_date`` is True when it already held those bytes, so that
  nothing was written (an output folder built before).
  """

  path: str
  original: bytes
  code: bytes
  sites: tuple[Site, ...] = ()
  encoding: str = 'utf-8'
  destination: str | None = None
  up_to_date: bool = False

  @classmethod
  def failed(cls, path: str, data: bytes, site: Site) -> FileResult:
    """A file left as it was (``data``), with the error ``site`` says."""
    return cls(path, data, data, (site,))

  @property
  def changed(self) -> bool:
    return self.code != self.original

  @property
  def error(self) -> Site | None:
    return next((s for s in self.sites if s.action == ERROR), None)
