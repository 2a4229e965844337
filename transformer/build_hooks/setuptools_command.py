"""The setuptools command class: ``build_py`` that writes each module into
the build folder rewritten, for projects that name it in
``pyproject.toml``::

    [tool.setuptools.cmdclass]
    build_py = "vjpify.transformer.build_hooks.build_py"

setuptools hands ``build_py`` each module as it builds it
(``build_module``); this command writes the rewritten module where
setuptools would have copied the original, so that wheels ship it and
byte-compilation sees it. An editable install builds no modules (its
``build_py`` runs in ``editable_mode`` and copies nothing), so the
installed project runs its original sources, and the sdist is made from
the source tree, which is never written.
"""

from __future__ import annotations

import os

from setuptools.command.build_py import build_py as _setuptools_build_py
from setuptools.errors import FileError

# After setuptools, which makes this its own distutils (Python 3.12 has none).
from distutils import log as distutils_log  # isort: skip

from vjpify.transformer.build_hooks.generate import BuildFailed, Generation, Output


class build_py(_setuptools_build_py):  # noqa: N801 (setuptools' own name for the command)
  """setuptools' ``build_py``, writing modules rewritten by vjpify."""

  _generation: Generation | None = None

  def _log(self, message: str, warning: bool) -> None:
    # The levels of the distutils in use: setuptools from 66 on logs
    # through logging (WARN is 30), while setuptools 65's own distutils.log
    # refuses anything but its 1 to 5 ("20 wrong log level").
    self.announce(message, distutils_log.WARN if warning else distutils_log.INFO)

  def run(self) -> None:
    try:
      # setuptools runs the build from the project's folder.
      self._generation = Generation(os.getcwd(), self._log)
      super().run()
      self._generation.finish()
    except BuildFailed as failed:
      # setuptools turns its own errors into "error: <message>" and a
      # failed build, without a traceback.
      raise FileError(str(failed)) from None
    finally:
      self._generation = None

  def build_module(self, module: str, module_file: str, package):
    if self._generation is None or self.dry_run:
      return super().build_module(module, module_file, package)
    if isinstance(package, str):
      package = package.split('.')
    outfile = self.get_module_outfile(self.build_lib, package, module)
    result, = self._generation.generate([Output(module_file, outfile, module_file, outfile)])
    return outfile, not result.up_to_date
