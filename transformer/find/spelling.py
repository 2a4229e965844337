"""What a statement spells that the pass reads: the names of grad
transforms, the names the pass may emit, strings that may be annotations
naming one, and the imports that bind them. ``find.selection`` chooses the
top-level statements LibCST sees by it, and ``find.reduction`` the
definitions it keeps whole.
"""

from __future__ import annotations

import ast
import re

from vjpify.transformer.find.targets import (
    GRAD_NAMES, HELPER_ALIAS_PREFIX, JAX_NAMES, RNG_METHOD, RUNTIME_HELPERS, VJP_ALIAS_PREFIX)

# Words a statement that matters must spell: the names of flax's grad
# transforms and of jax's (sites and references) and the names the pass may
# emit (it must see wherever the file binds or reads them). A new kind of
# site adds its words here; :func:`may_hold_site` reads the rest from the
# ast. KEEP_WORDS finds, by one search of the text, the statements that
# may spell one of them.
KEEP_WORDS = re.compile(r'grad|vjp|compiled|jvp|jac|hessian|linearize')
_NAMES_KEPT = sorted({*GRAD_NAMES, *JAX_NAMES, 'vjp', *RUNTIME_HELPERS})
SITE_NAME = re.compile(
    f'(?:(?:{HELPER_ALIAS_PREFIX}|{VJP_ALIAS_PREFIX})_)?(?:{"|".join(_NAMES_KEPT)})(?:_\\d+)?')
# Inside a Module that holds a site, the pass also reads which methods draw
# random numbers (a lifted function that does is left unchanged).
KEEP_NAME = re.compile(
    f'(?:(?:{HELPER_ALIAS_PREFIX}|{VJP_ALIAS_PREFIX})_)?(?:{"|".join([*_NAMES_KEPT, RNG_METHOD])})(?:_\\d+)?')
_IDENTIFIER = re.compile(r'[^\W\d]\w*')

# Where an ast node spells an identifier of its own, rather than in a child.
_NAME_FIELDS = {
    ast.Name: ('id',), ast.Attribute: ('attr',), ast.arg: ('arg',), ast.keyword: ('arg',),
    ast.FunctionDef: ('name',), ast.AsyncFunctionDef: ('name',), ast.ClassDef: ('name',),
    ast.alias: ('name', 'asname'), ast.ImportFrom: ('module',), ast.ExceptHandler: ('name',),
    ast.MatchAs: ('name',), ast.MatchStar: ('name',), ast.MatchMapping: ('rest',), ast.MatchClass: ('kwd_attrs',),
}
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def words(node: ast.AST) -> list[str]:
  """The identifiers ``node`` itself spells (not its children's)."""
  found = []
  for field in _NAME_FIELDS.get(type(node), ()):
    value = getattr(node, field, None)
    if isinstance(value, str):
      found.append(value)
    elif isinstance(value, list):
      found.extend(v for v in value if isinstance(v, str))
  return found


def grad_import_names(statements: list[ast.stmt]) -> frozenset[str]:
  """Names bound by an import of something called grad-like under another
  name (``from flax.linen import grad as g``)."""
  return frozenset(a.asname for node in statements if isinstance(node, ast.ImportFrom)
                   for a in node.names if a.asname and KEEP_WORDS.search(a.name))


def jax_transform_modules(statements: list[ast.stmt]) -> frozenset[str]:
  """The names ``import jax`` binds at module level, where the file spells
  a jax transform through one of them (``jax.grad``): lifting it may leave
  the import unused, and the import is removed only if nothing the pass sees
  still reads it, so whatever reads one must stay whole."""
  aliases = imports_at_module_level(statements) or []
  modules = {alias.asname or alias.name for alias in aliases if alias.name == 'jax'}
  if not modules:
    return frozenset()
  for node in ast.walk(ast.Module(body=statements, type_ignores=[])):
    if (isinstance(node, ast.Attribute) and node.attr in JAX_NAMES and isinstance(node.value, ast.Name)
        and node.value.id in modules):
      return frozenset(modules)
  return frozenset()


def may_hold_site(node: ast.stmt, grad_names: frozenset[str] = frozenset()) -> bool:
  """Whether the pass may read or change anything in the top-level
  statement ``node``: whether it spells a grad transform or a name the pass
  may emit, has a string that may be an annotation naming one, or uses a
  name in ``grad_names`` (from :func:`grad_import_names`). A top-level
  statement the pass needs for another reason (it binds a name a kept one
  reads, ``global`` in a function among them) is kept by :func:`select`."""
  return _spells(node, grad_names, SITE_NAME, scope_declarations=False)


def keeps_whole(node: ast.stmt, grad_names: frozenset[str] = frozenset()) -> bool:
  """Whether a definition inside a file the pass sees must stay whole in
  ``find.reduction``'s copy: :func:`may_hold_site`, or it draws random
  numbers by name, or declares ``global``/``nonlocal`` names (which bind
  names in other scopes)."""
  return _spells(node, grad_names, KEEP_NAME, scope_declarations=True)


def _string_may_name(value: str, names: re.Pattern, grad_names: frozenset[str]) -> bool:
  """Whether a string, were it an annotation, could name one of ``names``:
  LibCST parses a string annotation as a module, and every name it could
  find there is one of the string's identifiers."""
  return any(names.fullmatch(word) or word in grad_names for word in _IDENTIFIER.findall(value))


def _spells(node: ast.stmt, grad_names: frozenset[str], names: re.Pattern, scope_declarations: bool) -> bool:
  if getattr(node, 'type_params', None):
    return True  # a stub could not keep the names its bases use
  inert = set()
  for child in ast.walk(node):
    if isinstance(child, (ast.Global, ast.Nonlocal)):
      if scope_declarations:
        return True
    elif isinstance(child, ast.Name) and child.id in grad_names:
      return True
    elif isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant):
      # A string statement (a docstring) names nothing; any other string
      # might be an annotation, which LibCST reads names from.
      inert.add(child.value)
    elif isinstance(child, ast.Constant):
      if (isinstance(child.value, str) and child not in inert
          and _string_may_name(child.value, names, grad_names)):
        return True
    elif any(names.fullmatch(word) for word in words(child)):
      return True
  return False



def imports_at_module_level(statements: list[ast.stmt]) -> list[ast.alias] | None:
  """The aliases ``statements`` import outside functions and classes;
  None when there are none."""
  aliases = []
  stack: list[ast.AST] = list(statements)
  while stack:
    node = stack.pop()
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      aliases.extend(node.names)
    elif not isinstance(node, SCOPES):
      stack.extend(ast.iter_child_nodes(node))
  return aliases or None
