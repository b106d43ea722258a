"""The Gaussian mixture of the paper's autoencoder baseline: fitted on the codes of training clips
(scikit-learn, EM with a k-means start, seeded), drawn with an explicit seed, saved as plain
arrays in an .npz (no pickle).

Diagonal covariances by default (see `fit_gmm`); the paper used 256 components.
"""

import os
import time

import numpy as np
from absl import logging
from sklearn import mixture

from vgan_io import files
from vgan_jax.configs import COVARIANCE_TYPES


def fit_gmm(codes: np.ndarray, components: int = 256, seed: int = 0,
            covariance: str = 'diag') -> mixture.GaussianMixture:
  """A Gaussian mixture fitted (EM, k-means start, seeded) on codes [N, D].

  `components` is capped at N (k-means cannot start more clusters than points; the log says so).
  'diag' by default: the paper's 256 components with full covariances in 100-d hold 256 * 5050
  ~ 1.3M covariance numbers, while a few thousand clips give ~16 codes per component: a full
  100 x 100 covariance from 16 points is singular, propped up only by the regulariser, and its
  draws fall off the data. Diagonal ones (200 numbers each) are estimable from that many; 'full'
  is for when N is much larger than components * D.
  """
  codes = np.asarray(codes, np.float64)
  if codes.ndim != 2 or not len(codes):
    raise ValueError(f'fit_gmm takes codes [N, D] with N >= 1; got shape {list(codes.shape)}.')
  if not np.isfinite(codes).all():
    raise ValueError('fit_gmm: the codes hold NaN or infinite values (did training diverge?).')
  if covariance not in COVARIANCE_TYPES:
    raise ValueError(f'covariance={covariance!r}: must be one of {", ".join(COVARIANCE_TYPES)}.')
  if components < 1:
    raise ValueError(f'components={components}: must be at least 1.')
  if components > len(codes):
    logging.info('Fitting %d mixture components instead of %d: there are only %d codes.',
                 len(codes), components, len(codes))
    components = len(codes)
  gmm = mixture.GaussianMixture(n_components=components, covariance_type=covariance,
                                random_state=seed, max_iter=200)
  start = time.perf_counter()
  gmm.fit(codes)
  logging.info('Fitted %d %s Gaussians on %d codes of %d dimensions in %.1f s (%s after %d '
               'iterations, mean log-likelihood %.4g).', components, covariance, len(codes),
               codes.shape[1], time.perf_counter() - start,
               'converged' if gmm.converged_ else 'NOT converged', gmm.n_iter_, gmm.lower_bound_)
  return gmm


def sample_codes(gmm: mixture.GaussianMixture, n: int, seed: int) -> np.ndarray:
  """`n` draws [n, D] (float32) from the mixture, in random component order; the same seed
  gives the same codes. (sklearn's own `sample` takes its seed from the fitted object and
  returns draws sorted by component, which would make every sample grid striped.)"""
  rng = np.random.default_rng(seed)
  weights = np.asarray(gmm.weights_, np.float64)
  chosen = rng.choice(len(weights), size=n, p=weights / weights.sum())
  means = np.asarray(gmm.means_, np.float64)
  noise = rng.standard_normal((n, means.shape[1]))
  covariances = np.asarray(gmm.covariances_, np.float64)
  if gmm.covariance_type == 'diag':
    offsets = noise * np.sqrt(covariances[chosen])
  elif gmm.covariance_type == 'full':
    offsets = np.einsum('nij,nj->ni', np.linalg.cholesky(covariances)[chosen], noise)
  else:
    raise ValueError(f'sample_codes: covariance type {gmm.covariance_type!r} is not one of '
                     f'{", ".join(COVARIANCE_TYPES)}.')
  return (means[chosen] + offsets).astype(np.float32)


def save_gmm(path: str, gmm: mixture.GaussianMixture, **metadata: int) -> None:
  """The mixture's arrays (and integer `metadata`, e.g. the checkpoint step of the encoder) as
  an .npz at `path`, written atomically: plain arrays, no pickled sklearn object."""
  files.write_npz(path, dict(
      {f'meta_{key}': np.asarray(value) for key, value in metadata.items()},
      covariance_type=np.asarray(gmm.covariance_type), weights=gmm.weights_, means=gmm.means_,
      covariances=gmm.covariances_, precisions_cholesky=gmm.precisions_cholesky_))


def load_gmm(path: str) -> tuple[mixture.GaussianMixture, dict[str, int]]:
  """(mixture, metadata) saved by `save_gmm`; FileNotFoundError or ValueError naming the file."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'No Gaussian mixture at {path}.')
  try:
    with np.load(path, allow_pickle=False) as arrays:
      values = {key: arrays[key] for key in arrays.files}
    covariance_type = str(values['covariance_type'])
    if covariance_type not in COVARIANCE_TYPES:
      raise ValueError(f'unknown covariance type {covariance_type!r}')
    gmm = mixture.GaussianMixture(n_components=len(values['weights']),
                                  covariance_type=covariance_type)
    gmm.weights_, gmm.means_ = values['weights'], values['means']
    gmm.covariances_ = values['covariances']
    gmm.precisions_cholesky_ = values['precisions_cholesky']
    cholesky = gmm.precisions_cholesky_
    gmm.precisions_ = (np.square(cholesky) if covariance_type == 'diag'
                       else cholesky @ np.swapaxes(cholesky, -1, -2))
    gmm.converged_, gmm.n_iter_, gmm.lower_bound_ = True, 0, np.nan
  except (KeyError, ValueError, OSError, EOFError) as error:
    raise ValueError(f'{path} is not a Gaussian mixture saved by save_gmm: {error}') from None
  metadata = {key[len('meta_'):]: int(value) for key, value in values.items()
              if key.startswith('meta_')}
  return gmm, metadata
