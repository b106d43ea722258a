"""Training across real processes on this machine: 2 processes with 1 CPU device each (JAX's CPU
collectives over gloo) against 1 process with 2 devices on the same global batch, and a SIGTERM
to one process stopping both after the same step with a checkpoint that the rerun resumes."""

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

from experiments import tasks
from vgan_jax import checkpoint, configs, parallel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ('--config=test', '--scene=beach', '--config.batch_size=4', '--config.log_every=1')
CACHE = os.path.join(REPO, '.pytest_cache', 'xla')  # conftest.py's compilation cache


def _free_port():
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


def _train(workdir, steps, devices=1, process=None, port=None, *extra):
  """A `train` process (one of 2 when `process` is given) with `devices` CPU devices."""
  job = [] if process is None else [f'--coordinator_address=127.0.0.1:{port}',
                                    '--num_processes=2', f'--process_id={process}']
  # The XLA flags of this test process (conftest.py) but the device count, so all compile alike.
  env = dict(os.environ, PYTHONPATH=REPO, VGAN_JAX_CACHE=CACHE, TF_CPP_MIN_LOG_LEVEL='3',
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices} '
                       '--xla_backend_optimization_level=0')
  return subprocess.Popen(
      [sys.executable, '-m', 'experiments.train', *FLAGS, f'--workdir={workdir}',
       f'--config.num_steps={steps}', *job, *extra], cwd=REPO, env=env,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


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


def test_two_processes_stop_together_resume_and_train_as_one_with_two_devices(tmp_path):
  """2 processes; SIGTERM to process 1 after step 3: both stop after the same step N with a
  checkpoint; the rerun resumes to N + 2. Its parameters are those of 1 process with 2 devices
  trained to N + 2 on the same global batches (the same clips on the same devices: only the
  order of the all-reduce's 2 partial sums differs, XLA's in-process against gloo's)."""
  port = _free_port()
  processes = [_train(tmp_path / 'two', 1000, 1, process, port) for process in (0, 1)]
  seen = [[], []]
  try:
    assert _step_reached(processes[0], 3, seen[0], time.monotonic() + 300), ''.join(seen[0])
    processes[1].send_signal(signal.SIGTERM)
    outputs = [''.join(lines) + process.communicate(timeout=300)[0]
               for lines, process in zip(seen, processes)]
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  assert all(process.returncode == 0 for process in processes), outputs[1][-3000:]
  stopped = [re.findall(r'Stopped at step (\d+)', output) for output in outputs]
  assert len(stopped[0]) == len(stopped[1]) == 1 and stopped[0] == stopped[1], stopped
  step = int(stopped[0][0])
  assert max(int(name) for name in os.listdir(tmp_path / 'two' / 'checkpoints')
             if name.isdigit()) == step
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
