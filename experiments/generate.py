"""Samples from a trained VGAN: videos, the grid of them, their streams, and latent walks.

  python -m experiments.generate                                  # runs/tiny_beach (make train)
  python -m experiments.generate --workdir=runs/paper_golf --num_samples=64 --streams
  python -m experiments.generate --interpolate=8 --seed=3

Writes to --output_dir (default WORKDIR/generated): sample_NNN.mp4 and .gif for each sample (25
fps, frames enlarged --upscale times), grid.mp4/.gif of all of them, samples.npz with the latent
codes and the raw generator outputs (video, foreground, background, mask as float32), with
--streams sample_NNN_streams.mp4/.gif (background, foreground, mask and video side by side, as
the paper's Figure 3), and with --interpolate=K interpolation.mp4/.gif: K clips on the great
circle between two latent codes. The same --seed gives the same samples.
"""

import os

from absl import flags

from experiments import common
from vgan_jax import checkpoint, sampling

GAN_WORKDIR = os.path.join('runs', 'tiny_beach')  # what `make train` writes
_WORKDIR = flags.DEFINE_string('workdir', GAN_WORKDIR, 'Training work directory (or its '
                               'checkpoints/ folder).')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 16, 'Videos to generate.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where to write (default: '
                                  'WORKDIR/generated).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the latent codes.')
_STREAMS = flags.DEFINE_bool('streams', False, 'Also write each sample\'s background, foreground, '
                             'mask and video side by side.')
_INTERPOLATE = flags.DEFINE_integer('interpolate', 0, 'Also write this many clips between two '
                                    'latent codes (0: none).')
_FPS = flags.DEFINE_float('fps', 25.0, 'Playback frame rate (the paper\'s 25).')
_UPSCALE = flags.DEFINE_integer('upscale', 0, 'Enlarge frames this many times for viewing (0: to '
                                'about 128 pixels).')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 16, 'Videos generated at once.')
_BEST = flags.DEFINE_bool('best', False, 'Sample the checkpoint of the lowest FVD '
                          '(WORKDIR/checkpoints_best, kept when training with '
                          'config.fvd_every) instead of the latest.')
TRAIN_FIRST = (f'Train one first: `make train` writes {GAN_WORKDIR}, or python -m '
               'experiments.train --config=tiny --scene=beach --workdir=WORKDIR.')


def main():
  workdir, output_dir = _WORKDIR.value, _OUTPUT_DIR.value
  if _BEST.value:
    workdir = os.path.join(_WORKDIR.value, checkpoint.BEST_DIRECTORY)
    output_dir = output_dir or os.path.join(_WORKDIR.value, 'generated_best')
  paths = sampling.write_generated(workdir, output_dir, _NUM_SAMPLES.value,
                                   _SEED.value, _STREAMS.value, _INTERPOLATE.value, _FPS.value,
                                   _UPSCALE.value, _BATCH_SIZE.value, _STEP.value)
  print(f'Wrote {len(paths)} files to {os.path.dirname(paths[-1])}.')


if __name__ == '__main__':
  common.run(main, 'generate', hints={
      checkpoint.NoCheckpointError: TRAIN_FIRST,
      sampling.WrongModelKindError: 'Predict with it: python -m experiments.future --mode=predict '
                                    '--workdir=WORKDIR --images=a.png,b.jpg'})
