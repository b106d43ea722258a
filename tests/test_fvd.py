"""FVD and KVD as the reference computes them: TF1's bilinear resize, I3D's logits, the Fréchet
distance in closed form, the reference's golden value, the sources of experiments/fvd.py, the
command, and the errors of bad input."""

import json
import os
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf
from scipy import linalg

from data_pipeline import shards, synthetic
from experiments import video_sources
from vgan_io import media
from vgan_jax import checkpoint
from vgan_jax.metrics import fvd, i3d

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tests' compilation cache (tests/conftest.py), so the command reuses what they compiled.
CACHE = os.path.join(REPO, '.pytest_cache', 'xla')


def test_resize_is_tf1_resize_bilinear():
  """The reference resizes with tf.image.resize_bilinear (TF1: half_pixel_centers=False)."""
  frames = np.random.default_rng(0).integers(0, 256, (1, 2, 48, 64, 3), np.uint8)
  ours = np.asarray(fvd.preprocess(frames, 224))
  reference = tf.compat.v1.image.resize_bilinear(frames[0], (224, 224), align_corners=False,
                                                 half_pixel_centers=False).numpy()
  np.testing.assert_allclose(ours[0], 2.0 * reference / 255.0 - 1.0, atol=1e-5)
  # Generated float videos are rounded to uint8 first, as stored clips are.
  as_float = frames.astype(np.float32) / 127.5 - 1.0
  np.testing.assert_allclose(np.asarray(fvd.preprocess(as_float, 224)), ours, atol=1e-5)


def test_frechet_distance_in_closed_form():
  # Diagonal Gaussians: |m_a - m_b|^2 + sum (s_a + s_b - 2 sqrt(s_a s_b)).
  distance = fvd.frechet_distance([0.0, 1.0], np.diag([1.0, 4.0]), [3.0, 1.0],
                                  np.diag([4.0, 9.0]))
  assert distance == pytest.approx(9.0 + (1 + 4 - 2 * 2) + (4 + 9 - 2 * 6))
  # Rotated: the same distance whatever the basis.
  rotation = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
  rotate = lambda c: rotation @ c @ rotation.T
  assert fvd.frechet_distance(rotation @ [0.0, 1.0], rotate(np.diag([1.0, 4.0])),
                              rotation @ [3.0, 1.0], rotate(np.diag([4.0, 9.0]))) == pytest.approx(
                                  distance)


def test_frechet_distance_of_covariances_that_do_not_commute():
  """Tr sqrt(S_a S_b) through sqrt(S_a) S_b sqrt(S_a), as TF-GAN: for covariances that do not
  commute (real features' never do) S_a S_b is not symmetric, and a symmetric square root taken
  of it directly is wrong. Pinned against scipy's general matrix square root."""
  rng = np.random.default_rng(6)
  factors = rng.normal(size=(2, 5, 5))
  covariance_a, covariance_b = (f @ f.T + 0.1 * np.eye(5) for f in factors)
  assert not np.allclose(covariance_a @ covariance_b, covariance_b @ covariance_a)
  mean_a, mean_b = rng.normal(size=5), rng.normal(size=5)
  want = (np.sum(np.square(mean_a - mean_b)) + np.trace(covariance_a) + np.trace(covariance_b)
          - 2.0 * np.trace(linalg.sqrtm(covariance_a @ covariance_b)).real)
  assert fvd.frechet_distance(mean_a, covariance_a, mean_b, covariance_b) == pytest.approx(
      want, rel=1e-6)


def test_float_videos_are_rounded_to_uint8_levels_first():
  """Generated videos in [-1, 1] are rounded to the 256 levels of stored clips before the
  resize, so a value between two levels counts as the nearest one, not as itself."""
  frames = np.random.default_rng(7).integers(0, 256, (1, 2, 12, 16, 3), np.uint8)
  between = frames.astype(np.float32) / 127.5 - 1.0 + np.float32(0.3 / 127.5)
  np.testing.assert_allclose(np.asarray(fvd.preprocess(between, 32)),
                             np.asarray(fvd.preprocess(frames, 32)), atol=1e-5)


def test_running_statistics_are_numpys_mean_and_unbiased_covariance():
  features = np.random.default_rng(1).normal(size=(50, 7))
  statistics = fvd.FeatureStatistics(7)
  for start in range(0, 50, 16):
    statistics.update(features[start:start + 16])
  assert statistics.count == 50
  np.testing.assert_allclose(statistics.mean, features.mean(0))
  np.testing.assert_allclose(statistics.covariance, np.cov(features, rowvar=False, ddof=1))
  with pytest.raises(ValueError, match='at least 2 samples'):
    _ = fvd.FeatureStatistics(7).update(features[:1]).covariance


def test_kernel_distance_by_hand():
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(4, 3)), rng.normal(1.0, 1.0, size=(5, 3))
  k = lambda x, y: (np.dot(x, y) / 3 + 1) ** 3
  expected = (sum(k(a[i], a[j]) for i in range(4) for j in range(4) if i != j) / 12
              + sum(k(b[i], b[j]) for i in range(5) for j in range(5) if i != j) / 20
              - 2 * sum(k(x, y) for x in a for y in b) / 20)
  assert fvd.kernel_distance(a, b) == pytest.approx(expected)


@pytest.fixture(scope='module')
def features():
  return fvd.I3DFeatures(batch_size=8)


def test_reference_golden_value_and_a_set_against_itself(features):
  """The reference's test: 16 all-black against 16 all-white videos of 15 frames of 64x64 is
  "around 131"; 133.9 with these weights."""
  black = np.zeros((16, 15, 64, 64, 3), np.uint8)
  white = np.full((16, 15, 64, 64, 3), 255, np.uint8)
  result = fvd.fvd(black, white, features)
  assert result['fvd'] == pytest.approx(133.9, abs=3.0)
  assert result['kvd'] > 0
  # A set against itself (its features computed once: I3D is the expensive part).
  noise = np.random.default_rng(3).integers(0, 256, (8, 15, 64, 64, 3), np.uint8)
  same = fvd.statistics_of([features(noise)])
  assert abs(fvd.frechet_distance(same.mean, same.covariance, same.mean,
                                  same.covariance)) < 1e-3 * result['fvd']


def test_fvd_orders_real_blurred_and_noise(features):
  """On clips of a textured, moving scene: another sample of the same scene is closer than its
  blurred copy, which is closer than noise."""
  # 9 frames, I3D's least: the ordering needs no more, and I3D's time grows with them.
  clips = lambda start: np.stack([synthetic.render_clip('beach', i, 9, 64)
                                  for i in range(start, start + 8)])
  real, other = clips(0), clips(8)
  blurred = np.stack([[cv2.GaussianBlur(frame, (0, 0), 4) for frame in clip] for clip in other])
  noise = np.random.default_rng(4).integers(0, 256, other.shape, np.uint8)
  stats = lambda videos: fvd.statistics_of([features(videos)])
  reference = stats(real)
  distance = lambda s: fvd.frechet_distance(reference.mean, reference.covariance, s.mean,
                                            s.covariance)
  to_other, to_blurred, to_noise = distance(stats(other)), distance(stats(blurred)), distance(
      stats(noise))
  assert to_other < to_blurred < to_noise, (to_other, to_blurred, to_noise)


def test_features_are_data_parallel_over_the_devices(features):
  """The module's I3D splits each batch over the 2 test devices (the golden value above is
  computed that way, so the split gives the reference's numbers); the batch size is rounded up
  to a multiple of the devices, and a stream of batches, the last one short and padded, gives the
  features of the whole set."""
  assert features.mesh.devices.size == 2 and features.batch_size == 8
  assert fvd.I3DFeatures(3, variables=features._variables, mesh=features.mesh).batch_size == 4
  videos = np.random.default_rng(5).integers(0, 256, (3, 9, 64, 64, 3), np.uint8)
  np.testing.assert_allclose(features.of_batches([videos[:2], videos[2:]]), features(videos),
                             rtol=1e-5, atol=1e-4)


def test_sources_stream_in_batches(tmp_path, gan_workdir):
  """A source yields its clips `batch_size` at a time, the same as all at once; one that runs
  out says so when it does."""
  clips = np.stack([synthetic.render_clip('golf', i, 10, 16) for i in range(5)])
  np.savez(tmp_path / 'five.npz', video=clips)
  source = video_sources.VideoSource(str(tmp_path / 'five.npz'), 5, 9, batch_size=2)
  batches = list(source.batches())
  assert [len(batch) for batch in batches] == [2, 2, 1] and source.frame_size == [16, 16]
  np.testing.assert_array_equal(np.concatenate(batches), clips[:, :9])
  scene = video_sources.VideoSource('beach', 3, 9, size=16, batch_size=2)
  np.testing.assert_array_equal(np.concatenate(list(scene.batches())),
                                video_sources.load_videos('beach', 3, 9, size=16)[0])
  model = video_sources.VideoSource(gan_workdir, 3, 9, seed=1, batch_size=2)  # generated 2 at a time
  sampled = list(model.batches())
  assert [len(batch) for batch in sampled] == [2, 1]
  np.testing.assert_array_equal(np.concatenate(sampled),
                                video_sources.load_videos(gan_workdir, 3, 9, seed=1)[0])
  short = video_sources.VideoSource(str(tmp_path / 'five.npz'), 6, 9, batch_size=4).batches()
  assert [len(next(short)), len(next(short))] == [4, 1]  # read as it goes: the shortage
  with pytest.raises(ValueError, match='five.npz: 5 clips; 6 were asked for'):
    next(short)


def test_fewer_than_nine_frames_and_bad_shapes_are_refused(features):
  with pytest.raises(ValueError, match='at least 9 frames per video; got 8'):
    features(np.zeros((2, 8, 32, 32, 3), np.uint8))
  with pytest.raises(ValueError, match=r'videos \[N, T, H, W, 3\]; got shape \[2, 9, 32, 32\]'):
    features(np.zeros((2, 9, 32, 32), np.uint8))


def test_weights_are_checked_and_unpickled_safely(tmp_path):
  path = tmp_path / 'weights.ckpt'
  path.write_bytes(b'not the weights')
  with pytest.raises(i3d.WeightsError, match='not the expected I3D weights'):
    i3d.load_weights(str(path))

  class Payload:  # what a malicious pickle would carry
    def __reduce__(self):
      return (print, ('this must never run',))

  path.write_bytes(pickle.dumps({'params': Payload(), 'batch_stats': {}}))
  with pytest.raises(i3d.WeightsError, match='refusing to load builtins.print'):
    i3d.load_weights(str(path), sha256=None)
  with pytest.raises(i3d.WeightsError, match='cannot read the I3D weights'):
    i3d.load_weights(str(tmp_path / 'missing.ckpt'))
  variables = i3d.load_weights()  # the installed package's, checked
  stats = variables['batch_stats']['Conv3d_1a_7x7']['BatchNorm_0']
  assert stats['mean'].shape == (64,) and stats['var'].shape == (64,)  # flax's layout


def _shard_folder(tmp_path, count=5, frames=12, size=32):
  folder = tmp_path / 'data' / 'golf'
  folder.mkdir(parents=True)
  examples = [shards.clip_example(shards.encode_strip(synthetic.render_clip('golf', i, frames,
                                                                            size)),
                                  frames=frames, size=size) for i in range(count)]
  shards.write_shard(str(folder / 'clips.tfrecord'), examples)
  return folder


def test_every_kind_of_source_gives_uint8_clips(tmp_path, gan_workdir):
  clips = np.stack([synthetic.render_clip('beach', i, 12, 32) for i in range(3)])
  np.savez(tmp_path / 'real.npz', video=clips)
  np.savez(tmp_path / 'float.npz', video=clips.astype(np.float32) / 127.5 - 1.0)
  videos, where = video_sources.load_videos(str(tmp_path / 'real.npz'), 2, 10)
  assert videos.shape == (2, 10, 32, 32, 3) and videos.dtype == np.uint8 and 'real.npz' in where
  np.testing.assert_array_equal(videos, clips[:2, :10])
  floats, _ = video_sources.load_videos(str(tmp_path / 'float.npz'), 2, 10)
  np.testing.assert_array_equal(floats, videos)  # rounded back exactly
  folder = _shard_folder(tmp_path)
  from_shards, where = video_sources.load_videos(str(folder), 4, 12)
  assert from_shards.shape == (4, 12, 32, 32, 3) and 'shards' in where
  # The first clip of the shard, up to JPEG's loss.
  assert np.abs(from_shards[0].astype(int) - synthetic.render_clip('golf', 0, 12, 32)).mean() < 8
  videos_folder = tmp_path / 'videos'
  for i in range(2):
    media.write_video(str(videos_folder / f'v{i}.avi'), synthetic.render_clip('beach', i, 30, 48),
                      25)
  from_files, where = video_sources.load_videos(str(videos_folder), 2, 9, size=32)
  assert from_files.shape == (2, 9, 32, 32, 3) and '2 readable video files' in where
  samples, where = video_sources.load_videos(gan_workdir, 3, 9, seed=1)
  assert samples.shape == (3, 9, 32, 32, 3) and 'two_stream generator' in where
  again, _ = video_sources.load_videos(gan_workdir, 3, 9, seed=1)
  np.testing.assert_array_equal(again, samples)  # the same seed, the same samples
  scene, _ = video_sources.load_videos('babies', 2, 9, size=32)
  assert scene.shape == (2, 9, 32, 32, 3)


def test_bad_sources_get_one_clear_error(tmp_path):
  np.savez(tmp_path / 'short.npz', video=np.zeros((3, 10, 8, 8, 3), np.uint8))
  np.savez(tmp_path / 'other.npz', frames=np.zeros(3))
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'damaged.npz').write_bytes(np.random.default_rng(0).bytes(3000))  # not a zip
  (tmp_path / 'cut.npz').write_bytes((tmp_path / 'short.npz').read_bytes()[:200])  # truncated
  (tmp_path / 'untrained' / 'checkpoints').mkdir(parents=True)
  cases = [((str(tmp_path / 'short.npz'), 2, 8), 'I3D needs at least 9'),
           ((str(tmp_path / 'short.npz'), 4, 9), 'short.npz: 3 clips; 4 were asked for'),
           ((str(tmp_path / 'short.npz'), 2, 12), 'its clips have 10 frames; 12 were asked for'),
           ((str(tmp_path / 'other.npz'), 2, 9), r'no `video` array \(it has frames\)'),
           ((str(tmp_path / 'empty'), 2, 9), 'no checkpoints, shards'),
           ((str(tmp_path / 'nowhere'), 2, 9), 'no such file, folder or built-in scene'),
           ((str(tmp_path / 'short.npz'), 1, 9), 'at least 2 a side'),
           ((str(tmp_path / 'damaged.npz'), 2, 9), r'damaged.npz: not a readable \.npz'),
           ((str(tmp_path / 'cut.npz'), 2, 9), r'cut.npz: not a readable \.npz')]
  for args, message in cases:
    with pytest.raises(ValueError, match=message):
      video_sources.load_videos(*args)
  with pytest.raises(checkpoint.NoCheckpointError):
    video_sources.load_videos(str(tmp_path / 'untrained'), 2, 9)


def test_command_line_from_shards_against_a_model(tmp_path, gan_workdir):
  folder = _shard_folder(tmp_path, count=4)
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.fvd', f'--real={folder}', f'--fake={gan_workdir}',
       '--num_videos=4', '--frames=9', '--batch_size=4', f'--output={tmp_path / "fvd.json"}'],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, VGAN_JAX_CACHE=CACHE, PYTHONPATH=REPO))
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  assert lines[-1].startswith('FVD = ') and lines[-2].startswith('KVD = ')
  saved = json.load(open(tmp_path / 'fvd.json'))
  assert saved['fvd'] == pytest.approx(float(lines[-1].split('= ')[1]), abs=0.01)
  assert saved['fvd'] > 0 and saved['protocol']['clips_per_side'] == 4
  assert saved['protocol']['frames'] == 9 and 'shards' in saved['protocol']['real']
  result = subprocess.run([sys.executable, '-m', 'experiments.fvd', f'--fake={tmp_path / "no"}'],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, VGAN_JAX_CACHE=CACHE, PYTHONPATH=REPO))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f'fvd: {tmp_path / "no"}: no such file, folder or built-in scene.')
