"""vjpify's source transformer: lowers flax.linen grad and value_and_grad
call sites in Module definitions to explicit nn.vjp code.

It needs libcst (with tqdm for the command line's progress bar and
pathspec for ``.gitignore`` files), and never imports jax or flax. libcst
itself is loaded on first use, so that the command line starts fast on files that
cannot hold a site.

The API: :func:`transform_source` (text), :func:`transform_bytes` (a file's
bytes), :func:`transform_file`, :func:`transform_tree` (files and folders,
in place or mirrored into an output folder), :func:`settings_for` (the
:class:`Settings` a project's ``[tool.vjpify]`` asks for, to pass as
``settings=``), and :class:`LowerGradToVjp`, the LibCST codemod command::

    python -m libcst.tool codemod --no-format -x vjpify.transformer.LowerGradToVjp src/

The pipeline, stage by stage: ``find`` (which files and calls are sites,
and whether each may be rewritten), ``rewrite`` (the LibCST command, the
replacement nodes, their layout and imports), ``files`` (reading, walking,
writing), ``config`` (``[tool.vjpify]``), ``engine`` (the runner over
many files), ``cli`` (the command line); ``pipeline`` takes one file
through them; ``codes`` is the table of the stable codes every diagnostic
carries (``docs/diagnostics.md``).
"""

from vjpify.transformer.api import transform_bytes, transform_file, transform_source, transform_tree
from vjpify.transformer.config.load import ConfigError, settings_for
from vjpify.transformer.diagnostics import FileResult, Site, TransformError, TransformResult
from vjpify.transformer.find.prefilter import could_contain_sites
from vjpify.transformer.settings import Settings

__all__ = [
    'ConfigError', 'FileResult', 'LowerGradToVjp', 'Settings', 'Site', 'TransformError', 'TransformResult',
    'could_contain_sites', 'settings_for', 'transform_bytes', 'transform_file', 'transform_source',
    'transform_tree',
]


def __getattr__(name: str):
  # The codemod command pulls in libcst; load it only when asked for.
  if name == 'LowerGradToVjp':
    from vjpify.transformer.rewrite.command import LowerGradToVjp
    return LowerGradToVjp
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
