"""The batch engine: the runner that reads many files, rules out those that
cannot hold a site, spreads the rest over worker processes and writes their
results in order. The command line, the Python API and the build hooks all
hand it their files.

May import: ``vjpify.transformer.pipeline`` (one file through the pass),
``find.prefilter`` (to rule files out before they go to a worker),
``files``, ``diagnostics`` and ``settings``, and the standard library.
Never libcst directly: the pipeline loads it for files that may hold a site.
"""
