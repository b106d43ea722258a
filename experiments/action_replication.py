"""A small-scale replication of Section 3.3 on synthetic actions, end to end on a CPU, without
flags: experiments/replicate_actions.py's work (see there for the steps).
"""

import os

import ml_collections
import numpy as np
from absl import logging

from data_pipeline import clips, prepare, ucf101
from experiments import evaluation, tasks, training
from vgan_io import files
from vgan_jax import configs

METHODS = (('gan', 'finetune'), ('random', 'finetune'), ('gan', 'linear'), ('random', 'linear'))


def replicate(config: ml_collections.ConfigDict, output_dir: str, test_per_class: int = 8,
              progress: bool = True) -> dict:
  """Runs the whole study (config.num_steps GAN steps; config.replication's videos per class,
  label fractions and seeds; config.classifier's training); returns
  {method: {fraction: {'mean', 'std', 'runs'}}}."""
  videos_per_class = config.replication.videos_per_class
  fractions = configs.number_list('replication.fractions', config.replication.fractions)
  seeds = configs.number_list('replication.seeds', config.replication.seeds, int)
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
  with gan_config.unlocked():
    gan_config.data.scene = 'actions'
    gan_config.data.data_dir = os.path.join(output_dir, 'clips')
  gan_workdir = os.path.join(output_dir, 'gan')
  training.check_finished(tasks.train_gan(gan_config, gan_workdir), gan_config.num_steps,
                          gan_workdir)

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
