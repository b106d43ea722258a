"""What each kind of training supplies to the one loop (`experiments/training.py`): its state,
its pure step, its batches, what its progress bar shows and its periodic hooks.

  gan_task(config, workdir)      the GAN, or future prediction with
                                 config.model.generator_input='image'; GIF sample grids, and
                                 FVD every config.fvd_every steps
  autoencoder_task(config)       the autoencoder of the paper's baseline
  classifier_task(config, ...)   an action classifier on D's trunk (Section 3.3)
"""

import functools
import hashlib
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from data_pipeline import input_pipeline
from experiments import training
from experiments.training import Hook, Task
from vgan_io import files, media
from vgan_jax import checkpoint, sampling, train_state, train_step, video_io
from vgan_jax.metrics import fvd


def config_batches_from(config: ml_collections.ConfigDict):
  """`batches_from(start_step, batch_size)`: this host's training clips of `config.data` (shards
  of config.data.scene under config.data.data_dir, or the built-in scene). ValueError now, not
  when training starts, for a scene that has neither."""
  input_pipeline.check_source(config.data.scene, config.data.data_dir)

  def batches_from(start_step: int, batch_size: int):
    batches, source = input_pipeline.config_batches(
        config, batch_size=batch_size, global_batch_size=config.batch_size,
        start_step=start_step, process_index=jax.process_index(),
        process_count=jax.process_count())
    logging.info('Training on %s.', source)
    return batches

  return batches_from


def _sample_inputs(gan: train_state.GAN, config: ml_collections.ConfigDict) -> jax.Array:
  """What the sample grids start from, the same at every step and on every host: fixed latent
  codes, or for future prediction the first frames of the first clips of the data."""
  if not gan.conditional:
    return train_step.sample_latents(jax.random.PRNGKey(config.seed + 1), config.num_samples,
                                     config.model.latent_dim)
  batches, _ = input_pipeline.config_batches(config, batch_size=config.num_samples,
                                             global_batch_size=config.num_samples)
  try:
    return jnp.asarray(next(batches)['video'][:, 0])
  finally:
    batches.close()


def sample_grid_hook(gan: train_state.GAN, config: ml_collections.ConfigDict,
                     workdir: str) -> Hook:
  """Every `config.sample_every` steps: GIF grids of the samples (and of their streams) in
  WORKDIR/samples/STEP_STREAM.gif, and a TensorBoard image of each grid's middle frame. The
  samples start from the same inputs every time, so the grids are comparable."""
  generate = jax.jit(functools.partial(train_step.generate, gan))
  inputs = []  # made on first use: for future prediction they are read from the data
  scale = max(1, 64 // config.model.size)  # small frames are hard to see

  def write_sample_grids(state, step: int, writer) -> None:
    if not inputs:
      inputs.append(_sample_inputs(gan, config))
    output = generate(state, inputs[0])  # every host takes part in the computation
    if writer is None:
      return
    for stream, videos in video_io.stream_videos(jax.device_get(output)).items():
      grid = media.video_grid(videos, scale=scale)
      media.write_gif(os.path.join(workdir, 'samples', f'{step:07d}_{stream}.gif'), grid,
                      config.sample_fps)
      writer.image(f'samples/{stream}', grid[len(grid) // 2], step)

  return Hook(config.sample_every, write_sample_grids)


def real_fvd_features(config: ml_collections.ConfigDict, features) -> np.ndarray:
  """I3D features of the first config.fvd_clips training clips, cached in
  ~/.cache/vgan_jax/fvd (or $VGAN_JAX_FVD_CACHE) under a key of the data (scene, folder, its
  shards' names, sizes and times) and the protocol (clips, frames, frame size)."""
  shards = input_pipeline.find_shards(config.data.data_dir, config.data.scene)
  key = json.dumps(dict(scene=config.data.scene, data_dir=config.data.data_dir,
                        shards=[(path, os.path.getsize(path), os.path.getmtime(path))
                                for path in shards],
                        synthetic_clips=config.data.synthetic_clips, seed=config.seed,
                        clips=config.fvd_clips, frames=config.fvd_frames,
                        size=config.model.size), sort_keys=True)
  folder = os.environ.get('VGAN_JAX_FVD_CACHE') or os.path.join(
      os.path.expanduser('~'), '.cache', 'vgan_jax', 'fvd')
  path = os.path.join(folder, hashlib.sha256(key.encode()).hexdigest()[:16] + '.npz')
  if os.path.exists(path):
    with np.load(path) as cached:
      if str(cached['key']) == key:
        return cached['features']
  batches, source = input_pipeline.config_batches(config, batch_size=config.batch_size,
                                                  global_batch_size=config.batch_size)
  def first_clips():  # one batch in memory at a time
    left = config.fvd_clips
    while left > 0:
      videos = next(batches)['video'][:left, :config.fvd_frames]
      left -= len(videos)
      yield videos
  try:
    real = features.of_batches(first_clips())
  finally:
    batches.close()
  files.write_npz(path, dict(key=np.asarray(key), features=real))
  logging.info('FVD: I3D features of %d real clips from %s, cached in %s.', len(real), source,
               path)
  return real


def fvd_hook(gan: train_state.GAN, config: ml_collections.ConfigDict, workdir: str) -> Hook:
  """Every `config.fvd_every` steps: FVD and KVD of config.fvd_clips samples (fixed latent codes,
  so steps are comparable) against as many training clips, in TensorBoard (eval/fvd, eval/kvd)
  and the log; the checkpoint of the lowest FVD so far is kept in WORKDIR/checkpoints_best."""
  state_of = {}

  def measure(state, step: int, writer) -> None:
    if 'features' not in state_of:
      state_of['features'] = fvd.I3DFeatures(min(8, config.fvd_clips))
      state_of['real'] = real_fvd_features(config, state_of['features'])
    fake = state_of['features'].of_batches(
        media.to_uint8(batch['video'][:, :config.fvd_frames]) for batch in
        sampling.generated_batches(gan, state, config, config.fvd_clips, config.seed + 2))
    result = fvd.distances(state_of['real'], fake)
    logging.info('step %d: FVD %.2f, KVD %.4f (%d clips a side, %d frames).', step,
                 result['fvd'], result['kvd'], config.fvd_clips, config.fvd_frames)
    if writer:
      for name, value in result.items():
        writer.scalar(f'eval/{name}', value, step)
    if 'best' not in state_of:
      state_of['best'] = checkpoint.create_best_manager(
          os.path.join(workdir, checkpoint.BEST_DIRECTORY))
    if state_of['best'].latest_step() != step:  # (a resumed run may measure a step again)
      checkpoint.save(state_of['best'], step, state, config, force=True, metrics=result)

  return Hook(config.fvd_every, measure)


def gan_task(config: ml_collections.ConfigDict, workdir: str) -> Task:
  """The GAN's training (one D update, then one G update, per step), or future prediction's."""
  gan = train_state.build_gan(config)
  hooks = [sample_grid_hook(gan, config, workdir)]
  if config.fvd_every and not gan.conditional:
    hooks.append(fvd_hook(gan, config, workdir))
  elif config.fvd_every:
    logging.warning('config.fvd_every is ignored for future prediction (a GAN from noise only).')
  return Task(
      initial_state=functools.partial(train_state.init_train_state, gan, config),
      train_step=train_step.make_train_step(gan),
      batches_from=config_batches_from(config),
      num_steps=config.num_steps, batch_size=config.batch_size,
      progress_metrics=('discriminator_loss', 'generator_loss'),
      hooks=tuple(hooks),
      description=(f'{config.model.generator} generator from {config.model.generator_input}, '
                   f'scene {config.data.scene!r}'))


def autoencoder_task(config: ml_collections.ConfigDict) -> Task:
  """The baseline's autoencoder on reconstruction (plus the mask prior)."""
  networks = train_state.build_autoencoder(config)
  return Task(
      initial_state=functools.partial(train_state.init_train_state, networks, config),
      train_step=train_step.make_train_step(networks),
      batches_from=config_batches_from(config),
      num_steps=config.num_steps, batch_size=config.batch_size,
      progress_metrics=('loss',),
      description=f'Autoencoder ({config.model.generator} decoder), scene {config.data.scene!r}')


def classifier_task(config: ml_collections.ConfigDict, classifier: train_state.Classifier,
                    batches_from, num_steps: int, trunk=None, description: str = '') -> Task:
  """An action classifier; `trunk` = (params, batch_stats) of a GAN's discriminator trunk
  replaces the random one in the fresh state (a resumed run restores its own)."""

  def initial_state(rng, sharding):
    state = train_state.init_train_state(classifier, config, rng, sharding)
    return state if trunk is None else train_state.with_pretrained_trunk(state, trunk)

  return Task(initial_state=initial_state, train_step=train_step.make_train_step(classifier),
              batches_from=batches_from, num_steps=num_steps,
              batch_size=config.classifier.batch_size, progress_metrics=('loss', 'accuracy'),
              description=description)


def train_gan(config: ml_collections.ConfigDict, workdir: str) -> train_state.GANTrainState:
  """Trains (or resumes) the GAN or future predictor of `config` in `workdir`; its state."""
  return training.train(gan_task(config, workdir), config, workdir)
