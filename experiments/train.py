"""Trains a VGAN: one D update then one G update per step, data-parallel over every device.

  python -m experiments.train --config=tiny --scene=beach      # 2-core CPU demo, ~10 minutes
  python -m experiments.train --scene=beach                    # the paper's config
  python -m experiments.train --scene=golf --data_dir=/data/vgan --config.batch_size=128

The work directory gets TensorBoard summaries (`tensorboard --logdir WORKDIR`), GIF grids of
samples and of their foreground, background and mask streams (`samples/`), and orbax checkpoints
(`checkpoints/`). Rerunning the same command resumes from the latest checkpoint; Ctrl-C (or
SIGTERM) stops after the current step and saves one.
"""

import os

from absl import app, flags

from experiments import common
from experiments.training import train_and_evaluate
from vgan_jax import configs, parallel

_CONFIG = common.define_config_flag('paper')
_SCENE = flags.DEFINE_string(
    'scene', 'beach', 'golf, beach, train_station, babies, or the name of a prepared data folder '
    'under --data_dir.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where checkpoints, summaries and samples go '
                               '(default: runs/CONFIG_SCENE).')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Folder of prepared clips, DATA_DIR/SCENE/'
                                '*.tfrecord; without it (or without shards there) training uses '
                                'the built-in synthetic scenes.')
_MULTIHOST = flags.DEFINE_bool('multihost', False, 'Call jax.distributed.initialize() first (one '
                               'process per host; each reads its own part of the data).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  if _MULTIHOST.value:
    parallel.initialize_distributed()
  common.setup_runtime()
  config = _CONFIG.value
  configs.validate(config)
  workdir = _WORKDIR.value or os.path.join('runs', f'{common.config_name(_CONFIG)}_{_SCENE.value}')
  train_and_evaluate(config, workdir, _SCENE.value, _DATA_DIR.value)


if __name__ == '__main__':
  app.run(main)
