"""generate: sample files with the right frames, sizes and ranges; streams that recompose the
video; repeatable seeds; latent walks; clear errors."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import video_files
from PIL import Image

from vgan_jax import checkpoint, configs, sampling

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_samples_grid_streams_and_arrays(gan_workdir, tmp_path):
  out = tmp_path / 'out'
  paths = sampling.write_generated(gan_workdir, str(out), num_samples=3, seed=0, streams=True,
                                   upscale=2)
  assert sorted(os.listdir(out)) == sorted(
      [f'sample_{i:03d}{s}.{e}' for i in range(3) for s in ('', '_streams') for e in ('mp4', 'gif')]
      + ['grid.mp4', 'grid.gif', 'samples.npz'])
  assert len(paths) == len(os.listdir(out))
  frames = video_files.read_video_frames(out / 'sample_000.mp4')
  assert frames.shape == (16, 64, 64, 3)  # 16 frames of 32x32, enlarged twice
  gif = Image.open(out / 'sample_000.gif')
  assert gif.size == (64, 64)
  # Streams side by side: background, foreground, mask, video, 1-px borders, enlarged twice.
  assert video_files.read_video_frames(out / 'sample_001_streams.mp4').shape == (16, 68, 266, 3)

  arrays = np.load(out / 'samples.npz')
  video, mask = arrays['video'], arrays['mask']
  assert arrays['latents'].shape == (3, 100) and video.shape == (3, 16, 32, 32, 3)
  assert video.min() >= -1 and video.max() <= 1 and mask.min() >= 0 and mask.max() <= 1
  recomposed = mask * arrays['foreground'] + (1 - mask) * arrays['background'][:, None]
  np.testing.assert_allclose(recomposed, video, atol=1e-5)
  # The MP4 shows the same video (up to compression) as the raw arrays.
  expected = np.round((video[0] + 1) * 127.5).repeat(2, axis=1).repeat(2, axis=2)
  assert np.abs(frames[..., ::-1].astype(float) - expected).mean() < 12


def test_same_seed_same_samples_and_the_interpolation(gan_workdir, tmp_path):
  def arrays(name, seed, **kwargs):
    sampling.write_generated(gan_workdir, str(tmp_path / name), num_samples=2, seed=seed,
                             **kwargs)
    return np.load(tmp_path / name / 'samples.npz')

  first, again, other = arrays('a', 5, interpolate=4), arrays('b', 5), arrays('c', 6)
  np.testing.assert_array_equal(first['video'], again['video'])
  assert not np.allclose(first['video'], other['video'])
  walk = first['interpolation_latents']
  assert walk.shape == (4, 100) and first['interpolation_video'].shape == (4, 16, 32, 32, 3)
  assert os.path.exists(tmp_path / 'a' / 'interpolation.mp4')
  # Along the great circle, not the chord: the codes in between keep the ends' length.
  norms = np.linalg.norm(walk, axis=1)
  assert norms[1:-1].min() >= min(norms[0], norms[-1]) - 1e-3


def test_interpolation_by_hand():
  start, end = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])  # 90 degrees apart
  walk = sampling.interpolate_latents(start, end, 4)  # 0, 30, 60, 90 degrees
  angles = np.radians([0, 30, 60, 90])
  np.testing.assert_allclose(walk, np.stack([np.cos(angles), np.sin(angles)], 1), atol=1e-6)
  code = jnp.ones(5)
  np.testing.assert_allclose(sampling.interpolate_latents(code, code, 3), np.ones((3, 5)))


def test_missing_checkpoint_says_how_to_train_one(tmp_path):
  with pytest.raises(checkpoint.NoCheckpointError, match='No checkpoints in'):
    sampling.write_generated(str(tmp_path / 'nothing'))
  with pytest.raises(ValueError, match='interpolate 0 or at least 2'):
    sampling.write_generated(str(tmp_path / 'nothing'), interpolate=1)


def test_command_line(gan_workdir, tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.generate', f'--workdir={gan_workdir}',
       '--num_samples=2', f'--output_dir={tmp_path}', '--streams'],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Wrote 11 files' in result.stdout
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.generate', f'--workdir={tmp_path / "none"}'],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('generate: No checkpoints in') and 'make train' in last


def test_a_checkpoint_from_before_future_prediction_still_loads():
  """Configs saved before the encoder fields existed mean a GAN from noise: they must match."""
  saved = configs.get_config('test').to_dict()
  for field in ('generator_input', 'encoder_depth', 'encoder_width'):
    del saved['model'][field]
  checkpoint.check_compatible(saved, configs.get_config('test'), 'old')
  assert configs.with_defaults(saved).model.generator_input == 'noise'
  saved['model']['width'] = 8
  with pytest.raises(checkpoint.CheckpointMismatchError, match='model.width: checkpoint 8'):
    checkpoint.check_compatible(saved, configs.get_config('test'), 'old')


def test_conv_impl_and_compute_dtype_do_not_make_another_model():
  saved = configs.get_config('test').to_dict()
  current = configs.get_config('test')
  current.model.compute_dtype = 'bfloat16'
  current.model.conv_impl = 'xla'
  current.model.two_stream_impl = 'plain' if saved['model']['two_stream_impl'] == 'fused' else (
      'fused')
  checkpoint.check_compatible(saved, current, 'float32 run')  # the same parameters: no error
