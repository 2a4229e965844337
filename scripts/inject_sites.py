"""Plants nn.grad / nn.value_and_grad sites into real Flax code and checks
each planted file against what a rewrite must guarantee
(``check_rewrite``, in ``scripts/rewrite_check.py``).

The sweep copies the trees that hold every module of ``flax/linen`` and of
flax's examples to a temporary folder, keeping their layout (so that a class
whose base comes from another file of the tree is traced there, as in the
real tree), plants sites into every method of every class in those modules
(several spellings and expression contexts, chosen by a seeded generator)
and checks each planted file.

Example::

    python scripts/inject_sites.py                 # flax/linen and the examples
    python scripts/inject_sites.py --keep out/ a.py  # keep the planted files
    python scripts/inject_sites.py --reasons       # count the reasons sites were left alone

Exit status 1 when any file breaks a guarantee.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import pathlib
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from rewrite_check import check_rewrite
from vjpify.transformer.diagnostics import REWRITTEN
from vjpify.transformer.find.project import package_top


# --- Planting sites into real code -----------------------------------------

# How the planted code names flax's grad: (module, name, alias) to import, or
# (module, None, alias) for a module import, and the callee spelling for each
# transform.
SPELLINGS = (
    (('flax.linen', None, 'planted_nn'), 'planted_nn.grad', 'planted_nn.value_and_grad'),
    (('flax', None, None), 'flax.linen.grad', 'flax.linen.value_and_grad'),
    (('flax.linen', 'grad', 'planted_grad'), 'planted_grad', None),
    (('flax.linen', 'value_and_grad', 'planted_vg'), None, 'planted_vg'),
    (('flax.linen.transforms', 'grad', None), 'grad', None),
)

# Statement templates; {call} is the planted call. Some wrap the method's
# first statement's context, some stand alone.
TEMPLATES = (
    'planted = {call}',
    'planted, *_ = {call}',
    'print({call})',
    'planted = [{call} for _ in range(1)]',
    'planted = (lambda: {call})()',
    'planted = {call} if True else None',
)


def _call_text(callee: str, mdl: str, primals: Sequence[str], rng: random.Random) -> str:
  args = ['lambda mdl, *a: 0.0', mdl, *primals]
  if rng.random() < 0.3:
    args.append('has_aux=False')
  if rng.random() < 0.2:
    args.append('reduce_axes=()')
  if rng.random() < 0.3:
    # One argument per line, as formatters lay out long calls.
    return callee + '(\n    ' + ',\n    '.join(args) + ',\n)'
  return f'{callee}({", ".join(args)})'


class Planter(cst.CSTTransformer):
  """Puts one planted statement at the top of every method of every class."""

  def __init__(self, context: CodemodContext, rng: random.Random):
    self.context = context
    self.rng = rng
    self.planted = 0
    self._classes = 0

  def visit_ClassDef(self, node: cst.ClassDef) -> None:
    self._classes += 1

  def leave_ClassDef(self, original_node, updated_node):
    self._classes -= 1
    return updated_node

  def leave_FunctionDef(self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef):
    if not self._classes or not isinstance(updated_node.body, cst.IndentedBlock):
      return updated_node
    params = [p.name.value for p in updated_node.params.params]
    if not params:
      return updated_node
    (module, name, alias), grad, value_and_grad = self.rng.choice(SPELLINGS)
    callee = self.rng.choice([c for c in (grad, value_and_grad) if c])
    call = _call_text(callee, params[0], params[1:3], self.rng)
    statement = cst.parse_statement(self.rng.choice(TEMPLATES).format(call=call) + '\n')
    if name is None:
      AddImportsVisitor.add_needed_import(self.context, module, asname=alias)
    else:
      AddImportsVisitor.add_needed_import(self.context, module, name, alias)
    body = list(updated_node.body.body)
    docstring = bool(body) and isinstance(body[0], cst.SimpleStatementLine) and isinstance(body[0].body[0], cst.Expr) \
        and isinstance(body[0].body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    body.insert(1 if docstring else 0, statement)
    self.planted += 1
    return updated_node.with_changes(body=updated_node.body.with_changes(body=body))


def plant_sites(code: str, seed: int) -> tuple[str, int]:
  """``code`` with sites planted in its methods, and how many were planted."""
  context = CodemodContext()
  planter = Planter(context, random.Random(seed))
  tree = cst.parse_module(code).visit(planter)
  if planter.planted:
    tree = AddImportsVisitor(context).transform_module(tree)
  return tree.code, planter.planted


# --- The sweep -------------------------------------------------------------

def _trees() -> list[pathlib.Path]:
  """The trees the default files come from: flax's package, and its examples
  when flax's source tree is at hand."""
  spec = importlib.util.find_spec('flax')
  (flax_dir,) = spec.submodule_search_locations
  trees = [pathlib.Path(flax_dir)]
  for examples in (pathlib.Path(flax_dir).parent / 'examples', pathlib.Path('/tmp/flaxsdist/flax-0.12.8/examples')):
    trees += [examples] if examples.is_dir() else []
  return trees


def default_files() -> list[pathlib.Path]:
  """flax's linen modules, and its examples when flax's source tree is at hand."""
  flax_dir, *examples = _trees()
  files = sorted((flax_dir / 'linen').glob('*.py'))
  for tree in examples:
    files += sorted(tree.rglob('*.py'))
  return files


def _copies(files: Sequence[pathlib.Path], out_dir: pathlib.Path) -> dict[pathlib.Path, pathlib.Path]:
  """Where each file goes in ``out_dir``: the tree around it (flax's package
  or its examples; for another file, its top package, or its folder when it
  is in none) is copied there whole, its Python files only, so that imports
  between the tree's files still work."""
  known = [tree.resolve() for tree in _trees()]
  trees: dict[pathlib.Path, pathlib.Path] = {}
  targets = {}
  for path in files:
    tree = next((t for t in known if t in path.parents), None)
    if tree is None:
      top = pathlib.Path(package_top(str(path.parent)))
      relative = path.relative_to(top)
      tree = top / relative.parts[0] if len(relative.parts) > 1 else top
    if tree not in trees:
      name = tree.name
      while (out_dir / name).exists():
        name += '_'
      trees[tree] = out_dir / name
      shutil.copytree(tree, trees[tree], ignore=lambda folder, names: [
          n for n in names if not n.endswith('.py') and not (pathlib.Path(folder) / n).is_dir()])
    targets[path] = trees[tree] / path.relative_to(tree)
  return targets


def reason_kind(reason: str) -> str:
  """A site's reason with the names of the site, class and base left out,
  to count reasons over many files."""
  kind = re.sub(r'^\S+\(\.\.\.\) |^\S+ ', '', reason)
  kind = re.sub(r'class \w+', 'class C', kind)
  kind = re.sub(r'base \S+ vjpify', 'base B vjpify', kind)
  return re.sub(r'\(the search stopped at [^:]+:\d+: ', '(the search stopped at F:L: ', kind)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('files', nargs='*', type=pathlib.Path)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--keep', type=pathlib.Path, help='write the planted files here')
  parser.add_argument('--reasons', action='store_true', help='count the reasons sites were left unchanged')
  args = parser.parse_args(argv)
  files = [path.resolve() for path in args.files or default_files()]
  out_dir = args.keep or pathlib.Path(tempfile.mkdtemp(prefix='vjpify-planted-'))
  out_dir.mkdir(parents=True, exist_ok=True)
  targets = _copies(files, out_dir)
  start = time.perf_counter()
  totals = {'files': 0, 'planted': 0, 'rewritten': 0, 'skipped': 0, 'broken': 0}
  reasons: collections.Counter[str] = collections.Counter()
  examples: dict[str, str] = {}
  for index, path in enumerate(files):
    planted_code, count = plant_sites(path.read_text(), args.seed + index)
    if not count:
      continue
    target = targets[path]
    target.write_text(planted_code)
    totals['files'] += 1
    totals['planted'] += count
    try:
      result = check_rewrite(planted_code, str(target))
    except Exception:  # Any failure is the finding: show it and go on.
      totals['broken'] += 1
      print(f'{target} (planted from {path}):\n{traceback.format_exc()}')
      continue
    totals['rewritten'] += sum(s.action == REWRITTEN for s in result.sites)
    totals['skipped'] += sum(s.action != REWRITTEN for s in result.sites)
    for site in result.sites:
      if site.action != REWRITTEN:
        reasons[reason_kind(site.reason)] += 1
        examples.setdefault(reason_kind(site.reason), site.format())
  print(', '.join(f'{v} {k}' for k, v in totals.items()) + f' in {time.perf_counter() - start:.1f} s; files in {out_dir}')
  if args.reasons:
    for reason, count in reasons.most_common():
      print(f'{count:5d} {reason}\n      e.g. {examples[reason]}')
  return int(totals['broken'] > 0)


if __name__ == '__main__':
  sys.exit(main())
