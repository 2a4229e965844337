"""Finding jax transforms over bound Modules inside Module methods, and
deciding whether each can be lifted to ``nn.vjp``.

A site is a call of ``jax.grad``, ``jax.value_and_grad`` or ``jax.vjp``
(by qualified name, whatever the spelling; ``jax.jacfwd`` and the like are
found only to be reported) in a method of a Module class, whose function is
a bound method (``self.energy``), or a lambda or a def nested in the method
that uses ``self`` or creates a submodule inline. Any other jax transform is
none of vjpify's business and is not reported.

Each check guards a way in which the lifted code could behave differently
from the original; a site that fails one gets the reason, and is left as it
is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import libcst as cst
from libcst.metadata import ClassScope, GlobalScope

from vjpify.transformer.find.lift_reasons import LiftReason
from vjpify.transformer.find.lifted_functions import LiftedFunction, draws_rng, lifted_function, subtree
from vjpify.transformer.find.metadata import Metadata
from vjpify.transformer.find.module_classes import ModuleClasses
from vjpify.transformer.find.sites import enclosing_class
from vjpify.transformer.find.targets import JAX_KEYWORDS, JAX_TRANSFORMS, JAX_UNLIFTED


@dataclasses.dataclass(frozen=True)
class LiftSite:
  """One jax transform over a bound Module.

  ``made``: the transform's call (``jax.grad(f)``); ``applied``: the call
  that runs it (``jax.grad(f)(x)``, ``g(x)``; ``made`` itself for
  ``jax.vjp``); ``stored``: the statement ``g = jax.grad(f)`` that goes
  when the site is lifted; ``fn``, ``primals``, ``has_aux``, ``argnums``:
  the arguments as written; ``module``: the method's ``self``;
  ``function``: the lambda or def to lift, None for a bound method.
  ``problem`` (and ``fields``, to fill its text in) is why the site stays
  as it is; None when it may be lifted.
  """

  transform: str
  made: cst.Call
  module: cst.Name
  fn: cst.BaseExpression
  applied: cst.Call | None = None
  stored: cst.SimpleStatementLine | None = None
  primals: Sequence[cst.Arg] = ()
  has_aux: cst.Arg | None = None
  argnums: cst.Arg | None = None
  function: LiftedFunction | None = None
  problem: LiftReason | None = None
  fields: tuple[tuple[str, str], ...] = ()


def jax_transform_of(func: cst.BaseExpression, metadata: Metadata) -> str | None:
  """The jax transform ``func`` names, when it names one only."""
  names = {q.name for q in metadata.qualified_names(func)}
  found = names & {*JAX_TRANSFORMS, *JAX_UNLIFTED}
  return next(iter(found)) if len(found) == 1 and len(names) == 1 else None


def _method(node: cst.CSTNode, cls: cst.ClassDef, metadata: Metadata) -> cst.FunctionDef | None:
  """The method of ``cls`` that ``node`` is in."""
  while (parent := metadata.parent_of(node)) is not None:
    if isinstance(node, cst.FunctionDef) and parent is cls.body:
      return node
    node = parent
  return None


def _self_parameter(method: cst.FunctionDef) -> cst.Param | None:
  params = [*method.params.posonly_params, *method.params.params]
  plain = all(isinstance(d.decorator, (cst.Name, cst.Attribute)) for d in method.decorators)
  static = any(isinstance(d.decorator, cst.Name) and d.decorator.value in ('staticmethod', 'classmethod')
               for d in method.decorators)
  return params[0] if params and plain and not static else None


def _is_self(node: cst.CSTNode, param: cst.Param, metadata: Metadata) -> bool:
  """Whether ``node`` is a name that reads the method's ``self``."""
  if not isinstance(node, cst.Name) or node.value != param.name.value:
    return False
  scope = metadata.scope_of(node)
  return scope is not None and any(getattr(a, 'node', None) is param for a in scope[node.value])


def _arguments(call: cst.Call) -> tuple[list[cst.Arg], dict[str, cst.Arg], bool]:
  """The positional arguments, the keywords, and whether any is unpacked."""
  positional = [a for a in call.args if a.keyword is None and not a.star]
  keywords = {a.keyword.value: a for a in call.args if a.keyword is not None}
  return positional, keywords, any(a.star for a in call.args)


def _nested_def(name: cst.Name, metadata: Metadata) -> cst.FunctionDef | None:
  """The def nested in a function that ``name`` reads, when that is all it
  may read."""
  scope = metadata.scope_of(name)
  if scope is None or isinstance(scope, (GlobalScope, ClassScope)):
    return None
  bound = [getattr(a, 'node', None) for a in scope[name.value]]
  found = bound[0] if len(bound) == 1 else None
  in_function = found is not None and not isinstance(metadata.scope_of(found), (GlobalScope, ClassScope))
  return found if isinstance(found, cst.FunctionDef) and in_function else None


def _class_defines(cls: cst.ClassDef, name: str) -> bool:
  body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ()
  return any(isinstance(s, cst.FunctionDef) and s.name.value == name for s in body)


def _stored_application(made: cst.Call, metadata: Metadata) -> tuple[cst.Call, cst.SimpleStatementLine] | None:
  """For ``g = jax.grad(f)`` followed by one ``g(x)`` in the same function:
  that call and the statement."""
  assign = metadata.parent_of(made)
  line = metadata.parent_of(assign) if isinstance(assign, cst.Assign) else None
  if (not isinstance(line, cst.SimpleStatementLine) or len(line.body) != 1 or len(assign.targets) != 1
      or not isinstance(assign.targets[0].target, cst.Name)
      or any(e.comment for e in line.leading_lines) or line.trailing_whitespace.comment):
    return None
  target = assign.targets[0].target
  scope = metadata.scope_of(target)
  if scope is None or isinstance(scope, (GlobalScope, ClassScope)):
    return None
  assignments = list(scope.assignments[target.value])
  if len(assignments) != 1:
    return None
  references = list(assignments[0].references)
  if len(references) != 1:
    return None
  used = references[0].node
  call = metadata.parent_of(used)
  if not isinstance(call, cst.Call) or call.func is not used or metadata.scope_of(used) is not scope:
    return None
  return call, line


def find_lift_site(made: cst.Call, transform: str, metadata: Metadata, classes: ModuleClasses) -> LiftSite | None:
  """The site ``made`` (a call of the jax transform ``transform``) is, when
  it is a transform over a bound Module in a Module method; else None."""
  cls, in_method = enclosing_class(made, metadata.parent_of)
  if cls is None or cls not in classes or not in_method:
    return None
  method = _method(made, cls, metadata)
  param = _self_parameter(method) if method is not None else None
  positional, keywords, starred = _arguments(made)
  fn = positional[0].value if positional else getattr(keywords.get('fun'), 'value', None)
  if param is None or fn is None:
    return None
  module = param.name
  function = None
  problem: LiftReason | None = None
  fields: dict[str, str] = {}
  if isinstance(fn, cst.Attribute) and _is_self(fn.value, param, metadata):
    if not _class_defines(cls, fn.attr.value):
      problem, fields = LiftReason.NOT_A_METHOD, {'attribute': metadata.code_for(fn)}
  else:
    target = fn if isinstance(fn, cst.Lambda) else _nested_def(fn, metadata) if isinstance(fn, cst.Name) else None
    if target is None:
      return None
    function = lifted_function(target, fn, lambda n: _is_self(n, param, metadata), metadata, classes)
    if function is None:
      return None
  site = LiftSite(transform, made, module, fn, function=function)
  if transform in JAX_UNLIFTED:
    problem = LiftReason.UNLIFTED_TRANSFORM
  problem, more = (problem, {}) if problem else _problem(site, positional, keywords, starred)
  fields.update(more)
  site = _applied(site, positional, keywords, metadata)
  if problem is None and site.applied is None:
    problem = LiftReason.NOT_APPLIED
  if problem is None:
    problem, more = _application_problem(site, cls)
    fields.update(more)
  return dataclasses.replace(site, problem=problem, fields=tuple(fields.items()))


def _applied(site: LiftSite, positional: list[cst.Arg], keywords: dict[str, cst.Arg], metadata: Metadata) -> LiftSite:
  made = site.made
  has_aux = keywords.get('has_aux')
  if site.transform == 'jax.vjp':
    return dataclasses.replace(site, applied=made, primals=positional[1:], has_aux=has_aux)
  argnums = keywords.get('argnums') or (positional[1] if len(positional) > 1 else None)
  site = dataclasses.replace(site, has_aux=has_aux, argnums=argnums)
  parent = metadata.parent_of(made)
  if isinstance(parent, cst.Call) and parent.func is made:
    return dataclasses.replace(site, applied=parent)
  stored = _stored_application(made, metadata)
  if stored is None:
    return site
  return dataclasses.replace(site, applied=stored[0], stored=stored[1])


def _problem(site: LiftSite, positional: list[cst.Arg], keywords: dict[str, cst.Arg],
             starred: bool) -> tuple[LiftReason | None, dict[str, str]]:
  """What rules out lifting, read from the transform's own call."""
  allowed = {*JAX_KEYWORDS[site.transform]}
  if site.transform != 'jax.vjp' and len(positional) > 2:
    return LiftReason.ARGUMENT_FORM, {}
  if starred or 'fun' in keywords or not keywords.keys() <= allowed:
    return LiftReason.ARGUMENT_FORM, {}
  has_aux = keywords.get('has_aux')
  if has_aux is not None and not isinstance(has_aux.value, cst.Name):
    return LiftReason.ARGUMENT_FORM, {}
  return None, {}


def _argnums(argnums: cst.Arg | None) -> tuple[int, ...] | None:
  """The argument indices a literal ``argnums`` names; None for others."""
  if argnums is None:
    return (0,)
  value = argnums.value
  if isinstance(value, cst.Integer):
    return (int(value.evaluated_value),)
  if isinstance(value, cst.Tuple) and all(isinstance(e, cst.Element) and isinstance(e.value, cst.Integer)
                                          for e in value.elements):
    return tuple(int(e.value.evaluated_value) for e in value.elements)
  return None


def _application_problem(site: LiftSite, cls: cst.ClassDef) -> tuple[LiftReason | None, dict[str, str]]:
  """What rules out lifting, read from the call that applies the transform
  and from the function it differentiates."""
  if site.transform == 'jax.vjp':
    primals = site.primals
  else:
    positional, keywords, starred = _arguments(site.applied)
    if starred or keywords:
      return LiftReason.ARGUMENT_FORM, {}
    primals = positional
  if not primals:
    return LiftReason.SIGNATURE, {}
  if site.transform != 'jax.vjp' and _argnums(site.argnums) != tuple(range(len(primals))):
    return LiftReason.PARTIAL_ARGNUMS, {}
  function = site.function
  if function is None:
    bound = next(s for s in cls.body.body if isinstance(s, cst.FunctionDef) and s.name.value == site.fn.attr.value)
    return (LiftReason.DRAWS_RNG if draws_rng(subtree(bound)) else None), {}
  if function.draws_rng:
    return LiftReason.DRAWS_RNG, {}
  if function.captured:
    return LiftReason.CAPTURES_LOCALS, {'names': ', '.join(function.captured)}
  if function.shared:
    return LiftReason.SHARED_FUNCTION, {'names': function.node.name.value}
  if function.arity != len(primals):
    return LiftReason.SIGNATURE, {}
  return None, {}

