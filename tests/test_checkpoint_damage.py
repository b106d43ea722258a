"""Damaged checkpoints, as a partial copy or sync of a work directory leaves them: named with the
file or array, set aside, and training resumes from the newest intact one; damage that still
loads (bytes overwritten inside an array file) is caught by the checksums saved with each
checkpoint."""

import glob
import os

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import training
from vgan_jax import checkpoint

import test_training_loop  # pylint: disable=g-bad-import-order


def _saved(tmp_path, config, steps=(2, 4, 6)):
  """Checkpoints of a state with an incompressible array (stored as raw bytes) at `steps`."""
  config.keep_checkpoints = 5
  manager = checkpoint.create_manager(str(tmp_path), config)
  states = {}
  for step in steps:
    states[step] = {'params': {'w': jnp.asarray(
        np.random.default_rng(step).normal(size=4096).astype(np.float32))},
                    'step': jnp.int32(step)}
    checkpoint.save(manager, step, states[step], config, force=True)
  manager.wait_until_finished()
  return manager, states


def _largest_array_file(step_dir):
  paths = [path for path in glob.glob(os.path.join(step_dir, 'state', '**', 'd', '*'),
                                      recursive=True) if os.path.isfile(path)]
  return max(paths, key=os.path.getsize)


def _truncate(path):
  with open(path, 'r+b') as file:
    file.truncate(os.path.getsize(path) // 2)


def _overwrite_middle(path):
  with open(path, 'r+b') as file:
    file.seek(os.path.getsize(path) // 2)
    file.write(bytes(range(64)))


DAMAGE = {
    'a truncated array file': (lambda step: _truncate(_largest_array_file(step)), 'state'),
    'a deleted array file': (lambda step: os.remove(_largest_array_file(step)), 'state'),
    '64 bytes overwritten inside an array file': (
        lambda step: _overwrite_middle(_largest_array_file(step)), 'state'),
    'garbage in the state metadata': (
        lambda step: open(os.path.join(step, 'state', '_METADATA'), 'w').write('{garbage'),
        'state'),
    'garbage in the saved config': (
        lambda step: open(os.path.join(step, 'config', 'metadata'), 'w').write('garbage'),
        'config'),
}


@pytest.mark.parametrize('kind', DAMAGE)
def test_a_damaged_latest_checkpoint_is_named_set_aside_and_the_one_before_restored(
    kind, tmp_path, test_config, caplog):
  manager, states = _saved(tmp_path, test_config)
  damage, part = DAMAGE[kind]
  damage(str(tmp_path / '6'))
  with pytest.raises(checkpoint.CheckpointDamagedError, match=rf'/6/{part}'):
    checkpoint.restore(manager, 6, states[6], test_config)
  restored = checkpoint.restore_latest(manager, states[6], test_config)
  np.testing.assert_array_equal(restored['params']['w'], states[4]['params']['w'])
  assert sorted(manager.all_steps()) == [2, 4]
  (aside,) = [name for name in os.listdir(tmp_path) if name.startswith('6' + checkpoint.DAMAGED)]
  assert f'Damaged checkpoint: {tmp_path}/6/{part}' in caplog.text and aside in caplog.text
  manager.close()


def test_bytes_changed_inside_an_array_are_caught_by_the_checksum(tmp_path, test_config):
  """The damage that loaded without any error before checksums: the values differ, silently."""
  manager, states = _saved(tmp_path, test_config)
  _overwrite_middle(_largest_array_file(str(tmp_path / '6')))
  with pytest.raises(checkpoint.CheckpointDamagedError,
                     match=r'/6/state: (the array params.w differs from the checksum saved with '
                           r'it|cannot be read)'):
    checkpoint.restore(manager, 6, states[6], test_config)
  manager.close()


def test_when_every_checkpoint_is_damaged_the_error_names_them_all(tmp_path, test_config):
  manager, states = _saved(tmp_path, test_config, steps=(2, 4))
  for step in ('2', '4'):
    _truncate(_largest_array_file(str(tmp_path / step)))
  with pytest.raises(checkpoint.CheckpointDamagedError,
                     match=r'Every checkpoint in .* is damaged: .*/4/state.*/2/state.*Restore the '
                           r'work directory from a copy'):
    checkpoint.restore_latest(manager, states[4], test_config)
  manager.close()


def test_training_resumes_from_the_newest_intact_checkpoint_as_if_uninterrupted(tmp_path,
                                                                                 test_config):
  test_config.checkpoint_every = 2
  task = test_training_loop._counting_task  # pylint: disable=protected-access
  uninterrupted = training.train(task(10), test_config, str(tmp_path / 'a'), progress=False)
  training.train(task(6), test_config, str(tmp_path / 'b'), progress=False)
  _truncate(_largest_array_file(str(tmp_path / 'b' / 'checkpoints' / '6')))
  resumed = training.train(task(10), test_config, str(tmp_path / 'b'), progress=False)
  np.testing.assert_array_equal(resumed.params, uninterrupted.params)
  names = os.listdir(tmp_path / 'b' / 'checkpoints')  # resumed from 4; 6 written again, intact
  assert any(name.startswith('6' + checkpoint.DAMAGED) for name in names) and '10' in names
