"""Stabilization: known camera jitter is removed to under a pixel, moving objects keep moving."""

import cv2
import numpy as np
import pytest

from data_pipeline import stabilize, synthetic


def _grid_points(size, margin=8, step=8):
  ys, xs = np.mgrid[margin:size - margin:step, margin:size - margin:step]
  return np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float64).reshape(-1, 1, 2)


def _background_motion(to_first, shake, size):
  """Mean distance, per frame, between where a background point lands after `to_first` and where
  it truly is in frame 0; `shake` maps scene -> video coordinates per frame."""
  points = _grid_points(size)
  residual = []
  for t, matrix in enumerate(to_first):
    truth = cv2.perspectiveTransform(points, shake[0] @ np.linalg.inv(shake[t]))
    moved = cv2.perspectiveTransform(points, matrix)
    residual.append(np.linalg.norm(moved - truth, axis=-1).mean())
  return np.array(residual)


def _red_square_x(frames):
  """x of the red square's centroid per frame."""
  red = (frames[..., 0] > 180) & (frames[..., 1] < 90) & (frames[..., 2] < 90)
  return np.array([np.nonzero(mask)[1].mean() for mask in red])


@pytest.mark.parametrize('features', stabilize.FEATURES)
def test_jitter_removed_and_object_still_moves(features):
  size, frames, speed = 96, 20, 2.0
  video, shake, _ = synthetic.jittered_scene(frames, size, seed=3, object_speed=speed)
  segments = stabilize.stabilize(video, stabilize.StabilizeOptions(features=features))
  assert len(segments) == 1 and segments[0].frames.shape == video.shape
  segment = segments[0]
  assert segment.frames.dtype == np.uint8 and len(segment.motions) == frames - 1

  before = _background_motion([np.eye(3)] * frames, shake, size)[1:]
  after = _background_motion(
      stabilize.accumulate([m.matrix for m in segment.motions]), shake, size)[1:]
  assert before.mean() > 3.0  # the camera really shakes by several pixels
  assert after.mean() < 1.0 and after.max() < 1.5, (after.mean(), after.max())

  # The square moves `speed` scene px per frame, times the camera's zoom, in frame 0's view.
  zoom = np.sqrt(np.linalg.det(shake[0][:2, :2]))
  steps = np.diff(_red_square_x(segment.frames))
  assert np.all(steps > 0.5 * speed * zoom)
  assert abs(steps.mean() - speed * zoom) < 0.5

  # Pixels agree with the geometry: away from the square and the borders, stabilized frames match
  # the first one far better than the raw frames do.
  keep = np.ones((size, size), bool)
  keep[:12], keep[-12:], keep[:, :12], keep[:, -12:] = False, False, False, False
  keep[size // 3:size * 3 // 4] = False  # the square's rows
  def difference(clip):
    return np.abs(clip[1:].astype(float) - clip[:1])[:, keep].mean()
  assert difference(segment.frames) < 0.3 * difference(video)


def test_stabilize_clip_warps_and_fills_from_the_previous_frame():
  """By hand: frame 1 moved 2 px right of frame 0 (x_prev = x_cur + 2); the two columns it
  cannot cover keep frame 0's values."""
  first = np.full((6, 8, 3), 10, np.uint8)
  second = np.tile(np.arange(8, dtype=np.uint8)[None, :, None] * 20 + 50, (6, 1, 3))
  shift = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  out = stabilize.stabilize_clip(np.stack([first, second]), [shift])
  np.testing.assert_array_equal(out[0], first)
  np.testing.assert_array_equal(out[1][:, 2:], second[:, :-2])
  np.testing.assert_array_equal(out[1][:, :2], first[:, :2])
  identity = stabilize.stabilize_clip(np.stack([second, second]), [np.eye(3)])
  np.testing.assert_array_equal(identity, np.stack([second, second]))
  with pytest.raises(ValueError, match='3 frames need 2 pair motions'):
    stabilize.stabilize_clip(np.stack([first] * 3), [shift])


def test_accumulate_composes_pair_motions():
  shift = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0], [0.0, 0.0, 1.0]])
  to_first = stabilize.accumulate([shift, shift, shift])
  np.testing.assert_allclose(to_first[3][:2, 2], [6.0, -3.0])
  np.testing.assert_allclose(to_first[0], np.eye(3))


@pytest.mark.parametrize('motion', stabilize.MOTIONS)
def test_fit_motion_recovers_a_known_similarity(motion):
  rng = np.random.default_rng(0)
  current = rng.uniform(0, 128, (60, 2)).astype(np.float32)
  truth = np.vstack([cv2.getRotationMatrix2D((64, 64), 3.0, 1.05), [0, 0, 1]])
  truth[:2, 2] += (2.5, -1.5)
  before = cv2.perspectiveTransform(current.reshape(-1, 1, 2), truth).reshape(-1, 2)
  before[:10] += rng.uniform(20, 40, (10, 2)).astype(np.float32)  # outliers: a moving object
  fit = stabilize.fit_motion(current, before, stabilize.StabilizeOptions(motion=motion))
  assert fit.ok and fit.inliers == 50 and fit.error < 0.01
  np.testing.assert_allclose(fit.matrix / fit.matrix[2, 2], truth, atol=1e-3)
  assert fit.shift > 2.0

  too_few = stabilize.fit_motion(current[:5], before[:5], stabilize.StabilizeOptions())
  assert not too_few.ok and too_few.reason == 'too few matches'


def test_a_scene_cut_splits_the_video_into_segments():
  first, _, _ = synthetic.jittered_scene(10, 96, seed=1)
  second, _, _ = synthetic.jittered_scene(10, 96, seed=2)
  segments = stabilize.stabilize(np.concatenate([first, second]))
  assert [s.start for s in segments] == [0, 10]
  assert [len(s.frames) for s in segments] == [10, 10]


def test_bad_options_are_named():
  with pytest.raises(ValueError, match='features'):
    stabilize.StabilizeOptions(features='orb')
  with pytest.raises(ValueError, match='ratio'):
    stabilize.StabilizeOptions(ratio=1.5)
