"""The autoencoder + Gaussian mixture baseline: shapes, learning, exact resume, the mixture fit,
save/load and seeds, sample files, clear errors, and the command end to end.

The command (experiments.baseline, which defines absl flags) runs in subprocesses; its work
(experiments.autoencoder_baseline) in-process.
"""

import functools
import logging
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import video_files
from sklearn.mixture import GaussianMixture

from data_pipeline import synthetic
from experiments import autoencoder_baseline
from vgan_jax import (checkpoint, configs, gmm, models, parallel, sampling, train_state,
                      train_step)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tests' compilation cache (tests/conftest.py), so the command reuses what they compiled.
CACHE = os.path.join(REPO, '.pytest_cache', 'xla')


def _train(config, workdir, steps):
  config.num_steps = steps
  config.data.scene = 'golf'
  return autoencoder_baseline.train_autoencoder(config, str(workdir), progress=False)


# 10x the paper's learning rate, so that a few dozen steps show learning (Adam moves each weight
# by about the learning rate per step). Every test, and the command, uses it: one compiled step.
LEARNING_RATE = 2e-3


def _config():
  config = configs.get_config('test')
  config.optimizer.learning_rate = LEARNING_RATE
  return config


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """(work directory, state) of 4 uninterrupted steps; no mixture yet."""
  workdir = tmp_path_factory.mktemp('autoencoder')
  return workdir, _train(_config(), workdir, 4)


def _leaves(state):
  return jax.tree.leaves(jax.device_get(state))


def test_encoder_code_and_reconstruction_shapes(test_config):
  networks = train_state.build_autoencoder(test_config)
  video = jnp.zeros((3, 16, 32, 32, 3))
  init = functools.partial(networks.model.init, train=False)
  variables = jax.eval_shape(init, jax.random.PRNGKey(0), video)
  code, output = jax.eval_shape(
      lambda v, x: networks.model.apply(v, x, train=True, mutable=['batch_stats'])[0],
      variables, video)
  assert code.shape == (3, 100)
  assert output.video.shape == (3, 16, 32, 32, 3) and output.mask.shape == (3, 16, 32, 32, 1)
  assert output.background.shape == (3, 32, 32, 3)
  # The encoder is D's trunk (same parameter paths and shapes) with a 100-d head.
  discriminator = models.build_discriminator(test_config.model)
  d_params = jax.eval_shape(functools.partial(discriminator.init, train=False),
                            jax.random.PRNGKey(0), video)
  assert (jax.tree.map(lambda x: x.shape, variables['params']['encoder']['trunk']) ==
          jax.tree.map(lambda x: x.shape, d_params['params']['trunk']))
  assert variables['params']['encoder']['code']['kernel'].shape == (1, 2, 2, 32, 100)
  with pytest.raises(ValueError, match=r'videos of shape \[B, 16, 32, 32, 3\]'):
    jax.eval_shape(init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 32, 32, 3)))


def test_reconstruction_loss_falls_on_a_fixed_batch():
  config = _config()
  networks = train_state.build_autoencoder(config)
  mesh = parallel.create_mesh()  # as the training loop runs it, so the compiled step is shared
  state = train_state.init_train_state(networks, config, jax.random.PRNGKey(0),
                                       parallel.replicated(mesh))
  batch = {'video': np.stack([synthetic.render_clip('beach', i, 16, 32) for i in range(4)])}
  step = parallel.jit_step(train_step.make_train_step(networks), mesh)
  losses = []
  for _ in range(30):
    state, metrics = step(state, parallel.shard_batch(batch, mesh))
    losses.append(float(metrics['reconstruction_loss']))
  assert int(state.step) == 30
  assert losses[-1] < 0.6 * losses[0], losses
  assert 0 < float(metrics['mask_penalty']) <= 0.1  # the prior is part of the loss


def test_resumed_training_equals_uninterrupted_training(trained, tmp_path):
  _, uninterrupted = trained
  _train(_config(), tmp_path, 2)  # "killed" after step 2 ...
  resumed = _train(_config(), tmp_path, 4)  # ... and run again
  assert int(resumed.step) == 4
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4']
  for a, b in zip(_leaves(uninterrupted), _leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b)
  # The checkpoint restores to the same state for inference.
  _, _, restored = autoencoder_baseline.load_autoencoder(str(tmp_path))
  for a, b in zip(_leaves(resumed), _leaves(restored), strict=True):
    np.testing.assert_array_equal(a, b)


def _three_gaussians(seed=0, n=600, dims=5):
  rng = np.random.default_rng(seed)
  means = np.array([[-6.0] * dims, [0.0] * dims, [6.0] * dims])
  means[:, 1] = [3.0, -3.0, 0.0]  # not all on one line
  labels = rng.integers(0, 3, n)
  return means, means[labels] + rng.normal(0, 0.5, (n, dims))


@pytest.mark.parametrize('covariance', ['diag', 'full'])
def test_mixture_recovers_known_means_and_saved_mixture_samples_the_same(covariance, tmp_path):
  means, codes = _three_gaussians()
  mixture = gmm.fit_gmm(codes, components=3, seed=0, covariance=covariance)
  found = mixture.means_[np.argsort(mixture.means_[:, 0])]
  np.testing.assert_allclose(found, means[np.argsort(means[:, 0])], atol=0.15)
  np.testing.assert_allclose(np.sort(mixture.weights_), 1 / 3, atol=0.06)

  path = str(tmp_path / 'gmm.npz')
  gmm.save_gmm(path, mixture, step=7)
  loaded, metadata = gmm.load_gmm(path)
  assert metadata == {'step': 7} and loaded.covariance_type == covariance
  draws = gmm.sample_codes(loaded, 400, seed=3)
  np.testing.assert_array_equal(draws, gmm.sample_codes(mixture, 400, seed=3))
  assert not np.allclose(draws, gmm.sample_codes(loaded, 400, seed=4))
  assert draws.shape == (400, 5) and draws.dtype == np.float32
  # Draws follow the mixture: each lies near a mean, in the mixture's proportions.
  nearest = np.linalg.norm(draws[:, None] - means[None], axis=-1).argmin(1)
  assert np.abs(np.bincount(nearest, minlength=3) / 400 - 1 / 3).max() < 0.1
  np.testing.assert_allclose(loaded.score_samples(codes[:20]), mixture.score_samples(codes[:20]))


@pytest.mark.parametrize('covariance', ['diag', 'full'])
def test_draws_follow_the_mixtures_weights_and_covariances(covariance):
  """`sample_codes` draws each component in proportion to its weight and with its covariance:
  the standard deviation (not the variance) scales diagonal noise, and full covariances go
  through their Cholesky factor. Pinned on a hand-built mixture with unequal weights and
  variances far from 1, where a fitted one (equal weights, small spreads) cannot tell."""
  weights = np.array([0.6, 0.3, 0.1])
  means = np.array([[-40.0, 0.0], [0.0, 40.0], [40.0, 0.0]])
  if covariance == 'diag':
    covariances = np.array([[4.0, 0.25], [9.0, 1.0], [0.25, 4.0]])
    wanted = [np.diag(c) for c in covariances]
  else:
    covariances = np.array([[[4.0, 1.5], [1.5, 1.0]], [[9.0, -2.0], [-2.0, 1.0]],
                            [[0.25, 0.0], [0.0, 4.0]]])
    wanted = list(covariances)
  mixture = GaussianMixture(n_components=3, covariance_type=covariance)
  mixture.weights_, mixture.means_, mixture.covariances_ = weights, means, covariances
  draws = gmm.sample_codes(mixture, 20000, seed=0).astype(np.float64)
  nearest = np.linalg.norm(draws[:, None] - means[None], axis=-1).argmin(1)
  np.testing.assert_allclose(np.bincount(nearest, minlength=3) / len(draws), weights, atol=0.015)
  for component in range(3):
    np.testing.assert_allclose(np.cov(draws[nearest == component].T), wanted[component],
                               rtol=0.1, atol=0.05)


def test_mixture_fit_follows_its_seed():
  """`fit_gmm`'s seed seeds the k-means start: the same seed fits the same mixture, another seed
  (on one blob that 4 components split arbitrarily) another one."""
  codes = np.random.default_rng(0).normal(size=(200, 3))
  fit = lambda seed: gmm.fit_gmm(codes, components=4, seed=seed).means_
  np.testing.assert_array_equal(fit(0), fit(0))
  assert not np.allclose(fit(0), fit(1))


def test_mixture_components_are_capped_and_bad_input_refused(caplog, tmp_path):
  _, codes = _three_gaussians(n=6)
  with caplog.at_level(logging.INFO):
    mixture = gmm.fit_gmm(codes, components=256)
  assert mixture.n_components == 6
  assert 'Fitting 6 mixture components instead of 256: there are only 6 codes.' in caplog.text
  with pytest.raises(ValueError, match="covariance='tied': must be one of diag, full"):
    gmm.fit_gmm(codes, covariance='tied')
  with pytest.raises(ValueError, match='NaN'):
    gmm.fit_gmm(np.full((4, 3), np.nan))
  (tmp_path / 'bad.npz').write_bytes(b'not a zip')
  with pytest.raises(ValueError, match='bad.npz is not a Gaussian mixture saved by save_gmm'):
    gmm.load_gmm(str(tmp_path / 'bad.npz'))


def test_sampling_needs_a_checkpoint_and_a_mixture(trained, tmp_path):
  with pytest.raises(FileNotFoundError, match='No checkpoints in'):
    autoencoder_baseline.write_samples(str(tmp_path / 'nothing'))
  workdir, _ = trained
  with pytest.raises(FileNotFoundError, match=r'No Gaussian mixture at .*gmm.npz: fit one first'):
    autoencoder_baseline.write_samples(str(workdir))


def _command(*flags):
  return [sys.executable, '-m', 'experiments.baseline', '--config=test', '--scene=golf', *flags]


def _run(*flags):
  return subprocess.run(_command(*flags), cwd=REPO, capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, VGAN_JAX_CACHE=CACHE, PYTHONPATH=REPO))


def test_command_trains_fits_and_samples_then_resamples_the_same(tmp_path):
  workdir = tmp_path / 'run'
  result = _run(f'--workdir={workdir}', '--config.num_steps=2',
                f'--config.optimizer.learning_rate={LEARNING_RATE}', '--config.baseline.gmm_clips=8',
                '--num_samples=3', '--upscale=2', '--streams')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Fitting 8 mixture components instead of 256' in result.stderr
  assert (workdir / 'checkpoints' / '2').is_dir() and (workdir / 'gmm.npz').exists()
  out = workdir / 'generated'
  assert sorted(os.listdir(out)) == sorted(
      [f'sample_{i:03d}{s}.{e}' for i in range(3) for s in ('', '_streams') for e in ('mp4', 'gif')]
      + ['grid.mp4', 'grid.gif', 'samples.npz'])
  assert video_files.read_video_frames(out / 'sample_002.mp4').shape == (16, 64, 64, 3)  # 32x32, enlarged twice
  arrays = np.load(out / 'samples.npz')
  video, mask = arrays['video'], arrays['mask']
  assert arrays['codes'].shape == (3, 100) and video.shape == (3, 16, 32, 32, 3)
  assert video.min() >= -1 and video.max() <= 1 and mask.min() >= 0 and mask.max() <= 1
  _, metadata = gmm.load_gmm(str(workdir / 'gmm.npz'))
  assert metadata == {'step': 2, 'clips': 8, 'components': 256, 'seed': 0}

  # Sampling again in-process, with the same seed: the same videos.
  paths = autoencoder_baseline.write_samples(str(workdir), str(tmp_path / 'again'), num_samples=3, seed=0)
  again = np.load(tmp_path / 'again' / 'samples.npz')
  np.testing.assert_array_equal(again['codes'], arrays['codes'])
  np.testing.assert_allclose(again['video'], video, atol=1e-6)
  assert len(paths) == 2 * 3 + 3
  other = autoencoder_baseline.write_samples(str(workdir), str(tmp_path / 'other'), num_samples=3, seed=1)
  assert not np.allclose(np.load(other[-1])['codes'], arrays['codes'])


def test_command_without_a_checkpoint_says_so_in_one_line(tmp_path):
  result = _run('--mode=sample', f'--workdir={tmp_path / "empty"}')
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f'baseline: No checkpoints in {tmp_path / "empty"}'), result.stderr[-2000:]
  assert 'Train one first' in last



def test_a_checkpoint_of_another_kind_is_refused_in_one_line(tmp_path):
  config = configs.get_config('test')
  manager = checkpoint.create_manager(str(tmp_path / 'checkpoints'), config)
  checkpoint.save(manager, 1, {'weights': np.zeros(3)}, config, force=True)  # not an autoencoder
  manager.wait_until_finished()
  manager.close()
  with pytest.raises(checkpoint.CheckpointMismatchError) as error:
    autoencoder_baseline.load_autoencoder(str(tmp_path))
  message = str(error.value)
  assert message == (f'The checkpoint {tmp_path}/checkpoints/1 does not fit the model: it holds '
                     "another kind of state (fields weights), not this model's; use the command "
                     'that trained it, or another work directory.')


def test_the_gan_tools_name_an_autoencoders_checkpoint(trained):
  workdir, _ = trained
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match=r"does not fit the model: it holds an autoencoder's or an action "
                           r"classifier's state \(fields batch_stats, opt_state, params\)"):
    sampling.write_generated(str(workdir))
