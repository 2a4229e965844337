"""Stage 1 of the pass, finding and deciding: which files may hold a site,
which top-level statements the pass must see (``selection``), the
cut-down copy the pass reads, which calls are flax's grad transforms,
which classes are Modules (their bases traced through the project's other
files and the installed packages, read with ``ast``), which sites the
user opted out of, and whether each site may be rewritten.

May import: ``vjpify.transformer.diagnostics`` and ``.settings``, the
standard library, and libcst (never at module level in ``prefilter``,
``selection`` or ``reduction``, which the command line loads for every
file). Never the later stages (``rewrite``, ``files``, ``cli``) or the front
modules.
"""
