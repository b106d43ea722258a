"""What every command shares (experiments/common.py): paths as users type them, and expected
errors, a stopped stage included, as one line."""

import os
import subprocess
import sys

import pytest

from experiments import common

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_home_and_variables_are_expanded_in_flag_values(monkeypatch):
  """The shell expands neither `~` nor `$VAR` after `--flag=`."""
  monkeypatch.setenv('HOME', '/home/ana')
  monkeypatch.setenv('DATA', '/data')
  assert common.expand_paths([
      'prog', '--input=~/videos/beach', '--source=real@golf=~/golf', '--inputs=~/a,~,~/b',
      '--workdir=$DATA/run', '--config.data.data_dir=${DATA}/clips', '--name=a~b', '--x=~ana',
      'positional~', '--missing=$NOT_SET_ANYWHERE']) == [
          'prog', '--input=/home/ana/videos/beach', '--source=real@golf=/home/ana/golf',
          '--inputs=/home/ana/a,/home/ana,/home/ana/b', '--workdir=/data/run',
          '--config.data.data_dir=/data/clips', '--name=a~b', '--x=~ana', 'positional~',
          '--missing=$NOT_SET_ANYWHERE']


def test_a_command_reads_a_folder_given_with_a_tilde(tmp_path):
  """The README's own `--input=~/videos/beach`, with HOME pointing at a folder the test made."""
  (tmp_path / 'videos').mkdir()
  (tmp_path / 'videos' / 'notes.txt').write_text('no videos here')
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.prepare_data', '--input=~/videos', '--scene=beach',
       '--output=~/clips'], cwd=REPO, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, HOME=str(tmp_path), PYTHONPATH=REPO))
  assert result.returncode == 1
  assert f'No video files in {tmp_path}/videos (a folder with no video files' in result.stderr
  assert '~' not in result.stderr


def test_a_stopped_stage_ends_the_command_with_one_line(monkeypatch, capsys):
  def stopped():
    raise common.Stopped('runs/x: training stopped at step 2 of 9; the same command resumes it.')

  monkeypatch.setattr(sys, 'argv', ['evaluate'])
  with pytest.raises(SystemExit) as exit_:
    common.run(stopped, 'evaluate', jax_runtime=False)
  assert exit_.value.code == ('evaluate: runs/x: training stopped at step 2 of 9; the same '
                              'command resumes it.')
