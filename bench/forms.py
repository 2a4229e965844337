"""A benchmark module in its two forms: as written, and as vjpify rewrites it.

The rewritten form is what ``transform_source`` emits, with the compiled
path switched on: the function handed to each emitted ``nn.vjp`` is wrapped
in ``compiled(...)``. Once the transformer emits that wrapper itself, the
wrapping here finds it already there and changes nothing.
"""

from __future__ import annotations

import dataclasses
import sys
import types

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from vjpify.transformer import transform_source

RUNTIME = 'vjpify.runtime'
COMPILED = 'compiled'
# The runtime helpers the transformer wraps an emitted nn.vjp call in.
_EXTRACTORS = m.Name('grad_from_vjp') | m.Name('value_and_grad_from_vjp')


class _WrapVjpFunction(cst.CSTTransformer):
  """Wraps the ``fn`` argument of every ``nn.vjp`` call the transformer emitted."""

  def __init__(self):
    super().__init__()
    self.wrapped = 0

  def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
    if not m.matches(updated_node, m.Call(func=_EXTRACTORS, args=[m.Arg(value=m.Call())])):
      return updated_node
    vjp = updated_node.args[0].value
    if not m.matches(vjp.func, m.Attribute(attr=m.Name('vjp')) | m.Name('vjp')):
      return updated_node
    args = list(vjp.args)
    index = next(
        (i for i, arg in enumerate(args) if m.matches(arg, m.Arg(keyword=m.Name('fn')))),
        next((i for i, arg in enumerate(args) if arg.keyword is None and not arg.star), None),
    )
    if index is None or m.matches(args[index].value, m.Call(func=m.Name(COMPILED))):
      return updated_node
    args[index] = args[index].with_changes(
        value=cst.Call(func=cst.Name(COMPILED), args=[cst.Arg(args[index].value)])
    )
    self.wrapped += 1
    return updated_node.with_changes(args=[updated_node.args[0].with_changes(value=vjp.with_changes(args=args))])


def with_compiled_path(code: str) -> tuple[str, int]:
  """Wraps each emitted ``nn.vjp``'s function in ``compiled``; the code and how many."""
  module = cst.parse_module(code)
  wrapper = _WrapVjpFunction()
  module = module.visit(wrapper)
  if wrapper.wrapped:
    context = CodemodContext()
    AddImportsVisitor.add_needed_import(context, RUNTIME, COMPILED)
    module = AddImportsVisitor(context).transform_module(module)
  return module.code, wrapper.wrapped


def load_source(code: str, name: str, path: str) -> types.ModuleType:
  """Executes ``code`` as a fresh module registered as ``name``."""
  module = types.ModuleType(name)
  module.__file__ = path
  # dataclasses, and so flax Modules, look their defining module up here.
  sys.modules[name] = module
  exec(compile(code, path, 'exec', dont_inherit=True), module.__dict__)
  return module


@dataclasses.dataclass(frozen=True)
class Forms:
  """One benchmark module, loaded as written and as rewritten."""

  name: str
  original: types.ModuleType
  rewritten: types.ModuleType
  sites: int
  # Whether compiled(...) was added here rather than by the transformer.
  adapted: bool


def load_forms(path: str) -> Forms:
  """Loads ``path`` twice; fails unless every site went through the rewrite."""
  with open(path, encoding='utf-8') as f:
    code = f.read()
  result = transform_source(code, path)
  left = [site.format() for site in result.sites if site.action != 'rewritten']
  if left or not result.sites:
    raise SystemExit(f'{path}: every site must be rewritten:\n' + '\n'.join(left))
  rewritten, wrapped = with_compiled_path(result.code)
  if wrapped != len(result.sites) and COMPILED not in result.code:
    raise SystemExit(f'{path}: {len(result.sites)} sites rewritten but {wrapped} nn.vjp calls found')
  name = path.rsplit('/', 1)[-1].removesuffix('.py')
  return Forms(
      name=name,
      original=load_source(code, f'_bench_original_{name}', path),
      rewritten=load_source(rewritten, f'_bench_rewritten_{name}', path),
      sites=len(result.sites),
      adapted=wrapped > 0,
  )
