"""The front for many files: the ``vjpify`` command line, the runner that
spreads files over worker processes and writes their results, and what a
run shows (diffs, progress bar, summary, JSON report).

May import: ``vjpify.transformer.pipeline`` (one file through the pass),
``find.prefilter`` (to rule files out before they go to a worker),
``files``, ``diagnostics`` and ``settings``, and the standard library.
Never libcst directly: the pipeline loads it for files that may hold a site.
"""
