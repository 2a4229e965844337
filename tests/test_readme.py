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


def test_readme_opens_with_the_install_and_test_commands():
  first_block = re.search(r'```bash\n(.*?)```', README.read_text(), re.S).group(1).splitlines()
  assert first_block[0].startswith("pip install -e '.[runtime]' && vjpify ")
  assert first_block[1] == "pip install -e '.[test]' && pytest"


def test_how_it_works_names_modules_that_exist():
  section = re.search(r'^## How it works\n(.*?)^## ', README.read_text(), re.M | re.S).group(1)
  named = set(re.findall(r'`([\w/]+\.py)`', section))
  assert len(named) > 10
  transformer, compiled = README.parent / 'transformer', README.parent / 'runtime' / 'compiled'
  missing = [name for name in named
             if not any((folder / name).is_file() for folder in (README.parent, transformer, compiled))]
  assert sorted(missing) == []
