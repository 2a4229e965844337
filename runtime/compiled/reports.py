"""Why calls ran compiled or not, per rewritten site, in the spirit of ``torch._dynamo.explain``.

Every ``compiled(fn)`` call records the place it was made (the rewritten
``nn.grad`` site); every call of the function it returns is counted there:
whether it ran compiled, why not (the outer trace, the effect and where it
was made, the value that could not be guarded), and why entries were traced
again (the first guard that failed).

Example::

    from vjpify.runtime import explain
    model.apply(variables, x)
    print(explain())
    # model.py:14 (loss): 3 calls, 1 compiled, 2 uncompiled, 1 trace
    #   uncompiled 2x: calls print() at model.py:9 in loss
"""

from __future__ import annotations

import collections
import dataclasses

__all__ = ['Explanation', 'SiteReport']


@dataclasses.dataclass
class SiteReport:
  """What happened at one rewritten site since the last ``compiled.cache_clear()``.

  Attributes:
    site: ``path:line`` of the ``compiled(fn)`` call.
    function: the name of ``fn``.
    calls: calls of the wrapped function.
    compiled: calls that ran a compiled entry.
    uncompiled: calls that ran ``fn`` as ``nn.vjp`` calls it.
    traces: times ``fn`` was traced to build or extend an entry.
    uncompiled_reasons: why calls ran uncompiled, with how many times.
    retrace_reasons: why new entries were traced (the first guard that
      failed), with how many times.
  """

  site: str
  function: str
  calls: int = 0
  compiled: int = 0
  uncompiled: int = 0
  traces: int = 0
  uncompiled_reasons: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  retrace_reasons: collections.Counter = dataclasses.field(default_factory=collections.Counter)

  # Counted under the lock of the runtime's state, which owns the report.
  def ran(self, reason: str | None) -> None:
    self.calls += 1
    if reason is None:
      self.compiled += 1
    else:
      self.uncompiled += 1
      self.uncompiled_reasons[reason] += 1

  def retraced(self, reason: str | None) -> None:
    self.traces += 1
    if reason is not None:
      self.retrace_reasons[reason] += 1

  def __str__(self) -> str:
    lines = [f'{self.site} ({self.function}): {self.calls} calls, {self.compiled} compiled, '
             f'{self.uncompiled} uncompiled, {self.traces} traces']
    lines += [f'  uncompiled {count}x: {reason}' for reason, count in self.uncompiled_reasons.most_common()]
    lines += [f'  traced again {count}x: {reason}' for reason, count in self.retrace_reasons.most_common()]
    return '\n'.join(lines)


@dataclasses.dataclass
class Explanation:
  """Every site's report, in the order the sites were first used."""

  sites: list[SiteReport]

  def site(self, location: str) -> SiteReport:
    """The report of the site whose location ends with ``location`` (``'model.py:14'``)."""
    for report in self.sites:
      if report.site.endswith(location):
        return report
    raise KeyError(f'no compiled site at {location}; sites: {[report.site for report in self.sites]}')

  def __str__(self) -> str:
    return '\n'.join(str(report) for report in self.sites) or 'no compiled site was called'

