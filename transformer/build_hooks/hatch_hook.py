"""The hatchling build hook ``vjpify``, found through the ``hatch`` entry
point (``pyproject.toml``: ``[project.entry-points.hatch]``) and enabled in
a project by an empty table::

    [tool.hatch.build.hooks.vjpify]

Before a standard wheel is built, hatchling's own file selection (its
``packages``, ``include``, ``exclude``, ``sources`` and ``.gitignore``
handling) names the project's Python files; each is rewritten into a
folder of the hook's own, and each file that changed goes into the wheel
in place of the original through ``force_include``. The sdist target and
editable wheels are left alone, so an editable install runs the original
sources, and the source tree is never written. Files that hatchling
force-includes from the project's own configuration are shipped as they
are.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.plugin import hookimpl

from vjpify.transformer.build_hooks.generate import BuildFailed, Generation, Output


class VjpifyBuildHook(BuildHookInterface):
  """Ships the wheel's Python modules rewritten by vjpify."""

  PLUGIN_NAME = 'vjpify'

  _folder: str | None = None

  def _log(self, message: str, warning: bool) -> None:
    if warning:
      self.app.display_warning(message)
    else:
      self.app.display_info(message)

  def initialize(self, version: str, build_data: dict[str, Any]) -> None:
    if self.target_name != 'wheel' or version == 'editable':
      return
    self._folder = tempfile.mkdtemp(prefix='vjpify-hatch-')
    try:
      outputs = [
          Output(included.path, os.path.join(self._folder, included.relative_path), included.relative_path,
                 included.distribution_path)
          for included in self.build_config.builder.recurse_selected_project_files()
          if included.relative_path.endswith('.py')]
      generation = Generation(self.root, self._log)
      results = generation.generate(outputs)
      generation.finish()
    except BuildFailed as failed:
      self._remove_folder()
      # What hatchling's own commands do with an error the user can fix:
      # the message alone, and exit status 1, with no traceback.
      self.app.abort(str(failed))
      raise  # abort() exits; this is for an app that does not
    except BaseException:
      self._remove_folder()
      raise
    for output, result in zip(outputs, results):
      if result.changed:
        # A source outside the project replaces the file at that path.
        build_data['force_include'][output.destination] = output.name

  def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
    self._remove_folder()

  def _remove_folder(self) -> None:
    if self._folder is not None:
      shutil.rmtree(self._folder, ignore_errors=True)
      self._folder = None


@hookimpl
def hatch_register_build_hook():
  return VjpifyBuildHook
