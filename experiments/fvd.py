"""Fréchet Video Distance (and KVD) between two sets of videos, as the reference computes it.

  python -m experiments.fvd                 # the built-in beach scene vs `make train`'s model
  python -m experiments.fvd --real=data/golf --fake=runs/paper_golf --num_videos=2048 --frames=16
  python -m experiments.fvd --real=clips/ --fake=samples.npz --frames=32

--real and --fake are each a training work directory (samples of its generator, or of the
autoencoder + GMM baseline), a shard folder (DATA_DIR/SCENE), a folder of video files, an .npz
whose `video` array is [N, T, H, W, 3] (uint8 or float in [-1, 1]), or a built-in scene name
(experiments/video_sources.py). It prints the protocol (clips per side, frames, frame sizes, the
sources), KVD, and as its last line `FVD = <number>`, and writes them as JSON to --output
(default: beside the fake source). FVD moves with the protocol: report it with the number. The
field reports 2048 clips a side of 16 frames.
"""

import os

from absl import flags

from experiments import common, video_sources
from vgan_io import files
from vgan_jax import checkpoint
from vgan_jax.metrics import fvd

_REAL = flags.DEFINE_string('real', 'beach', 'The real videos (see the module docstring).')
_FAKE = flags.DEFINE_string('fake', os.path.join('runs', 'tiny_beach'), 'The videos to measure.')
_NUM_VIDEOS = flags.DEFINE_integer('num_videos', 2048, 'Clips a side.')
_FRAMES = flags.DEFINE_integer('frames', 16, 'Frames a clip, from its start (at least 9).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the samples drawn from a model.')
_SIZE = flags.DEFINE_integer('size', 64, 'Frame size of video files and built-in scenes.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 8, 'Clips I3D takes at once.')
_OUTPUT = flags.DEFINE_string('output', None, 'The JSON (default: FAKE/fvd.json for a folder, '
                              'FAKE_fvd.json beside a file, runs/fvd_FAKE.json for a scene).')
TRAIN_FIRST = 'Train one first: `make train` writes runs/tiny_beach.'


def default_output(fake: str) -> str:
  if os.path.isdir(fake):
    return os.path.join(fake, 'fvd.json')
  if os.path.isfile(fake):
    return os.path.splitext(fake)[0] + '_fvd.json'
  return os.path.join('runs', f'fvd_{fake}.json')


def measure(real: str, fake: str, num_videos: int, frames: int, seed: int, size: int,
            batch_size: int) -> dict:
  """FVD, KVD and the protocol of `real` against `fake`, holding one batch of videos at a time."""
  video_sources.check_fvd_protocol(num_videos, frames)
  features = fvd.I3DFeatures(batch_size)
  # Both opened first: a bad fake source is refused before the real side's I3D pass.
  real_videos, fake_videos = (
      video_sources.VideoSource(source, num_videos, frames, seed, size, features.batch_size)
      for source in (real, fake))
  result = fvd.distances(features.of_batches(real_videos.batches()),
                         features.of_batches(fake_videos.batches()))
  result['protocol'] = dict(
      clips_per_side=num_videos, frames=frames, real_frame_size=real_videos.frame_size,
      fake_frame_size=fake_videos.frame_size, real=real_videos.description,
      fake=fake_videos.description, features=fvd.FEATURES)
  return result


def main():
  if _FAKE.value == _FAKE.default and not os.path.exists(_FAKE.value):
    raise checkpoint.NoCheckpointError(f'{_FAKE.value}: no such folder (the default --fake).')
  result = measure(_REAL.value, _FAKE.value, _NUM_VIDEOS.value, _FRAMES.value, _SEED.value,
                   _SIZE.value, _BATCH_SIZE.value)
  output = _OUTPUT.value or default_output(_FAKE.value)
  files.write_json(output, result)
  protocol = result['protocol']
  print(f'real: {protocol["real"]}, frames {protocol["real_frame_size"]}')
  print(f'fake: {protocol["fake"]}, frames {protocol["fake_frame_size"]}')
  print(f'protocol: {protocol["clips_per_side"]} clips a side, {protocol["frames"]} frames; '
        f'written to {output}')
  print(f'KVD = {result["kvd"]:.4f}')
  print(f'FVD = {result["fvd"]:.2f}')


if __name__ == '__main__':
  common.run(main, 'fvd', hints={checkpoint.NoCheckpointError: TRAIN_FIRST})
