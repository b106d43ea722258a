"""The paper's baseline: an autoencoder (encoder like D with a 100-d code, decoder the two-stream
G) with a 256-component Gaussian mixture on its codes; sampling draws codes and decodes them.

  python -m experiments.baseline --config=tiny --scene=beach        # train, fit, sample (CPU)
  python -m experiments.baseline --scene=golf --data_dir=data       # the paper's config
  python -m experiments.baseline --mode=sample --config=tiny --scene=beach --seed=3
  python -m experiments.baseline --config=tiny --config.baseline.gmm_components=64

--mode=all (the default) runs the three stages, each only as far as it is not done yet:
  train   trains to config.num_steps with the reconstruction loss (config.reconstruction_loss,
          L1, plus the mask prior), resuming from WORKDIR/checkpoints; TensorBoard summaries in
          WORKDIR; Ctrl-C stops after the current step with a checkpoint. Done: at num_steps.
  fit     encodes the first config.baseline.gmm_clips training clips and fits a
          config.baseline.gmm_components Gaussian mixture (gmm_covariance, diagonal by default;
          seeded with config.seed) to WORKDIR/gmm.npz. Done: a gmm.npz fitted on the latest
          checkpoint with the same settings.
  sample  decodes --num_samples draws of the mixture into --output_dir (WORKDIR/generated):
          sample_NNN.mp4/.gif, grid.mp4/.gif and samples.npz (codes and raw outputs), as
          experiments/generate.py does for the GAN. Always runs.
--mode=train, fit or sample runs that stage alone (fit then refits even when done; sample needs
a gmm.npz). The work is experiments/autoencoder_baseline.py's.
"""

import os

from absl import flags

from experiments import autoencoder_baseline, common
from vgan_jax import checkpoint

_MODE = flags.DEFINE_enum('mode', 'all', list(autoencoder_baseline.STAGES), 'Which stage to run; '
                          'all: train, fit and sample, skipping what is done.')
_CONFIG = common.define_config_flag('paper')
common.define_data_flags()
_WORKDIR = flags.DEFINE_string('workdir', None, 'Checkpoints, summaries, gmm.npz and samples '
                               '(default: runs/baseline_CONFIG_SCENE).')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 16, 'Videos to sample.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the sampled codes.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where samples go (default: '
                                  'WORKDIR/generated).')
_STREAMS = flags.DEFINE_bool('streams', False, "Also write each sample's background, foreground, "
                             'mask and video side by side.')
_FPS = flags.DEFINE_float('fps', 25.0, "Playback frame rate (the paper's 25).")
_UPSCALE = flags.DEFINE_integer('upscale', 0, 'Enlarge frames this many times for viewing (0: to '
                                'about 128 pixels).')
TRAIN_FIRST = ('Train one first: python -m experiments.baseline --mode=train --config=tiny '
               '--scene=beach (or --workdir=WORKDIR).')


def main():
  config = common.config_from_flags()
  workdir = _WORKDIR.value or common.default_workdir(config, 'baseline_')
  sample = dict(output_dir=_OUTPUT_DIR.value, num_samples=_NUM_SAMPLES.value, seed=_SEED.value,
                streams=_STREAMS.value, fps=_FPS.value, upscale=_UPSCALE.value)
  paths = autoencoder_baseline.run(_MODE.value, config, workdir, sample)
  if paths:
    print(f'Wrote {len(paths)} files to {os.path.dirname(paths[-1])}.')


if __name__ == '__main__':
  common.run(main, 'baseline', hints={checkpoint.NoCheckpointError: TRAIN_FIRST})
