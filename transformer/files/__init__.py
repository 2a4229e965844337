"""Input and output: reading Python sources as Python does, listing the
files a run reads and where each result goes, and writing them atomically.

May import: the standard library, and pathspec for ``.gitignore`` files
(only once a walk meets one). Nothing else from the transformer, and never
libcst: the command line reads every file before it knows whether any
needs parsing.
"""
