"""``python -m vjpify``: the ``vjpify`` command line.

``vjpify`` is a namespace package: this folder holds only what belongs to
the namespace itself, while ``transformer/`` and ``runtime/`` are its two
packages (see ``[tool.setuptools.package-dir]`` in ``pyproject.toml``).
"""

from vjpify.transformer.cli.main import main

if __name__ == '__main__':
  raise SystemExit(main())
