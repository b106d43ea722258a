"""A small-scale replication of Section 3.3 on synthetic actions, end to end on a CPU.

  python -m experiments.replicate_actions                       # ~25 minutes on 2 cores
  python -m experiments.replicate_actions --config.num_steps=2000 \
      --config.replication.seeds=0,1,2,3,4

1. Writes a UCF101-layout dataset of synthetic actions (a square moving left, right, up, down, or
   growing, over a textured background; data_pipeline/ucf101.py).
2. Prepares its training videos, without labels, as clip shards (prepare_data's code) and trains
   a VGAN on them (the `actions` config: `tiny`, 600 steps).
3. Trains action classifiers on split 1 with a fraction of the labels: the GAN's discriminator
   fine-tuned, the same net from random init, and a linear head on the GAN's frozen features
   (and on random frozen features, the floor); several seeds each.
4. Writes OUTPUT_DIR/replication.json and replication.md: top-1 accuracy, mean and spread over
   seeds, per method and label fraction.
"""

import json
import os

from absl import flags

from experiments import action_replication, common

_CONFIG = common.define_config_flag('actions')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', os.path.join('runs', 'replicate_actions'),
                                  'Where the data, the GAN and the results go.')


def main():
  table = action_replication.replicate(common.config_from_flags(), _OUTPUT_DIR.value)
  print(json.dumps({m: {f: round(v['mean'], 3) for f, v in row.items()}
                    for m, row in table.items()}, indent=1))


if __name__ == '__main__':
  common.run(main, 'replicate_actions')
