"""Deciding each site: whether the pass may rewrite it, and if so which
runtime helpers its replacement calls; and what the diagnostic says.

Every check guards a way in which the lowered code could behave differently
from the original; a site that fails one is left as it is.
"""

from __future__ import annotations

import dataclasses

import libcst as cst

from vjpify.transformer.codes import Reason, reason
from vjpify.transformer.find.arguments import argument_problem, fn_argument, keeps_reduce_axes
from vjpify.transformer.find.metadata import Metadata
from vjpify.transformer.find.module_classes import ModuleClasses
from vjpify.transformer.find.sites import (
    Verdict, enclosing_class, enclosing_fstrings, in_self_documenting_field, string_quote)
from vjpify.transformer.find.targets import COMPILE_HELPER, EXTRACTION_HELPER, KWARGS_HELPER, REDUCE_AXES_HELPER
from vjpify.transformer.settings import Settings


@dataclasses.dataclass(frozen=True)
class Decision:
  """What one site becomes.

  ``problem`` is why it stays as it is, None when it is rewritten; then
  ``checks_kwargs``: a ``**mapping`` goes through the runtime's keyword
  check; ``keeps_reduce_axes``: ``reduce_axes`` is passed on, through the
  helper that reduces over its axes; ``compiles_fn``: ``fn`` is wrapped in
  the runtime's ``compiled``.
  """

  transform: str
  problem: Reason | None = None
  checks_kwargs: bool = False
  keeps_reduce_axes: bool = False
  compiles_fn: bool = False

  @property
  def helpers(self) -> tuple[str, ...]:
    """The runtime helpers the replacement calls, the extraction helper first."""
    wanted = ((True, EXTRACTION_HELPER[self.transform]), (self.checks_kwargs, KWARGS_HELPER),
              (self.keeps_reduce_axes, REDUCE_AXES_HELPER), (self.compiles_fn, COMPILE_HELPER))
    return tuple(helper for needed, helper in wanted if needed)

  def reason(self, spelled: str) -> Reason:
    """The diagnostic for the site, whose callee is ``spelled``."""
    if self.problem:
      return Reason(self.problem.code, f'{spelled}(...) {self.problem.text}')
    text = f'{spelled}(...) rewritten to explicit nn.vjp'
    if not self.keeps_reduce_axes:
      return reason('rewritten', text)
    return reason('rewritten-reduce-axes', text + (
        f' through {REDUCE_AXES_HELPER}, which psums the gradients of primals broadcast over '
        'the reduce_axes as flax documents (recent flax raises NotImplementedError instead)'))


def reference_reason(spelled: str) -> Reason:
  """The diagnostic for a grad transform named but not called."""
  return reason('reference', f'{spelled} is used without being called here; left unchanged; '
                f'call {spelled}(...) directly in a Module method to have it rewritten')


def _class_problem(call: cst.Call, metadata: Metadata, classes: ModuleClasses) -> Reason | None:
  cls, in_method = enclosing_class(call, metadata.parent_of)
  if cls is None:
    return reason('outside-module', 'is not inside a flax.linen.Module subclass defined in this file; '
                  'left unchanged; call it from a Module method to have it rewritten')
  name = cls.name.value
  if cls not in classes:
    untraced = classes.untraced.get(cls)
    if untraced is not None:
      base = metadata.code_for(untraced.base)
      advice = (f'if {base} is a Module, name {untraced.trace.name} in module-bases under [tool.vjpify]'
                if untraced.trace.name else 'if it is a Module, lower this call to nn.vjp by hand')
      return reason('untraced-base', f'is in class {name}, whose base {base} vjpify cannot trace to '
                    f'flax.linen.Module (the search stopped at {untraced.trace.stop}); left unchanged; {advice}')
    return reason('not-a-module', f'is in class {name}, which is not a flax.linen.Module subclass; '
                  'left unchanged; call it from a Module method to have it rewritten')
  if not in_method:
    return reason('class-body', f'runs in the body of class {name} when the class is defined, '
                  'not in a method; left unchanged; move it into a method')
  return None


def _problem(call: cst.Call, verdict: Verdict, metadata: Metadata, classes: ModuleClasses) -> Reason | None:
  """Why this call may not be rewritten, or None when it may."""
  parent_of = metadata.parent_of
  if verdict.problem:
    return verdict.problem
  problem = _class_problem(call, metadata, classes)
  if problem:
    return problem
  if in_self_documenting_field(call, parent_of):
    return reason('self-documenting-field', 'is inside a self-documenting f-string field ({...=}), which '
                  'prints the call as written; left unchanged; drop the = or compute the value outside the '
                  'f-string')
  problem = argument_problem(call, verdict.transform)
  if problem:
    return problem
  if any(a.star == '**' for a in call.args) and string_quote(enclosing_fstrings(call, parent_of), "'") is None:
    return reason('fstring-quotes', 'unpacks **keywords inside f-strings that use both quote characters, so '
                  'the keyword check cannot be spelled there; left unchanged; compute the value outside the '
                  'f-string')
  return None


def decide(call: cst.Call, verdict: Verdict, metadata: Metadata, classes: ModuleClasses,
           settings: Settings) -> Decision:
  """What the site ``call`` becomes; ``verdict`` is what its callee names,
  ``classes`` the file's Module classes."""
  problem = _problem(call, verdict, metadata, classes)
  if problem:
    return Decision(verdict.transform, problem)
  keeps = keeps_reduce_axes(call)
  return Decision(
      verdict.transform,
      checks_kwargs=any(a.star == '**' for a in call.args),
      keeps_reduce_axes=keeps,
      # Under vmap, where reduce_axes matters, compiled would not compile.
      compiles_fn=not keeps and settings.jit and fn_argument(call.args) is not None)
