"""What the pass knows about the parsed file: LibCST's metadata for its
nodes, as plain functions that the stages call.

The LibCST command resolves the metadata and builds one :class:`Metadata`
per file; everything that finds, decides or lays out a site asks it rather
than LibCST, so none of it depends on the command.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import NamedTuple

import libcst as cst
from libcst.metadata import CodeRange, QualifiedName, Scope


class Metadata(NamedTuple):
  """``parent_of``: the node a node sits in (None for the module);
  ``range_of``: its source positions, 0-based columns (None for a node the
  pass built); ``scope_of``: the scope it is in; ``qualified_names``: what a
  name or attribute may refer to; ``code_for``: its source text."""

  parent_of: Callable[[cst.CSTNode], cst.CSTNode | None]
  range_of: Callable[[cst.CSTNode], CodeRange | None]
  scope_of: Callable[[cst.CSTNode], Scope | None]
  qualified_names: Callable[[cst.CSTNode], Collection[QualifiedName]]
  code_for: Callable[[cst.CSTNode], str]
