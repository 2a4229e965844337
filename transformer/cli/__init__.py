"""The command line: the ``vjpify`` options, and what a run shows (diffs,
progress bar, summary, JSON report). The files themselves go through the
engine (``vjpify.transformer.engine``).

May import: ``engine`` (the runner over many files), ``files``, ``config``,
``diagnostics`` and ``settings``, and the standard library. Never libcst:
the pipeline loads it for files that may hold a site.
"""
