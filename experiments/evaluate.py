"""Action recognition on UCF101 with a VGAN's discriminator (Section 3.3, Table 1, Figure 4).

  python -m experiments.evaluate --data_dir=/data/ucf101 --init=gan --checkpoint=runs/paper_golf
  python -m experiments.evaluate --data_dir=/data/ucf101 --init=random --split=1,2,3
  python -m experiments.evaluate --data_dir=... --init=gan --checkpoint=... --mode=linear
  python -m experiments.evaluate --data_dir=... --checkpoint=... --sweep     # Figure 4b/4c

--data_dir holds UCF-101/ and ucfTrainTestlist/ as UCF101 ships them (nothing is downloaded).
The discriminator trunk gets a K-way softmax head (K from classInd.txt) with dropout 0.5 on the
penultimate layer and is fine-tuned (--mode=finetune) or only the head is trained on its frozen
features (--mode=linear), from the GAN checkpoint (--init=gan) or random init (--init=random),
with all labels or --label_fraction of each class's training videos (seeded). Writes
OUTPUT_DIR/results.json (top-1 and top-5 per split and their mean) and TensorBoard curves; with
--sweep, the fractions 1/32 .. 1 for both inits, sweep.json, figure4b.png and figure4c.png.
Decoded videos are cached in OUTPUT_DIR/cache and reused.
"""

import os
import sys

from absl import app, flags

from experiments import common, evaluation
from vgan_jax import action_recognition, configs

_CONFIG = common.define_config_flag('paper')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Folder holding UCF-101/ and ucfTrainTestlist/.')
_INIT = flags.DEFINE_enum('init', 'gan', evaluation.INITS, 'Start from the GAN checkpoint\'s '
                          'discriminator, or from random init.')
_MODE = flags.DEFINE_enum('mode', 'finetune', action_recognition.MODES, 'Fine-tune every layer, or '
                          'train a linear head on frozen features.')
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'GAN work directory (or its checkpoints/).')
_SPLIT = flags.DEFINE_list('split', ['1'], 'UCF101 splits to run (1, 2, 3).')
_LABEL_FRACTION = flags.DEFINE_float('label_fraction', 1.0, 'Fraction of each class\'s training '
                                     'videos whose labels are used.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the label subset, init and data order.')
_STABILIZE = flags.DEFINE_bool('stabilize', False, 'Stabilize the videos first (as the authors\' '
                               'frames were).')
_SWEEP = flags.DEFINE_bool('sweep', False, 'Run label fractions 1/32..1 for both inits and plot.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Default: runs/ucf101_CONFIG_INIT_MODE.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.setup_runtime()
  name = common.config_name(_CONFIG)
  output_dir = _OUTPUT_DIR.value or os.path.join(
      'runs', f'ucf101_{name}_{"sweep" if _SWEEP.value else _INIT.value}_{_MODE.value}')
  try:
    if not _DATA_DIR.value:
      raise ValueError('--data_dir is required: the folder holding UCF-101/ and '
                       'ucfTrainTestlist/.')
    if not all(split in ('1', '2', '3') for split in _SPLIT.value):
      raise ValueError(f'--split takes 1, 2 and/or 3; got {",".join(_SPLIT.value)}.')
    splits = tuple(int(split) for split in _SPLIT.value)
    config = _CONFIG.value
    configs.validate(config)
    if _SWEEP.value:
      table = evaluation.sweep(config, _DATA_DIR.value, _MODE.value, _CHECKPOINT.value, splits,
                               _SEED.value, output_dir, stabilized=_STABILIZE.value)
      for init, row in table.items():
        print(init, ' '.join(f'{key}:{value["top1"]:.3f}' for key, value in row.items()))
    else:
      results = evaluation.evaluate(config, _DATA_DIR.value, _INIT.value, _MODE.value,
                                    _CHECKPOINT.value, splits, _LABEL_FRACTION.value, _SEED.value,
                                    output_dir, stabilized=_STABILIZE.value)
      print(f'top-1 {results["mean"]["top1"]:.4f}, top-5 {results["mean"]["top5"]:.4f} '
            f'(mean of splits {",".join(_SPLIT.value)}); {output_dir}/results.json')
  except (ValueError, OSError) as error:  # FileNotFoundError and CheckpointMismatchError too
    sys.exit(f'evaluate: {error}')


if __name__ == '__main__':
  app.run(main)
