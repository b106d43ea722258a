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
