"""Trains a VGAN: one D update then one G update per step, data-parallel over every device.

  python -m experiments.train --config=tiny --scene=beach      # 2-core CPU demo, about 9 minutes
  python -m experiments.train --scene=beach                    # the paper's config
  python -m experiments.train --scene=golf --data_dir=/data/vgan --config.batch_size=128

The work directory gets TensorBoard summaries (`tensorboard --logdir WORKDIR`), GIF grids of
samples and of their foreground, background and mask streams (`samples/`), and orbax checkpoints
(`checkpoints/`) holding the config. Rerunning the same command resumes from the latest
checkpoint; Ctrl-C (or SIGTERM) stops every host after the same step and saves one. --scene and
--data_dir are shorthands for --config.data.scene and --config.data.data_dir.

Several processes (hosts, or processes on one machine): the same command in each, with
--multihost on a cluster JAX detects (Slurm, Cloud TPU, MPI), else
--coordinator_address=HOST:PORT --num_processes=N --process_id=I.
"""

from absl import flags

from experiments import common, tasks

_CONFIG = common.define_config_flag('paper')
common.define_data_flags()
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where checkpoints, summaries and samples go '
                               '(default: runs/CONFIG_SCENE).')
join_distributed_job = common.define_distributed_flags()


def main():
  join_distributed_job()
  config = common.config_from_flags()
  tasks.train_gan(config, _WORKDIR.value or common.default_workdir(config))


if __name__ == '__main__':
  common.run(main, 'train')
