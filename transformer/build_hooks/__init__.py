"""Build-time generation inside real packaging: the wheel ships the
rewritten modules, while the source tree, the sdist and editable installs
keep the original sources.

- setuptools: ``build_py``, a command class named by its dotted path in the
  project's ``pyproject.toml``::

      [tool.setuptools.cmdclass]
      build_py = "vjpify.transformer.build_hooks.build_py"

- hatchling: the build hook ``vjpify``, found through the ``hatch`` entry
  point and enabled by an empty ``[tool.hatch.build.hooks.vjpify]`` table.

Both take the files their backend hands them, never walking the tree
again, and go through ``generate``, which rewrites them into the build's
own output, reports the sites left unchanged in the build log, and fails
the build with the ``file:line:col`` message of any file it cannot
transform.

May import: ``engine.runner`` and ``cli.report`` (the runner over many files
and the closing summary), ``files``, ``diagnostics`` and ``settings``;
setuptools only in ``setuptools_command`` and hatchling only in
``hatch_hook``, each loaded only by the backend that asks for it.
"""


def __getattr__(name: str):
  # setuptools resolves the dotted name to this package's attribute; import
  # setuptools only then, so that hatchling builds never need it.
  if name == 'build_py':
    from vjpify.transformer.build_hooks.setuptools_command import build_py
    return build_py
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
