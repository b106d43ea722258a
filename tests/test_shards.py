"""Clip shards: JPEG strips, the Example round trip, atomic writes and the manifest."""

import os

import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import input_pipeline, shards, synthetic
from vgan_io import files


def test_strip_is_the_frames_stacked_vertically():
  video = synthetic.render_clip('beach', 0, frames=4, size=32)
  jpeg = shards.encode_strip(video, quality=100)
  image = tf.io.decode_jpeg(jpeg).numpy()
  assert image.shape == (4 * 32, 32, 3)  # the authors' layout: [T * S, S, 3]
  assert np.abs(image[32:64].astype(int) - video[1]).mean() < 3
  decoded = shards.decode_strip(jpeg)
  assert decoded.shape == video.shape and np.abs(decoded.astype(int) - video).mean() < 1
  with pytest.raises(ValueError, match='not a decodable JPEG'):
    shards.decode_strip(b'garbage')


def test_an_image_of_other_proportions_is_not_a_strip():
  assert shards.decode_strip(shards.encode_strip(np.zeros((1, 32, 32, 3), np.uint8))).shape == (
      1, 32, 32, 3)
  with pytest.raises(ValueError, match='48x32 is not a vertical strip'):
    shards.decode_strip(tf.io.encode_jpeg(np.zeros((32, 48, 3), np.uint8)).numpy())
  with pytest.raises(ValueError, match='uint8'):
    shards.encode_strip(np.zeros((2, 32, 32, 3), np.float32))


def test_shard_round_trip_keeps_frames_and_metadata(tmp_path):
  videos = [synthetic.render_clip('golf', i, frames=8, size=64) for i in range(3)]
  examples = [shards.clip_example(shards.encode_strip(v), frames=8, size=64, scene='golf',
                                  source=f'/videos/{i}.mp4', start_frame=32 * i, fps=25.0,
                                  label=i - 1, stats={'mean_error': 0.25 * i})
              for i, v in enumerate(videos)]
  path = str(tmp_path / 'golf.tfrecord')
  assert shards.write_shard(path, examples) == 3
  records = list(shards.read_shard(path))
  assert len(records) == 3
  for i, (record, video) in enumerate(zip(records, videos)):
    assert record['video'].shape == video.shape
    assert np.abs(record['video'].astype(int) - video).mean() < 3  # JPEG at quality 95
    assert (record['scene'], record['source'], record['start_frame'], record['fps'],
            record['label'], record['frames'], record['size']) == (
                'golf', f'/videos/{i}.mp4', 32 * i, 25.0, i - 1, 8, 64)
    assert record['stats'] == pytest.approx({'mean_error': 0.25 * i})


def test_a_failed_write_leaves_nothing_and_an_empty_one_no_file(tmp_path):
  path = str(tmp_path / 'x.tfrecord')

  def broken():
    yield shards.clip_example(b'jpeg', frames=1, size=1)
    raise RuntimeError('the video broke half-way')

  with pytest.raises(RuntimeError):
    shards.write_shard(path, broken())
  assert os.listdir(tmp_path) == []
  assert shards.write_shard(path, iter([])) == 0 and os.listdir(tmp_path) == []


def test_partial_files_are_hidden_from_shard_globs_and_removed(tmp_path):
  with files.atomic_path(str(tmp_path / 'a.tfrecord'), keep_extension=False) as temporary:
    name = os.path.basename(temporary)
    assert name.startswith('.') and name.endswith(files.PARTIAL)
    with open(temporary, 'wb') as file:
      file.write(b'half a shard')
    for pattern in input_pipeline.SHARD_GLOBS:
      assert not tf.io.gfile.glob(str(tmp_path / pattern))
    assert not input_pipeline.find_shards(str(tmp_path.parent), tmp_path.name)
  assert os.listdir(tmp_path) == ['a.tfrecord']
  # What a killed run leaves: partial files of a shard and of a video; both go, the shard stays.
  (tmp_path / '.b.tfrecord.x1y2.partial').write_bytes(b'half')
  (tmp_path / '.c.avi.x1y2.partial.avi').write_bytes(b'half')
  assert sorted(files.remove_partial_files(str(tmp_path))) == [
      '.b.tfrecord.x1y2.partial', '.c.avi.x1y2.partial.avi']
  assert os.listdir(tmp_path) == ['a.tfrecord']


def test_manifest_refuses_other_options_and_counts_clips(tmp_path):
  folder = str(tmp_path)
  manifest = shards.load_manifest(folder, 'golf', {'frames': 32, 'fps': 25.0})
  shards.record_input(manifest, '/v/a.mp4', {'status': 'done', 'shard': 'a.tfrecord',
                                             'clips': 3})
  shards.record_input(manifest, '/v/b.mp4', {'status': 'skipped', 'reason': 'empty file'})
  assert manifest['clips'] == 3 and manifest['shards'] == {'a.tfrecord': 3}
  shards.record_input(manifest, '/v/a.mp4', {'status': 'done', 'shard': 'a.tfrecord',
                                             'clips': 5})
  assert manifest['clips'] == 5
  files.write_json(os.path.join(folder, shards.MANIFEST), manifest)
  assert shards.load_manifest(folder, 'golf', {'frames': 32, 'fps': 25.0}) == manifest
  with pytest.raises(ValueError, match='other options.*frames: manifest 32, now 16'):
    shards.load_manifest(folder, 'golf', {'frames': 16, 'fps': 25.0})
  (tmp_path / shards.MANIFEST).write_text('{not json')
  with pytest.raises(ValueError, match='not a manifest this project wrote'):
    shards.load_manifest(folder, 'golf', {})
