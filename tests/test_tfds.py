"""TensorFlow Datasets: UCF101 as TFDS prepared it (mocked with TFDS's own `mock_data`, over the
real ucf101 builder's features) read as the file-list reader reads the same videos, and a
prepared clip folder built as `vgan_clips/SCENE` and read back."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

tfds = pytest.importorskip('tensorflow_datasets')

# pylint: disable=g-import-not-at-top (after the skip: both need tensorflow_datasets)
from data_pipeline import shards, synthetic, tfds_clips, tfds_ucf101, ucf101
from experiments import evaluation
from vgan_io import files, media
from vgan_jax import configs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Four of TFDS's classes, with the pair whose order shows the case-insensitive sort.
CLASSES = ('ApplyEyeMakeup', 'Hammering', 'HammerThrow', 'YoYo')
FRAMES, HEIGHT, WIDTH = 10, 16, 20  # tiny 4:5 frames: the centre square is cropped


def _class_names():
  return tfds.builder('ucf101/ucf101_1').info.features['label'].names


def _fake_ucf101(classes, per_class):
  """{subset: [(list-file path, label, uint8 frames [FRAMES, HEIGHT, WIDTH, 3])]} in list order:
  `per_class[subset]` videos of each class (moving squares), labels by TFDS's class names."""
  names = _class_names()
  motions = list(ucf101.MOTIONS)
  rng = np.random.default_rng(0)
  videos, group = {}, 1
  for subset, count in per_class.items():
    videos[subset] = []
    for name in classes:
      motion = motions[names.index(name) % len(motions)]
      for clip in range(count):
        frames = ucf101._synthetic_action(  # pylint: disable=protected-access
            motion, rng, FRAMES, WIDTH)
        videos[subset].append((f'{name}/v_{name}_g{group:02d}_c{clip + 1:02d}.avi',
                               names.index(name), np.ascontiguousarray(frames[:, 2:2 + HEIGHT])))
    group += 1
  return videos


@pytest.fixture(scope='module')
def fake_ucf():
  return _fake_ucf101(CLASSES, {'train': 4, 'test': 2})


def _mock_ucf101(videos):
  """tfds.testing.mock_data's `as_dataset_fn`: the examples of `videos` in the real builder's
  features (each frame JPEG-encoded as TFDS stores it), decoded as TFDS decodes (honouring
  `decoders`), with tfds_ids like TFDS's when asked for."""

  def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
    del kwargs
    features = self.info.features
    encoded = [features.encode_example({'video': frames, 'label': label})
               for _, label, frames in videos[split]]
    specs = features.get_serialized_info()
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(encoded),
        output_signature=tf.nest.map_structure(lambda s: tf.TensorSpec(s.shape, s.dtype), specs))
    dataset = dataset.map(lambda example: features.decode_example(example, decoders=decoders))
    if read_config and read_config.add_tfds_id:
      ids = tf.data.Dataset.from_tensor_slices(
          [f'ucf101-{split}.tfrecord-00000-of-00001__{i}' for i in range(len(encoded))])
      dataset = tf.data.Dataset.zip(dataset, ids).map(
          lambda example, tfds_id: {**example, 'tfds_id': tfds_id})
    return dataset

  return tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE,
                                as_dataset_fn=as_dataset)


def _write_lists(root, videos):
  """The same videos as split lists (classInd.txt numbering TFDS's names from 1)."""
  names = _class_names()
  os.makedirs(os.path.join(root, ucf101.LISTS))
  with open(os.path.join(root, ucf101.LISTS, ucf101.CLASS_INDEX), 'w') as file:
    file.writelines(f'{i + 1} {name}\n' for i, name in enumerate(names))
  for subset, listed in videos.items():
    with open(os.path.join(root, ucf101.LISTS, f'{subset}list01.txt'), 'w') as file:
      file.writelines(f'{path} {label + 1}\n' for path, label, _ in listed)


def test_tfds_class_names_are_class_ind_order():
  names = tfds_ucf101.class_names(tfds.builder('ucf101/ucf101_1'))
  # classInd.txt numbers them 1..101 case-insensitively alphabetically: 35 Hammering,
  # 36 HammerThrow; TFDS's labels are classInd's minus 1.
  assert len(names) == 101 and names == sorted(names, key=str.lower)
  assert (names[0], names[34], names[35], names[36], names[100]) == (
      'ApplyEyeMakeup', 'Hammering', 'HammerThrow', 'HandstandPushups', 'YoYo')


def test_tfds_split_is_read_as_the_split_lists(fake_ucf, tmp_path):
  _write_lists(str(tmp_path / 'lists'), fake_ucf)
  (tmp_path / 'tfds').mkdir()
  with _mock_ucf101(fake_ucf):
    classes, train, test, train_cache, test_cache, skipped = tfds_ucf101.cached_split(
        str(tmp_path / 'tfds'), 1, str(tmp_path / 'cache'), 32)
  assert classes == ucf101.read_class_index(str(tmp_path / 'lists')) and skipped == {}
  listed = {subset: ucf101.read_split(str(tmp_path / 'lists'), 1, subset) for subset in
            ('train', 'test')}
  for subset, videos in (('train', train), ('test', test)):
    assert [v.label for v in videos] == [v.label for v in listed[subset]]
    assert videos[0].path == f'ucf101-{subset}.tfrecord-00000-of-00001__0'
  # The label fraction draws the same positions from the same order: the same selection.
  for fraction, seed in ((0.5, 0), (0.5, 1), (0.25, 3), (1.0, 0)):
    chosen = [train.index(v) for v in ucf101.label_fraction(train, fraction, seed)]
    assert chosen == [listed['train'].index(v) for v in
                      ucf101.label_fraction(listed['train'], fraction, seed)]
  # The caches: the file-list reader's format and scaling (the centre square, media.square_crop).
  windows = list(ucf101.test_windows(test_cache, 16, 2))
  assert len(windows) == len(fake_ucf['test']) == 8
  (clip, label), (_, expected_label, frames) = windows[3], fake_ucf['test'][3]
  assert label == expected_label and clip.shape == (2, 16, 32, 32, 3)
  expected = np.stack([media.square_crop(frame, 32) for frame in frames])
  assert np.abs(clip[0, :FRAMES].astype(int) - expected).mean() < 6  # two JPEG generations
  np.testing.assert_array_equal(clip[0, FRAMES], clip[0, FRAMES - 1])  # the last one repeated
  index = json.load(open(train_cache + '.json'))
  assert index['videos'] == 16 and len(index['entries']) == 16
  # Reused: no dataset (and no mock) is needed for the entries once cached.
  assert tfds_ucf101.cache_subset(None, 'train', train_cache, 32)[0] == train


def test_evaluate_runs_on_tfds_ucf101(tmp_path):
  # evaluate wants every class in both subsets: one video of each of the 101 a side.
  config = configs.get_config('test')
  config.data.tfds_data_dir = str(tmp_path)
  config.classifier.update(init='random', num_epochs=1, batch_size=16, test_windows=1)
  config.checkpoint_every = 100  # only the last step's (7 steps: 101 videos, batches of 16)
  with _mock_ucf101(_fake_ucf101(_class_names(), {'train': 1, 'test': 1})):
    results = evaluation.evaluate(config, str(tmp_path / 'run'), progress=False)
  assert results['split1']['test_videos'] == 101 and results['split1']['train_videos'] == 101
  assert 0 <= results['mean']['top1'] <= 1
  config.data.data_dir = str(tmp_path)
  with pytest.raises(ValueError, match='Two UCF101 sources'):
    evaluation.evaluate(config, str(tmp_path / 'run'), progress=False)


def test_missing_tfds_ucf101_is_one_clear_error(tmp_path):
  with pytest.raises(ValueError, match='no such folder'):
    tfds_ucf101.prepared_builder(str(tmp_path / 'absent'), 1)
  with pytest.raises(ValueError, match=r'No prepared ucf101/ucf101_1 or ucf101/ucf101_1_256 in '
                                       rf'{tmp_path}: run `tfds build ucf101'):
    tfds_ucf101.prepared_builder(str(tmp_path), 1)
  with pytest.raises(ValueError, match=r'No prepared ucf101/ucf101_3 in'):
    tfds_ucf101.prepared_builder(str(tmp_path), 3)
  assert not os.listdir(tmp_path)  # nothing downloaded, nothing written


def _prepared_folder(output, scene, shard_count=2, clips=2):
  """OUTPUT/SCENE as prepare_data leaves it: shards of synthetic clips and manifest.json."""
  folder = os.path.join(output, scene)
  os.makedirs(folder)
  manifest = shards.new_manifest(scene, {'frames': 8, 'size': 16})
  for s in range(shard_count):
    source, name = f'/videos/{s}.mp4', f'v{s}-0123456789.tfrecord'
    shards.write_shard(os.path.join(folder, name), [
        shards.clip_example(shards.encode_strip(synthetic.render_clip('golf', clips * s + i,
                                                                      frames=8, size=16)),
                            frames=8, size=16, scene=scene, source=source, start_frame=8 * i,
                            fps=25.0, label=s - 1) for i in range(clips)])
    shards.record_input(manifest, source, {'status': 'done', 'shard': name, 'clips': clips})
  files.write_json(os.path.join(folder, shards.MANIFEST), manifest)
  return folder


def _train_files(data_dir, scene):
  folder = os.path.join(data_dir, tfds_clips.NAME, scene, tfds_clips.VERSION)
  return {name: open(os.path.join(folder, name), 'rb').read() for name in os.listdir(folder)
          if '.tfrecord' in name}


def test_prepared_folder_builds_as_vgan_clips(tmp_path):
  output = str(tmp_path / 'data')
  folder = _prepared_folder(output, 'my_scene')  # no built-in scene: a config made on the fly
  dataset = tfds.load('vgan_clips/my_scene', split='train', data_dir=str(tmp_path / 'tfds'),
                      shuffle_files=False, download_and_prepare_kwargs={
                          'download_config': tfds.download.DownloadConfig(manual_dir=output)})
  got = sorted(tfds.as_numpy(dataset), key=lambda c: (c['source'], c['start_frame']))
  expected = [record for name in sorted(os.listdir(folder)) if name.endswith('.tfrecord')
              for record in shards.read_shard(os.path.join(folder, name))]
  assert len(got) == len(expected) == 4
  for clip, record in zip(got, expected):
    np.testing.assert_array_equal(clip['video'], record['video'])  # PNG frames: lossless
    assert (clip['scene'].decode(), clip['source'].decode(), clip['start_frame'], clip['fps'],
            clip['label']) == (record['scene'], record['source'], record['start_frame'],
                               record['fps'], record['label'])
  # Reproducible: keys are shard and index, so a second build writes the same records.
  tfds_clips.build(output, 'my_scene', str(tmp_path / 'again'))
  assert _train_files(str(tmp_path / 'again'), 'my_scene') == _train_files(
      str(tmp_path / 'tfds'), 'my_scene')


def test_tfds_build_command_builds_a_scene(tmp_path):
  output = str(tmp_path / 'data')
  _prepared_folder(output, 'beach', shard_count=1, clips=1)
  subprocess.run([sys.executable, '-m', 'tensorflow_datasets.scripts.cli.main', 'build',
                  'data_pipeline/tfds_clips.py', '--config=beach', f'--manual_dir={output}',
                  f'--data_dir={tmp_path / "tfds"}'], cwd=REPO, check=True, capture_output=True)
  builder = tfds.builder('vgan_clips/beach', data_dir=str(tmp_path / 'tfds'))
  assert builder.info.splits['train'].num_examples == 1


def test_folders_prepare_data_has_not_finished_are_refused(tmp_path):
  output = str(tmp_path / 'data')
  folder = _prepared_folder(output, 'golf', shard_count=1)
  data_dir = str(tmp_path / 'tfds')
  with pytest.raises(ValueError, match=r'No prepared clip folder .*beach: .*\(it holds golf\)'):
    tfds_clips.build(output, 'beach', data_dir)
  part = os.path.join(folder, shards.PART_MANIFEST.format(index=0, count=2))
  os.rename(os.path.join(folder, shards.MANIFEST), part)
  with pytest.raises(ValueError, match=r'holds the parts of a split prepare_data run, not merged '
                                       r'yet .* --merge'):
    tfds_clips.build(output, 'golf', data_dir)
  os.remove(part)
  with pytest.raises(ValueError, match=r'golf has no manifest.json: not a finished prepare_data'):
    tfds_clips.build(output, 'golf', data_dir)
  with pytest.raises(ValueError, match=r'absent does not exist or is empty: manual_dir must be '
                                       'the --output folder of prepare_data'):
    tfds_clips.build(str(tmp_path / 'absent'), 'golf', data_dir)
