"""The jax transforms over bound Modules in one file: what the LibCST
command asks at each node it visits and leaves, so that the command itself
stays wiring.

At a transform's call it finds and decides the site (``find.lift_sites``)
and, when the site is lifted, plans every edit: the names that read
``self`` inside the function, the module parameter it gains, the statement
``g = jax.grad(f)`` that goes, and the call that becomes the ``nn.vjp``
code (``lift_nodes``). Each edit is then made where LibCST leaves that
node, on the updated nodes, so that the user's expressions are kept.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable

import libcst as cst
from libcst.metadata import Scope

from vjpify.transformer.diagnostics import REPORTED, REWRITTEN, SKIPPED
from vjpify.transformer.codes import Reason
from vjpify.transformer.find.lift_reasons import LiftReason, lifted, message
from vjpify.transformer.find.lift_sites import LiftSite, find_lift_site, jax_transform_of
from vjpify.transformer.find.metadata import Metadata
from vjpify.transformer.find.module_classes import ModuleClasses
from vjpify.transformer.find.targets import COMPILE_HELPER, JAX_EXTRACTION_HELPER, JAX_TRANSFORMS
from vjpify.transformer.rewrite.imports import ImportPlanner
from vjpify.transformer.rewrite.layout import Layout
from vjpify.transformer.rewrite.lift_nodes import LiftSpelling, lifted_call, with_module_parameter
from vjpify.transformer.settings import Settings

# (node, kind, action, reason): how a site is recorded.
Record = Callable[[cst.CSTNode, str, str, Reason], None]


class Lifter:
  """The lifting edits of one file, planned at the transforms' calls."""

  def __init__(self, metadata: Metadata, classes: ModuleClasses, planner: ImportPlanner, layout: Layout,
               settings: Settings, requested: Callable[..., Reason | None], record: Record):
    self._metadata = metadata
    self._layout = layout
    self._classes = classes
    self._planner = planner
    self._settings = settings
    self._requested = requested
    self._record = record
    self._sites: dict[cst.Call, LiftSite] = {}
    self._applied: dict[cst.Call, tuple[LiftSite, LiftSpelling]] = {}
    self._renames: dict[cst.Name, str] = {}
    self._parameters: dict[cst.CSTNode, str] = {}
    self._removed: set[cst.SimpleStatementLine] = set()
    # The updated transform call of each stored site, for its later call.
    self._made: dict[cst.Call, cst.Call] = {}

  def _left(self) -> str:
    """The action of a site left unchanged: only reported unless lifting or
    strictness about it was asked for."""
    lifting = self._settings.lift_jax_transforms or self._settings.strict_jax_transforms
    return SKIPPED if lifting else REPORTED

  def plan(self, calls: Iterable[cst.Call]) -> None:
    """Finds the sites among ``calls`` and plans their edits, before the
    walk reaches any node they change (a nested def precedes its site)."""
    for call in calls:
      transform = jax_transform_of(call.func, self._metadata)
      site = find_lift_site(call, transform, self._metadata, self._classes) if transform else None
      if site is not None:
        self._sites[call] = site
    nested = self._nested()
    for call, site in self._sites.items():
      if call in nested and site.problem is None:
        site = self._sites[call] = dataclasses.replace(site, problem=LiftReason.NESTED)
      self._plan(call, site)

  def _nested(self) -> set[cst.Call]:
    """The sites inside another site's call or function, and those others."""
    spans = {call: {call, *(site.applied, site.function.node if site.function else None)} - {None}
             for call, site in self._sites.items()}
    found = set()
    for call in self._sites:
      node = self._metadata.parent_of(call)
      while node is not None:
        outer = next((other for other, span in spans.items() if node in span and other is not call), None)
        if outer is not None:
          found |= {call, outer}
        node = self._metadata.parent_of(node)
    return found

  def _plan(self, node: cst.Call, site: LiftSite) -> None:
    transform = site.transform
    if site.problem or not self._settings.lift_jax_transforms or self._requested(node):
      return
    scope: Scope = self._metadata.scope_of(node)
    compile_name = self._planner.runtime_helper(COMPILE_HELPER, scope) if self._settings.jit else None
    spelling = LiftSpelling(self._planner.vjp_function(node.func, scope, self._metadata.qualified_names),
                            self._planner.runtime_helper(JAX_EXTRACTION_HELPER[transform], scope), compile_name)
    self._applied[site.applied] = site, spelling
    function = site.function
    if function is not None:
      self._renames.update(dict.fromkeys(function.renames, function.parameter))
      self._parameters[function.node] = function.parameter
    if site.stored is not None:
      self._removed.add(site.stored)
    self._planner.release_grad_import(node.func, scope, JAX_TRANSFORMS)

  def _reason(self, site: LiftSite, node: cst.Call) -> tuple[str, Reason]:
    """The action and diagnostic of the site whose transform call is ``node``."""
    spelled = self._metadata.code_for(node.func)
    found = None
    if site.problem:
      found = message(site.problem, spelled, **dict(site.fields))
    elif not self._settings.lift_jax_transforms:
      found = message(LiftReason.REPORTED, spelled)
    requested = self._requested(node, found)
    if requested:
      return SKIPPED, Reason(requested.code, f'{spelled}(...) {requested.text}')
    if found is not None:
      return self._left(), found
    return REWRITTEN, lifted(spelled)

  def leave_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
    site = self._sites.get(original)
    if site is not None:
      action, reason = self._reason(site, original)
      self._record(original, site.transform, action, reason)
      if site.stored is not None:
        self._made[original] = updated
    lifted = self._applied.get(original)
    if lifted is None:
      return updated
    site, spelling = lifted
    if site.transform == 'jax.vjp':
      made = updated
    elif site.stored is None:
      made = updated.func
    else:
      made = self._made[site.made]
    return self._layout.laid_out(original, functools.partial(lifted_call, site, made, updated, spelling))

  def leave_name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
    parameter = self._renames.get(original)
    return updated if parameter is None else updated.with_changes(value=parameter)

  def leave_function(self, original: cst.CSTNode, updated: cst.CSTNode) -> cst.CSTNode:
    parameter = self._parameters.get(original)
    return updated if parameter is None else with_module_parameter(updated, parameter)

  def leave_statement(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine,
                      ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
    return cst.RemovalSentinel.REMOVE if original in self._removed else updated
