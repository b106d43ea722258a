"""The one training loop, without flags, for every kind of training in the project: the GAN and
future prediction (`experiments/tasks.py` `gan_task`), the autoencoder baseline
(`autoencoder_task`) and action classifiers (`classifier_task`).

  state = training.train(tasks.gan_task(config, workdir), config, workdir)

Each kind supplies only what differs, as a `Task`: how to build its fresh state, its pure step,
where its batches come from, what the progress bar shows and its periodic hooks (sample grids,
evaluation). Every kind then gets the same:
  - a `data` mesh over every device of every host, the state replicated and the batch split
    (`vgan_jax/parallel.py`), one jitted step with the state donated, batches prefetched to the
    devices, the step compiled before the first batch;
  - orbax checkpoints every `config.checkpoint_every` steps and wherever the run stops, resuming
    from the latest on the next run (`vgan_jax/checkpoint.py`);
  - TensorBoard scalars (means over `config.log_every` steps, with speed), a progress bar with
    rate and ETA, log lines;
  - a clean stop on SIGINT/SIGTERM that every host agrees on before acting (`StopRequest`), so
    all save the same step.
"""

import contextlib
import dataclasses
import itertools
import os
import signal
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax.metrics import tensorboard
from jax.sharding import Mesh
from tqdm import tqdm

from experiments import common
from vgan_io import files
from vgan_jax import checkpoint, parallel

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Hook:
  """Work done every `every` steps and after the last step, on every host (a hook that runs a
  jitted computation needs all of them); `writer` is the TensorBoard writer on the main host and
  None elsewhere. `run(state, step, writer)`."""
  every: int
  run: Callable[[PyTree, int, Any], None]


@dataclasses.dataclass(frozen=True)
class Task:
  """What one kind of training supplies to `train`.

  initial_state:      (raw PRNG key, sharding) -> fresh state placed with the sharding
                      (e.g. `functools.partial(train_state.init_train_state, networks, config)`).
  train_step:         pure (state, batch) -> (state, metrics of scalars).
  batches_from:       (start_step, this host's batch size) -> an iterator of this host's batches
                      (dicts of numpy arrays) from that step on; closed at the end if it can be.
  num_steps, batch_size: where training ends, and the global batch.
  progress_metrics:   metric names shown on the progress bar.
  hooks:              periodic work (sample grids, evaluation).
  description:        one line for the log: what is trained, from what data.
  """
  initial_state: Callable[[jax.Array, jax.sharding.Sharding], PyTree]
  train_step: Callable[[PyTree, dict], tuple[PyTree, dict]]
  batches_from: Callable[[int, int], Iterator[dict]]
  num_steps: int
  batch_size: int
  progress_metrics: Sequence[str] = ()
  hooks: Sequence[Hook] = ()
  description: str = ''


class StopRequest(contextlib.AbstractContextManager):
  """Turns the first SIGINT/SIGTERM into a request to stop (after the step queued next); a second
  SIGINT interrupts at once.

  `vote()` (read later) and `agreed()` (read now) are the decision every host acts on: the
  hosts' requests all-reduced over the mesh (`parallel.any_process_vote`), so a signal that
  reaches one host stops all of them after the same step, and each saves the same checkpoint (a
  host that went on alone would wait forever for the others in its next step).
  """

  def __init__(self, mesh: Mesh):
    self.requested = False
    self._mesh = mesh
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    self.requested = True
    logging.warning('Received signal %d: stopping after the next step and saving a checkpoint '
                    '(Ctrl-C again to abort).', signum)
    signal.signal(signal.SIGINT, signal.default_int_handler)

  def vote(self) -> jax.Array:
    """Whether any host has been asked to stop, as a device scalar not yet waited for."""
    return parallel.any_process_vote(self.requested, self._mesh)

  def agreed(self) -> bool:
    """Whether any host has been asked to stop (the same answer on every host)."""
    return bool(self.vote())

  def __enter__(self):
    for signum in (signal.SIGINT, signal.SIGTERM):
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False


class NonFiniteMetricError(ValueError):
  """A training metric became NaN or infinite: training stops there, and the checkpoints kept
  are those saved before (checkpoint.save never saves a non-finite state)."""


def interval_means(metrics: list[dict], interval_start: float, batch_size: int,
                   first_step: int = 1) -> dict[str, float]:
  """Means over the steps of a logging interval (`first_step` its first), plus the speed over it
  (the clock is read after the steps have finished: they run asynchronously).
  NonFiniteMetricError naming the first step and metric that is NaN or infinite."""
  values = jax.device_get(jax.tree.map(lambda *m: jnp.stack(m), *metrics))
  bad = [(int(np.argmin(np.isfinite(value))), name) for name, value in sorted(values.items())
         if not np.all(np.isfinite(value))]
  if bad:
    index, name = min(bad)
    raise NonFiniteMetricError(f'step {first_step + index}: {name} is '
                               f'{float(values[name][index])}; training stopped there, before '
                               'saving that state.')
  means = {name: float(np.mean(value)) for name, value in values.items()}
  means['steps_per_second'] = len(metrics) / (time.perf_counter() - interval_start)
  means['clips_per_second'] = means['steps_per_second'] * batch_size
  return means


def _compiled_first(step_fn, state, device_batches: Iterator) -> tuple[Callable, Iterator]:
  """The step compiled on the first batch before the loop, so that the compiler's freed heap
  goes back to the OS before the step's own buffers are allocated."""
  first_batch = next(device_batches)
  compiled = step_fn.lower(state, first_batch).compile()
  common.release_free_host_memory()
  return compiled, itertools.chain([first_batch], device_batches)


def check_finished(state: PyTree, num_steps: int, what: str) -> None:
  """common.Stopped when `state` (a train state) stopped before `num_steps`: a stage of a longer
  job (`what`, e.g. its work directory) must not hand an unfinished model to the next one."""
  if int(state.step) < num_steps:
    raise common.Stopped(f'{what}: training stopped at step {int(state.step)} of {num_steps}; '
                         'the same command resumes it.')


def train(task: Task, config: ml_collections.ConfigDict, workdir: str,
          progress: bool = True) -> PyTree:
  """Trains `task` until `task.num_steps`, resuming from `workdir/checkpoints`; returns the state.

  One run at a time in a work directory: a second one gets files.FolderInUseError at once (the
  lock, WORKDIR/.lock, goes with the process that held it, however it ended). Raises
  checkpoint.CheckpointMismatchError for a work directory of another model, and whatever
  the data source raises for bad data (ValueError naming it).
  """
  if jax.process_index():  # one lock per run: process 0's (hosts may share the folder)
    return _train(task, config, workdir, progress)
  with files.exclusive_lock(workdir, 'training run'):
    return _train(task, config, workdir, progress)


def _train(task: Task, config: ml_collections.ConfigDict, workdir: str,
           progress: bool) -> PyTree:
  # --- Mesh and state: fresh, or the latest checkpoint in workdir.
  mesh = parallel.create_mesh()
  local_batch_size = parallel.process_batch_size(task.batch_size, mesh)
  is_main_process = jax.process_index() == 0
  manager = checkpoint.create_manager(os.path.join(workdir, 'checkpoints'), config)
  batches, writer, step, stop = None, None, 0, None
  try:
    state = task.initial_state(jax.random.PRNGKey(config.seed), parallel.replicated(mesh))
    state = checkpoint.restore_latest(manager, state, config)
    step = start_step = int(state.step)
    logging.info('%s: %d devices, global batch %d, steps %d -> %d, workdir %s.',
                 task.description or 'Training', mesh.devices.size, task.batch_size, start_step,
                 task.num_steps, workdir)
    if start_step >= task.num_steps:
      logging.info('Done at step %d; checkpoints in %s.', step, manager.directory)
      return state

    # --- Data: this host's slice of each global batch, from the step we start at.
    batches = task.batches_from(start_step, local_batch_size)
    device_batches = parallel.prefetch_to_device(batches, mesh)
    step_fn, device_batches = _compiled_first(parallel.jit_step(task.train_step, mesh), state,
                                              device_batches)
    writer = tensorboard.SummaryWriter(workdir) if is_main_process else None
    if writer and start_step == 0:
      writer.hparams(config.to_dict())

    # --- The loop.
    pending_metrics, interval_start, stop_vote = [], time.perf_counter(), None
    with StopRequest(mesh) as stop, tqdm(
        total=task.num_steps, initial=start_step, unit='step', dynamic_ncols=True,
        disable=not (progress and is_main_process)) as bar:
      while step < task.num_steps:
        state, metrics = step_fn(state, next(device_batches))
        step += 1
        pending_metrics.append(metrics)  # device arrays: no wait for the step to finish
        bar.update()
        last = step == task.num_steps
        if step % config.log_every == 0 or last:
          means = interval_means(pending_metrics, interval_start, task.batch_size,
                                 first_step=step - len(pending_metrics) + 1)
          pending_metrics, interval_start = [], time.perf_counter()
          bar.set_postfix({name: f'{means[name]:.4g}' for name in task.progress_metrics
                           if name in means}, refresh=False)
          logging.info('step %d/%d: %s', step, task.num_steps,
                       ', '.join(f'{k}={v:.4g}' for k, v in sorted(means.items())))
          if writer:
            for name, value in means.items():
              writer.scalar(f'train/{name}', value, step)
        for hook in task.hooks:
          if step % hook.every == 0 or last:
            hook.run(state, step, writer)
        checkpoint.save(manager, step, state, config)
        # The stop vote cast after step k is read after step k + 1 is dispatched, so the device
        # always has a step queued; every host reads the same vote after the same step.
        previous_vote, stop_vote = stop_vote, stop.vote()
        if previous_vote is not None and bool(previous_vote):
          break

    # --- A last checkpoint wherever we stopped (the end, or a stop request).
    if manager.latest_step() != step:
      checkpoint.save(manager, step, state, config, force=True)
    logging.info('%s at step %d; checkpoints in %s.',
                 'Stopped' if step < task.num_steps else 'Done', step, manager.directory)
    return state
  finally:  # on errors too: finish the checkpoint being written, stop the input threads
    manager.wait_until_finished()
    manager.close()
    if batches is not None and hasattr(batches, 'close'):
      batches.close()
    if writer:
      writer.flush()
