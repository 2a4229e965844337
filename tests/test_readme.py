"""The README's before/after example is what the pass really produces."""

import pathlib
import re

from vjpify.transformer import transform_source

README = pathlib.Path(__file__).resolve().parent.parent / 'README.md'


def _block_after(heading: str, text: str) -> str:
  match = re.search(rf'^### {heading}\n\n```python\n(.*?)```', text, re.M | re.S)
  assert match, f'README has no "### {heading}" python block'
  return match.group(1)


def test_readme_after_block_is_the_rewrite_of_the_before_block():
  text = README.read_text()
  before, after = _block_after('Before', text), _block_after('After', text)
  assert transform_source(before, 'README.md').code == after


def test_readme_opens_with_what_vjpify_is_for_then_the_two_commands():
  text = README.read_text()
  opening, first_block = re.search(r'^# vjpify\n\n(.*?)\n\n```bash\n(.*?)```', text, re.S | re.M).groups()
  sentence = ' '.join(opening.split())
  assert sentence.startswith('vjpify rewrites ') and sentence.endswith('.') and '. ' not in sentence
  first, second = first_block.splitlines()
  # The first needs no jax or flax; test_readme_commands.py runs it as written.
  assert first == 'pip install -e . && vjpify --diff examples/seed_model.py'
  # The second is what CI runs.
  assert second == "pip install -e '.[test]' && pytest"
  ci = (README.parent / '.ci/run').read_text().splitlines()
  assert "pip install -q -e '.[test]'" in ci and 'pytest' in ci


def test_how_it_works_names_modules_that_exist():
  section = re.search(r'^## How it works\n(.*?)^## ', README.read_text(), re.M | re.S).group(1)
  named = set(re.findall(r'`([\w/]+\.py)`', section))
  assert len(named) > 10
  transformer, compiled = README.parent / 'transformer', README.parent / 'runtime' / 'compiled'
  missing = [name for name in named
             if not any((folder / name).is_file() for folder in (README.parent, transformer, compiled))]
  assert sorted(missing) == []
