"""What a code object can read and write, found from its bytecode once.

Two facts per code object matter to a trace. The global names it loads
become guards. Its stores that could change state outliving the call
(``global`` and ``nonlocal`` assignments, attribute and item stores, loops
over an iterator) are checked just before they run; for attribute and item
stores, the object stored into is found by following the value stack back
to the loads that pushed it (``self.x = ...``, ``cfg.items[k] = ...``), so
that the check can look at the object itself. Where the stack cannot be
followed (the target came out of a call), the store is marked ``target=None``
and the state is compared after the trace instead.

The bytecode of Python 3.10 to 3.13 is read through :mod:`dis`; every
opcode not modelled here empties the model of the stack, which only loses
precision.
"""

from __future__ import annotations

import dis
import sys
import types
from typing import NamedTuple

from vjpify.runtime.compiled import codecache

__all__ = ['CodeFacts', 'Const', 'Item', 'MADE', 'Source', 'Store', 'facts']


class Const(NamedTuple):
  """A constant the code loads."""

  value: object


class Item(NamedTuple):
  """A subscript in a chain of attributes: ``cfg.fns[0]``, ``STATE['log']``, ``fns[i]``."""

  key: 'Const | Source'


class Source(NamedTuple):
  """Where a stack value came from: a root (``fast``, ``deref``, ``global``) and attribute names or items.

  The root ``made`` stands for a function the code itself makes
  (``MAKE_FUNCTION``): a lambda, a nested def, a generator expression.
  """

  root: str
  name: str
  attrs: tuple = ()


MADE = Source('made', '')


class Store(NamedTuple):
  """A store that may change state that outlives the call.

  ``kind`` is ``'global'``, ``'nonlocal'``, ``'attr'``, ``'item'``,
  ``'iter'``, ``'inplace'`` (an augmented assignment, which changes a
  mutable object in place through whatever name holds it) or ``'with'``
  (entering a context manager, whose ``__enter__`` no call event shows) or
  ``'import'`` (an import statement, which reads ``sys.modules``);
  ``name`` the global, nonlocal or attribute name, or the operator;
  ``target`` where the object written to came from, or None when unknown.
  """

  kind: str
  name: str
  target: Source | None
  line: int | None


class Method(NamedTuple):
  """A method looked up for a call (``LOAD_METHOD``): the object's source and the name."""

  base: Source | None
  name: str


class Call(NamedTuple):
  """A call instruction: where the callable and its first argument came from (None: unknown)."""

  callable: Source | Method | None
  first: Source | None


class CodeFacts(NamedTuple):
  global_names: tuple[str, ...]
  # Attribute chains read from globals (``jnp.tanh``, ``jax.random.normal``):
  # where the global is a module, each attribute of a module is guarded.
  attribute_chains: tuple[tuple[str, ...], ...]
  # Attribute names and string constants: what the code may read by name.
  names: frozenset[str]
  stores: dict[int, Store]
  # Python 3.10 and 3.11 only, where no hook hands over the callable.
  calls: dict[int, Call]
  # The keyword names of each call that passes keywords, by the call's offset.
  keywords: dict[int, tuple[str, ...]]
  is_generator: bool
  # Whether the code has try blocks (or with statements) that could catch
  # an error raised by tracing.
  handles_exceptions: bool


_UNKNOWN = None
# Python 3.10's instructions that open a block with a handler (later
# versions keep an exception table instead).
_SETUP_HANDLERS = frozenset({'SETUP_FINALLY', 'SETUP_WITH', 'SETUP_ASYNC_WITH'})
# Before Python 3.12 no hook hands over the callable of a call; its source
# on the stack is found here instead.
_HOOKLESS_CALLS = sys.version_info < (3, 12)
_LOAD_FAST = frozenset({'LOAD_FAST', 'LOAD_FAST_CHECK', 'LOAD_FAST_AND_CLEAR', 'LOAD_FAST_BORROW'})
_LOAD_DEREF = frozenset({'LOAD_DEREF', 'LOAD_CLASSDEREF'})
_GLOBAL_LOADS = frozenset({'LOAD_GLOBAL', 'LOAD_NAME', 'LOAD_FROM_DICT_OR_GLOBALS'})
# Opcodes that push exactly one value, or none: how many they pop follows
# from their stack effect.
_PUSH_ONE_PREFIXES = ('BINARY_', 'INPLACE_', 'UNARY_', 'COMPARE_OP', 'CONTAINS_OP', 'IS_OP', 'BUILD_',
                      'CALL', 'FORMAT_', 'CONVERT_VALUE', 'TO_BOOL', 'LOAD_CONST', 'LOAD_SMALL_INT',
                      'RETURN_CONST', 'GET_LEN', 'LIST_TO_TUPLE', 'MAKE_FUNCTION', 'SET_FUNCTION_ATTRIBUTE',
                      'LOAD_BUILD_CLASS', 'LOAD_ASSERTION_ERROR', 'GET_ITER', 'IMPORT_NAME', 'IMPORT_FROM',
                      'PUSH_NULL')
# Opcodes that replace the object on top by two values (a method and its self).
_PUSH_TWO = frozenset({'LOAD_METHOD', 'LOAD_ATTR'})
_PUSH_NONE_PREFIXES = ('STORE_', 'DELETE_', 'POP_TOP', 'POP_JUMP', 'RETURN_VALUE', 'LIST_APPEND', 'SET_ADD',
                       'MAP_ADD', 'LIST_EXTEND', 'SET_UPDATE', 'DICT_UPDATE', 'DICT_MERGE', 'NOP', 'RESUME',
                       'KW_NAMES', 'EXTENDED_ARG', 'CACHE', 'JUMP_FORWARD', 'JUMP_BACKWARD',
                       'JUMP_ABSOLUTE', 'COPY_FREE_VARS', 'MAKE_CELL')


class _Stack:
  """The stack as far as it is known: missing entries below are unknown."""

  def __init__(self):
    self.items: list[Source | None] = []

  def reset(self) -> None:
    self.items = []

  def push(self, item: Source | None) -> None:
    self.items.append(item)

  def pop(self, count: int = 1) -> None:
    del self.items[max(0, len(self.items) - count):]

  def peek(self, depth: int) -> Source | None:
    """The entry ``depth`` from the top (1 is the top)."""
    return self.items[-depth] if depth <= len(self.items) else _UNKNOWN

  def swap(self, depth: int) -> None:
    while len(self.items) < depth:
      self.items.insert(0, _UNKNOWN)
    self.items[-1], self.items[-depth] = self.items[-depth], self.items[-1]


def _effect(instruction: dis.Instruction) -> int | None:
  try:
    if instruction.opcode >= dis.HAVE_ARGUMENT:
      return dis.stack_effect(instruction.opcode, instruction.arg or 0, jump=False)
    return dis.stack_effect(instruction.opcode, jump=False)
  except ValueError:
    return None


def _generic(stack: _Stack, instruction: dis.Instruction) -> None:
  name = instruction.opname
  effect = _effect(instruction)
  if effect is None:
    stack.reset()
  elif name in _PUSH_TWO and effect == 1:
    stack.pop()
    stack.push(_UNKNOWN)
    stack.push(_UNKNOWN)
  elif name.startswith(_PUSH_ONE_PREFIXES):
    stack.pop(1 - effect)
    stack.push(_UNKNOWN)
  elif name.startswith(_PUSH_NONE_PREFIXES):
    stack.pop(-effect)
  else:
    stack.reset()


def _call(stack: _Stack, instruction: dis.Instruction, keywords: int) -> Call | None:
  """The call that ``instruction`` makes, as Python 3.10 and 3.11 lay out their stacks.

  ``keywords``: how many of its arguments are passed by keyword (3.11's
  ``KW_NAMES``); the first argument is known only when one is positional.
  """
  name, arg = instruction.opname, instruction.arg or 0
  if name == 'CALL_FUNCTION':
    return Call(stack.peek(arg + 1), stack.peek(arg) if arg else None)
  if name == 'CALL_FUNCTION_KW':
    names = stack.peek(1)
    keywords = len(names.value) if type(names) is Const and isinstance(names.value, tuple) else arg
    return Call(stack.peek(arg + 2), stack.peek(arg + 1) if arg > keywords else None)
  if name == 'CALL_FUNCTION_EX':
    return Call(stack.peek(2 + (arg & 1)), None)
  if name in ('CALL_METHOD', 'CALL'):
    below = stack.peek(arg + 2)
    first = stack.peek(arg) if arg > keywords else None
    if type(below) is Method:
      return Call(below, first)
    if below is MADE:  # a generator expression called with its iterator in the place of self
      return Call(MADE, None)
    return Call(stack.peek(arg + 1), first)
  return None


def _chain(stack: _Stack, instruction: dis.Instruction) -> tuple[str, ...] | None:
  """The global attribute chain an attribute load reads (``('jnp', 'tanh')``), or None."""
  if instruction.opname not in ('LOAD_ATTR', 'LOAD_METHOD'):
    return None
  base = stack.peek(1)
  if (type(base) is Source and base.root == 'global' and len(base.attrs) < 3
      and all(type(name) is str for name in base.attrs)):
    return (base.name, *base.attrs, instruction.argval)
  return None


def _step(stack: _Stack, instruction: dis.Instruction, code: types.CodeType, stores: dict, line) -> None:
  name, argval = instruction.opname, instruction.argval
  if name == 'PRECALL':
    return  # Python 3.11 counts the arguments here, but CALL pops them
  if name == 'CALL':
    stack.pop((instruction.arg or 0) + 2)
    stack.push(_UNKNOWN)
  elif name == 'LOAD_CONST':
    stack.push(Const(argval))
  elif name == 'BINARY_SUBSCR':
    container, key = stack.peek(2), stack.peek(1)
    stack.pop(2)
    known = type(container) is Source and container.root != 'made' and type(key) in (Const, Source)
    stack.push(container._replace(attrs=container.attrs + (Item(key),)) if known else _UNKNOWN)
  elif name in ('MAKE_FUNCTION', 'SET_FUNCTION_ATTRIBUTE'):
    made = name == 'MAKE_FUNCTION' or stack.peek(1) is MADE
    _generic(stack, instruction)
    if made and stack.items:
      stack.items[-1] = MADE
  elif name in _LOAD_FAST:
    stack.push(Source('fast', argval))
  elif name == 'LOAD_FAST_LOAD_FAST':
    first, second = argval
    stack.push(Source('fast', first))
    stack.push(Source('fast', second))
  elif name in _LOAD_DEREF:
    stack.push(Source('deref', argval))
  elif name in _GLOBAL_LOADS:
    if _effect(instruction) == 2:
      stack.push(_UNKNOWN)  # the NULL that Python 3.11 and 3.12 push below a callable
    stack.push(Source('global', argval) if name != 'LOAD_NAME' else _UNKNOWN)
  elif name == 'LOAD_ATTR' and _effect(instruction) == 0:
    base = stack.peek(1)
    stack.pop()
    stack.push(base._replace(attrs=base.attrs + (argval,)) if type(base) is Source else _UNKNOWN)
  elif name == 'LOAD_METHOD':
    base = stack.peek(1)
    stack.pop()
    stack.push(Method(base if type(base) is Source else None, argval))
    stack.push(base)
  elif name in ('COPY', 'DUP_TOP'):
    stack.push(stack.peek(argval if name == 'COPY' else 1))
  elif name == 'DUP_TOP_TWO':
    second, top = stack.peek(2), stack.peek(1)
    stack.push(second)
    stack.push(top)
  elif name == 'SWAP':
    stack.swap(argval)
  elif name in ('ROT_TWO', 'ROT_THREE', 'ROT_FOUR'):
    depth = {'ROT_TWO': 2, 'ROT_THREE': 3, 'ROT_FOUR': 4}[name]
    while len(stack.items) < depth:
      stack.items.insert(0, _UNKNOWN)
    stack.items[-depth:] = [stack.items[-1]] + stack.items[-depth:-1]
  elif name in ('STORE_GLOBAL', 'DELETE_GLOBAL'):
    stores[instruction.offset] = Store('global', argval, None, line)
    _generic(stack, instruction)
  elif name in ('STORE_DEREF', 'DELETE_DEREF') and argval in code.co_freevars:
    stores[instruction.offset] = Store('nonlocal', argval, None, line)
    _generic(stack, instruction)
  elif name in ('STORE_ATTR', 'DELETE_ATTR'):
    stores[instruction.offset] = Store('attr', argval, stack.peek(1), line)
    _generic(stack, instruction)
  elif name in ('STORE_SUBSCR', 'DELETE_SUBSCR'):
    stores[instruction.offset] = Store('item', '', stack.peek(2), line)
    _generic(stack, instruction)
  elif name == 'STORE_SLICE':
    stores[instruction.offset] = Store('item', '', stack.peek(3), line)
    _generic(stack, instruction)
  elif name == 'GET_ITER':
    stores[instruction.offset] = Store('iter', '', stack.peek(1), line)
    _generic(stack, instruction)
  elif name.startswith('INPLACE_') or (name == 'BINARY_OP' and instruction.argrepr.endswith('=')
                                       and instruction.argrepr != '=='):
    operator = instruction.argrepr or name[len('INPLACE_'):].lower()
    stores[instruction.offset] = Store('inplace', operator, stack.peek(2), line)
    _generic(stack, instruction)
  elif name == 'IMPORT_NAME':
    stores[instruction.offset] = Store('import', argval, None, line)
    _generic(stack, instruction)
  elif name in ('BEFORE_WITH', 'SETUP_WITH'):
    stores[instruction.offset] = Store('with', '', stack.peek(1), line)
    _generic(stack, instruction)
  else:
    _generic(stack, instruction)


@codecache.cached
def facts(code: types.CodeType) -> CodeFacts:
  """What ``code`` loads by global name and which of its stores need checking."""
  global_names = []
  chains: dict[tuple[str, ...], None] = {}
  stores: dict[int, Store] = {}
  calls: dict[int, Call] = {}
  keyword_names: dict[int, tuple[str, ...]] = {}
  pending_names: tuple[str, ...] = ()
  stack = _Stack()
  line = code.co_firstlineno
  handlers = False  # Python 3.10: a SETUP_* instruction; later, the exception table
  keywords = 0
  for instruction in dis.get_instructions(code):
    # Python 3.13 made starts_line a flag and added line_number.
    starts = getattr(instruction, 'line_number', None) if hasattr(instruction, 'line_number') else instruction.starts_line
    if starts:
      line = starts
    if instruction.is_jump_target:
      stack.reset()
    handlers = handlers or instruction.opname in _SETUP_HANDLERS
    if instruction.opname in _GLOBAL_LOADS and instruction.argval not in global_names:
      global_names.append(instruction.argval)
    chain = _chain(stack, instruction)
    if chain is not None:
      chains[chain] = None
    if instruction.opname == 'KW_NAMES':  # 3.11 and 3.12
      names = code.co_consts[instruction.arg or 0]
      pending_names = names if isinstance(names, tuple) else ()
    elif instruction.opname in ('CALL_KW', 'CALL_FUNCTION_KW'):  # the names are on the stack (3.13, 3.10)
      top = stack.peek(1)
      if type(top) is Const and isinstance(top.value, tuple):
        keyword_names[instruction.offset] = top.value
    elif instruction.opname == 'CALL' and pending_names:
      keyword_names[instruction.offset] = pending_names
      pending_names = ()
    if _HOOKLESS_CALLS:
      call = _call(stack, instruction, keywords)
      if call is not None:
        calls[instruction.offset] = call
        keywords = 0
      if instruction.opname == 'KW_NAMES':
        names = code.co_consts[instruction.arg or 0]
        keywords = len(names) if isinstance(names, tuple) else 0
    _step(stack, instruction, code, stores, line)
  names = set(code.co_names)
  names.update(const for const in code.co_consts if isinstance(const, str))
  if hasattr(code, 'co_exceptiontable'):
    handlers = bool(code.co_exceptiontable)
  return CodeFacts(
      global_names=tuple(global_names),
      attribute_chains=tuple(chains),
      names=frozenset(names),
      stores=stores,
      calls=calls,
      keywords=keyword_names,
      is_generator=bool(code.co_flags & (0x20 | 0x80 | 0x200)),  # generator, coroutine, async generator
      handles_exceptions=handlers,
  )
