"""UCF101 evaluation on a tiny UCF-layout dataset of synthetic actions that the tests write."""

import functools
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from data_pipeline import ucf101
from experiments import common, evaluation, training
from vgan_jax import checkpoint, configs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ('MoveLeft', 'MoveRight', 'MoveUp', 'MoveDown')


@pytest.fixture(scope='module')
def ucf_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('ucf'))
  ucf101.write_synthetic_ucf(root, CLASSES, train_per_class=6, test_per_class=3, frames=24,
                             size=32)
  return root


def _config(epochs=10):
  config = configs.get_config('test')
  config.classifier.num_epochs = epochs
  config.classifier.batch_size = 8
  config.classifier.learning_rate = 1e-3
  config.classifier.test_windows = 3
  return config


def test_splits_labels_and_label_fractions(ucf_dir):
  assert ucf101.read_class_index(ucf_dir) == list(CLASSES)
  train = ucf101.read_split(ucf_dir, 1, 'train')
  test = ucf101.read_split(ucf_dir, 1, 'test')
  assert len(train) == 24 and len(test) == 12
  assert train[0] == ucf101.Video('MoveLeft/v_MoveLeft_g01_c01.avi', 0)
  assert {v.label for v in test if v.path.startswith('MoveUp/')} == {2}  # from the folder name
  for fraction, per_class in ((0.5, 3), (1 / 32, 1), (1.0, 6)):
    subset = ucf101.label_fraction(train, fraction, seed=0)
    counts = np.bincount([v.label for v in subset], minlength=4)
    assert counts.tolist() == [per_class] * 4
  assert ucf101.label_fraction(train, 0.5, 0) == ucf101.label_fraction(train, 0.5, 0)
  assert ucf101.label_fraction(train, 0.5, 0) != ucf101.label_fraction(train, 0.5, 1)


def test_windows_for_training_and_testing(ucf_dir, tmp_path):
  videos = ucf101.read_split(ucf_dir, 1, 'test')
  index = ucf101.cache_split(ucf_dir, videos, str(tmp_path / 'test.tfrecord'), 32)
  assert index == {'videos': 12, 'skipped': {}}
  windows = list(ucf101.test_windows(str(tmp_path / 'test.tfrecord'), 16, 3))
  assert len(windows) == 12 and windows[0][0].shape == (3, 16, 32, 32, 3)
  first, last = windows[0][0][0], windows[0][0][-1]
  assert not np.array_equal(first, last)  # frames 0-15 and 8-23 of a moving square
  np.testing.assert_array_equal(first[8:], last[:8])
  batches = ucf101.train_dataset(str(tmp_path / 'test.tfrecord'), 16, 4, seed=0,
                                 sources=[v.path for v in videos[:3]]).as_numpy_iterator()
  batch = next(batches)
  assert batch['video'].shape == (4, 16, 32, 32, 3) and set(batch['label']) == {0}
  # A video shorter than the window repeats its last frame.
  long_windows = next(ucf101.test_windows(str(tmp_path / 'test.tfrecord'), 30, 2))[0]
  np.testing.assert_array_equal(long_windows[0, 24], long_windows[0, 23])


def test_bad_inputs_get_one_clear_message(ucf_dir, tmp_path):
  with pytest.raises(FileNotFoundError, match='trainlist02.txt: missing split file'):
    ucf101.read_split(ucf_dir, 2, 'train')
  broken = tmp_path / 'broken'
  (broken / ucf101.LISTS).mkdir(parents=True)
  (broken / ucf101.LISTS / ucf101.CLASS_INDEX).write_text('1 MoveLeft\n2 MoveRight\n')
  (broken / ucf101.LISTS / 'testlist01.txt').write_text(
      'MoveLeft/v_a.avi\nJuggling/v_Juggling_g01_c01.avi\n')
  with pytest.raises(ValueError, match=r"testlist01.txt:2: class folder 'Juggling' is not in"):
    ucf101.read_split(str(broken), 1, 'test')
  with pytest.raises(FileNotFoundError, match='classInd.txt: missing'):
    ucf101.read_class_index(str(tmp_path))
  # An unreadable video is skipped, counted and listed; the others are cached.
  (broken / ucf101.VIDEOS / 'MoveLeft').mkdir(parents=True)
  (broken / ucf101.VIDEOS / 'MoveLeft' / 'v_a.avi').write_bytes(b'not a video')
  good = ucf101.read_split(ucf_dir, 1, 'test')[:2]
  for video in good:
    target = broken / ucf101.VIDEOS / video.path
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(os.path.join(ucf_dir, ucf101.VIDEOS, video.path), target)
  index = ucf101.cache_split(str(broken), [ucf101.Video('MoveLeft/v_a.avi', 0)] + good,
                             str(tmp_path / 'c.tfrecord'), 32)
  assert index['videos'] == 2 and list(index['skipped']) == ['MoveLeft/v_a.avi']


def test_random_init_learns_the_actions_well_above_chance(ucf_dir, tmp_path):
  config = _config(epochs=40)
  config.data.data_dir = ucf_dir
  config.classifier.init = 'random'
  results = evaluation.evaluate(config, str(tmp_path), progress=False)
  assert results['split1']['test_videos'] == 12
  assert results['mean']['top1'] >= 0.6, results  # chance is 0.25
  assert results['mean']['top5'] == 1.0  # 4 classes: all are in the top 5
  assert json.load(open(tmp_path / 'results.json'))['mean'] == results['mean']
  assert any(name.startswith('events') for name in
             os.listdir(tmp_path / 'split1_random_finetune_fraction1'))


def test_linear_mode_leaves_the_gan_trunk_unchanged(ucf_dir, gan_workdir, tmp_path):
  config = _config(epochs=2)
  trunk = evaluation.load_gan_trunk(gan_workdir, config)
  result, state = evaluation.evaluate_split(config, ucf_dir, 1, 'gan', 'linear', trunk, 0.5, 0,
                                            str(tmp_path), progress=False)
  for before, after in zip(jax.tree.leaves(trunk), jax.tree.leaves(
      (state.params['trunk'], state.batch_stats['trunk']))):
    np.testing.assert_array_equal(before, after)
  assert result['train_videos'] == 12 and int(state.step) == 2 * 2  # 12 videos, batches of 8
  # Fine-tuning changes it.
  _, tuned = evaluation.evaluate_split(config, ucf_dir, 1, 'gan', 'finetune', trunk, 0.5, 0,
                                       str(tmp_path), progress=False)
  assert not np.array_equal(jax.tree.leaves(tuned.params['trunk'])[0], jax.tree.leaves(trunk)[0])


def test_checkpoint_of_another_config_is_refused(gan_workdir):
  config = _config()
  config.model.width = 8
  with pytest.raises(checkpoint.CheckpointMismatchError, match='model.width: checkpoint 4, '
                                                               '--config 8'):
    evaluation.load_gan_trunk(gan_workdir, config)


def test_sweep_writes_the_table_and_figures(ucf_dir, gan_workdir, tmp_path):
  config = _config(epochs=1)
  config.data.data_dir = ucf_dir
  config.classifier.gan_checkpoint = gan_workdir
  config.classifier.sweep_fractions = '0.5,1'
  table = evaluation.sweep(config, str(tmp_path), progress=False)
  assert set(table) == {'gan', 'random'} and set(table['gan']) == {'0.5', '1'}
  for name in ('sweep.json', 'figure4b.png', 'figure4c.png'):
    assert os.path.getsize(tmp_path / name) > 0
  assert os.listdir(tmp_path / 'cache')  # decoded once, shared by every run


def test_command_line_errors_are_one_line(tmp_path):
  result = subprocess.run([sys.executable, '-m', 'experiments.evaluate', '--config=test',
                           f'--data_dir={tmp_path}', '--config.classifier.init=random'],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      f'evaluate: {tmp_path}/ucfTrainTestlist/classInd.txt: missing')
  result = subprocess.run([sys.executable, '-m', 'experiments.evaluate', '--config=test',
                           f'--data_dir={tmp_path}', '--config.classifier.splits=1,4'],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "evaluate: config.classifier.splits='1,4': UCF101 has splits 1, 2 and 3.")


def test_replication_script_runs_end_to_end(tmp_path):
  """The small-scale study, shrunk to seconds: data, unlabeled shards, GAN, every method."""
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.replicate_actions', '--config=test',
       '--config.num_steps=1', '--config.replication.fractions=1', '--config.replication.seeds=0',
       '--config.classifier.num_epochs=1', '--config.replication.videos_per_class=2',
       f'--output_dir={tmp_path}'], cwd=REPO, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  table = json.load(open(tmp_path / 'replication.json'))
  assert set(table) == {'gan_finetune', 'random_finetune', 'gan_linear', 'random_linear'}
  assert all(0 <= row['1']['mean'] <= 1 and len(row['1']['runs']) == 1 for row in table.values())
  assert (tmp_path / 'replication.md').read_text().startswith('| method | 1 of labels |')
  assert os.listdir(tmp_path / 'clips' / 'actions')  # the GAN's unlabeled training shards


def test_videos_can_be_stabilized_before_caching(ucf_dir, tmp_path):
  videos = ucf101.read_split(ucf_dir, 1, 'test')[:2]
  index = ucf101.cache_split(ucf_dir, videos, str(tmp_path / 's.tfrecord'), 32, stabilized=True)
  assert index['videos'] == 2
  windows, label = next(ucf101.test_windows(str(tmp_path / 's.tfrecord'), 16, 2))
  assert windows.shape == (2, 16, 32, 32, 3) and label == 0


def test_an_interrupted_classifier_resumes_as_if_uninterrupted(ucf_dir, tmp_path):
  """Classifier training goes through the one loop: checkpoints, and a resume that continues
  with the same batches (12 videos in batches of 8: 2 steps an epoch)."""
  run = functools.partial(evaluation.evaluate_split, data_dir=ucf_dir, split=1, init='random',
                          mode='finetune', trunk=None, label_fraction=1.0, seed=0,
                          progress=False, cache_dir=str(tmp_path / 'cache'))
  _, uninterrupted = run(_config(epochs=3), output_dir=str(tmp_path / 'a'))
  _, stopped = run(_config(epochs=1), output_dir=str(tmp_path / 'b'))  # "killed" after epoch 1
  result, resumed = run(_config(epochs=3), output_dir=str(tmp_path / 'b'))
  assert int(stopped.step) == 3 and int(resumed.step) == int(uninterrupted.step) == 9
  assert os.path.isdir(tmp_path / 'b' / 'split1_random_finetune_fraction1' / 'checkpoints' / '9')
  for a, b in zip(jax.tree.leaves(jax.device_get(uninterrupted)),
                  jax.tree.leaves(jax.device_get(resumed)), strict=True):
    np.testing.assert_array_equal(a, b)
  assert 0 <= result['top1'] <= 1


def test_a_stopped_classifier_is_never_tested(ucf_dir, tmp_path, monkeypatch):
  """A stop request (here: another host's, from the first vote on) ends the run after step 2 (the
  vote after step 1 is read after step 2); the unfinished model is not tested and the job says
  where it stopped (common.run turns that into one line)."""
  monkeypatch.setattr(training.parallel, 'any_process_vote',
                      lambda flag, mesh: jax.numpy.asarray(True))
  monkeypatch.setattr(evaluation, 'test_accuracy', lambda *args: pytest.fail('tested'))
  with pytest.raises(common.Stopped, match=r'fraction1: training stopped at step 2 of 9; the '
                                           'same command resumes it'):
    evaluation.evaluate_split(_config(epochs=3), ucf_dir, 1, 'random', 'finetune', None, 1.0, 0,
                              str(tmp_path), progress=False, cache_dir=str(tmp_path / 'cache'))


def test_lists_saved_with_a_byte_order_mark_are_read(tmp_path):
  """Notepad and other Windows tools save UTF-8 with a BOM before the first line."""
  lists = tmp_path / ucf101.LISTS
  lists.mkdir()
  (lists / ucf101.CLASS_INDEX).write_bytes('\ufeff1 ApplyEyeMakeup\r\n2 Archery\r\n'.encode())
  (lists / 'trainlist01.txt').write_bytes(
      '\ufeffArchery/v_Archery_g01_c01.avi 2\r\n'.encode('utf-8'))
  assert ucf101.read_class_index(str(tmp_path)) == ['ApplyEyeMakeup', 'Archery']
  assert ucf101.read_split(str(tmp_path), 1, 'train') == [
      ucf101.Video('Archery/v_Archery_g01_c01.avi', 1)]


def _copy_of(ucf_dir, tmp_path):
  copy = tmp_path / 'ucf'
  shutil.copytree(ucf_dir, copy)
  return copy


def test_a_class_left_without_readable_videos_is_named_and_counts_are_real(ucf_dir, tmp_path):
  """Unreadable videos: one of MoveLeft's training videos -> trained on the 23 others, and the
  result says so; all of them -> an error naming the class, before any training."""
  data = _copy_of(ucf_dir, tmp_path)
  left = [video.path for video in ucf101.read_split(str(data), 1, 'train') if video.label == 0]
  (data / ucf101.VIDEOS / left[0]).write_bytes(b'not a video')
  result, state = evaluation.evaluate_split(
      _config(epochs=1), str(data), 1, 'random', 'finetune', None, 1.0, 0, str(tmp_path / 'a'),
      progress=False)
  assert result['train_videos'] == 23 and list(result['skipped_videos']) == [left[0]]
  assert int(state.step) == result['steps'] == 3  # an epoch of 23 videos in batches of 8
  for path in left[1:]:
    (data / ucf101.VIDEOS / path).write_bytes(b'not a video')
  with pytest.raises(ValueError, match=r'Split 1: no readable training videos of class '
                                       r'MoveLeft \(6 videos could not be read'):
    evaluation.evaluate_split(_config(epochs=1), str(data), 1, 'random', 'finetune', None, 1.0,
                              0, str(tmp_path / 'b'), progress=False)
  assert not (tmp_path / 'b' / 'split1_random_finetune_fraction1').exists()


def test_the_decoded_cache_is_keyed_on_what_it_was_made_from(ucf_dir, tmp_path):
  data = _copy_of(ucf_dir, tmp_path)
  videos = ucf101.read_split(str(data), 1, 'train')
  key = ucf101.videos_key(str(data), videos, 32, False)
  assert ucf101.videos_key(str(data), list(videos), 32, False) == key  # stable
  assert ucf101.videos_key(ucf_dir, videos, 32, False) != key  # another data folder
  assert ucf101.videos_key(str(data), videos[1:], 32, False) != key  # another list
  assert ucf101.videos_key(str(data), videos, 48, False) != key
  assert ucf101.videos_key(str(data), videos, 32, True) != key
  video = data / ucf101.VIDEOS / videos[0].path
  video.write_bytes(video.read_bytes() + b'\0')  # a file replaced (another size and time)
  assert ucf101.videos_key(str(data), videos, 32, False) != key
