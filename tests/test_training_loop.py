"""The one training loop (experiments/training.py): a stop that every host agrees on, hooks,
checkpoints wherever it stops, and every kind of training going through it."""

import dataclasses
import os
import signal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import training
from vgan_io import files
from vgan_jax import checkpoint, configs, parallel


def test_any_device_all_reduces_the_devices_flags():
  """Two devices in one process stand for two hosts: each device holds its host's flag."""
  mesh = parallel.create_mesh()
  first, second = mesh.devices.flat
  assert mesh.devices.size == 2
  assert parallel.any_device({first: False, second: True}, mesh)
  assert parallel.any_device({first: True, second: False}, mesh)
  assert not parallel.any_device({first: False, second: False}, mesh)
  assert parallel.any_process(True, mesh) and not parallel.any_process(False, mesh)


def test_a_signal_becomes_a_stop_request_and_handlers_are_restored():
  """raise_signal, not os.kill: raise() delivers to this (the main) thread before it returns, and
  Python runs the handler before raise_signal returns, so the check after it cannot run first."""
  mesh = parallel.create_mesh()
  before = signal.getsignal(signal.SIGTERM)
  with training.StopRequest(mesh) as stop:
    assert not stop.agreed()
    signal.raise_signal(signal.SIGTERM)
    assert stop.requested and stop.agreed()
  assert signal.getsignal(signal.SIGTERM) is before


@flax.struct.dataclass
class LinearState:
  step: jax.Array
  params: jax.Array
  opt_state: optax.OptState


def _counting_task(num_steps, hooks=()):
  """Least squares on y = x . [1, -2, 0.5] with SGD; the batch of a step depends on the step."""
  optimizer = optax.sgd(0.1)

  def initial_state(rng, sharding):
    del rng
    params = jnp.zeros(3)
    state = LinearState(jnp.zeros((), jnp.int32), params, optimizer.init(params))
    return jax.device_put(state, sharding)

  def train_step(state, batch):
    loss_fn = lambda p: jnp.mean((batch['x'] @ p - batch['y']) ** 2)
    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state)
    return LinearState(state.step + 1, optax.apply_updates(state.params, updates),
                       opt_state), {'loss': loss}

  def batches_from(start_step, batch_size):
    for step in range(start_step, 10 ** 6):  # the batch of each step depends on the step only
      rng = np.random.default_rng(step)
      x = rng.normal(size=(batch_size, 3)).astype(np.float32)
      yield {'x': x, 'y': x @ np.array([1.0, -2.0, 0.5], np.float32)}

  return training.Task(initial_state=initial_state, train_step=train_step,
                       batches_from=batches_from, num_steps=num_steps, batch_size=4,
                       progress_metrics=('loss',), hooks=hooks, description='Counting')


def test_loop_trains_runs_hooks_and_resumes_exactly(test_config, tmp_path):
  test_config.log_every = 3
  test_config.checkpoint_every = 5
  calls = []
  hook = training.Hook(4, lambda state, step, writer: calls.append((step, int(state.step))))
  uninterrupted = training.train(_counting_task(10, [hook]), test_config, str(tmp_path / 'a'),
                                 progress=False)
  assert int(uninterrupted.step) == 10
  assert calls == [(4, 4), (8, 8), (10, 10)]  # every 4 steps and after the last
  assert sorted(os.listdir(tmp_path / 'a' / 'checkpoints')) == ['10', '5']
  training.train(_counting_task(7), test_config, str(tmp_path / 'b'), progress=False)
  resumed = training.train(_counting_task(10), test_config, str(tmp_path / 'b'), progress=False)
  np.testing.assert_array_equal(resumed.params, uninterrupted.params)
  assert float(np.abs(np.asarray(resumed.params) - [1.0, -2.0, 0.5]).max()) < 0.5  # it learns


def test_logged_means_are_over_the_steps_of_each_interval(test_config, tmp_path, monkeypatch):
  """What is logged every `log_every` steps is the mean over those steps only (not since the
  start, not the last value): with a metric equal to the step's number, the means at steps 3, 6
  and the last, 7, are those of 1..3, 4..6 and 7."""
  logged = []

  def recording(metrics, interval_start, batch_size, first_step):
    means = interval_means(metrics, interval_start, batch_size, first_step)
    logged.append(means['step'])
    return means

  interval_means = training.interval_means
  monkeypatch.setattr(training, 'interval_means', recording)
  task = _counting_task(7)

  def numbered_step(state, batch):
    state, metrics = task.train_step(state, batch)
    return state, {**metrics, 'step': state.step.astype(jnp.float32)}

  test_config.log_every = 3
  training.train(dataclasses.replace(task, train_step=numbered_step), test_config,
                 str(tmp_path), progress=False)
  assert logged == [2.0, 5.0, 7.0]


def test_a_run_resumes_from_its_latest_checkpoint(test_config, tmp_path):
  """`restore_latest` restores the newest of the checkpoints kept, not an older one (which the
  loop would silently train again from, its batches being a function of the step)."""
  test_config.keep_checkpoints = 3
  manager = checkpoint.create_manager(str(tmp_path), test_config)
  for step in (2, 4, 6):
    checkpoint.save(manager, step, {'w': jnp.full(2, float(step))}, test_config, force=True)
  manager.wait_until_finished()
  restored = checkpoint.restore_latest(manager, {'w': jnp.zeros(2)}, test_config)
  manager.close()
  np.testing.assert_array_equal(restored['w'], [6.0, 6.0])


def test_every_host_stops_after_the_step_any_host_was_asked_to(test_config, tmp_path,
                                                               monkeypatch):
  """Another host's request (the all-reduce answers True from the vote after step 3 on) stops
  this one too, after the same step, with a checkpoint of it. The vote cast after step k is read
  after step k + 1 is dispatched (so the device never drains), hence step 4."""
  checks = []

  def any_process_vote(flag, mesh):
    checks.append(flag)
    return jnp.asarray(len(checks) >= 3)

  monkeypatch.setattr(training.parallel, 'any_process_vote', any_process_vote)
  test_config.checkpoint_every = 100
  state = training.train(_counting_task(10), test_config, str(tmp_path), progress=False)
  assert int(state.step) == 4 and not any(checks)  # this host itself was never signalled
  assert max(int(name) for name in os.listdir(tmp_path / 'checkpoints')) == 4


def test_best_checkpoint_is_the_lowest_metric_across_a_resume(tmp_path):
  """`checkpoint.create_best_manager` keeps one checkpoint, the lowest FVD so far, and a new
  manager (a resumed run) reads the metrics stored with it: a worse step is dropped, a better
  one replaces it."""
  from vgan_jax import checkpoint  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict({'seed': 0})
  def save_then_list(step, fvd):
    manager = checkpoint.create_best_manager(str(tmp_path))  # a fresh one each time: resumes
    checkpoint.save(manager, step, {'w': jnp.full(2, step)}, config, force=True,
                    metrics={'fvd': fvd, 'kvd': 0.0})
    manager.close()
    return sorted(int(name) for name in os.listdir(tmp_path) if name.isdigit())

  assert save_then_list(2, 10.0) == [2]
  assert save_then_list(4, 12.5) == [2]  # worse: not kept
  assert save_then_list(6, 9.0) == [6]   # better: replaces step 2


def test_a_non_finite_loss_stops_training_and_only_finite_states_are_saved(test_config,
                                                                           tmp_path):
  """The parameters become NaN in step 5: step 6's loss is NaN, which stops the run with the
  step and the quantity named; the checkpoints kept (2, 4) are finite, and the latest restores."""
  task = _counting_task(10)

  def poisoned_step(state, batch):
    state, metrics = task.train_step(state, batch)
    return state.replace(params=jnp.where(state.step == 5, jnp.nan, state.params)), metrics

  test_config.log_every, test_config.checkpoint_every = 3, 2
  with pytest.raises(training.NonFiniteMetricError, match=r'step 6: loss is nan; training '
                                                          r'stopped there'):
    training.train(dataclasses.replace(task, train_step=poisoned_step), test_config,
                   str(tmp_path), progress=False)
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4']
  manager = checkpoint.create_manager(str(tmp_path / 'checkpoints'), test_config)
  restored = checkpoint.restore_latest(
      manager, task.initial_state(None, parallel.replicated(parallel.create_mesh())), test_config)
  manager.close()
  assert int(restored.step) == 4 and np.all(np.isfinite(np.asarray(restored.params)))


def test_a_non_finite_state_is_never_saved(test_config, tmp_path):
  manager = checkpoint.create_manager(str(tmp_path), test_config)
  state = {'params': {'kernel': jnp.array([1.0, jnp.inf])}, 'step': jnp.int32(3)}
  with pytest.raises(checkpoint.NonFiniteStateError, match=r'step 3: params.kernel holds NaN or '
                                                           r'infinite values; not saved'):
    checkpoint.save(manager, 3, state, test_config, force=True)
  assert checkpoint.save(manager, 4, {'params': {'kernel': jnp.ones(2)}}, test_config, force=True)
  manager.wait_until_finished()
  manager.close()
  assert os.listdir(tmp_path) == ['4']


@pytest.mark.parametrize('field, value', [('optimizer.b1', 1.0), ('optimizer.b2', -0.1),
                                          ('optimizer.learning_rate', 0.0),
                                          ('classifier.learning_rate', -1e-3)])
def test_optimizer_settings_outside_adams_range_are_refused(test_config, field, value):
  section, name = field.split('.')
  test_config[section][name] = value
  with pytest.raises(ValueError, match=rf'config.{field}={value}: Adam needs'):
    configs.validate(test_config)


def test_a_second_run_in_the_same_work_directory_is_refused_at_once(test_config, tmp_path,
                                                                    lock_holder):
  """Another process holds the work directory's lock (a run in progress): refused with its pid,
  nothing written. Killed with SIGKILL, it leaves no stuck lock: the run then goes ahead."""
  pid = lock_holder(tmp_path, 'training run')
  with pytest.raises(files.FolderInUseError, match=rf'is in use by another training run \(pid '
                                                   rf'{pid}, started '):
    training.train(_counting_task(2), test_config, str(tmp_path), progress=False)
  assert os.listdir(tmp_path) == [files.LOCK]
  lock_holder.release()
  assert int(training.train(_counting_task(2), test_config, str(tmp_path),
                            progress=False).step) == 2
