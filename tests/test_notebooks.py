"""The notebooks (notebooks/NAME.ipynb, each paired with its jupytext percent-format twin NAME.py):
the pairs in sync, committed without outputs, the README linking each to Colab on the repository
its install cell installs from, and every notebook run top to bottom in CI's small mode
(VGAN_JAX_NOTEBOOK_SMALL=1: the smallest nets, a few steps) in a real kernel, where a cell that
raises fails the test."""

import copy
import json
import os
import pathlib
import re

import jupytext
import nbclient
import nbformat
import pytest
from jupytext import compare

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / 'notebooks'
NAMES = ('quickstart', 'your_videos', 'future_prediction', 'representation_learning',
         'evaluation')
SMALL_MODE = 'VGAN_JAX_NOTEBOOK_SMALL'
# What each notebook must have shown in small mode, beyond running: (output kind, text in it).
EXPECTED_OUTPUTS = {
    'quickstart': [('html', '<video'), ('png', ''), ('text', 'Trained to step 4.'),
                   ('text', 'Resumed from step 4 to step 6.')],
    'your_videos': [('html', '<video'), ('text', 'now holds'), ('text', 'Trained to step 4')],
    'future_prediction': [('html', '<video'), ('png', ''), ('text', 'unit 0')],
    'representation_learning': [('png', ''), ('text', 'gan'), ('text', 'random')],
    'evaluation': [('html', '<video'), ('text', 'FVD'), ('text', 'two_stream'),
                   ('text', 'one_stream')],
}


def _paths(name: str) -> tuple[pathlib.Path, pathlib.Path]:
  return NOTEBOOKS / f'{name}.ipynb', NOTEBOOKS / f'{name}.py'


def test_every_notebook_has_its_text_twin():
  assert sorted(path.stem for path in NOTEBOOKS.glob('*.ipynb')) == sorted(NAMES)
  assert sorted(path.stem for path in NOTEBOOKS.glob('*.py')) == sorted(NAMES)


@pytest.mark.parametrize('name', NAMES)
def test_pair_is_in_sync(name):
  """The .ipynb and its .py hold the same cells (jupytext's own comparison; the check fails on an
  edit to one side only, as the second half shows)."""
  ipynb, text = _paths(name)
  from_ipynb, from_text = jupytext.read(ipynb), jupytext.read(text)
  assert from_ipynb.metadata['jupytext']['formats'] == 'ipynb,py:percent'
  compare.compare_notebooks(from_text, from_ipynb, fmt='py:percent')
  edited = copy.deepcopy(from_ipynb)
  code_cell = next(cell for cell in edited.cells if cell.cell_type == 'code')
  code_cell.source += '\nprint("edited on one side only")'
  with pytest.raises(compare.NotebookDifference):
    compare.compare_notebooks(from_text, edited, fmt='py:percent')


@pytest.mark.parametrize('name', NAMES)
def test_committed_without_outputs(name):
  cells = json.loads(_paths(name)[0].read_text())['cells']
  with_outputs = [index for index, cell in enumerate(cells) if cell['cell_type'] == 'code'
                  and (cell['outputs'] or cell['execution_count'] is not None)]
  assert not with_outputs, f'{name}.ipynb: cells {with_outputs} hold outputs; strip them.'


@pytest.mark.parametrize('name', NAMES)
def test_notebook_says_what_and_how_long_and_reads_small_mode_once(name):
  text = _paths(name)[1].read_text()
  first_cell = jupytext.read(_paths(name)[0]).cells[0]
  assert first_cell.cell_type == 'markdown' and first_cell.source.startswith('# ')
  assert '**Time.**' in first_cell.source and 'GPU' in first_cell.source
  assert text.count(SMALL_MODE) == 2  # read once in code, named once in the introduction
  assert len(re.findall(rf"os\.environ\.get\('{SMALL_MODE}'\)", text)) == 1


def test_readme_links_each_notebook_to_colab_on_the_installed_repository():
  readme = (REPO / 'README.md').read_text()
  repositories = set()
  for name in NAMES:
    install = re.search(r"REPOSITORY = 'https://github\.com/([\w.-]+/[\w.-]+)'",
                        _paths(name)[1].read_text())
    assert install, f'{name}: no REPOSITORY in its install cell'
    repositories.add(install.group(1))
  assert len(repositories) == 1, f'the notebooks install from {repositories}'
  repository = repositories.pop()
  for name in NAMES:
    link = (f'https://colab.research.google.com/github/{repository}/blob/main/notebooks/'
            f'{name}.ipynb')
    assert link in readme, f'README: no "Open in Colab" link {link}'


def _install_cell(name: str) -> str:
  cells = jupytext.read(_paths(name)[0]).cells
  heading = next(i for i, cell in enumerate(cells)
                 if cell.cell_type == 'markdown' and cell.source.startswith('## Install'))
  return cells[heading + 1].source


def test_install_cells_are_one_cell():
  """Each notebook installs itself on Colab before it can import the project, so the install cell
  is written out in each: the same cell everywhere, so a fix reaches them all."""
  cells = {name: _install_cell(name) for name in NAMES}
  assert 'google.colab' in cells['quickstart'] and 'jax[cuda12]' in cells['quickstart']
  differing = [name for name, cell in cells.items() if cell != cells['quickstart']]
  assert not differing, f'install cells differing from quickstart\'s: {differing}'


def _shown(notebook) -> dict[str, str]:
  """Everything the executed notebook showed, by kind: text (streams and plain results), html,
  png (one 'png' per image)."""
  shown = {'text': '', 'html': '', 'png': ''}
  for cell in notebook.cells:
    for output in cell.get('outputs', []):
      if output.output_type == 'stream':
        shown['text'] += output.text
      elif output.output_type in ('display_data', 'execute_result'):
        shown['html'] += output.data.get('text/html', '')
        shown['png'] += 'png\n' * ('image/png' in output.data)
        shown['text'] += output.data.get('text/markdown', '') + output.data.get('text/plain', '')
  return shown


@pytest.mark.parametrize('name', NAMES)
def test_runs_top_to_bottom_in_small_mode(name, tmp_path, monkeypatch):
  """A fresh kernel of this Python, in an empty folder, with the small mode on; the kernel shares
  the suite's compilation cache (conftest)."""
  monkeypatch.setenv(SMALL_MODE, '1')
  monkeypatch.setenv('VGAN_JAX_CACHE', str(REPO / '.pytest_cache' / 'xla'))
  monkeypatch.setenv('VGAN_JAX_FVD_CACHE', str(tmp_path / 'fvd_cache'))
  notebook = nbformat.read(_paths(name)[0], as_version=4)
  client = nbclient.NotebookClient(notebook, timeout=600, kernel_name='python3',
                                   resources={'metadata': {'path': str(tmp_path)}})
  client.execute()  # CellExecutionError, with the cell and its traceback, if a cell raises
  shown = _shown(notebook)
  for kind, text in EXPECTED_OUTPUTS[name]:
    assert shown[kind] and text in shown[kind], f'{name}: no {kind} output with {text!r}'
  assert os.path.isdir(tmp_path / 'runs' / 'notebooks'), 'work went elsewhere than runs/notebooks'
