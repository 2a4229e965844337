"""Configuration: the ``[tool.vjpify]`` table of a ``pyproject.toml``,
found as black and ruff find theirs, checked key by key, and turned into the
run's :class:`~vjpify.transformer.settings.Settings`.

``load.settings_for(path, config=None, **overrides)`` is what every front
calls: the command line, the Python API and the build hooks.

May import: ``vjpify.transformer.settings`` and ``.files``, and the
standard library (``tomllib``; ``tomli`` before Python 3.11). Never
``find``, ``rewrite`` or libcst: the command line reads the configuration
before it knows whether any file needs parsing.
"""
