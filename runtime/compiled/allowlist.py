"""What may run in a trace that is cached: the allow-list, as data.

A compiled entry replays arrays; anything else a trace did or read in
Python must either be repeated by the guards (the values it read) or be
known not to reach state outside the key. Every call that user code makes
while a trace runs is looked up here (by ``calls.verdict``); a call that no
table allows makes the trace uncompiled, and ``explain()`` names it. Unknown
means uncompiled, never "probably fine".

The tables, one per class of callable:

- :data:`PURE_BUILTINS`: builtins whose result depends only on their
  arguments and what the guards already cover;
- :data:`REGISTRY_BUILTINS`: builtins whose answer also depends on a
  registry (``isinstance`` against an ABC): allowed, and the entry is
  guarded by the registry's version;
- :data:`HIGHER_ORDER`: C callables that call their argument from C, where
  no monitor sees the call: allowed when that argument is allowed itself;
- :data:`ARGUMENT_MUTATORS`: C functions that change one argument in place:
  allowed when that argument was created by the trace;
- :data:`IMMUTABLE_TYPES`: types every method of which is pure;
- :data:`CONTAINER_METHODS`: the methods of mutable built-in containers,
  split into those that only read and those that change the container
  (allowed only on containers the trace created);
- :data:`PURE_C_MODULES`: C modules every function of which is pure, but
  for the mutators listed above;
- :data:`TRUSTED_PACKAGES` with :data:`TRUSTED_EXCEPTIONS`: packages whose
  Python and C code is trusted as a whole (jax, flax, numpy), but for the
  functions and types listed as exceptions (configuration, I/O, global
  random state, in-place updates);
- :data:`TRANSPARENT_STDLIB_MODULES`: standard-library Python modules whose
  own code needs no watching (their functions only dispatch to what they
  are given). Every other standard-library function that user code enters
  is followed as user code is: its reads guarded, its calls looked up here.
"""

from __future__ import annotations

import array
import collections
import os
import types

import numpy as np

__all__ = [
    'ARGUMENT_MUTATORS', 'CONTAINER_METHODS', 'DATACLASS_GENERATED_METHODS', 'HIGHER_ORDER', 'IMMUTABLE_TYPES', 'ITERATOR_CONSUMERS', 'WRITING_KEYWORDS',
    'NAMESPACE_READERS', 'OBJECT_METHODS', 'OPEN_CONTAINERS', 'PURE_BUILTINS', 'PURE_C_MODULES', 'PURE_C_TYPES', 'REGISTRY_BUILTINS',
    'TRANSPARENT_STDLIB_MODULES', 'TRUSTED_EXCEPTIONS', 'TRUSTED_HIGHER_ORDER', 'TRUSTED_PACKAGES',
    'NAMEDTUPLE_GENERATED_METHODS', 'PROCESS_STATE_TYPES', 'PURE_C_TYPES_EXCEPTIONS',
]

# Builtins that neither read nor change anything outside their arguments.
# Left out on purpose: print, input, open, exec, eval, compile, __import__,
# breakpoint, help, id (differs between an object made by a trace and one
# made by a call), globals, locals, vars (see NAMESPACE_READERS), setattr,
# delattr and next (see ARGUMENT_MUTATORS).
PURE_BUILTINS = frozenset({
    'abs', 'all', 'any', 'ascii', 'bin', 'bool', 'bytearray', 'bytes', 'callable', 'chr', 'classmethod', 'complex',
    'dict', 'divmod', 'enumerate', 'float', 'format', 'frozenset', 'hex', 'int', 'iter', 'len', 'list', 'oct', 'ord',
    'pow', 'property', 'range', 'repr', 'reversed', 'round', 'set', 'slice', 'staticmethod', 'str', 'sum', 'super',
    'tuple', 'type', 'zip', 'object', 'hash', 'sorted', 'min', 'max', 'memoryview',
})
# Builtins whose answer depends on ABC registries as well as their arguments.
REGISTRY_BUILTINS = frozenset({'isinstance', 'issubclass'})
# Builtins through which code reads a namespace by computed names; allowed
# on objects whose namespace the guards cover (not on user modules).
NAMESPACE_READERS = frozenset({'getattr', 'hasattr', 'vars', 'globals'})
# C callables that call the callable at this argument position from C.
HIGHER_ORDER = {
    'map': 0, 'filter': 0, 'reduce': 0, 'starmap': 0, 'partial': 0, 'cmp_to_key': 0, 'takewhile': 0,
    'dropwhile': 0, 'filterfalse': 0, 'groupby': 1, 'accumulate': 1,
}
# Trusted packages' functions that call the callable they are given first.
TRUSTED_HIGHER_ORDER = frozenset({'tree_map', 'tree_map_with_path', 'tree_reduce', 'tree_foreach'})
# C functions that change the argument at this position in place.
ARGUMENT_MUTATORS = {
    'next': 0, 'setattr': 0, 'delattr': 0,
    'heappush': 0, 'heappop': 0, 'heapify': 0, 'heapreplace': 0, 'heappushpop': 0, '_heappop_max': 0,
    '_heapify_max': 0, '_heapreplace_max': 0,
    'insort': 0, 'insort_left': 0, 'insort_right': 0,
    'setitem': 0, 'delitem': 0, 'iadd': 0, 'iand': 0, 'iconcat': 0, 'ifloordiv': 0, 'ilshift': 0, 'imod': 0,
    'imul': 0, 'imatmul': 0, 'ior': 0, 'ipow': 0, 'irshift': 0, 'isub': 0, 'itruediv': 0, 'ixor': 0,
    '_count_elements': 0,
    # numpy's in-place functions.
    'copyto': 0, 'put': 0, 'place': 0, 'putmask': 0, 'put_along_axis': 0, 'fill_diagonal': 0,
}
# C callables that consume an iterator given as their first argument: an
# iterator that outlives the call would be advanced once per trace, not
# once per call.
ITERATOR_CONSUMERS = frozenset({
    'zip', 'enumerate', 'list', 'tuple', 'set', 'frozenset', 'dict', 'sorted', 'sum', 'min', 'max', 'any', 'all',
    'islice', 'chain', 'cycle', 'tee', 'accumulate', 'compress', 'zip_longest', 'product', 'permutations',
    'combinations', 'combinations_with_replacement', 'pairwise', 'batched', 'groupby', 'bytes', 'bytearray', 'join',
    'extend', 'update', 'deque', 'fromiter', 'from_iterable', 'nlargest', 'nsmallest', 'merge',
})
# Keywords through which a C function writes into an object it is given.
WRITING_KEYWORDS = frozenset({'out'})
# Types every method of which is pure: values that cannot change.
IMMUTABLE_TYPES: tuple[type, ...] = (
    str, bytes, int, float, complex, bool, tuple, frozenset, range, slice, type(None), type(Ellipsis),
    types.MappingProxyType, memoryview, np.generic, np.dtype,
)
# The methods of built-in mutable containers: (reads, changes).
CONTAINER_METHODS: dict[type, tuple[frozenset[str], frozenset[str]]] = {
    list: (frozenset({'copy', 'count', 'index', '__getitem__', '__len__', '__contains__', '__iter__', '__reversed__',
                      '__add__', '__mul__', '__rmul__', '__eq__', '__ne__', '__lt__', '__le__', '__gt__', '__ge__',
                      '__repr__', '__sizeof__', '__class_getitem__', '__init__', '__new__'}),
           frozenset({'append', 'extend', 'insert', 'pop', 'remove', 'clear', 'sort', 'reverse', '__setitem__',
                      '__delitem__', '__iadd__', '__imul__'})),
    dict: (frozenset({'copy', 'get', 'items', 'keys', 'values', 'fromkeys', '__getitem__', '__len__', '__contains__',
                      '__iter__', '__reversed__', '__or__', '__ror__', '__eq__', '__ne__', '__repr__', '__sizeof__',
                      '__class_getitem__', '__init__', '__new__'}),
           frozenset({'update', 'pop', 'popitem', 'setdefault', 'clear', '__setitem__', '__delitem__', '__ior__'})),
    set: (frozenset({'copy', 'difference', 'intersection', 'isdisjoint', 'issubset', 'issuperset',
                     'symmetric_difference', 'union', '__len__', '__contains__', '__iter__', '__or__', '__and__',
                     '__sub__', '__xor__', '__eq__', '__ne__', '__le__', '__lt__', '__ge__', '__gt__', '__repr__',
                     '__init__', '__new__'}),
          frozenset({'add', 'discard', 'remove', 'pop', 'clear', 'update', 'difference_update',
                     'intersection_update', 'symmetric_difference_update', '__ior__', '__iand__', '__isub__',
                     '__ixor__'})),
    bytearray: (frozenset({'copy', 'count', 'decode', 'endswith', 'find', 'hex', 'index', 'startswith', 'split',
                           'strip', 'join', 'upper', 'lower', 'replace', '__getitem__', '__len__', '__contains__',
                           '__iter__', '__add__', '__eq__', '__repr__', '__init__', '__new__'}),
                frozenset({'append', 'extend', 'insert', 'pop', 'remove', 'clear', 'reverse', '__setitem__',
                           '__delitem__', '__iadd__', '__imul__'})),
    collections.deque: (frozenset({'copy', 'count', 'index', '__getitem__', '__len__', '__contains__', '__iter__',
                                   '__reversed__', '__add__', '__eq__', '__repr__', '__init__', '__new__'}),
                        frozenset({'append', 'appendleft', 'extend', 'extendleft', 'pop', 'popleft', 'remove',
                                   'rotate', 'clear', 'insert', 'reverse', '__setitem__', '__delitem__',
                                   '__iadd__', '__imul__'})),
    collections.OrderedDict: (frozenset({'copy', 'get', 'items', 'keys', 'values', 'fromkeys', '__getitem__',
                                         '__len__', '__contains__', '__iter__', '__reversed__', '__eq__',
                                         '__repr__', '__init__', '__new__'}),
                              frozenset({'update', 'pop', 'popitem', 'setdefault', 'clear', 'move_to_end',
                                         '__setitem__', '__delitem__', '__ior__'})),
    array.array: (frozenset({'count', 'index', 'tobytes', 'tolist', '__getitem__', '__len__', '__contains__',
                             '__iter__', '__add__', '__eq__', '__repr__', 'buffer_info', '__init__', '__new__'}),
                  frozenset({'append', 'extend', 'insert', 'pop', 'remove', 'reverse', 'byteswap', 'frombytes',
                             'fromlist', '__setitem__', '__delitem__', '__iadd__', '__imul__'})),
    np.ndarray: (frozenset(), frozenset({
        'fill', 'sort', 'put', 'itemset', 'resize', 'setfield', 'setflags', 'partition', 'byteswap', '__setitem__',
        '__delitem__', '__iadd__', '__isub__', '__imul__', '__itruediv__', '__ifloordiv__', '__imod__', '__ipow__',
        '__imatmul__', '__iand__', '__ior__', '__ixor__', '__ilshift__', '__irshift__', 'tofile', 'dump'})),
}
# The methods every object inherits from object: (reads, changes).
OBJECT_METHODS = (
    frozenset({'__getattribute__', '__init__', '__new__', '__eq__', '__ne__', '__hash__', '__repr__', '__str__',
               '__format__', '__init_subclass__', '__subclasshook__', '__sizeof__', '__dir__', '__reduce__',
               '__reduce_ex__', '__getstate__', '__lt__', '__le__', '__gt__', '__ge__', '__bool__'}),
    frozenset({'__setattr__', '__delattr__'}),
)
# Container types whose unlisted methods are pure (a trusted package's
# arrays): every other container refuses a method it does not list.
OPEN_CONTAINERS = (np.ndarray,)
# C modules whose functions and types are pure, but for ARGUMENT_MUTATORS
# and HIGHER_ORDER, which are checked first.
PURE_C_MODULES = frozenset({
    'math', 'cmath', '_operator', 'operator', 'itertools', '_functools', 'functools', '_heapq', 'heapq', '_bisect',
    'bisect', '_struct', 'binascii', 'unicodedata', '_string', '_sre', 're', '_json', 'zlib', '_collections',
    '_abc', 'copyreg', '_stat', 'numbers',
})
# Types of those modules that are not pure: they hold state between calls
# or call what they are given from C.
PURE_C_TYPES_EXCEPTIONS = frozenset({'methodcaller', 'count', 'cycle', 'repeat', 'tee'})
# Types from any module whose methods are pure (reading an object they hold
# goes through the guards of that object).
PURE_C_TYPES = frozenset({'attrgetter', 'itemgetter', 'partial'})
# Packages trusted as a whole, Python and C code alike: what they read is the
# module being traced (keyed), their own configuration (which jax.jit keys)
# or state that user code does not change.
TRUSTED_PACKAGES = frozenset({'jax', 'jaxlib', 'flax', 'numpy', 'ml_dtypes', 'opt_einsum', 'vjpify'})
# The exceptions in those packages, by module (None: every function of the
# module) or by function name in a module.
TRUSTED_EXCEPTIONS: dict[str, frozenset[str] | None] = {
    'numpy.random': None,
    'numpy': frozenset({'save', 'savez', 'savez_compressed', 'load', 'loadtxt', 'savetxt', 'genfromtxt', 'fromfile',
                        'set_printoptions', 'seterr', 'seterrcall', 'setbufsize', 'printoptions', 'errstate'}),
    'numpy.lib._npyio_impl': None,
    'numpy.lib.npyio': None,
    'numpy._core.arrayprint': frozenset({'set_printoptions'}),
    'numpy.core.arrayprint': frozenset({'set_printoptions'}),
    'jax': frozenset({'clear_caches', 'clear_backends'}),
    'jax._src.config': frozenset({'update', 'config_with_absl', 'parse_flags_with_absl'}),
    'flax.configurations': frozenset({'update', 'temp_flip_flag'}),
}
# Objects of the standard library whose every method reads or changes the
# process's state: refused by name, so that explain() says what they are.
PROCESS_STATE_TYPES: dict[type, str] = {type(os.environ): 'the process environment'}
# Standard-library Python modules whose own code needs no watching: what
# they call back (the user's functions, methods and generators) is watched
# where it runs, and what they are handed to read is guarded by the caller.
TRANSPARENT_STDLIB_MODULES = frozenset({
    'typing', 'typing_extensions', 'contextlib', 'enum', 'dataclasses', 'abc', 'numbers', 'types',
    '_collections_abc', 'collections.abc', 'keyword', 'reprlib', 'string', 'textwrap', 'fractions', 'colorsys',
    'operator', 'functools._lru_cache_wrapper',
})
# Garbage-collector callbacks of test and profiling tools that only time
# collections, as (path ending, function name): a collection strikes in
# compiled calls as in traced ones, and what they record is no result of
# the traced function, so one running during a trace does not uncompile it.
TIMING_GC_CALLBACKS = frozenset({
    ('hypothesis/internal/conjecture/junkdrawer.py', 'gc_callback'),
})
# Methods that dataclasses and namedtuple generate from strings: trusted
# when the class they belong to is a dataclass or namedtuple and the method
# is the one it holds.
DATACLASS_GENERATED_METHODS = frozenset({
    '__init__', '__eq__', '__hash__', '__repr__', '__setattr__', '__delattr__', '__getstate__', '__setstate__',
    '__lt__', '__le__', '__gt__', '__ge__', '__create_fn__', '__replace__',
})
NAMEDTUPLE_GENERATED_METHODS = frozenset({'__new__', '<lambda>'})
