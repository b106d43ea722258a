"""The paper's comparison of generators measured with FVD: two-stream, one-stream and the
autoencoder + GMM baseline, the same budget on each built-in scene, several seeds.

  python -m experiments.compare_models                 # the comparison config (see its docstring)
  python -m experiments.compare_models --scenes=golf --seeds=0,1,2,3,4
  python -m experiments.compare_models --scenes=my_clips --data_dir=data --config.num_steps=5000
  python -m experiments.compare_models --quick         # minutes: the test-sized nets, one scene

Each run trains in OUTPUT/SCENE/MODEL_seedS (an interrupted comparison resumes: the runs done are
in OUTPUT/results.json, a run cut short resumes from its checkpoint); the table (FVD and KVD mean
± std over seeds, the two-stream mask's mean and the background's temporal variance) is printed
and written to OUTPUT/summary.md and summary.json. The work is experiments/model_comparison.py's.
"""

import os

from absl import flags

from experiments import common, model_comparison
from vgan_jax import configs

_CONFIG = common.define_config_flag('comparison')
common.define_data_flags(scene=False)
_SCENES = flags.DEFINE_list('scenes', ['beach', 'golf', 'train_station', 'babies'],
                            'Built-in scenes or prepared data folders (with --data_dir).')
_MODELS = flags.DEFINE_list('models', list(model_comparison.MODELS), 'Which models, of '
                            f'{", ".join(model_comparison.MODELS)}.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Training seeds.')
_QUICK = flags.DEFINE_bool('quick', False, 'A check that the comparison runs, in minutes: the '
                           'test config for 2 steps, 4 clips a side of 9 frames, golf, seeds '
                           '0,1 (unless --scenes/--seeds are given). Its numbers mean nothing.')
_OUTPUT = flags.DEFINE_string('output', None, 'Default: runs/compare_CONFIG (runs/compare_quick '
                              'with --quick).')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 8, 'Clips I3D takes at once.')


def main():
  config = common.config_from_flags()
  scenes, seeds = _SCENES.value, _SEEDS.value
  if _QUICK.value:
    config = model_comparison.quick_config(config)
    scenes = scenes if flags.FLAGS['scenes'].present else ['golf']
    seeds = seeds if flags.FLAGS['seeds'].present else ['0', '1']
  try:
    seeds = [int(seed) for seed in seeds]
  except ValueError:
    raise ValueError(f'--seeds={",".join(seeds)}: give whole numbers.') from None
  configs.validate(config)
  output = _OUTPUT.value or os.path.join(
      'runs', 'compare_quick' if _QUICK.value else f'compare_{common.config_name()}')
  summary = model_comparison.compare(config, scenes, _MODELS.value, seeds, output,
                                     _BATCH_SIZE.value)
  print(model_comparison.markdown_table(summary), end='')
  print(f'Written to {output}/{model_comparison.TABLE_FILE}.')


if __name__ == '__main__':
  common.run(main, 'compare_models')
