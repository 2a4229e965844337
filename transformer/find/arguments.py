"""What a site's arguments allow: whether they rule out an exact rewrite,
whether ``reduce_axes`` is kept, and which argument passes ``fn``.

The checks read the call as written; the values of the arguments are not
known until it runs, so only literals are judged by their value.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from vjpify.transformer.codes import Reason, reason
from vjpify.transformer.find.targets import GRAD_KEYWORDS


def _literal_truth(value: cst.BaseExpression) -> bool | None:
  """Whether a literal ``reduce_axes`` is truthy; None when it is not a
  literal whose truth can be read off the source."""
  if isinstance(value, cst.Name) and value.value in ('None', 'False', 'True'):
    return value.value == 'True'
  if isinstance(value, (cst.Tuple, cst.List, cst.Set, cst.Dict)):
    unpacked = (cst.StarredElement, cst.StarredDictElement)
    if any(not isinstance(e, unpacked) for e in value.elements):
      return True
    # Nothing but ``*xs`` items: empty exactly when every ``xs`` is.
    return None if value.elements else False
  if isinstance(value, cst.SimpleString):
    return bool(value.evaluated_value)
  if isinstance(value, cst.Integer):
    return bool(value.evaluated_value)
  return None


def keeps_reduce_axes(call: cst.Call) -> bool:
  """Whether the rewrite passes ``reduce_axes`` on (to the runtime helper that
  reduces the gradients), rather than dropping an empty literal one."""
  return any(arg.keyword is not None and arg.keyword.value == 'reduce_axes'
             and _literal_truth(arg.value) is not False for arg in call.args)


def argument_problem(call: cst.Call, transform: str) -> Reason | None:
  """Why the arguments rule out an exact rewrite, or None."""
  positional = 0
  starred = False
  keywords: set[str] = set()
  for arg in call.args:
    if arg.star:
      starred = True
    elif arg.keyword is None:
      positional += 1
    else:
      name = arg.keyword.value
      if name in keywords:
        # Python rejects the file; a rewrite that drops one would let it run.
        return reason('repeated-keyword', f"passes keyword '{name}' twice, which Python rejects; "
                      'left unchanged; pass it once')
      keywords.add(name)
      if name not in GRAD_KEYWORDS:
        return reason('unknown-keyword', f"passes keyword '{name}', which {transform}() does not accept; "
                      'left unchanged; remove the keyword')
  if 'reduce_axes' in keywords and any(arg.star == '**' for arg in call.args):
    # A mapping that repeats reduce_axes makes the original raise TypeError.
    # Dropped, an empty keyword would let nn.vjp take the mapping's; kept, the
    # mapping's check runs first and raises flax's NotImplementedError.
    if not keeps_reduce_axes(call):
      return reason('reduce-axes-with-mapping', 'passes reduce_axes next to a **mapping that may repeat it; '
                    'left unchanged; drop the reduce_axes keyword, which changes nothing')
    return reason('reduce-axes-with-mapping', 'passes reduce_axes next to a **mapping that may repeat it; '
                  'left unchanged; pass the keywords in the mapping explicitly to have it rewritten')
  if not starred:
    for index, name in enumerate(('fn', 'mdl')):
      given_positionally = positional > index
      if given_positionally == (name in keywords):
        how = f'{name} twice' if given_positionally else f'no {name} argument'
        return reason('fn-or-mdl-count', f'passes {how}, so {transform}() raises TypeError; '
                      f'left unchanged; pass {name} exactly once')
  return None


def fn_argument(args: Sequence[cst.Arg]) -> int | None:
  """The index of the argument that passes ``fn``, or None when it may come
  from an unpacked ``*sequence`` or ``**mapping``."""
  for index, arg in enumerate(args):
    if arg.keyword is not None and arg.keyword.value == 'fn':
      return index
  first = args[0] if args else None
  if first is not None and not first.star and first.keyword is None:
    return 0
  return None
