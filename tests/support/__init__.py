"""What the tests, scripts and benchmarks share to run programs before and after the rewrite.

``loading`` executes a source as a fresh module (or imports a file), and
loads a file as written and as rewritten; ``comparing`` holds the one
definition of what the compiled lowering promises (its tolerance) and the
comparison of result trees and outcomes that every differential check uses.
Scripts and benchmarks put ``tests/`` on ``sys.path`` to import it; pytest
does so through ``pythonpath`` in ``pyproject.toml``.
"""
