"""A small-scale replication of Section 3.3 on synthetic actions, end to end on a CPU.

  python -m experiments.replicate_actions                       # ~25 minutes on 2 cores
  python -m experiments.replicate_actions --gan_steps=2000 --seeds=0,1,2,3,4

1. Writes a UCF101-layout dataset of synthetic actions (a square moving left, right, up, down, or
   growing, over a textured background; data_pipeline/ucf101.py).
2. Prepares its training videos, without labels, as clip shards (prepare_data's code) and trains
   a VGAN on them (the `tiny` config unless --config says otherwise).
3. Trains action classifiers on split 1 with a fraction of the labels: the GAN's discriminator
   fine-tuned, the same net from random init, and a linear head on the GAN's frozen features
   (and on random frozen features, the floor); several seeds each.
4. Writes OUTPUT_DIR/replication.json and replication.md: top-1 accuracy, mean and spread over
   seeds, per method and label fraction.
"""

import json
import os

import numpy as np
from absl import app, flags, logging

from data_pipeline import clips, prepare, ucf101
from experiments import common, evaluation, training
from vgan_io import files

METHODS = (('gan', 'finetune'), ('random', 'finetune'), ('gan', 'linear'), ('random', 'linear'))

_CONFIG = common.define_config_flag('tiny')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', os.path.join('runs', 'replicate_actions'),
                                  'Where the data, the GAN and the results go.')
_GAN_STEPS = flags.DEFINE_integer('gan_steps', 600, 'GAN training steps.')
_FRACTIONS = flags.DEFINE_list('fractions', ['0.125', '0.25', '1'], 'Label fractions.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds of each classifier run.')
_EPOCHS = flags.DEFINE_integer('epochs', 40, 'Classifier epochs.')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', 1e-3, 'Classifier learning rate.')
_VIDEOS = flags.DEFINE_integer('videos_per_class', 24, 'Training videos per class (plus 8 test).')


def replicate(config, output_dir: str, gan_steps: int, fractions: list[float],
              seeds: list[int], videos_per_class: int = 24, test_per_class: int = 8,
              progress: bool = True) -> dict:
  """Runs the whole study; returns {method: {fraction: {'mean', 'std', 'runs'}}}."""
  data_dir = os.path.join(output_dir, 'ucf')
  if not os.path.exists(os.path.join(data_dir, ucf101.LISTS, 'testlist01.txt')):
    ucf101.write_synthetic_ucf(data_dir, train_per_class=videos_per_class,
                               test_per_class=test_per_class, frames=48, size=48)
  # The GAN sees the training videos only, and no labels.
  train_videos = [os.path.join(data_dir, ucf101.VIDEOS, video.path)
                  for video in ucf101.read_split(data_dir, 1, 'train')]
  clip_options = clips.ClipOptions(frames=config.model.frames, size=config.model.size,
                                   stride=config.model.frames // 2, stabilize=False)
  prepare.prepare_videos(train_videos, os.path.join(output_dir, 'clips'), 'actions', clip_options,
                         progress=progress)
  gan_config = config.copy_and_resolve_references()
  gan_config.num_steps = gan_steps
  gan_workdir = os.path.join(output_dir, 'gan')
  training.train_and_evaluate(gan_config, gan_workdir, 'actions',
                              os.path.join(output_dir, 'clips'))

  table = {}
  trunk = evaluation.load_gan_trunk(gan_workdir, config)
  for init, mode in METHODS:
    method = f'{init}_{mode}'
    table[method] = {}
    for fraction in fractions:
      runs = []
      for seed in seeds:
        run_dir = os.path.join(output_dir, 'classifiers', f'{method}_{fraction:g}_seed{seed}')
        result, _ = evaluation.evaluate_split(
            config, data_dir, 1, init, mode, trunk, fraction, seed, run_dir, progress=progress,
            cache_dir=os.path.join(output_dir, 'cache'))
        runs.append(result['top1'])
        logging.info('%s, fraction %g, seed %d: top-1 %.3f', method, fraction, seed, runs[-1])
      table[method][f'{fraction:g}'] = {'mean': float(np.mean(runs)),
                                        'std': float(np.std(runs)), 'runs': runs}
  files.write_json(os.path.join(output_dir, 'replication.json'), table)
  _write_markdown(table, fractions, os.path.join(output_dir, 'replication.md'))
  return table


def _write_markdown(table: dict, fractions, path: str) -> None:
  lines = ['| method | ' + ' | '.join(f'{f:g} of labels' for f in fractions) + ' |',
           '|---' * (len(fractions) + 1) + '|']
  for method, row in table.items():
    cells = [f'{100 * row[f"{f:g}"]["mean"]:.1f} ± {100 * row[f"{f:g}"]["std"]:.1f}'
             for f in fractions]
    lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
  with files.atomic_path(path) as temporary:
    with open(temporary, 'w') as file:
      file.write('\n'.join(lines) + '\n')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.setup_runtime()
  config = _CONFIG.value
  config.classifier.num_epochs = _EPOCHS.value
  config.classifier.learning_rate = _LEARNING_RATE.value
  config.classifier.batch_size = 16
  config.classifier.test_windows = 3
  table = replicate(config, _OUTPUT_DIR.value, _GAN_STEPS.value,
                    [float(f) for f in _FRACTIONS.value], [int(s) for s in _SEEDS.value],
                    _VIDEOS.value)
  print(json.dumps({m: {f: round(v['mean'], 3) for f, v in row.items()}
                    for m, row in table.items()}, indent=1))


if __name__ == '__main__':
  app.run(main)
