"""Keeping only clips of the wanted scene, by a scene classifier the user supplies.

The paper built its golf, beach, train station and hospital sets this way: its unlabeled Flickr
videos were filtered by scene category with a Places classifier (Vondrick et al. 2016, the
description of its data). The
project ships and downloads no classifier weights; `prepare_data --scene_filter=module:function`
names a Python function of the user's, imported by name in each worker process (the pool uses
'spawn', so a function object is never pickled), which may wrap e.g. a Places365 model
(http://places2.csail.mit.edu, github.com/CSAILVision/places365).

The function's convention:

    def classify(frames: np.ndarray) -> Sequence[Mapping[str, float]]:
      '''frames: uint8 RGB [N, H, W, 3] (N frames of one clip, centre-cropped and scaled to
      --size, before stabilization); returns N {category: probability} maps, one per frame.'''

A category missing from a frame's map has probability 0 there (so a top-k list is fine).

Decision per clip: the classifier sees `sampled_frames` frames spread evenly over the clip (its
first and last included); each frame's score is the summed probability of the wanted
`categories`; the clip's score is the mean over those frames; the clip is kept when its score is
at least `threshold`, and rejected as 'clip not the wanted scene' otherwise.
"""

import dataclasses
import importlib
import math
from typing import Callable

import numpy as np

REJECTION = 'not the wanted scene'  # counted as 'clip not the wanted scene', as other filters
_LOADED: dict[str, Callable] = {}


@dataclasses.dataclass(frozen=True)
class SceneFilter:
  """`classifier`: 'module:function' (see the module docstring); `categories`: the names of the
  wanted ones in its output; keep clips whose score is >= `threshold`, in (0, 1]."""
  classifier: str
  categories: tuple[str, ...]
  threshold: float = 0.5
  sampled_frames: int = 4  # per clip, spread evenly; at most the clip's length

  def __post_init__(self):
    module, _, function = self.classifier.partition(':')
    if not (module and function) or '/' in self.classifier or self.classifier.endswith(
        ('.pth', '.pt', '.tar', '.ckpt')):
      raise ValueError(
          f'--scene_filter must be module:function (a Python function returning per-frame '
          f'{{category: probability}}); got {self.classifier!r}. Loading a Places365 checkpoint '
          'file needs PyTorch, which this project does not depend on: wrap the model in a '
          'function of your own.')
    object.__setattr__(self, 'categories', tuple(self.categories))
    if not self.categories or not all(isinstance(c, str) and c for c in self.categories):
      raise ValueError('--scene_categories must name at least one category of the classifier\'s '
                       f'output (comma-separated), with --scene_filter; got {self.categories!r}.')
    if not 0 < self.threshold <= 1:  # NaN fails too
      raise ValueError(f'--scene_threshold must be in (0, 1]; got {self.threshold}.')
    if self.sampled_frames < 1:
      raise ValueError(f'SceneFilter.sampled_frames must be >= 1; got {self.sampled_frames}.')

  def load(self) -> Callable:
    """The classifier function (imported once per process); ValueError naming what is missing."""
    if self.classifier not in _LOADED:
      module_name, _, function_name = self.classifier.partition(':')
      try:
        module = importlib.import_module(module_name)
      except Exception as error:  # ImportError, or the module's own error while importing
        raise ValueError(f'--scene_filter={self.classifier}: cannot import module '
                         f'{module_name!r} ({type(error).__name__}: {error}).') from None
      function = getattr(module, function_name, None)
      if not callable(function):
        raise ValueError(f'--scene_filter={self.classifier}: module {module_name!r} has no '
                         f'function {function_name!r}.')
      _LOADED[self.classifier] = function
    return _LOADED[self.classifier]

  def score(self, frames: np.ndarray) -> tuple[float, set]:
    """(the clip's score, the wanted categories seen in the output) for frames [T, H, W, 3];
    ValueError saying how the classifier failed or what was wrong with its output."""
    count = min(self.sampled_frames, len(frames))
    indices = np.unique(np.round(np.linspace(0, len(frames) - 1, count)).astype(int))
    classify = self.load()
    try:
      output = classify(np.ascontiguousarray(frames[indices]))
    except Exception as error:  # pylint: disable=broad-except: the user's code, any error
      raise ValueError(f'scene classifier {self.classifier} failed: {type(error).__name__}: '
                       f'{error}') from None
    try:
      maps = list(output)
    except TypeError:
      maps = None
    if maps is None or len(maps) != len(indices) or not all(hasattr(m, 'get') for m in maps):
      raise ValueError(f'scene classifier {self.classifier} returned {_describe(output)}, not '
                       f'{len(indices)} {{category: probability}} maps (one per frame given)')
    scores, seen = [], set()
    for frame_map in maps:
      total = 0.0
      for category in self.categories:
        value = frame_map.get(category)
        if value is None:
          continue
        try:
          value = float(value)
        except (TypeError, ValueError):
          value = math.nan
        if not 0 <= value <= 1:
          raise ValueError(f'scene classifier {self.classifier} gave {category!r} the '
                           f'probability {frame_map.get(category)!r}, not one in [0, 1]')
        total += value
        seen.add(category)
      scores.append(min(total, 1.0))
    return float(np.mean(scores)), seen

  def as_dict(self) -> dict:
    """For the manifest's options: the function by its name, not the function."""
    return {'classifier': self.classifier, 'categories': list(self.categories),
            'threshold': self.threshold, 'sampled_frames': self.sampled_frames}


def _describe(value) -> str:
  if isinstance(value, np.ndarray):
    return f'an array {value.dtype} {list(value.shape)}'
  if isinstance(value, (list, tuple)):
    return f'a {type(value).__name__} of {len(value)}'
  return f'a {type(value).__name__}'
