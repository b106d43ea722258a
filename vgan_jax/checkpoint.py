"""Checkpoints of the train state with orbax: save every N steps, keep the last K, resume from the
latest. Each checkpoint also holds the config it was trained with (JSON), so a checkpoint that
does not fit the current model is refused with a message naming the differing fields, before
orbax is asked to restore arrays of the wrong shape.

Orbax writes to a temporary directory and renames it when complete, so a run killed during a save
never leaves a checkpoint that looks finished. Each checkpoint also holds the SHA-256 of every
array it saved, checked at restore: a file damaged afterwards (a partial copy or sync of a work
directory, a flipped block) is named instead of silently loading wrong values, and training
resumes from the newest intact checkpoint, setting the damaged one aside.
"""

import errno
import hashlib
import os
import re
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from vgan_io import files
from vgan_jax import configs, train_state

STATE = 'state'
CONFIG = 'config'
CHECKSUMS = 'checksums'  # {leaf path: SHA-256 of its dtype, shape and bytes}; absent before
ITEMS = (STATE, CONFIG, CHECKSUMS)
DAMAGED = '.damaged-'  # STEP.damaged-TIME: a damaged checkpoint set aside (orbax ignores it)
# Config sections that fix the shapes of the state; a checkpoint must agree on them to be restored.
STRUCTURAL_FIELDS = ('model',)
# ... except these model fields, which change how the same parameters are computed with.
COMPUTATION_FIELDS = ('conv_impl', 'compute_dtype', 'two_stream_impl')


class CheckpointMismatchError(ValueError):
  """A checkpoint that was written for another model than the one being restored."""


class NoCheckpointError(FileNotFoundError):
  """A work directory with no checkpoint to restore."""


class CheckpointDamagedError(ValueError):
  """A checkpoint whose files cannot be read, or whose arrays differ from their checksums."""


class NonFiniteStateError(ValueError):
  """A state with NaN or infinite values, which is never saved (it would replace good
  checkpoints in the rotation)."""


def _leaf_name(path) -> str:
  return '.'.join(str(getattr(key, 'name', getattr(key, 'key', getattr(key, 'idx', key))))
                  for key in path)


def checksums(state: Any) -> dict[str, str]:
  """{leaf path: SHA-256 of the leaf's dtype, shape and bytes} of a state (this process's copy
  of each array: the states here are replicated)."""
  sums = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    if isinstance(leaf, jax.Array):
      leaf = leaf.addressable_data(0)
    value = np.ascontiguousarray(np.asarray(leaf))
    digest = hashlib.sha256(f'{value.dtype.str}{value.shape}'.encode())
    digest.update(value.view(np.uint8).reshape(-1) if value.size else b'')
    sums[_leaf_name(path)] = digest.hexdigest()
  return sums


@jax.jit
def _finite_leaves(leaves: list[jax.Array]) -> jax.Array:
  return jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])


def first_non_finite(state: Any) -> str | None:
  """The path of the first floating-point leaf of `state` holding a NaN or an infinity (e.g.
  'params.generator.trunk.kernel'); None when every value is finite."""
  named = [(path, leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
           if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)]
  if not named:
    return None
  finite = jax.device_get(_finite_leaves([leaf for _, leaf in named]))
  for (path, _), ok in zip(named, finite):
    if not ok:
      return _leaf_name(path)
  return None


def create_manager(directory: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  """A manager in `directory` that keeps `config.keep_checkpoints` and saves asynchronously.

  Saves at multiples of `config.checkpoint_every` (plus any `force=True` save, e.g. at the end).
  """
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_checkpoints,
      save_interval_steps=config.checkpoint_every,
      create=True,
      # The save copies the arrays to host memory before returning, so the train step may donate
      # and overwrite the device buffers while the files are still being written.
      enable_async_checkpointing=True)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options, item_names=ITEMS)


BEST_DIRECTORY = 'checkpoints_best'


def create_best_manager(directory: str, metric: str = 'fvd') -> ocp.CheckpointManager:
  """A manager in `directory` that keeps the one checkpoint with the lowest `metric` (orbax's
  `best_fn`; the metric is stored with each checkpoint, so a resumed run knows the best so far).
  Saves synchronously."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=1, best_fn=lambda metrics: metrics[metric], best_mode='min', create=True,
      enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options, item_names=ITEMS)


def check_space(directory: str, state: Any, step: int) -> None:
  """OSError (ENOSPC, naming `directory`) when its disk has less free space than the state's
  arrays take uncompressed: refused before orbax starts, whose failure halfway through a save
  is a traceback per array from its writer threads."""
  needed = sum(np.asarray(leaf).nbytes if not isinstance(leaf, jax.Array) else leaf.nbytes
               for leaf in jax.tree.leaves(state)) + 2 ** 20  # and the small metadata files
  stat = os.statvfs(directory)
  free = stat.f_bavail * stat.f_frsize
  if free < needed:
    raise OSError(errno.ENOSPC, f'{files.NO_SPACE}: the checkpoint of step {step} needs up to '
                  f'{needed / 2 ** 20:.1f} MiB, {free / 2 ** 20:.1f} MiB free', directory)


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         config: ml_collections.ConfigDict, force: bool = False,
         metrics: dict[str, float] | None = None) -> bool:
  """Saves `state` and `config` at `step` if the interval says so (or `force`); True if it did.
  `metrics` go with it, for a manager that keeps the best (`create_best_manager`).
  NonFiniteStateError, saving nothing, when the state holds a NaN or an infinity."""
  if not (force or manager.should_save(step)):
    return False
  bad = first_non_finite(state)
  if bad:
    raise NonFiniteStateError(f'step {step}: {bad} holds NaN or infinite values; not saved (the '
                              f'checkpoints in {manager.directory} are all finite).')
  check_space(str(manager.directory), state, step)
  return manager.save(step, args=ocp.args.Composite(**{
      STATE: ocp.args.StandardSave(state),
      CONFIG: ocp.args.JsonSave(config.to_dict()),
      CHECKSUMS: ocp.args.JsonSave(checksums(state))}), force=force, metrics=metrics)


def _differences(saved: dict, current: dict, prefix: str = '') -> list[str]:
  """'field: saved -> current' for every leaf where two nested dicts differ."""
  lines = []
  for key in sorted(set(saved) | set(current)):
    name = f'{prefix}{key}'
    a, b = saved.get(key, '<missing>'), current.get(key, '<missing>')
    if isinstance(a, dict) and isinstance(b, dict):
      lines += _differences(a, b, name + '.')
    elif a != b:
      lines.append(f'{name}: checkpoint {a!r}, current {b!r}')
  return lines


def check_compatible(saved_config: dict, config: ml_collections.ConfigDict, where: str) -> None:
  """Raises CheckpointMismatchError when the saved config's model differs from `config`'s."""
  current = config.to_dict()
  saved_config = configs.with_defaults(saved_config).to_dict()
  def structure(config_dict):
    sections = {k: dict(config_dict.get(k, {})) for k in STRUCTURAL_FIELDS}
    for name in COMPUTATION_FIELDS:
      sections['model'].pop(name, None)
    return sections

  differences = _differences(structure(saved_config), structure(current))
  if differences:
    raise CheckpointMismatchError(
        f'The checkpoint {where} was written for another model:\n  ' + '\n  '.join(differences) +
        '\nRestore it with the config it was trained with, or start a new --workdir.')
  others = _differences(saved_config, current)
  if others:
    logging.info('Resuming %s with changed settings: %s', where, '; '.join(others))


def _step_path(manager: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(str(manager.directory), str(step))


def _first_line(error: BaseException) -> str:
  message = str(error).strip()
  return (message.splitlines()[0][:300] if message else '') or type(error).__name__


def load_config(manager: ocp.CheckpointManager, step: int) -> dict:
  """The config (a plain dict) saved with the checkpoint at `step`. CheckpointDamagedError
  when it cannot be read."""
  path = os.path.join(_step_path(manager, step), CONFIG)
  try:
    config = manager.restore(step, args=ocp.args.Composite(**{
        CONFIG: ocp.args.JsonRestore()}))[CONFIG]
  except Exception as error:  # pylint: disable=broad-except (orbax raises many kinds)
    raise CheckpointDamagedError(f'{path}: the saved config cannot be read '
                                 f'({_first_line(error)}).') from None
  if not isinstance(config, dict) or 'model' not in config:
    raise CheckpointDamagedError(f'{path}: the saved config is not a config.')
  return config


def _saved_checksums(manager: ocp.CheckpointManager, step: int) -> dict[str, str] | None:
  """The checksums saved with `step`; None for a checkpoint written before they were."""
  path = os.path.join(_step_path(manager, step), CHECKSUMS)
  if not os.path.isdir(path):
    return None
  try:
    return manager.restore(step, args=ocp.args.Composite(**{
        CHECKSUMS: ocp.args.JsonRestore()}))[CHECKSUMS]
  except Exception as error:  # pylint: disable=broad-except
    raise CheckpointDamagedError(f'{path}: the saved checksums cannot be read '
                                 f'({_first_line(error)}).') from None


def verify(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
  """CheckpointDamagedError naming the first array of `state` (restored from `step`) whose
  SHA-256 differs from the one saved with it; nothing for a checkpoint without checksums."""
  saved = _saved_checksums(manager, step)
  if saved is None:
    return
  for name, digest in checksums(state).items():
    if saved.get(name) != digest:
      raise CheckpointDamagedError(
          f'{os.path.join(_step_path(manager, step), STATE)}: the array {name} differs from the '
          'checksum saved with it (its file was changed or damaged after saving).')


def restore(manager: ocp.CheckpointManager, step: int, target: Any,
            config: ml_collections.ConfigDict) -> Any:
  """The state saved at `step`, with the shapes, dtypes and shardings of `target`.

  Raises CheckpointMismatchError (naming the checkpoint and what differs) for a checkpoint of
  another model, CheckpointDamagedError (naming the checkpoint and the file or array) for one
  whose files cannot be read or whose arrays differ from their saved checksums, and
  FileNotFoundError for a step that is not there.
  """
  where = _step_path(manager, step)
  if step not in manager.all_steps():
    raise FileNotFoundError(f'No checkpoint at step {step} in {manager.directory} '
                            f'(steps there: {list(manager.all_steps()) or "none"}).')
  check_compatible(load_config(manager, step), config, where)
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  try:
    restored = manager.restore(step, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardRestore(abstract)}))[STATE]
  except Exception as error:  # pylint: disable=broad-except (orbax/tensorstore raise many kinds)
    if _is_structure_mismatch(error):  # the config matched, so only another kind of state
      raise CheckpointMismatchError(
          f'The checkpoint {where} does not fit the model: {_mismatch_detail(error)}') from None
    raise CheckpointDamagedError(f'{os.path.join(where, STATE)}: cannot be read '
                                 f'({_first_line(error)}).') from None
  verify(manager, step, restored)
  return restored


def _is_structure_mismatch(error: BaseException) -> bool:
  """Whether orbax's error says the saved tree differs from the target's (fields missing on one
  side, other shapes), as opposed to files it could not read."""
  message = str(error)
  return isinstance(error, (ValueError, KeyError, TypeError)) and any(
      marker in message for marker in ('Source: MISSING', 'Target: MISSING', 'tree structure',
                                       'shape', 'Shape'))


# The top-level fields of each kind of training state (vgan_jax/train_state.py).
_STATE_KINDS = (('generator_params', "a GAN's or a future predictor's"),
                ('params', "an autoencoder's or an action classifier's"))


def _mismatch_detail(error: Exception) -> str:
  """What orbax's error says, shortly: for another kind of state, which kind the checkpoint holds
  (orbax lists the differing fields, each with the whole subtree: tens of kilobytes); else its
  first line."""
  message = str(error).strip()
  # Fields on disk that the model's state has not: "NAME:" then "- Source: MISSING".
  on_disk_only = re.findall(r'^(\w+):\n\s*- Source: MISSING', message, re.MULTILINE)
  if on_disk_only:
    kind = next((kind for field, kind in _STATE_KINDS if field in on_disk_only), 'another kind of')
    return (f'it holds {kind} state (fields {", ".join(sorted(on_disk_only))}), not this model\'s; '
            'use the command that trained it, or another work directory.')
  return message.splitlines()[0][:300] if message else repr(error)


def set_aside(manager: ocp.CheckpointManager, step: int) -> str:
  """Renames a damaged checkpoint to STEP.damaged-TIME (kept for inspection, out of orbax's
  steps, so it is neither restored nor overwritten); its new path. Process 0 renames; every
  process reloads the manager's list of steps."""
  path = _step_path(manager, step)
  aside = f'{path}{DAMAGED}{time.strftime("%Y%m%d-%H%M%S")}'
  if jax.process_index() == 0:
    os.rename(path, aside)
  manager.reload()
  return aside


def restore_latest(manager: ocp.CheckpointManager, target: Any,
                   config: ml_collections.ConfigDict) -> Any:
  """The newest intact checkpoint's state, else `target` unchanged when there is none at all.

  A damaged checkpoint (CheckpointDamagedError) is logged with its reason and set aside
  (`set_aside`), and the next older one is tried, so a resumed run never trains on damaged
  values and never overwrites or rotates away an intact checkpoint for a damaged one. When every
  checkpoint is damaged, CheckpointDamagedError names them all. CheckpointMismatchError (another
  model) stops at once.
  """
  damaged = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      state = restore(manager, step, target, config)
    except CheckpointDamagedError as error:
      aside = set_aside(manager, step)
      logging.warning('Damaged checkpoint: %s Set aside as %s; trying the one before.', error,
                      aside)
      damaged.append(f'{error} (now {os.path.basename(aside)})')
      continue
    logging.info('Resuming from the checkpoint at step %d in %s.', step, manager.directory)
    return state
  if damaged:
    raise CheckpointDamagedError(
        f'Every checkpoint in {manager.directory} is damaged: ' + '; '.join(damaged) +
        ' Restore the work directory from a copy, or start a new --workdir.')
  return target


def checkpoint_directory(workdir_or_checkpoints: str) -> str:
  """`WORKDIR/checkpoints` for a work directory, or the path itself if it already holds steps."""
  candidate = os.path.join(workdir_or_checkpoints, 'checkpoints')
  return candidate if os.path.isdir(candidate) else workdir_or_checkpoints


def restore_for_inference(workdir: str, step: int | None = None,
                          build: Any = None) -> tuple[ml_collections.ConfigDict, Any, Any]:
  """(config, networks, state) of a trained model, for sampling, prediction and analysis.

  `workdir` is a training work directory (or its `checkpoints/` folder); the latest step unless
  `step` is given. The config comes from the checkpoint, so the caller needs to know nothing of
  how the model was trained. `build(config) -> networks` (default `train_state.build_gan`) makes
  the networks whose state the checkpoint holds. Raises FileNotFoundError when there is no
  checkpoint (NoCheckpointError), CheckpointMismatchError when it holds another model's state.
  """
  directory = os.path.abspath(checkpoint_directory(workdir))
  if not os.path.isdir(directory):
    raise NoCheckpointError(f'No checkpoints in {workdir}: the folder does not exist.')
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=False),
                                  item_names=ITEMS)
  try:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise NoCheckpointError(f'No checkpoints in {directory}.')
    config = configs.with_defaults(load_config(manager, step))
    networks = (build or train_state.build_gan)(config)
    abstract_state = train_state.abstract_train_state(networks, config)
    return config, networks, restore(manager, step, abstract_state, config)
  finally:
    manager.close()
