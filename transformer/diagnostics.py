"""What the transformer reports: a :class:`Site` for every place the pass
looked at, the results of transforming a text or a file, and the error
raised for input that cannot be transformed.

Every message reads ``path:line:col: what was found; what vjpify did; what
the user can do``.
"""

from __future__ import annotations

import dataclasses

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
REQUESTED = "left unchanged at the user's request"


@dataclasses.dataclass(frozen=True)
class Site:
  """One place the pass looked at: a call it rewrote or left alone.

  ``line`` and ``column`` are 1-based, as compilers print them. ``kind`` is
  ``grad``, ``value_and_grad``, ``reference`` (named but not called) or
  ``file`` (the file itself, for example a syntax error); ``jax.grad``,
  ``jax.value_and_grad`` or ``jax.vjp`` for a jax transform over a bound Module.
  """

  path: str
  line: int
  column: int
  kind: str
  action: str
  reason: str

  @classmethod
  def file_error(cls, path: str, reason: str, line: int = 1, column: int = 1) -> Site:
    """The error for a file left as it was: ``reason`` says what was found,
    that the file was left alone, and what to do; ``line`` and ``column``
    point at the cause when there is one."""
    return cls(path, line, column, FILE, ERROR, reason)

  def format(self) -> str:
    return f'{self.path}:{self.line}:{self.column}: {self.reason}'

  @property
  def requested(self) -> bool:
    """Whether the site was left alone because a ``# vjpify: skip`` or
    ``# vjpify: skip-file`` comment asked for it."""
    return self.action == SKIPPED and REQUESTED in self.reason

  def as_dict(self) -> dict[str, object]:
    return dataclasses.asdict(self)


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
