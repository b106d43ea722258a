"""Action recognition on UCF101 with a VGAN's discriminator (Section 3.3, Table 1, Figure 4).

  python -m experiments.evaluate --data_dir=/data/ucf101 --checkpoint=runs/paper_golf
  python -m experiments.evaluate --data_dir=/data/ucf101 --config.classifier.init=random \\
      --config.classifier.splits=1,2,3
  python -m experiments.evaluate --data_dir=... --checkpoint=... --config.classifier.mode=linear
  python -m experiments.evaluate --data_dir=... --checkpoint=... --sweep     # Figure 4b/4c
  python -m experiments.evaluate --tfds_data_dir=~/tensorflow_datasets --checkpoint=...

--data_dir (--config.data.data_dir) holds UCF-101/ and ucfTrainTestlist/ as UCF101 ships them
(nothing is downloaded); or --tfds_data_dir (--config.data.tfds_data_dir) is a TensorFlow
Datasets data_dir in which `tfds build ucf101` prepared UCF101 (data_pipeline/tfds_ucf101.py:
the same splits and label fractions; nothing is downloaded either); --checkpoint
(--config.classifier.gan_checkpoint) is the GAN's work directory. The discriminator trunk gets a
K-way softmax head (K from classInd.txt) with dropout 0.5 on the penultimate layer and is
fine-tuned (config.classifier.mode=finetune) or only the head is trained on its frozen features
(linear), from the GAN checkpoint (config.classifier.init=gan) or random init (random), with all
labels or config.classifier.label_fraction of each class's training videos (seeded by
config.seed). The experiment's settings are config fields, saved with each run's checkpoints:
an interrupted run resumes. Writes OUTPUT_DIR/results.json (top-1 and
top-5 per split and their mean) and TensorBoard curves; with --sweep, the fractions of
config.classifier.sweep_fractions for both inits, sweep.json, figure4b.png and figure4c.png.
Decoded videos are cached in OUTPUT_DIR/cache and reused.
"""

import os

from absl import flags

from experiments import common, evaluation

_CONFIG = common.define_config_flag('paper')
common.define_data_flags(scene=False)
flags.DEFINE_string('tfds_data_dir', None, 'Shorthand for --config.data.tfds_data_dir: a '
                    'TensorFlow Datasets data_dir where ucf101 is prepared, read instead of '
                    '--data_dir.')
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'Shorthand for '
                                  '--config.classifier.gan_checkpoint: the GAN work directory.')
_SWEEP = flags.DEFINE_bool('sweep', False, 'Run config.classifier.sweep_fractions for both inits '
                           'and plot Figures 4b and 4c.')
join_distributed_job = common.define_distributed_flags()
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Default: runs/ucf101_CONFIG_INIT_MODE '
                                  '(INIT: sweep with --sweep).')


def main():
  join_distributed_job()
  config = common.config_from_flags()
  settings = config.classifier
  output_dir = _OUTPUT_DIR.value or os.path.join(
      'runs', f'ucf101_{common.config_name()}_{"sweep" if _SWEEP.value else settings.init}_'
      f'{settings.mode}')
  if _SWEEP.value:
    table = evaluation.sweep(config, output_dir)
    for init, row in table.items():
      print(init, ' '.join(f'{key}:{value["top1"]:.3f}' for key, value in row.items()))
  else:
    results = evaluation.evaluate(config, output_dir)
    print(f'top-1 {results["mean"]["top1"]:.4f}, top-5 {results["mean"]["top5"]:.4f} '
          f'(mean of splits {settings.splits}); {output_dir}/results.json')


if __name__ == '__main__':
  common.run(main, 'evaluate')
