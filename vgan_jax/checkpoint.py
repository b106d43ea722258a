"""Checkpoints of the train state with orbax: save every N steps, keep the last K, resume from the
latest. Each checkpoint also holds the config it was trained with (JSON), so a checkpoint that
does not fit the current model is refused with a message naming the differing fields, before
orbax is asked to restore arrays of the wrong shape.

Orbax writes to a temporary directory and renames it when complete, so a run killed during a save
never leaves a checkpoint that looks finished.
"""

import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from vgan_jax import configs, train_state

STATE = 'state'
CONFIG = 'config'
# Config sections that fix the shapes of the state; a checkpoint must agree on them to be restored.
STRUCTURAL_FIELDS = ('model',)
# ... except these model fields, which change how the same parameters are computed with.
COMPUTATION_FIELDS = ('conv_impl', 'compute_dtype', 'two_stream_impl')


class CheckpointMismatchError(ValueError):
  """A checkpoint that was written for another model than the one being restored."""


class NoCheckpointError(FileNotFoundError):
  """A work directory with no checkpoint to restore."""


class NonFiniteStateError(ValueError):
  """A state with NaN or infinite values, which is never saved (it would replace good
  checkpoints in the rotation)."""


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
      return '.'.join(str(getattr(key, 'name', getattr(key, 'key', key))) for key in path)
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
  return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                               item_names=(STATE, CONFIG))


BEST_DIRECTORY = 'checkpoints_best'


def create_best_manager(directory: str, metric: str = 'fvd') -> ocp.CheckpointManager:
  """A manager in `directory` that keeps the one checkpoint with the lowest `metric` (orbax's
  `best_fn`; the metric is stored with each checkpoint, so a resumed run knows the best so far).
  Saves synchronously."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=1, best_fn=lambda metrics: metrics[metric], best_mode='min', create=True,
      enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                               item_names=(STATE, CONFIG))


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
  return manager.save(step, args=ocp.args.Composite(**{
      STATE: ocp.args.StandardSave(state),
      CONFIG: ocp.args.JsonSave(config.to_dict())}), force=force, metrics=metrics)


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


def load_config(manager: ocp.CheckpointManager, step: int) -> dict:
  """The config (a plain dict) saved with the checkpoint at `step`."""
  return manager.restore(step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()}))[CONFIG]


def restore(manager: ocp.CheckpointManager, step: int, target: Any,
            config: ml_collections.ConfigDict) -> Any:
  """The state saved at `step`, with the shapes, dtypes and shardings of `target`.

  Raises CheckpointMismatchError (naming the checkpoint and what differs) for a checkpoint of
  another model, and FileNotFoundError for a step that is not there.
  """
  where = os.path.join(str(manager.directory), str(step))
  if step not in manager.all_steps():
    raise FileNotFoundError(f'No checkpoint at step {step} in {manager.directory} '
                            f'(steps there: {list(manager.all_steps()) or "none"}).')
  check_compatible(load_config(manager, step), config, where)
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  try:
    restored = manager.restore(step, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardRestore(abstract)}))
  except (ValueError, KeyError, TypeError) as error:  # shapes or tree structure differ
    raise CheckpointMismatchError(
        f'The checkpoint {where} does not fit the model: {_mismatch_detail(error)}') from error
  return restored[STATE]


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


def restore_latest(manager: ocp.CheckpointManager, target: Any,
                   config: ml_collections.ConfigDict) -> Any:
  """The latest checkpoint's state if there is one, else `target` unchanged."""
  step = manager.latest_step()
  if step is None:
    return target
  logging.info('Resuming from the checkpoint at step %d in %s.', step, manager.directory)
  return restore(manager, step, target, config)


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
                                  item_names=(STATE, CONFIG))
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
