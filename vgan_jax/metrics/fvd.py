"""Fréchet Video Distance and Kernel Video Distance (Unterthiner et al. 2018), as the reference
computes them (google-research `frechet_video_distance`, TF-GAN):

  1. videos [N, T, H, W, 3] as uint8 (generated videos rounded to uint8 as clips are stored);
  2. every frame resized to 224x224 with TF1's `resize_bilinear` (legacy pixel mapping,
     `half_pixel_centers=False`: the frame stretched, no crop), then scaled to [-1, 1];
  3. I3D (Kinetics-400) logits averaged over time: 400 features per video (`i3d.py`);
  4. FVD: the Fréchet distance of Gaussians fitted to the two sets of features, in float64 with
     unbiased covariances and TF-GAN's symmetric square roots; KVD: the unbiased MMD^2 with the
     cubic polynomial kernel (x.y / d + 1)^3.

FVD moves with the protocol (clip count, frames, frame size, source of the real clips), which the
caller reports with the number.
"""

import functools
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from vgan_jax import parallel
from vgan_jax.metrics import i3d

# What the features are, for the protocol printed with every number.
FEATURES = ('I3D Kinetics-400 logits averaged over time, frames resized to 224x224 (TF1 '
            'bilinear)')


def interpolation_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] weights of TF1's `resize_bilinear` along one axis (align_corners=False,
  half_pixel_centers=False): output i samples input x = i * in / out, between floor(x) and the
  next pixel (clamped at the last)."""
  x = np.arange(out_size, dtype=np.float64) * (in_size / out_size)
  low = np.floor(x).astype(np.int64)
  high = np.minimum(low + 1, in_size - 1)
  weight = x - low
  matrix = np.zeros((out_size, in_size), np.float64)
  matrix[np.arange(out_size), low] += 1.0 - weight
  matrix[np.arange(out_size), high] += weight
  return matrix.astype(np.float32)


def preprocess(videos: jax.Array, size: int = i3d.INPUT_SIZE) -> jax.Array:
  """uint8 videos [N, T, H, W, 3] (or float in [-1, 1], rounded to uint8 first) -> float32
  [N, T, size, size, 3] in [-1, 1], each frame resized with TF1's bilinear mapping."""
  if videos.dtype != jnp.uint8:
    videos = jnp.round(jnp.clip((videos.astype(jnp.float32) + 1.0) / 2.0, 0.0, 1.0) * 255.0)
  rows = jnp.asarray(interpolation_matrix(videos.shape[2], size))
  columns = jnp.asarray(interpolation_matrix(videos.shape[3], size))
  resized = jnp.einsum('oh,nthwc,pw->ntopc', rows, videos.astype(jnp.float32), columns)
  return 2.0 * resized / 255.0 - 1.0


class I3DFeatures:
  """The 400 I3D features of videos, `batch_size` at a time, data-parallel over the devices of
  `mesh` (default: this process's devices; `batch_size` is rounded up to a multiple of them).

  `__call__(videos)`: uint8 [N, T, H, W, 3] (or float in [-1, 1]) with T >= 9 -> float64
  [N, 400]; `of_batches(batches)` the same for an iterable of such arrays, holding one at a time.
  ValueError for fewer frames (I3D's last pooling would be empty and its logits NaN) or a wrong
  shape.
  """

  def __init__(self, batch_size: int = 8, variables: dict | None = None,
               mesh: jax.sharding.Mesh | None = None):
    self.mesh = mesh or parallel.create_mesh(jax.local_devices())
    devices = self.mesh.devices.size
    self.batch_size = -(-batch_size // devices) * devices
    self._variables = jax.device_put(variables or i3d.load_weights(),
                                     parallel.replicated(self.mesh))
    model = i3d.build_i3d()
    self._logits = jax.jit(
        lambda variables, videos: model.apply(variables, preprocess(videos),
                                              is_training=False)[0],
        in_shardings=(parallel.replicated(self.mesh), parallel.batch_sharded(self.mesh)),
        out_shardings=parallel.replicated(self.mesh))

  def __call__(self, videos) -> np.ndarray:
    videos = np.asarray(videos)
    if videos.ndim != 5 or videos.shape[-1] != 3:
      raise ValueError(f'I3D takes videos [N, T, H, W, 3]; got shape {list(videos.shape)}.')
    if videos.shape[1] < i3d.MIN_FRAMES:
      raise ValueError(f'I3D needs at least {i3d.MIN_FRAMES} frames per video; got '
                       f'{videos.shape[1]}.')
    parts = []
    for start in range(0, len(videos), self.batch_size):
      batch = videos[start:start + self.batch_size]
      padded = np.concatenate([batch, np.repeat(batch[-1:], self.batch_size - len(batch), 0)])
      parts.append(np.asarray(self._logits(self._variables, padded), np.float64)[:len(batch)])
    return np.concatenate(parts) if parts else np.zeros((0, i3d.NUM_CLASSES))

  def of_batches(self, batches: Iterable[np.ndarray]) -> np.ndarray:
    """Features [N, 400] of the videos of `batches` (arrays [b, T, H, W, 3]), in order."""
    parts = [self(batch) for batch in batches]
    return np.concatenate(parts) if parts else np.zeros((0, i3d.NUM_CLASSES))


class FeatureStatistics:
  """Running sums of features [*, D] (float64): their count, mean and unbiased covariance,
  without keeping the features; `update` with one batch at a time."""

  def __init__(self, dims: int = i3d.NUM_CLASSES):
    self.count = 0
    self.total = np.zeros(dims, np.float64)
    self.outer = np.zeros((dims, dims), np.float64)

  def update(self, features: np.ndarray) -> 'FeatureStatistics':
    features = np.asarray(features, np.float64)
    self.count += len(features)
    self.total += features.sum(0)
    self.outer += features.T @ features
    return self

  @property
  def mean(self) -> np.ndarray:
    return self.total / self.count

  @property
  def covariance(self) -> np.ndarray:
    """Unbiased: (sum x x^T - N m m^T) / (N - 1); ValueError below 2 samples."""
    if self.count < 2:
      raise ValueError(f'A covariance needs at least 2 samples; got {self.count}.')
    return (self.outer - self.count * np.outer(self.mean, self.mean)) / (self.count - 1)


def symmetric_square_root(matrix: np.ndarray, eps: float = 1e-10) -> np.ndarray:
  """TF-GAN's square root of a symmetric PSD matrix: U diag(sqrt(s)) V^T from its SVD (singular
  values below `eps` kept as they are)."""
  u, s, vh = np.linalg.svd(matrix)
  return (u * np.where(s < eps, s, np.sqrt(s))) @ vh


def frechet_distance(mean_a: np.ndarray, covariance_a: np.ndarray, mean_b: np.ndarray,
                     covariance_b: np.ndarray) -> float:
  """|m_a - m_b|^2 + Tr(S_a + S_b - 2 sqrt(S_a S_b)), with Tr sqrt(S_a S_b) computed as TF-GAN
  does: Tr sqrt(sqrt(S_a) S_b sqrt(S_a)). float64."""
  mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
  covariance_a = np.asarray(covariance_a, np.float64)
  covariance_b = np.asarray(covariance_b, np.float64)
  root_a = symmetric_square_root(covariance_a)
  trace_sqrt_product = np.trace(symmetric_square_root(root_a @ covariance_b @ root_a))
  return float(np.sum(np.square(mean_a - mean_b)) + np.trace(covariance_a)
               + np.trace(covariance_b) - 2.0 * trace_sqrt_product)


def kernel_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Unbiased MMD^2 between two feature sets [N, D], [M, D] (N, M >= 2) with the cubic
  polynomial kernel k(x, y) = (x.y / D + 1)^3: KVD for I3D features (as KID for images)."""
  a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
  if len(a) < 2 or len(b) < 2:
    raise ValueError(f'The kernel distance needs at least 2 samples a side; got {len(a)} and '
                     f'{len(b)}.')
  kernel = lambda x, y: (x @ y.T / a.shape[1] + 1.0) ** 3
  k_aa, k_bb, k_ab = kernel(a, a), kernel(b, b), kernel(a, b)
  n, m = len(a), len(b)
  return float((k_aa.sum() - np.trace(k_aa)) / (n * (n - 1))
               + (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1)) - 2.0 * k_ab.mean())


def statistics_of(features: Iterable[np.ndarray]) -> FeatureStatistics:
  """`FeatureStatistics` of batches of features."""
  statistics = FeatureStatistics()
  for batch in features:
    statistics.update(batch)
  return statistics


@functools.lru_cache(maxsize=1)
def default_features() -> I3DFeatures:
  """One `I3DFeatures` per process (the weights load once)."""
  return I3DFeatures()


def fvd(real_videos, fake_videos, features: I3DFeatures | None = None) -> dict[str, float]:
  """{'fvd': ..., 'kvd': ...} of two sets of videos [N, T, H, W, 3] (uint8, or float in
  [-1, 1]); each set needs at least 2 videos."""
  features = features or default_features()
  return distances(features(real_videos), features(fake_videos))


def distances(real_features: np.ndarray, fake_features: np.ndarray) -> dict[str, float]:
  """{'fvd': ..., 'kvd': ...} of two sets of I3D features [N, 400], [M, 400] (N, M >= 2)."""
  a, b = statistics_of([real_features]), statistics_of([fake_features])
  return {'fvd': frechet_distance(a.mean, a.covariance, b.mean, b.covariance),
          'kvd': kernel_distance(real_features, fake_features)}
