"""The training loop behind experiments/train.py and experiments/future.py, without flags:
`train_and_evaluate(config, workdir, scene, data_dir)` trains a VGAN (or, with
`config.model.generator_input='image'`, a future predictor) until `config.num_steps`, resuming
from the work directory's latest checkpoint.
"""

import contextlib
import functools
import itertools
import os
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax.metrics import tensorboard
from tqdm import tqdm

from data_pipeline import input_pipeline
from experiments import common
from vgan_io import media
from vgan_jax import checkpoint, parallel, train_state, train_step, video_io


class StopRequest(contextlib.AbstractContextManager):
  """Turns the first SIGINT/SIGTERM into a request to stop after the current step; a second
  SIGINT interrupts at once."""

  def __init__(self):
    self.requested = False
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    self.requested = True
    logging.warning('Received signal %d: stopping after this step and saving a checkpoint '
                    '(Ctrl-C again to abort).', signum)
    signal.signal(signal.SIGINT, signal.default_int_handler)

  def __enter__(self):
    for signum in (signal.SIGINT, signal.SIGTERM):
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False


def write_samples(output, workdir: str, step: int, config: ml_collections.ConfigDict,
                  writer) -> None:
  """GIF grids of generated clips (and their streams), and a TensorBoard image of each grid's
  middle frame."""
  scale = max(1, 64 // config.model.size)  # small frames are hard to see
  for stream, videos in video_io.stream_videos(jax.device_get(output)).items():
    grid = media.video_grid(videos, scale=scale)
    media.write_gif(os.path.join(workdir, 'samples', f'{step:07d}_{stream}.gif'), grid,
                       config.sample_fps)
    writer.image(f'samples/{stream}', grid[len(grid) // 2], step)


def _mean_metrics(metrics: list[dict], interval_start: float,
                  config: ml_collections.ConfigDict) -> dict[str, float]:
  """Means over the steps of a logging interval, plus the speed over it (the clock is read
  after the steps have finished: they run asynchronously)."""
  means = {name: float(np.mean(values)) for name, values in
           jax.device_get(jax.tree.map(lambda *m: jnp.stack(m), *metrics)).items()}
  means['steps_per_second'] = len(metrics) / (time.perf_counter() - interval_start)
  means['clips_per_second'] = means['steps_per_second'] * config.batch_size
  return means


def _sample_inputs(gan: train_state.GAN, config: ml_collections.ConfigDict, scene: str,
                   data_dir: str | None) -> jax.Array:
  """What the sample grids start from, the same at every step and on every host: fixed latent
  codes, or for future prediction the first frames of the first clips of the data."""
  if not gan.conditional:
    return train_step.sample_latents(jax.random.PRNGKey(config.seed + 1), config.num_samples,
                                     config.model.latent_dim)
  batches, _ = input_pipeline.config_batches(config, scene, data_dir,
                                             batch_size=config.num_samples,
                                             global_batch_size=config.num_samples)
  try:
    return jnp.asarray(next(batches)['video'][:, 0])
  finally:
    batches.close()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, scene: str = 'beach',
                       data_dir: str | None = None) -> train_state.GANTrainState:
  """Trains until `config.num_steps` (resuming from `workdir`'s checkpoints); returns the state."""
  # --- Networks, mesh and state: fresh, or the latest checkpoint in workdir.
  gan = train_state.build_gan(config)
  mesh = parallel.create_mesh()
  local_batch_size = parallel.process_batch_size(config.batch_size, mesh)
  is_main_process = jax.process_index() == 0
  manager = checkpoint.create_manager(os.path.join(workdir, 'checkpoints'), config)
  state = train_state.init_train_state(gan, config, jax.random.PRNGKey(config.seed),
                                       parallel.replicated(mesh))
  state = checkpoint.restore_latest(manager, state, config)
  start_step = int(state.step)
  logging.info('%s generator from %s, %d devices, global batch %d, steps %d -> %d, workdir %s.',
               config.model.generator, config.model.generator_input, mesh.devices.size,
               config.batch_size, start_step, config.num_steps, workdir)

  # --- Data: this host's slice of each global batch, from the step we start at.
  batches, source = input_pipeline.config_batches(
      config, scene, data_dir, batch_size=local_batch_size, global_batch_size=config.batch_size,
      start_step=start_step, process_index=jax.process_index(),
      process_count=jax.process_count())
  logging.info('Training on %s.', source)

  # --- Compiled functions; samples always start from the same inputs, so grids are comparable.
  step_fn = parallel.jit_step(train_step.make_gan_train_step(gan), mesh)
  device_batches = parallel.prefetch_to_device(batches, mesh)
  if start_step < config.num_steps:
    # Compiled before the first step, so that the compiler's freed heap goes back to the OS
    # before the step's own buffers are allocated.
    first_batch = next(device_batches)
    step_fn = step_fn.lower(state, first_batch).compile()
    common.release_free_host_memory()
    device_batches = itertools.chain([first_batch], device_batches)
  sample_fn = jax.jit(functools.partial(train_step.generate, gan))
  sample_inputs = _sample_inputs(gan, config, scene, data_dir)
  writer = tensorboard.SummaryWriter(workdir) if is_main_process else None
  if writer and start_step == 0:
    writer.hparams(dict(config.to_dict(), scene=scene))

  # --- The loop.
  step, pending_metrics, interval_start = start_step, [], time.perf_counter()
  try:
    with StopRequest() as stop, tqdm(total=config.num_steps, initial=start_step, unit='step',
                                     disable=not is_main_process, dynamic_ncols=True) as progress:
      while step < config.num_steps and not stop.requested:
        state, metrics = step_fn(state, next(device_batches))
        step += 1
        pending_metrics.append(metrics)  # device arrays: no wait for the step to finish
        progress.update()
        if step % config.log_every == 0 or step == config.num_steps:
          means = _mean_metrics(pending_metrics, interval_start, config)
          pending_metrics, interval_start = [], time.perf_counter()
          progress.set_postfix(d_loss=f'{means["discriminator_loss"]:.3f}',
                               g_loss=f'{means["generator_loss"]:.3f}', refresh=False)
          logging.info('step %d/%d: %s', step, config.num_steps,
                       ', '.join(f'{k}={v:.4g}' for k, v in sorted(means.items())))
          if writer:
            for name, value in means.items():
              writer.scalar(f'train/{name}', value, step)
        if step % config.sample_every == 0 or step == config.num_steps:
          output = sample_fn(state, sample_inputs)  # every host takes part in the computation
          if writer:
            write_samples(output, workdir, step, config, writer)
        checkpoint.save(manager, step, state, config)

    # --- A last checkpoint wherever we stopped (end, or Ctrl-C).
    if manager.latest_step() != step:
      checkpoint.save(manager, step, state, config, force=True)
  finally:  # on errors too: finish the checkpoint being written, stop the input threads
    manager.wait_until_finished()
    manager.close()
    batches.close()
    if writer:
      writer.flush()
  logging.info('%s at step %d; checkpoints in %s.',
               'Stopped' if stop.requested else 'Done', step, manager.directory)
  return state
