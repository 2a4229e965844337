"""``python -m vjpify.transformer``: the ``vjpify`` command line."""

from vjpify.transformer.cli.main import main

if __name__ == '__main__':
  raise SystemExit(main())
