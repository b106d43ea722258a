"""Data parallelism with `jax.jit` over a device mesh: the batch is split on the `data` axis,
the state is replicated, and XLA inserts the cross-device reductions (so BatchNorm statistics and
gradients are those of the global batch: N devices give the update of one).

Multi-host: call `initialize_distributed()` first on every host; each host then feeds its own
slice of the global batch (`process_batch_size`) and `shard_batch` assembles the global array.
"""

import collections
import functools
from typing import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins a multi-process job; call it before anything else uses JAX.

  With `coordinator_address` ('HOST:PORT' of process 0), `num_processes` and `process_id` given,
  those; with none, JAX's own detection of Slurm, Cloud TPU and MPI (Open MPI) clusters. On
  CPUs the processes' collectives run over gloo. ValueError, in one line, when neither is
  possible (no cluster found and no coordinator given) or the arguments do not fit together.
  """
  given = [value is not None for value in (coordinator_address, num_processes, process_id)]
  if any(given) and not all(given):
    raise ValueError('give --coordinator_address, --num_processes and --process_id together (or '
                     'none of them, on a cluster JAX detects: Slurm, Cloud TPU, MPI).')
  if all(given) and not 0 <= process_id < num_processes:
    raise ValueError(f'--process_id={process_id}: must be in [0, --num_processes={num_processes}).')
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')  # CPU-only jobs (tests, CI)
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  except ValueError as error:
    if all(given):
      raise
    raise ValueError(f'no cluster found ({error}); outside Slurm, Cloud TPU or MPI give '
                     '--coordinator_address=HOST:PORT --num_processes=N --process_id=I.') from None
  logging.info('Process %d of %d; %d local and %d global devices.', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def create_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over `devices` (default: every device of every host) named `data`."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the `data` axis."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def process_batch_size(global_batch_size: int, mesh: Mesh) -> int:
  """This host's share of the global batch; ValueError when it does not split evenly."""
  num_devices = mesh.devices.size
  if global_batch_size % num_devices:
    raise ValueError(f'config.batch_size={global_batch_size} does not split over {num_devices} '
                     f'devices; use a multiple of {num_devices}.')
  return global_batch_size // jax.process_count()


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This host's slice of the batch (numpy) -> global arrays split over the `data` axis."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def prefetch_to_device(batches: Iterator[dict[str, np.ndarray]], mesh: Mesh,
                       size: int = 2) -> Iterator[dict[str, jax.Array]]:
  """`batches` placed on the devices `size` ahead: the copy of the next batches (asynchronous in
  JAX) overlaps the step running on the current one."""
  queue = collections.deque()
  for batch in batches:
    queue.append(shard_batch(batch, mesh))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


def jit_step(step: Callable, mesh: Mesh) -> Callable:
  """jit a (state, batch) -> (state, metrics) step: state replicated and donated, batch split."""
  return jax.jit(step,
                 in_shardings=(replicated(mesh), batch_sharded(mesh)),
                 out_shardings=(replicated(mesh), replicated(mesh)),
                 donate_argnums=0)


def any_device_vote(flags: dict[jax.Device, bool], mesh: Mesh) -> jax.Array:
  """Whether any of the mesh's devices holds True, where each process gives `flags` for its own
  devices: one all-reduce (max) over the `data` axis, dispatched and not waited for (an int32
  scalar, replicated: every process reads the same value)."""
  sharding = batch_sharded(mesh)
  shards = [jax.device_put(np.asarray([flags[device]], np.int32), device)
            for device in sharding.addressable_devices]
  values = jax.make_array_from_single_device_arrays((mesh.devices.size,), sharding, shards)
  return _max_replicated(mesh)(values)


def any_device(flags: dict[jax.Device, bool], mesh: Mesh) -> bool:
  """`any_device_vote`, read (waits for it)."""
  return bool(any_device_vote(flags, mesh))


@functools.lru_cache(maxsize=8)
def _max_replicated(mesh: Mesh) -> Callable:
  return jax.jit(jnp.max, out_shardings=replicated(mesh))


def any_process_vote(flag: bool, mesh: Mesh) -> jax.Array:
  """Whether `flag` is True on any process of the mesh (each gives its own), as a device scalar
  not yet waited for: the same answer on every process, so all act on it at the same step. A
  collective: every process must call it, in the same order."""
  return any_device_vote({device: flag for device in batch_sharded(mesh).addressable_devices},
                         mesh)


def any_process(flag: bool, mesh: Mesh) -> bool:
  """`any_process_vote`, read (waits for it)."""
  return bool(any_process_vote(flag, mesh))
