"""Test set-up: two fake CPU devices (for the data-parallel tests), a shared compilation cache,
and the small `test` config."""

import os

# Before JAX starts: 2 CPU devices; a lower LLVM optimisation level halves XLA's CPU compile time
# (the tests run few steps, so compiling dominates).
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=2'
                           ' --xla_backend_optimization_level=0')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

from vgan_jax import configs  # pylint: disable=g-import-not-at-top

jax.config.update('jax_compilation_cache_dir',
                  os.path.join(os.path.dirname(__file__), '..', '.pytest_cache', 'xla'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


@pytest.fixture(scope='module')
def gan_workdir(tmp_path_factory):
  """A work directory with a GAN checkpoint of the `test` config after one step."""
  from experiments import tasks  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path_factory.mktemp('gan'))
  config = configs.get_config('test')
  config.num_steps = 1
  config.data.scene = 'golf'
  tasks.train_gan(config, workdir)
  return workdir


@pytest.fixture
def test_config():
  """The smallest config: 16 frames of 32x32, width 4, batch 4."""
  return configs.get_config('test')


@pytest.fixture
def lock_holder():
  """`hold(folder, what)`: another process takes `folder`'s lock (vgan_io.files.exclusive_lock),
  as a run in progress would, and keeps it; returns its pid. `release()` SIGKILLs it (the lock
  must go with it); the fixture does so at the end too."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  holders = []

  def hold(folder, what):
    holder = subprocess.Popen([sys.executable, '-c', (
        'import time; from vgan_io import files\n'
        f'with files.exclusive_lock({str(folder)!r}, {what!r}):\n'
        '  print("locked", flush=True); time.sleep(600)')], stdout=subprocess.PIPE, text=True,
                              cwd=repo, env=dict(os.environ, PYTHONPATH=repo))
    holders.append(holder)
    assert holder.stdout.readline() == 'locked\n'
    return holder.pid

  def release():
    for holder in holders:
      holder.kill()
      holder.wait()

  hold.release = release
  yield hold
  release()
