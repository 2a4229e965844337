"""The README is what a newcomer needs on one or two screens: what vjpify is
for, the two commands, a before/after that is what the pass really produces,
and links to the pages under ``docs/`` (checked in ``test_docs.py``)."""

import re

from support.docs import README, blocks

from vjpify.transformer import transform_source

# About two screens; everything else belongs in a page under docs/.
_MOST_LINES = 120


def test_readme_after_block_is_the_rewrite_of_the_before_block():
  (before,), (after,) = blocks(README, 'Before', 'python'), blocks(README, 'After', 'python')
  assert transform_source(before, 'README.md').code == after


def test_readme_opens_with_what_vjpify_is_for_then_the_two_commands():
  text = README.read_text()
  opening, first_block = re.search(r'^# vjpify\n\n(.*?)\n\n```bash\n(.*?)```', text, re.S | re.M).groups()
  sentence = ' '.join(opening.split())
  assert sentence.startswith('vjpify rewrites ') and sentence.endswith('.') and '. ' not in sentence
  first, second = first_block.splitlines()
  # The first needs no jax or flax; test_docs_commands.py runs it as written.
  assert first == 'pip install -e . && vjpify --diff examples/seed_model.py'
  # The second is what CI runs.
  assert second == "pip install -e '.[test]' && pytest"
  ci = (README.parent / '.ci/run').read_text().splitlines()
  assert "pip install -q -e '.[test]'" in ci and 'pytest' in ci


def test_readme_fits_on_two_screens():
  assert len(README.read_text().splitlines()) <= _MOST_LINES


def test_readme_names_the_escape_from_compiled():
  paragraph = re.search(r'^## What `compiled` does\n\n(.*?)\n\n', README.read_text(), re.M | re.S).group(1)
  assert '`vjpify --no-jit`' in paragraph and '(docs/guarantees.md)' in paragraph
