"""A benchmark module in its two forms: as written, and as vjpify rewrites it
by default (each site's ``fn`` wrapped in the runtime's ``compiled``)."""

from __future__ import annotations

import dataclasses
import types

from vjpify.transformer import transform_source

# The loader shared with the tests: tests/ is on the path under pytest (its
# pythonpath setting) and in bench/run.py's command (PYTHONPATH=tests).
from support.loading import load_source


@dataclasses.dataclass(frozen=True)
class Forms:
  """One benchmark module, loaded as written and as rewritten."""

  name: str
  original: types.ModuleType
  rewritten: types.ModuleType
  sites: int


def load_forms(path: str) -> Forms:
  """Loads ``path`` twice; fails unless every site went through the rewrite."""
  with open(path, encoding='utf-8') as f:
    code = f.read()
  result = transform_source(code, path)
  left = [site.format() for site in result.sites if site.action != 'rewritten']
  if left or not result.sites:
    raise SystemExit(f'{path}: every site must be rewritten:\n' + '\n'.join(left))
  wrapped = result.code.count('compiled(')
  if wrapped != len(result.sites):
    raise SystemExit(f'{path}: {len(result.sites)} sites rewritten but {wrapped} wrapped in compiled(...)')
  name = path.rsplit('/', 1)[-1].removesuffix('.py')
  return Forms(
      name=name,
      original=load_source(code, f'_bench_original_{name}', path),
      rewritten=load_source(result.code, f'_bench_rewritten_{name}', path),
      sites=len(result.sites),
  )
