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


# A camera that turns 8 degrees every frame while it zooms in and out and pans: similarities about
# the frame's centre (angle, scale, shift in px), applied one after another. Such motions do not
# commute, so composing the frame-to-frame motions in the wrong order lands several px off.
TURNING_CAMERA = [(8.0, 1.08, (12, -4)), (8.0, 0.93, (-4, 12)), (8.0, 1.05, (-10, -6)),
                  (8.0, 0.95, (6, -10)), (8.0, 1.04, (10, 6))]


def _turning_camera(size=128):
  """(video uint8 [6, size, size, 3] of a static textured world filmed by TURNING_CAMERA,
  cameras [6, 3, 3] mapping frame 0's pixel coordinates to frame t's)."""
  centre = (size - 1) / 2.0
  cameras = [np.eye(3)]
  for angle, scale, shift in TURNING_CAMERA:
    step = np.vstack([cv2.getRotationMatrix2D((centre, centre), angle, scale), [0.0, 0.0, 1.0]])
    step[:2, 2] += shift
    cameras.append(step @ cameras[-1])
  rng = np.random.default_rng(0)
  big = 3 * size  # the world around the first view, so no frame sees past its edge
  noise = sum(cv2.resize(rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32), (big, big),
                         interpolation=cv2.INTER_CUBIC) for cells in (4, 8, 16, 32, 64))
  world = np.repeat(np.clip(128 + 40 * noise / noise.std(), 0, 255).astype(np.uint8)[..., None],
                    3, axis=-1)
  view = np.array([[1.0, 0.0, -size], [0.0, 1.0, -size], [0.0, 0.0, 1.0]])  # world -> frame 0
  video = np.stack([cv2.warpPerspective(world, camera @ view, (size, size),
                                        flags=cv2.INTER_LINEAR) for camera in cameras])
  return video, np.stack(cameras)


def _true_pairs(cameras):
  """The frame t -> frame t-1 pixel motions of a camera path."""
  return [cameras[t - 1] @ np.linalg.inv(cameras[t]) for t in range(1, len(cameras))]


def _interior_difference(video, reference):
  """Mean absolute difference [T] of each frame's central half to `reference`'s."""
  inner = slice(video.shape[1] // 4, video.shape[1] * 3 // 4)
  return np.abs(video[:, inner, inner].astype(float) - reference[inner, inner]).mean(axis=(1, 2, 3))


def test_accumulate_composes_motions_that_do_not_commute():
  """to_first[t] = pair_1 @ pair_2 @ ... @ pair_t: frame t -> t-1 -> ... -> 0, in that order."""
  _, cameras = _turning_camera()
  pairs = _true_pairs(cameras)
  to_first = stabilize.accumulate(pairs)
  assert len(to_first) == len(cameras)
  for matrix, camera in zip(to_first, cameras):
    np.testing.assert_allclose(matrix, np.linalg.inv(camera), atol=1e-9)
  # The premise: in the reverse order the same motions land grid points pixels away.
  points = _grid_points(128, margin=16)
  reverse = [np.eye(3)]
  for matrix in pairs:
    reverse.append(matrix @ reverse[-1])
  miss = [np.linalg.norm(cv2.perspectiveTransform(points, wrong) -
                         cv2.perspectiveTransform(points, right), axis=-1).mean()
          for wrong, right in zip(reverse, to_first)]
  assert max(miss) > 4.0, miss


def test_stabilize_clip_undoes_a_turning_zooming_panning_camera():
  video, cameras = _turning_camera()
  stable = stabilize.stabilize_clip(video, _true_pairs(cameras))
  raw = _interior_difference(video, video[0])
  assert raw[1:].min() > 10  # the camera really moves
  assert _interior_difference(stable, video[0]).max() < 1.5  # interpolation only


@pytest.mark.parametrize('features', stabilize.FEATURES)
def test_estimated_motions_compose_to_the_true_camera_path(features):
  """The estimator's pair motions (current -> previous), accumulated, map every frame onto the
  first to a fraction of a pixel, and the stabilized frames match the first."""
  video, cameras = _turning_camera()
  (segment,) = stabilize.stabilize(video, stabilize.StabilizeOptions(features=features))
  assert len(segment.motions) == len(video) - 1
  points = _grid_points(128, margin=16)
  to_first = stabilize.accumulate([m.matrix for m in segment.motions])
  for matrix, camera in zip(to_first, cameras):
    residual = np.linalg.norm(cv2.perspectiveTransform(points, matrix) -
                              cv2.perspectiveTransform(points, np.linalg.inv(camera)), axis=-1)
    assert residual.mean() < 0.5, residual.mean()
  assert _interior_difference(segment.frames, video[0]).max() < 2.0


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
