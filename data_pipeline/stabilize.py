"""Camera-motion removal, as the paper prepared its data.

Between each pair of adjacent frames we estimate the camera motion from background keypoints and
RANSAC, accumulate it to the clip's first frame and warp every frame back onto it; pixels that the
warp brings in from outside the frame keep the previous stabilized frame's values. A pair whose
motion cannot be estimated (too few matches or inliers, a large reprojection error, an implausible
zoom) ends the segment there; `clips.iter_clips` keeps the rest of the video as separate segments.

Two feature options, one interface (`MotionEstimator`):
  'sift'  the authors' recipe and the default: SIFT keypoints, FLANN matching with Lowe's ratio
          test, RANSAC.
  'flow'  Shi-Tomasi corners tracked by pyramidal Lucas-Kanade with a forward-backward check,
          then the same RANSAC: several times faster at equal residual motion on the benchmark's
          jittered scenes (`python -m experiments.benchmark --only=stabilize`).
and two motion models: 'similarity' (rotation, translation, scale: what the paper names) or
'homography' (8 degrees of freedom).

Matrices are 3x3 float64 and map pixel coordinates of the current frame to the previous one.
"""

import dataclasses
from typing import Sequence

import cv2
import numpy as np

FEATURES = ('sift', 'flow')
MOTIONS = ('similarity', 'homography')


@dataclasses.dataclass(frozen=True)
class StabilizeOptions:
  """Thresholds of the motion estimate; distances are in pixels of the frames given (128x128)."""
  features: str = 'sift'
  motion: str = 'similarity'
  ratio: float = 0.7  # Lowe's ratio test (sift), the authors' value
  ransac_threshold: float = 3.0  # inlier distance for RANSAC
  min_inliers: int = 8  # fewer and the pair's motion is not trusted
  max_reprojection_error: float = 1.5  # mean inlier error; more and the segment is cut
  max_scale_change: float = 0.2  # |zoom - 1| between adjacent frames; more is a cut, not a pan
  max_corners: int = 200  # flow: corners tracked per frame
  flow_window: int = 9  # flow: Lucas-Kanade window; small windows track scale changes better
  max_track_error: float = 1.0  # flow: forward-backward disagreement (px) that drops a track

  def __post_init__(self):
    if self.features not in FEATURES:
      raise ValueError(f'StabilizeOptions.features must be one of {FEATURES}; '
                       f'got {self.features!r}.')
    if self.motion not in MOTIONS:
      raise ValueError(f'StabilizeOptions.motion must be one of {MOTIONS}; got {self.motion!r}.')
    if not 0 < self.ratio < 1:
      raise ValueError(f'StabilizeOptions.ratio must be in (0, 1); got {self.ratio}.')
    for name in ('ransac_threshold', 'max_reprojection_error', 'max_scale_change',
                 'max_track_error'):
      if not getattr(self, name) > 0:
        raise ValueError(f'StabilizeOptions.{name} must be > 0; got {getattr(self, name)}.')
    if self.flow_window < 3:
      raise ValueError(f'StabilizeOptions.flow_window must be >= 3; got {self.flow_window}.')
    if self.min_inliers < 4 or self.max_corners < self.min_inliers:
      raise ValueError('StabilizeOptions needs min_inliers >= 4 and max_corners >= min_inliers; '
                       f'got {self.min_inliers}, {self.max_corners}.')


@dataclasses.dataclass(frozen=True)
class PairMotion:
  """The camera motion between a frame and the one before it."""
  matrix: np.ndarray | None  # [3, 3] current -> previous pixel coordinates; None when it failed
  matches: int  # candidate correspondences after matching
  inliers: int
  error: float  # mean reprojection error of the inliers, px
  shift: float = 0.0  # mean displacement of the inliers: how far the camera moved, px
  reason: str = ''  # why it failed, one of a few fixed phrases (they are counted by reason)

  @property
  def ok(self) -> bool:
    return self.matrix is not None


def _gray(frame: np.ndarray) -> np.ndarray:
  return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


class _SiftMatcher:
  """SIFT + FLANN + ratio test; keeps the previous frame's descriptors so each frame is described
  once."""

  def __init__(self, options: StabilizeOptions):
    self._options = options
    self._sift = cv2.SIFT_create()
    self._flann = cv2.FlannBasedMatcher(dict(algorithm=1, trees=5), dict(checks=50))
    self._previous = None

  def reset(self):
    self._previous = None

  def __call__(self, gray):
    keypoints, descriptors = self._sift.detectAndCompute(gray, None)
    previous, self._previous = self._previous, (keypoints, descriptors)
    if previous is None:
      return None
    previous_keypoints, previous_descriptors = previous
    if descriptors is None or previous_descriptors is None or min(
        len(descriptors), len(previous_descriptors)) < 2:
      return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    pairs = self._flann.knnMatch(descriptors, previous_descriptors, k=2)
    ratio = self._options.ratio
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    current = np.float32([keypoints[m.queryIdx].pt for m in good]).reshape(-1, 2)
    before = np.float32([previous_keypoints[m.trainIdx].pt for m in good]).reshape(-1, 2)
    return current, before


class _FlowTracker:
  """Corners of the previous frame tracked into the current one, kept when tracking back lands
  within `max_track_error` of where they started."""

  def __init__(self, options: StabilizeOptions):
    self._options = options
    self._previous = None

  def reset(self):
    self._previous = None

  def _corners(self, gray):
    minimum_distance = max(3, min(gray.shape) // 24)
    return cv2.goodFeaturesToTrack(gray, self._options.max_corners, 0.01, minimum_distance,
                                   blockSize=5)

  def __call__(self, gray):
    previous, self._previous = self._previous, (gray, None)
    if previous is None:
      return None
    previous_gray, corners = previous
    corners = self._corners(previous_gray)
    if corners is None:
      return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    window = (self._options.flow_window, self._options.flow_window)
    forward, status, _ = cv2.calcOpticalFlowPyrLK(previous_gray, gray, corners, None,
                                                  winSize=window, maxLevel=3)
    back, back_status, _ = cv2.calcOpticalFlowPyrLK(gray, previous_gray, forward, None,
                                                    winSize=window, maxLevel=3)
    disagreement = np.linalg.norm((back - corners).reshape(-1, 2), axis=1)
    keep = (status.ravel() == 1) & (back_status.ravel() == 1) & (
        disagreement < self._options.max_track_error)
    return forward.reshape(-1, 2)[keep], corners.reshape(-1, 2)[keep]


def fit_motion(current: np.ndarray, before: np.ndarray,
               options: StabilizeOptions) -> PairMotion:
  """RANSAC fit of the motion that maps `current` points [N, 2] onto `before` [N, 2]."""
  matches = len(current)
  if matches < options.min_inliers:
    return PairMotion(None, matches, 0, float('nan'), reason='too few matches')
  # RANSAC draws from OpenCV's global generator: seeding it per pair makes a shard a function of
  # its video alone, not of what the process fitted before.
  cv2.setRNGSeed(0)
  if options.motion == 'similarity':
    affine, mask = cv2.estimateAffinePartial2D(current, before, method=cv2.RANSAC,
                                               ransacReprojThreshold=options.ransac_threshold)
    matrix = None if affine is None else np.vstack([affine, [0.0, 0.0, 1.0]])
  else:
    matrix, mask = cv2.findHomography(current, before, cv2.RANSAC, options.ransac_threshold)
  if matrix is None or mask is None:
    return PairMotion(None, matches, 0, float('nan'), reason='no motion fits')
  inliers = mask.ravel().astype(bool)
  count = int(inliers.sum())
  if count < options.min_inliers:
    return PairMotion(None, matches, count, float('nan'), reason='too few inliers')
  projected = cv2.perspectiveTransform(current[inliers].reshape(-1, 1, 2), matrix).reshape(-1, 2)
  error = float(np.linalg.norm(projected - before[inliers], axis=1).mean())
  if error > options.max_reprojection_error:
    return PairMotion(None, matches, count, error, reason='reprojection error too large')
  zoom = np.sqrt(abs(np.linalg.det(matrix[:2, :2]) / matrix[2, 2] ** 2))
  if abs(zoom - 1.0) > options.max_scale_change:
    return PairMotion(None, matches, count, error, reason='implausible zoom')
  shift = float(np.linalg.norm(current[inliers] - before[inliers], axis=1).mean())
  return PairMotion(matrix.astype(np.float64), matches, count, error, shift)


class MotionEstimator:
  """Feed frames in order; each call returns the motion to the frame before (None for the first).

  After a failed pair the estimator goes on from the current frame, which starts a new segment.
  """

  def __init__(self, options: StabilizeOptions = StabilizeOptions()):
    self.options = options
    self._correspond = (_SiftMatcher if options.features == 'sift' else _FlowTracker)(options)

  def reset(self) -> None:
    self._correspond.reset()

  def __call__(self, frame: np.ndarray) -> PairMotion | None:
    """frame: uint8 [H, W, 3] RGB or [H, W] grey."""
    points = self._correspond(_gray(frame))
    return None if points is None else fit_motion(*points, self.options)


def accumulate(pair_matrices: Sequence[np.ndarray]) -> list[np.ndarray]:
  """Pair motions (frame t -> t-1) -> [T] matrices that map frame t onto frame 0."""
  to_first = [np.eye(3)]
  for matrix in pair_matrices:
    total = to_first[-1] @ matrix
    to_first.append(total / total[2, 2])
  return to_first


def stabilize_clip(frames: np.ndarray, pair_matrices: Sequence[np.ndarray]) -> np.ndarray:
  """Warps frames uint8 [T, H, W, C] onto the first one, given the T-1 pair motions.

  Where a warped frame has no source pixels, the previous stabilized frame shows through, so the
  borders hold the last background seen there instead of black.
  """
  if len(pair_matrices) != len(frames) - 1:
    raise ValueError(f'{len(frames)} frames need {len(frames) - 1} pair motions; '
                     f'got {len(pair_matrices)}.')
  height, width = frames.shape[1:3]
  output = np.empty_like(frames)
  output[0] = frames[0]
  for t, matrix in enumerate(accumulate(pair_matrices)[1:], start=1):
    output[t] = output[t - 1]
    # BORDER_TRANSPARENT leaves destination pixels alone where the source has none.
    cv2.warpPerspective(frames[t], matrix, (width, height), dst=output[t],
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
  return output


@dataclasses.dataclass(frozen=True)
class Segment:
  """A run of frames whose motion could be followed, stabilized to its first frame."""
  start: int  # index of the first frame in the input
  frames: np.ndarray  # uint8 [T, H, W, C]
  motions: list  # [T - 1] PairMotion


def stabilize(frames: np.ndarray, options: StabilizeOptions = StabilizeOptions()) -> list[Segment]:
  """Stabilizes a whole array of frames [T, H, W, C], cut into segments where a pair fails."""
  estimator = MotionEstimator(options)
  segments, start, motions = [], 0, []
  for t, frame in enumerate(frames):
    motion = estimator(frame)
    if motion is not None and not motion.ok:
      segments.append((start, t, motions))
      start, motions = t, []
    elif motion is not None:
      motions.append(motion)
  segments.append((start, len(frames), motions))
  return [Segment(begin, stabilize_clip(frames[begin:end], [m.matrix for m in pair_motions]),
                  pair_motions) for begin, end, pair_motions in segments]


def clip_stats(motions: Sequence[PairMotion]) -> dict:
  """Stabilization figures of a clip, stored with it in the shard."""
  if not motions:
    return {}
  errors = np.array([m.error for m in motions])
  return dict(mean_error=float(errors.mean()), max_error=float(errors.max()),
              mean_inliers=float(np.mean([m.inliers for m in motions])),
              camera_motion_px=float(np.mean([m.shift for m in motions])))
