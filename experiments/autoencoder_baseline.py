"""The paper's autoencoder + Gaussian mixture baseline, without flags: experiments/baseline.py's
work. Three stages, each resumable:

  train   the autoencoder (`tasks.autoencoder_task`) in the one training loop, to
          config.num_steps, in WORKDIR/checkpoints;
  fit     the codes of the first config.baseline.gmm_clips training clips, and a Gaussian mixture
          on them (`vgan_jax/gmm.py`) in WORKDIR/gmm.npz;
  sample  draws of the mixture decoded into videos, written as the GAN's samples are
          (`sampling.write_samples`).
"""

import functools
import os
from typing import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from data_pipeline import input_pipeline
from experiments import tasks, training
from vgan_jax import checkpoint, gmm, sampling, train_state, train_step

GMM_FILE = 'gmm.npz'
STAGES = ('all', 'train', 'fit', 'sample')


def train_autoencoder(config: ml_collections.ConfigDict, workdir: str,
                      progress: bool = True) -> train_state.AutoencoderTrainState:
  """Trains (or resumes) the autoencoder to config.num_steps; its state."""
  return training.train(tasks.autoencoder_task(config), config, workdir, progress)


def load_autoencoder(workdir: str, step: int | None = None):
  """(config, networks, state) of a trained autoencoder; FileNotFoundError without a checkpoint,
  CheckpointMismatchError for a work directory of another model."""
  return checkpoint.restore_for_inference(workdir, step, build=train_state.build_autoencoder)


def encode_clips(networks: train_state.AutoencoderNetworks,
                 state: train_state.AutoencoderTrainState, batches: Iterator[dict],
                 count: int) -> np.ndarray:
  """The codes [count, latent_dim] (float32) of the first `count` clips of `batches`."""
  if count < 1:
    raise ValueError(f'Cannot fit a mixture on {count} codes: encode at least 1 clip.')
  encode_fn = jax.jit(functools.partial(train_step.encode, networks))
  codes, done = [], 0
  while done < count:
    try:
      videos = next(batches)['video']
    except StopIteration:
      raise ValueError(f'The data ran out after {done} clips; {count} were asked for.') from None
    codes.append(np.asarray(encode_fn(state, videos[:count - done])))
    done += len(codes[-1])
  return np.concatenate(codes).astype(np.float32)


def _fit_settings(config: ml_collections.ConfigDict) -> dict:
  return dict(clips=config.baseline.gmm_clips, components=config.baseline.gmm_components,
              seed=config.seed)


def fit_is_done(workdir: str, config: ml_collections.ConfigDict) -> bool:
  """Whether WORKDIR/gmm.npz was fitted with `config.baseline`'s settings on the latest
  checkpoint."""
  path = os.path.join(workdir, GMM_FILE)
  folder = os.path.join(workdir, 'checkpoints')
  steps = [int(name) for name in os.listdir(folder) if name.isdigit()] if os.path.isdir(
      folder) else []
  if not os.path.exists(path) or not steps:
    return False
  mixture, metadata = gmm.load_gmm(path)
  return (mixture.covariance_type == config.baseline.gmm_covariance
          and metadata == dict(_fit_settings(config), step=max(steps)))


def fit_mixture(workdir: str, config: ml_collections.ConfigDict) -> str:
  """Encodes the first config.baseline.gmm_clips training clips of `config.data` with the
  autoencoder in `workdir`, fits the mixture, saves it; its path."""
  _, networks, state = load_autoencoder(workdir)
  fit = _fit_settings(config)
  batches, source = input_pipeline.config_batches(config, batch_size=config.batch_size,
                                                  global_batch_size=config.batch_size)
  logging.info('Encoding %d clips with the autoencoder of step %d; clips from %s.', fit['clips'],
               int(state.step), source)
  try:
    codes = encode_clips(networks, state, batches, fit['clips'])
  finally:
    batches.close()
  mixture = gmm.fit_gmm(codes, fit['components'], fit['seed'], config.baseline.gmm_covariance)
  path = os.path.join(workdir, GMM_FILE)
  gmm.save_gmm(path, mixture, step=int(state.step), **fit)
  logging.info('Saved the mixture to %s.', path)
  return path


def write_samples(workdir: str, output_dir: str | None = None, num_samples: int = 16,
                  seed: int = 0, streams: bool = False, fps: float = 25.0, upscale: int = 0,
                  batch_size: int = 16) -> list[str]:
  """Decoded draws of the mixture in `workdir/gmm.npz`, written as `sampling.write_generated`
  writes a GAN's (samples.npz holds the drawn `codes`). The same seed gives the same videos."""
  if num_samples < 1 or batch_size < 1 or fps <= 0:
    raise ValueError('num_samples and batch_size must be at least 1, fps above 0.')
  config, state, codes, raw = decoded_samples(workdir, num_samples, seed, batch_size)
  output_dir = output_dir or os.path.join(workdir, 'generated')
  paths = sampling.write_samples(output_dir, raw, dict(codes=codes), fps,
                                 upscale or sampling.default_scale(config.model.size), streams)
  logging.info('Step %d of %s: wrote %d decoded mixture samples to %s.', int(state.step),
               workdir, num_samples, output_dir)
  return paths


def mixture_codes(workdir: str, num_samples: int, seed: int):
  """(config, networks, state, codes [N, D]): the autoencoder in `workdir` and `num_samples`
  draws of the mixture in WORKDIR/gmm.npz (the same seed, the same codes). FileNotFoundError
  without a mixture; ValueError for one of another code size."""
  config, networks, state = load_autoencoder(workdir)  # first: without a model, a mixture is moot
  gmm_path = os.path.join(workdir, GMM_FILE)
  if not os.path.exists(gmm_path):
    raise FileNotFoundError(f'No Gaussian mixture at {gmm_path}: fit one first (the fit stage).')
  mixture, metadata = gmm.load_gmm(gmm_path)
  if mixture.means_.shape[1] != networks.latent_dim:
    raise ValueError(f'{gmm_path} models {mixture.means_.shape[1]}-d codes; the autoencoder in '
                     f'{workdir} has {networks.latent_dim}-d ones: refit it (the fit stage).')
  if metadata.get('step', int(state.step)) != int(state.step):
    logging.warning('%s was fitted on the codes of step %d; the checkpoint is at step %d '
                    '(the fit stage refits).', gmm_path, metadata['step'], int(state.step))
  return config, networks, state, gmm.sample_codes(mixture, num_samples, seed)


def decoded_samples(workdir: str, num_samples: int, seed: int, batch_size: int = 16):
  """(config, state, codes [N, D], raw outputs) of `num_samples` draws of the mixture in
  WORKDIR/gmm.npz decoded by the autoencoder in `workdir`: the baseline's samples."""
  config, networks, state, codes = mixture_codes(workdir, num_samples, seed)
  raw = sampling.generate_streams(train_step.decode, networks, state, jnp.asarray(codes),
                                  batch_size)
  return config, state, codes, raw


def decoded_batches(workdir: str, num_samples: int, seed: int, batch_size: int = 16):
  """(state, the raw outputs of `decoded_samples` one batch at a time): bounded memory."""
  _, networks, state, codes = mixture_codes(workdir, num_samples, seed)
  return state, sampling.stream_batches(train_step.decode, networks, state, jnp.asarray(codes),
                                        batch_size)


def run(stage: str, config: ml_collections.ConfigDict, workdir: str,
        sample: dict) -> list[str]:
  """The stages `stage` asks for: 'all' runs train, fit and sample, each only as far as it is not
  done yet (fit: done when gmm.npz was fitted on the latest checkpoint with the same settings);
  'train', 'fit' or 'sample' runs that stage alone (fit then refits even when done; fit and sample
  read the model's config from the checkpoint, the data and mixture settings from `config`).
  `sample`: keyword arguments of `write_samples`. Returns the sample paths (none without the
  sample stage)."""
  if stage not in STAGES:
    raise ValueError(f'stage {stage!r}: must be one of {", ".join(STAGES)}.')
  if stage in ('all', 'train'):
    state = train_autoencoder(config, workdir)
    if int(state.step) < config.num_steps:
      logging.info('Training stopped early: the same command resumes it.')
      return []
  if stage == 'fit' or (stage == 'all' and not fit_is_done(workdir, config)):
    fit_mixture(workdir, config)
  elif stage == 'all':
    logging.info('The mixture in %s fits the latest checkpoint; the fit stage refits it.',
                 workdir)
  if stage not in ('all', 'sample'):
    return []
  return write_samples(workdir, **sample)
