"""The paper's baseline: an autoencoder (encoder like D with a 100-d code, decoder the two-stream
G) with a 256-component Gaussian mixture on its codes; sampling draws codes and decodes them.

  python -m experiments.baseline --config=tiny --scene=beach        # train, fit, sample (CPU)
  python -m experiments.baseline --scene=golf --data_dir=data       # the paper's config
  python -m experiments.baseline --mode=sample --config=tiny --scene=beach --seed=3

--mode=all (the default) runs the three stages, each only as far as it is not done yet:
  train   trains to config.num_steps with the reconstruction loss (config.reconstruction_loss,
          L1, plus the mask prior), resuming from WORKDIR/checkpoints; TensorBoard summaries in
          WORKDIR; Ctrl-C stops after the current step with a checkpoint. Done: at num_steps.
  fit     encodes the first --gmm_clips training clips and fits a --gmm_components Gaussian
          mixture (--gmm_covariance, diagonal by default) to WORKDIR/gmm.npz. Done: a gmm.npz
          fitted on the latest checkpoint with the same settings.
  sample  decodes --num_samples draws of the mixture into --output_dir (WORKDIR/generated):
          sample_NNN.mp4/.gif, grid.mp4/.gif and samples.npz (codes and raw outputs), as
          experiments/generate.py does for the GAN. Always runs.
--mode=train, fit or sample runs that stage alone (fit then refits even when done; sample needs
a gmm.npz). fit and sample read the model's config from the checkpoint and run in one process.
"""

import os
import sys

import jax
from absl import app, flags, logging
from flax.metrics import tensorboard

from data_pipeline import input_pipeline
from experiments import common, training
from vgan_jax import autoencoder, configs

_MODE = flags.DEFINE_enum('mode', 'all', ['all', 'train', 'fit', 'sample'], 'Which stage to run; '
                          'all: train, fit and sample, skipping what is done.')
_CONFIG = common.define_config_flag('paper')
_SCENE = flags.DEFINE_string('scene', 'beach', 'Built-in scene, or prepared data folder under '
                             '--data_dir; part of the default --workdir.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Folder of prepared clips, DATA_DIR/SCENE/'
                                '*.tfrecord (default: the built-in synthetic scenes).')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Checkpoints, summaries, gmm.npz and samples '
                               '(default: runs/baseline_CONFIG_SCENE).')
_GMM_CLIPS = flags.DEFINE_integer('gmm_clips', 4096, 'Training clips whose codes fit the mixture.')
_GMM_COMPONENTS = flags.DEFINE_integer('gmm_components', 256, 'Mixture components (the paper: '
                                       '256; at most --gmm_clips).')
_GMM_COVARIANCE = flags.DEFINE_enum('gmm_covariance', 'diag', list(autoencoder.COVARIANCE_TYPES),
                                    'Covariance of each component.')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 16, 'Videos to sample.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the mixture fit and of the sampled codes.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where samples go (default: '
                                  'WORKDIR/generated).')
_STREAMS = flags.DEFINE_bool('streams', False, "Also write each sample's background, foreground, "
                             'mask and video side by side.')
_FPS = flags.DEFINE_float('fps', 25.0, "Playback frame rate (the paper's 25).")
_UPSCALE = flags.DEFINE_integer('upscale', 0, 'Enlarge frames this many times for viewing (0: to '
                                'about 128 pixels).')


def _batches_from(config, scene: str, data_dir: str | None):
  """`batches_from(start_step, batch_size)` for autoencoder.train: this host's slice."""

  def batches_from(start_step: int, batch_size: int):
    batches, source = input_pipeline.config_batches(
        config, scene, data_dir, batch_size=batch_size, global_batch_size=config.batch_size,
        start_step=start_step, process_index=jax.process_index(),
        process_count=jax.process_count())
    logging.info('Training on %s.', source)
    return batches

  return batches_from


def train_stage(config, workdir: str, scene: str, data_dir: str | None) -> bool:
  """Trains (or resumes) to config.num_steps; False when stopped before (Ctrl-C)."""
  writer = tensorboard.SummaryWriter(workdir) if jax.process_index() == 0 else None
  state = autoencoder.train(config, workdir, _batches_from(config, scene, data_dir),
                            stop=training.StopRequest(), writer=writer)
  return int(state.step) >= config.num_steps


def fit_is_done(workdir: str, fit: dict) -> bool:
  """Whether WORKDIR/gmm.npz was fitted with the settings `fit` on the latest checkpoint."""
  path = os.path.join(workdir, autoencoder.GMM_FILE)
  folder = os.path.join(workdir, 'checkpoints')
  steps = [int(name) for name in os.listdir(folder) if name.isdigit()] if os.path.isdir(
      folder) else []
  if not os.path.exists(path) or not steps:
    return False
  gmm, metadata = autoencoder.load_gmm(path)
  settings = {key: value for key, value in fit.items() if key != 'covariance'}
  return gmm.covariance_type == fit['covariance'] and metadata == dict(settings, step=max(steps))


def fit_stage(workdir: str, scene: str, data_dir: str | None, fit: dict) -> str:
  """Encodes the first `fit['clips']` training clips, fits the mixture, saves it; its path."""
  config, networks, state = autoencoder.load_model(workdir)
  batches, source = input_pipeline.config_batches(config, scene, data_dir,
                                                  batch_size=config.batch_size,
                                                  global_batch_size=config.batch_size)
  logging.info('Encoding %d clips with the autoencoder of step %d; clips from %s.', fit['clips'],
               int(state.step), source)
  try:
    codes = autoencoder.encode_clips(networks, state, batches, fit['clips'])
  finally:
    batches.close()
  gmm = autoencoder.fit_gmm(codes, fit['components'], fit['seed'], fit['covariance'])
  path = os.path.join(workdir, autoencoder.GMM_FILE)
  autoencoder.save_gmm(path, gmm, step=int(state.step), clips=fit['clips'],
                       components=fit['components'], seed=fit['seed'])
  logging.info('Saved the mixture to %s.', path)
  return path


def run(mode: str, config, workdir: str, scene: str, data_dir: str | None, fit: dict,
        sample: dict) -> list[str]:
  """The stages `mode` asks for (see the module docstring); returns the sample paths (none
  without the sample stage). `fit`: clips, components, covariance, seed of the mixture;
  `sample`: keyword arguments of autoencoder.write_samples."""
  if fit['clips'] < 1 or fit['components'] < 1:
    raise ValueError(f'--gmm_clips={fit["clips"]} and --gmm_components={fit["components"]}: '
                     'must be at least 1.')
  if mode in ('all', 'train'):
    configs.validate(config)
    if not train_stage(config, workdir, scene, data_dir):
      logging.info('Training stopped early: the same command resumes it.')
      return []
  if mode == 'fit' or (mode == 'all' and not fit_is_done(workdir, fit)):
    fit_stage(workdir, scene, data_dir, fit)
  elif mode == 'all':
    logging.info('The mixture in %s fits the latest checkpoint; --mode=fit refits it.', workdir)
  if mode not in ('all', 'sample'):
    return []
  return autoencoder.write_samples(workdir, **sample)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.setup_runtime()
  workdir = _WORKDIR.value or os.path.join(
      'runs', f'baseline_{common.config_name(_CONFIG)}_{_SCENE.value}')
  fit = dict(clips=_GMM_CLIPS.value, components=_GMM_COMPONENTS.value,
             covariance=_GMM_COVARIANCE.value, seed=_SEED.value)
  sample = dict(output_dir=_OUTPUT_DIR.value, num_samples=_NUM_SAMPLES.value, seed=_SEED.value,
                streams=_STREAMS.value, fps=_FPS.value, upscale=_UPSCALE.value)
  try:
    paths = run(_MODE.value, _CONFIG.value, workdir, _SCENE.value, _DATA_DIR.value, fit, sample)
  except (ValueError, OSError) as error:  # FileNotFoundError and CheckpointMismatchError too
    sys.exit(f'baseline: {error}')
  if paths:
    print(f'Wrote {len(paths)} files to {os.path.dirname(paths[-1])}.')


if __name__ == '__main__':
  app.run(main)
