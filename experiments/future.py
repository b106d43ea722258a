"""Future prediction (Section 3.4): a still image -> the video that follows it.

  python -m experiments.future --mode=train --config=tiny --scene=beach
  python -m experiments.future --mode=train --scene=golf --data_dir=data
  python -m experiments.future --mode=predict --config=tiny --scene=beach --images=a.png,b.jpg

Training is the GAN's training (the same state, step and loop, experiments/training.py) with
`config.model.generator_input='image'`: an image encoder maps each clip's first frame to the
two-stream generator's code, the discriminator is unchanged, and the generator loss adds
`config.reconstruction_weight` (10) times the L1 (or `config.reconstruction_loss=l2`) distance
between the first generated frame and the input. It reads the same shards as training
(--data_dir), or the built-in scenes when there are none.

Prediction writes, per image, NAME.mp4 and NAME.gif (25 fps, enlarged for viewing) and, with
--streams (default), NAME_streams.mp4/.gif: background, foreground, mask and video side by side;
and predictions.npz with the raw outputs. Images of any size are centre-cropped and scaled to the
model's frame size (the log says so); grey and RGBA images are converted to RGB.
"""

import os

from absl import flags

from experiments import common, tasks
from vgan_jax import checkpoint, sampling

_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'predict'], 'Train a model, or predict the '
                          'future of --images with one.')
_CONFIG = common.define_config_flag('paper')
common.define_data_flags()
_WORKDIR = flags.DEFINE_string('workdir', None, 'Work directory (default: '
                               'runs/future_CONFIG_SCENE).')
_IMAGES = flags.DEFINE_list('images', [], 'Images to predict from (predict).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where predictions go (default: '
                                  'WORKDIR/predictions).')
_STREAMS = flags.DEFINE_bool('streams', True, 'Also write the streams side by side (predict).')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step to predict with (default: latest).')
_FPS = flags.DEFINE_float('fps', 25.0, 'Playback frame rate of the predictions.')
_UPSCALE = flags.DEFINE_integer('upscale', 0, 'Enlarge frames this many times for viewing (0: to '
                                'about 128 pixels).')
TRAIN_FIRST = ('Train one first: python -m experiments.future --mode=train --config=tiny '
               '--scene=beach.')


def main():
  config = common.config_from_flags()
  with config.unlocked():
    config.model.generator_input = 'image'
  workdir = _WORKDIR.value or common.default_workdir(config, 'future_')
  if _MODE.value == 'train':
    tasks.train_gan(config, workdir)
  else:
    if not _IMAGES.value:
      raise ValueError('--mode=predict needs --images=a.png,b.jpg,...')
    paths = sampling.predict_future(workdir, _IMAGES.value, _OUTPUT_DIR.value, _STREAMS.value,
                                    _FPS.value, _UPSCALE.value, _STEP.value)
    print(f'Wrote {len(paths)} files to {os.path.dirname(paths[-1])}.')


if __name__ == '__main__':
  common.run(main, 'future', hints={
      checkpoint.NoCheckpointError: TRAIN_FIRST,
      sampling.WrongModelKindError: (
          f'Sample it with python -m experiments.generate. {TRAIN_FIRST}')})
