"""Stage 2 of the pass, rewriting: the LibCST command, the replacement
nodes it builds, their layout in the file's own style, and the imports they
need.

May import: ``vjpify.transformer.find`` (what to rewrite and whether),
``vjpify.transformer.diagnostics`` and ``.settings``, the standard library
and libcst. Never ``files``, ``cli`` or the front modules.
"""
