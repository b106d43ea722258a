"""A full disk, for real: a small tmpfs mounted for the test (root, as in CI). Training and
prepare_data end with one line naming the path and "no space left", nothing half-written looks
complete, and prepare_data's manifest lists exactly the shards on disk."""

import json
import os
import re
import subprocess
import sys

import pytest
import video_files

from data_pipeline import input_pipeline, shards
from vgan_io import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def small_disk(tmp_path):
  """A folder on a tmpfs of `size` bytes (a factory); skipped where mounting is not allowed."""
  mounted = []

  def make(size):
    folder = tmp_path / f'disk{len(mounted)}'
    folder.mkdir()
    result = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(folder)],
                            capture_output=True, text=True, check=False)
    if result.returncode:
      pytest.skip(f'cannot mount a small tmpfs to fill ({result.stderr.strip()}): needs root '
                  '(CI runs as root)')
    mounted.append(folder)
    return folder

  yield make
  for folder in mounted:
    subprocess.run(['umount', '-l', str(folder)], check=False)


def _run(*args):
  return subprocess.run([sys.executable, '-m', *args], cwd=REPO, capture_output=True, text=True,
                        timeout=600, env=dict(os.environ, PYTHONPATH=REPO))


def test_training_on_a_full_disk_ends_with_one_line(small_disk):
  workdir = small_disk(300 * 1024) / 'run'
  result = _run('experiments.train', '--config=test', '--scene=beach', f'--workdir={workdir}',
                '--config.num_steps=4', '--config.checkpoint_every=2')
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert re.match(rf'train: no space left on device writing {workdir}/checkpoints: the '
                  r'checkpoint of step \d needs up to [\d.]+ MiB, 0.\d MiB free; free some space',
                  last), last
  assert 'Traceback' not in result.stderr
  assert not [name for name in os.listdir(workdir / 'checkpoints') if name.isdigit()]


def test_prepare_data_on_a_full_disk_keeps_the_manifest_equal_to_the_disk(tmp_path, small_disk):
  for index in range(4):
    video_files.write_test_video(tmp_path / 'videos' / f'v{index}.mp4', frames=200, height=96,
                                 width=128)
  output = small_disk(400 * 1024)
  result = _run('experiments.prepare_data', f'--input={tmp_path / "videos"}', '--scene=golf',
                f'--output={output}', '--frames=16', '--size=64', '--workers=1')
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f'prepare_data: no space left on device writing {output}/golf/'), last
  assert 'Traceback' not in result.stderr
  folder = output / 'golf'
  assert not [name for name in os.listdir(folder) if files.PARTIAL in name]
  with open(folder / shards.MANIFEST) as file:
    manifest = json.load(file)
  on_disk = {os.path.basename(path) for path in input_pipeline.find_shards(str(output), 'golf')}
  listed = {entry['shard'] for entry in manifest['inputs'].values() if entry.get('shard')}
  assert on_disk == listed and 1 <= len(on_disk) < 4
