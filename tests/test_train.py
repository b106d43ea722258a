"""The train command end to end: outputs, resume, Ctrl-C, a mismatched checkpoint, bad flags."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from experiments import tasks
from vgan_jax import checkpoint, sampling

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(config, workdir, scene, data_dir=None):
  config.data.scene, config.data.data_dir = scene, data_dir
  return tasks.train_gan(config, str(workdir))


def _params(state):
  return jax.device_get((state.generator_params, state.discriminator_params,
                         state.generator_batch_stats, state.discriminator_opt_state))


def test_training_writes_summaries_samples_and_checkpoints(test_config, tmp_path):
  test_config.num_steps = 2
  state = _train(test_config, tmp_path, 'babies')
  assert int(state.step) == 2
  assert any(name.startswith('events.out.tfevents') for name in os.listdir(tmp_path))
  samples = sorted(os.listdir(tmp_path / 'samples'))
  assert samples == [f'0000002_{s}.gif' for s in ('background', 'foreground', 'mask', 'video')]
  gif = Image.open(tmp_path / 'samples' / '0000002_video.gif')
  # (GIF merges identical consecutive frames, as an untrained G makes: count play time instead.)
  durations = []
  for index in range(gif.n_frames):
    gif.seek(index)
    durations.append(gif.info['duration'])
  assert sum(durations) == test_config.model.frames * round(1000 / test_config.sample_fps)
  assert os.path.isdir(tmp_path / 'checkpoints' / '2')
  saved_config = checkpoint.restore_for_inference(str(tmp_path))[0]
  assert saved_config.data.scene == 'babies'  # what defines the experiment is saved with it


def test_resumed_run_equals_uninterrupted_run(test_config, tmp_path):
  test_config.num_steps = 4
  uninterrupted = _train(test_config, tmp_path / 'a', 'golf')
  test_config.num_steps = 2  # "killed" after its checkpoint at step 2 ...
  _train(test_config, tmp_path / 'b', 'golf')
  test_config.num_steps = 4  # ... and started again with the same command
  resumed = _train(test_config, tmp_path / 'b', 'golf')
  assert int(resumed.step) == 4
  for a, b in zip(jax.tree.leaves(_params(uninterrupted)), jax.tree.leaves(_params(resumed))):
    np.testing.assert_array_equal(a, b)


def test_inference_restores_the_step_asked_for_else_the_latest(test_config, tmp_path):
  """`restore_for_inference(workdir, step)` (the tools' --step) gives that step's state, not the
  latest; without a step, the latest."""
  test_config.num_steps = 2
  test_config.checkpoint_every = 1
  test_config.keep_checkpoints = 2
  _train(test_config, tmp_path, 'golf')
  assert int(checkpoint.restore_for_inference(str(tmp_path))[2].step) == 2
  first = checkpoint.restore_for_inference(str(tmp_path), step=1)[2]
  assert int(first.step) == 1


def test_checkpoint_of_another_model_is_refused_clearly(test_config, tmp_path):
  test_config.num_steps = 1
  _train(test_config, tmp_path, 'beach')
  test_config.model.width = 8
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match=r'checkpoints/1 was written for another model:\n  model.width: '
                           r'checkpoint 4, current 8'):
    _train(test_config, tmp_path, 'beach')


def test_unknown_scene_without_data_is_refused_clearly(test_config, tmp_path):
  with pytest.raises(ValueError, match=r"No data folder given and no built-in scene 'moon'.*"
                                       r'built-in scenes are beach, golf, train_station, babies'):
    _train(test_config, tmp_path / 'run', 'moon')
  assert not (tmp_path / 'run').exists()  # refused before anything was written


def test_a_data_dir_without_the_scene_never_falls_back_to_synthetic_clips(test_config,
                                                                           tmp_path):
  """A data folder that is given is the data: missing there is an error saying what it holds,
  even for the name of a built-in scene."""
  data = tmp_path / 'data'
  with pytest.raises(ValueError, match=r"scene 'beach' in .*data/beach: .*data does not exist"):
    _train(test_config, tmp_path / 'run', 'beach', str(data))
  (data / 'golf').mkdir(parents=True)
  with pytest.raises(ValueError, match=r'data holds no shards \(prepare_data writes them\)'):
    _train(test_config, tmp_path / 'run', 'beach', str(data))
  for index in range(2):
    (data / 'golf' / f'clips-{index:05d}.tfrecord').write_bytes(b'')
  with pytest.raises(ValueError, match=r'data holds shards of golf \(2\)\. \(Without a data '):
    _train(test_config, tmp_path / 'run', 'beach', str(data))
  assert not (tmp_path / 'run').exists()


def _train_command(workdir, *extra):
  return [sys.executable, '-m', 'experiments.train', '--config=test', f'--workdir={workdir}',
          '--scene=train_station', *extra]


def _environment(tmp_path):
  return dict(os.environ, VGAN_JAX_CACHE=str(tmp_path / 'cache'), PYTHONPATH=REPO)


def test_ctrl_c_stops_with_a_checkpoint_and_the_rerun_resumes(tmp_path):
  workdir = tmp_path / 'run'
  process = subprocess.Popen(_train_command(workdir, '--config.num_steps=100000'), cwd=REPO,
                             env=_environment(tmp_path), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 300
  while not (workdir / 'checkpoints' / '2').exists():  # training is under way
    assert process.poll() is None and time.time() < deadline, process.communicate()[0][-3000:]
    time.sleep(0.5)
  process.send_signal(signal.SIGINT)
  output = process.communicate(timeout=300)[0]
  assert process.returncode == 0, output[-3000:]
  assert 'Stopped at step' in output
  steps = [int(name) for name in os.listdir(workdir / 'checkpoints') if name.isdigit()]
  last = max(steps)
  assert last >= 2

  rerun = subprocess.run(_train_command(workdir, f'--config.num_steps={last + 1}'), cwd=REPO,
                         env=_environment(tmp_path), capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f'Resuming from the checkpoint at step {last}' in rerun.stderr
  assert f'Done at step {last + 1}' in rerun.stderr


@pytest.mark.parametrize('flag, message', [
    ('--config=huge', "unknown config 'huge'"),
    ('--config.model.nonexistent=3', 'nonexistent'),
    ('--config.num_step=3', 'train: bad --config override of an unknown field: \'num_step\': Did '
                            'you mean "num_steps"'),
    ('--config.model.size=40', 'config.model.size=40: must be a positive multiple of 16'),
    ('--config.data.scene=golf', '--scene=train_station contradicts --config.data.scene=golf'),
    ('--config.model.two_stream_impl=fast', "config.model.two_stream_impl='fast': must be one of"),
    ('--config.optimizer.b1=1.0', 'config.optimizer.b1=1.0: Adam needs a learning rate above 0'),
    ('--workdir=/proc/vgan_run', 'train: /proc/vgan_run: cannot be created or written to (No '
                                 'such file or directory).'),
])
def test_bad_flags_give_one_clear_error(tmp_path, flag, message):
  result = subprocess.run(_train_command(tmp_path / 'run', flag), cwd=REPO,
                          env=_environment(tmp_path), capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert message in result.stderr, result.stderr[-3000:]
  assert not (tmp_path / 'run').exists()  # nothing written


def test_a_checkpoint_from_before_the_experiment_fields_resumes(test_config, tmp_path):
  """A checkpoint whose saved config predates data.scene, model.two_stream_impl and the
  classifier, baseline and replication settings: it resumes, with today's defaults for them."""
  test_config.num_steps = 1
  state = _train(test_config, tmp_path / 'new', 'golf')
  old = test_config.to_dict()
  for section, field in (('data', 'scene'), ('data', 'data_dir'), ('model', 'two_stream_impl')):
    del old[section][field]
  for section in ('baseline', 'replication'):
    del old[section]
  for field in ('init', 'gan_checkpoint', 'mode', 'splits', 'label_fraction', 'stabilize',
                'sweep_fractions'):
    del old['classifier'][field]
  manager = checkpoint.create_manager(str(tmp_path / 'old' / 'checkpoints'), test_config)
  manager.save(1, args=checkpoint.ocp.args.Composite(**{
      checkpoint.STATE: checkpoint.ocp.args.StandardSave(state),
      checkpoint.CONFIG: checkpoint.ocp.args.JsonSave(old)}), force=True)
  manager.wait_until_finished()
  manager.close()
  test_config.num_steps = 2
  resumed = _train(test_config, tmp_path / 'old', 'golf')
  assert int(resumed.step) == 2


def test_fvd_during_training_is_logged_and_the_real_side_cached(test_config, tmp_path,
                                                                  monkeypatch):
  import glob  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('VGAN_JAX_FVD_CACHE', str(tmp_path / 'cache'))
  test_config.num_steps, test_config.fvd_every = 2, 2
  test_config.fvd_clips, test_config.fvd_frames = 4, 9
  _train(test_config, tmp_path / 'run', 'golf')
  cached = glob.glob(str(tmp_path / 'cache' / '*.npz'))
  assert len(cached) == 1 and np.load(cached[0])['features'].shape == (4, 400)
  def logged():  # {step: FVD} from the TensorBoard events
    return {event.step: float(tf.make_ndarray(value.tensor)) for path in glob.glob(
        str(tmp_path / 'run' / 'events.out.tfevents*')) for event in
            tf.compat.v1.train.summary_iterator(path) for value in event.summary.value
            if value.tag == 'eval/fvd'}

  assert list(logged()) == [2] and logged()[2] > 0
  modified = os.path.getmtime(cached[0])
  test_config.num_steps = 4  # resumed: the real side comes from the cache
  _train(test_config, tmp_path / 'run', 'golf')
  assert os.path.getmtime(cached[0]) == modified
  fvds = logged()
  assert sorted(fvds) == [2, 4]
  # The checkpoint of the lowest FVD is kept, and samples like any other.
  best = tmp_path / 'run' / checkpoint.BEST_DIRECTORY
  kept = [int(name) for name in os.listdir(best) if name.isdigit()]
  # (two steps of a tiny GAN can log the same float32 FVD: any step with the lowest will do)
  assert len(kept) == 1 and fvds[kept[0]] == min(fvds.values())
  assert sampling.write_generated(str(best), str(tmp_path / 'samples'), num_samples=2)
  with pytest.raises(ValueError, match='fvd_frames=8'):
    test_config.fvd_frames = 8
    _train(test_config, tmp_path / 'other', 'golf')
