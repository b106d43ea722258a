"""Training across real processes on this machine: 2 processes with 1 CPU device each (JAX's CPU
collectives over gloo) against 1 process with 2 devices on the same global batch, and a SIGTERM
to one process stopping both after the same step with a checkpoint that the rerun resumes; for
the GAN (`experiments.train`) and the UCF101 classifier (`experiments.evaluate`)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from data_pipeline import ucf101
from experiments import evaluation, tasks
from vgan_jax import checkpoint, configs, parallel, train_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ('--config=test', '--scene=beach', '--config.batch_size=4', '--config.log_every=1')
CACHE = os.path.join(REPO, '.pytest_cache', 'xla')  # conftest.py's compilation cache


def _free_port():
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


def _start(module, arguments, devices=1, process=None, port=None):
  """`python -m module` (one of a 2-process job when `process` is given) with `devices` CPU
  devices; its output in one pipe."""
  job = [] if process is None else [f'--coordinator_address=127.0.0.1:{port}',
                                    '--num_processes=2', f'--process_id={process}']
  # The XLA flags of this test process (conftest.py) but the device count, so all compile alike.
  env = dict(os.environ, PYTHONPATH=REPO, VGAN_JAX_CACHE=CACHE, TF_CPP_MIN_LOG_LEVEL='3',
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices} '
                       '--xla_backend_optimization_level=0')
  return subprocess.Popen([sys.executable, '-m', module, *arguments, *job], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _train(workdir, steps, devices=1, process=None, port=None, *extra):
  """A `train` process (one of 2 when `process` is given) with `devices` CPU devices."""
  return _start('experiments.train', [*FLAGS, f'--workdir={workdir}',
                                      f'--config.num_steps={steps}', *extra],
                devices, process, port)


def _finish(processes, timeout=400):
  outputs = [process.communicate(timeout=timeout)[0] for process in processes]
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-3000:]
  return outputs


def _params(workdir):
  _, _, state = checkpoint.restore_for_inference(str(workdir))
  return jax.device_get((state.generator_params, state.discriminator_params)), int(state.step)


def _step_reached(process, step, seen, deadline):
  """Reads `process`'s output until it logs `step/`; its lines go to `seen`."""
  while time.monotonic() < deadline:
    line = process.stdout.readline()
    if not line:
      return False
    seen.append(line)
    if re.search(rf'step {step}/\d+', line):
      return True
  return False


def _terminate_one_after(processes, step):
  """SIGTERM to process 1 of the job once process 0 has logged `step`; both outputs, whole."""
  seen = [[], []]
  try:
    assert _step_reached(processes[0], step, seen[0], time.monotonic() + 300), ''.join(seen[0])
    processes[1].send_signal(signal.SIGTERM)
    return [''.join(lines) + process.communicate(timeout=300)[0]
            for lines, process in zip(seen, processes)]
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()


def _stopped_together(outputs, checkpoints):
  """The step both processes say they stopped after (the same one), which is the newest
  checkpoint in `checkpoints`."""
  stopped = [re.findall(r'Stopped at step (\d+)', output) for output in outputs]
  assert len(stopped[0]) == len(stopped[1]) == 1 and stopped[0] == stopped[1], stopped
  step = int(stopped[0][0])
  assert max(int(name) for name in os.listdir(checkpoints) if name.isdigit()) == step
  return step


def test_two_processes_stop_together_resume_and_train_as_one_with_two_devices(tmp_path):
  """2 processes; SIGTERM to process 1 after step 3: both stop after the same step N with a
  checkpoint; the rerun resumes to N + 2. Its parameters are those of 1 process with 2 devices
  trained to N + 2 on the same global batches (the same clips on the same devices: only the
  order of the all-reduce's 2 partial sums differs, XLA's in-process against gloo's)."""
  port = _free_port()
  processes = [_train(tmp_path / 'two', 1000, 1, process, port) for process in (0, 1)]
  outputs = _terminate_one_after(processes, 3)
  assert all(process.returncode == 0 for process in processes), outputs[1][-3000:]
  step = _stopped_together(outputs, tmp_path / 'two' / 'checkpoints')
  port = _free_port()
  rerun = [_train(tmp_path / 'two', step + 2, 1, process, port) for process in (0, 1)]
  config = configs.get_config('test')  # FLAGS, in this process and its 2 devices
  config.data.scene, config.batch_size, config.log_every, config.num_steps = 'beach', 4, 1, step + 2
  tasks.train_gan(config, str(tmp_path / 'one'))
  outputs = _finish(rerun)
  assert f'steps {step} -> {step + 2}' in outputs[0]
  (two, two_step), (one, one_step) = _params(tmp_path / 'two'), _params(tmp_path / 'one')
  assert two_step == one_step == step + 2
  difference = max(float(np.max(np.abs(a - b)))
                   for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)))
  assert difference < 1e-5, difference


# The classifier's run: 2 synthetic actions with 2 training videos each in global batches of 4, so
# an epoch is 1 step and --config.classifier.num_epochs counts steps.
UCF_CLASSES = ('MoveLeft', 'MoveRight')
CLASSIFIER = {'init': 'random', 'batch_size': 4, 'test_windows': 1}
CLASSIFIER_RUN = 'split1_random_finetune_fraction1'  # evaluation.evaluate_split's folder


def _evaluate(data_dir, output_dir, epochs, process, port):
  """One of the 2 `evaluate` processes of a job: the classifier of `CLASSIFIER`, `epochs` steps."""
  return _start('experiments.evaluate', [
      '--config=test', f'--data_dir={data_dir}', f'--output_dir={output_dir}',
      '--config.log_every=1', f'--config.classifier.num_epochs={epochs}',
      *(f'--config.classifier.{name}={value}' for name, value in CLASSIFIER.items())],
                1, process, port)


def _evaluate_here(data_dir, output_dir, epochs, cache_dir):
  """`_evaluate`'s run in this process, on its 2 devices, from the videos decoded in
  `cache_dir` (the same bytes it would write itself, in less time)."""
  config = configs.get_config('test')
  config.data.data_dir, config.log_every = data_dir, 1
  config.classifier.update(num_epochs=epochs, **CLASSIFIER)
  evaluation.evaluate(config, str(output_dir), progress=False, cache_dir=str(cache_dir))


def _classifier(output_dir):
  """(params, batch_stats) and step of the newest classifier checkpoint of a run."""
  _, _, state = checkpoint.restore_for_inference(
      str(output_dir / CLASSIFIER_RUN),
      build=lambda config: train_state.build_classifier(config, len(UCF_CLASSES)))
  return jax.device_get((state.params, state.batch_stats)), int(state.step)


def _check_halves_of_global_batches(cache_dir, seed):
  """Process p of 2 gets the p-th half of each global batch of 1 process, that is its own
  videos: each global batch holds 4 different videos (an epoch), and the halves make it up."""
  train_cache, = (os.path.join(cache_dir, name) for name in os.listdir(cache_dir)
                  if name.startswith('split1_train_') and name.endswith('.tfrecord'))
  whole = ucf101.train_dataset(train_cache, 16, 4, seed).as_numpy_iterator()
  halves = [ucf101.train_dataset(train_cache, 16, 2, seed, None, process, 2).as_numpy_iterator()
            for process in (0, 1)]
  for _ in range(2):
    batch, parts = next(whole), [next(half) for half in halves]
    for name in ('video', 'label'):
      np.testing.assert_array_equal(np.concatenate([part[name] for part in parts]), batch[name])
    videos = batch['video']
    assert not any(np.array_equal(videos[i], videos[j]) for i in range(4) for j in range(i))


def test_two_classifier_processes_stop_together_resume_and_train_as_one_with_two_devices(
    tmp_path):
  """The classifier fine-tune of `evaluate` in 2 processes. SIGTERM to process 1 after step 3:
  both stop after the same step N with a checkpoint (an unfinished stage: exit status 1,
  untested). The rerun restores it in both and goes on to N + 2; its results.json and classifier
  are those of 1 process with 2 devices trained to N + 2 on the same global batches (tolerance:
  as for the GAN, only who adds the all-reduce's 2 partial sums differs; measured 0). Both
  processes decoded the videos into one cache at once (atomic writes of the same bytes: one file
  a subset, no leftovers), and each read its own half of every global batch."""
  data = str(tmp_path / 'ucf')
  ucf101.write_synthetic_ucf(data, UCF_CLASSES, train_per_class=2, test_per_class=1, frames=20,
                             size=32)
  port = _free_port()
  processes = [_evaluate(data, tmp_path / 'two', 1000, process, port) for process in (0, 1)]
  outputs = _terminate_one_after(processes, 3)
  step = _stopped_together(outputs, tmp_path / 'two' / CLASSIFIER_RUN / 'checkpoints')
  for process, output in zip(processes, outputs):
    assert process.returncode == 1, output[-3000:]
    assert f'training stopped at step {step} of 1000' in output.strip().splitlines()[-1]
  assert not (tmp_path / 'two' / 'results.json').exists()
  port = _free_port()
  rerun = [_evaluate(data, tmp_path / 'two', step + 2, process, port) for process in (0, 1)]
  _evaluate_here(data, tmp_path / 'one', step + 2, tmp_path / 'two' / 'cache')
  for output in _finish(rerun):
    assert f'Resuming from the checkpoint at step {step} ' in output, output[-3000:]
    assert f'steps {step} -> {step + 2}' in output
  (two, two_step), (one, one_step) = _classifier(tmp_path / 'two'), _classifier(tmp_path / 'one')
  assert two_step == one_step == step + 2
  difference = max(float(np.max(np.abs(a - b)))
                   for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two), strict=True))
  assert difference < 1e-6, difference
  assert (json.loads((tmp_path / 'two' / 'results.json').read_text()) ==
          json.loads((tmp_path / 'one' / 'results.json').read_text()))
  cache = tmp_path / 'two' / 'cache'
  assert sorted(name.split('_')[1] + os.path.splitext(name)[1] for name in os.listdir(cache)) == [
      'test.json', 'test.tfrecord', 'train.json', 'train.tfrecord']
  _check_halves_of_global_batches(str(cache), configs.get_config('test').seed)


@pytest.mark.parametrize('arguments, message', [
    (('127.0.0.1:1', None, None), 'give --coordinator_address, --num_processes and --process_id '
                                  'together'),
    (('127.0.0.1:1', 2, 2), r'--process_id=2: must be in \[0, --num_processes=2\)'),
])
def test_job_flags_that_do_not_fit_together_are_refused(arguments, message):
  with pytest.raises(ValueError, match=message):
    parallel.initialize_distributed(*arguments)


def test_multihost_outside_a_cluster_is_one_line(tmp_path):
  process = _train(tmp_path / 'run', 1, 1, None, None, '--multihost')
  output = process.communicate(timeout=120)[0]
  assert process.returncode == 1, output[-2000:]
  assert 'train: no cluster found' in output and '--coordinator_address=HOST:PORT' in output
  assert not (tmp_path / 'run').exists()
