"""Figure 6 of the paper: what hidden units of the future-prediction image encoder respond to.

  python -m experiments.visualize_units --workdir=runs/future_tiny_beach --images=photos/
  python -m experiments.visualize_units --workdir=WORKDIR --images=a.png,b.jpg --layer=2 \
      --units=0,5,7 --top_k=8

For each chosen unit (a channel of encoder conv layer --layer, after its BatchNorm and LeakyReLU,
with BatchNorm's running averages) this finds the --top_k largest activations over all images and
all spatial positions, and writes OUTPUT_DIR/unit_NNN.png: the image regions that the unit sees at
those positions (its receptive field; the parts outside the image are grey), strongest first,
enlarged to about 64 pixels. OUTPUT_DIR/units.json lists, per unit, the image, position, crop and
activation of each. Images of any size are centre-cropped and scaled to the model's frame size, as
for prediction; grey, RGBA and 16-bit images are converted to 8-bit RGB.
"""

import os

from absl import flags

from experiments import common, unit_visualization
from vgan_jax import checkpoint, sampling

_WORKDIR = flags.DEFINE_string('workdir', None, 'Work directory of a future-prediction model '
                               '(or its checkpoints/ folder).')
_IMAGES = flags.DEFINE_string('images', None, 'A folder (its .png, .jpg, .jpeg, .bmp and .webp '
                              'files) or a comma list of image files and folders.')
_LAYER = flags.DEFINE_integer('layer', None, 'Encoder conv layer, from 0 (default: the last).')
_UNITS = flags.DEFINE_list('units', [], 'Channels of the layer to show (default: the first '
                           '--num_units).')
_NUM_UNITS = flags.DEFINE_integer('num_units', 16, 'How many units to show without --units.')
_TOP_K = flags.DEFINE_integer('top_k', 8, 'Strongest activations to show per unit.')
_COLUMNS = flags.DEFINE_integer('columns', 0, 'Crops per row of a PNG (0: all in one row).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the PNGs and units.json go (default: '
                                  'WORKDIR/units).')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
TRAIN_FIRST = ('Train a future predictor first: python -m experiments.future --mode=train '
               '--config=tiny --scene=beach.')


def main():
  written = unit_visualization.visualize_units(
      _WORKDIR.value, _IMAGES.value, _LAYER.value, _UNITS.value, _NUM_UNITS.value, _TOP_K.value,
      _OUTPUT_DIR.value, _STEP.value, _COLUMNS.value)
  print(f'Wrote {len(written) - 1} unit images and {unit_visualization.INDEX} to '
        f'{os.path.dirname(written[-1])}.')


if __name__ == '__main__':
  flags.mark_flags_as_required(['workdir', 'images'])
  common.run(main, 'visualize_units', hints={
      checkpoint.NoCheckpointError: TRAIN_FIRST, sampling.WrongModelKindError: TRAIN_FIRST})
