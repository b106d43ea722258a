"""Clip extraction: frame-rate resampling, square crops, clip counts and the bad videos."""

import itertools

import cv2
import numpy as np
import pytest
import video_files

from data_pipeline import clips, synthetic
from vgan_io import media

UNSTABILIZED = dict(frames=16, size=32, stride=16, stabilize=False)


def _video(tmp_path, name, **kwargs):
  return video_files.write_test_video(tmp_path / name, **kwargs)


def _clips(path, **options):
  log = clips.VideoLog()
  found = list(clips.iter_clips(path, clips.ClipOptions(**{**UNSTABILIZED, **options}), log))
  return found, log


@pytest.mark.parametrize('source, target, first', [
    (25, 25, [1, 1, 1, 1, 1, 1]),
    (50, 25, [1, 0, 1, 0, 1, 0]),  # every other frame
    (12.5, 25, [2, 2, 2, 2, 2, 2]),  # each frame twice
    (30, 25, [1, 1, 1, 1, 1, 0]),  # 6 -> 5: the frame on screen at k / 25 s
])
def test_resample_counts(source, target, first):
  counts = list(itertools.islice(clips.resample_counts(source, target), 600))
  assert counts[:6] == first
  assert abs(sum(counts) - 600 * target / source) <= 1


def test_square_crop_takes_the_centre():
  frame = np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (48, 1, 3))  # value = column
  square = clips.square_crop(frame, 48)
  assert square.shape == (48, 48, 3)
  np.testing.assert_array_equal(square, frame[:, 8:56])
  assert clips.square_crop(frame, 24).shape == (24, 24, 3)


def test_square_crop_of_a_portrait_frame_takes_the_middle_rows():
  """Portrait videos (phones) are cropped to their middle rows too, not their top: the crop is
  centred on both axes, where the test above only pins the columns of a landscape frame."""
  frame = np.tile(np.arange(64, dtype=np.uint8)[:, None, None], (1, 48, 3))  # value = row
  np.testing.assert_array_equal(clips.square_crop(frame, 48), frame[8:56])


def test_clips_are_rgb_whatever_order_opencv_decodes_in(tmp_path):
  """Video files hold colours, which OpenCV hands over as BGR; clips are RGB (as the model, the
  shards and every writer take them). An orange video written with OpenCV itself (BGR arrays),
  not with our writer, comes back orange: red high, blue low."""
  path = str(tmp_path / 'orange.avi')
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 25.0, (32, 32))
  for _ in range(20):
    writer.write(np.full((32, 32, 3), (30, 100, 200), np.uint8))  # B, G, R
  writer.release()
  found, _ = _clips(path)
  np.testing.assert_allclose(found[0].frames.mean(axis=(0, 1, 2)), [200, 100, 30], atol=8)


@pytest.mark.parametrize('extension', ['.avi', '.mp4'])
def test_clip_counts_lengths_and_starts(tmp_path, extension):
  path = _video(tmp_path, 'walk' + extension, frames=70)
  found, log = _clips(path)
  assert [c.start_frame for c in found] == [0, 16, 32, 48]  # 70 frames: 4 whole clips of 16
  assert all(c.frames.shape == (16, 32, 32, 3) and c.frames.dtype == np.uint8 for c in found)
  assert log.frames_read == 70
  assert [c.start_frame for c in _clips(path, stride=8)[0]] == list(range(0, 55, 8))
  assert len(_clips(path, max_clips=2)[0]) == 2
  # Consecutive clips continue each other: clip 2 starts where clip 1 ended.
  assert np.abs(found[1].frames[0].astype(int) - found[0].frames[-1]).mean() < 20


def test_a_faster_source_is_resampled_to_25_fps(tmp_path):
  path = _video(tmp_path, 'fast.avi', frames=70, fps=50)
  found, log = _clips(path)
  assert log.frames_read == 35 and len(found) == 2


def test_filters_drop_dark_flat_and_static_clips(tmp_path):
  dark = np.full((40, 32, 32, 3), 5, np.uint8)
  path = str(tmp_path / 'dark.avi')
  media.write_video(path, dark, 25)
  found, log = _clips(path, min_brightness=20)
  assert not found and log.rejected['clip too dark'] == 2
  assert _clips(path, min_contrast=5)[1].rejected['clip too flat'] == 2
  assert _clips(path, min_motion=1)[1].rejected['clip static'] == 2


def test_stabilized_clips_carry_their_figures(tmp_path):
  video, _, _ = synthetic.jittered_scene(40, 64, seed=0)
  path = str(tmp_path / 'shaky.avi')
  media.write_video(path, video, 25)
  found, log = _clips(path, size=64, stabilize=True)
  assert len(found) == 2 and not log.rejected
  stats = found[0].stats
  assert stats['camera_motion_px'] > 1.0 and stats['mean_error'] < 1.5
  assert stats['mean_inliers'] >= 8 and stats['max_error'] >= stats['mean_error']


def test_each_bad_video_gets_one_clear_reason(tmp_path):
  for name, reason in video_files.write_bad_videos(tmp_path).items():
    with pytest.raises(clips.VideoError, match=reason) as error:
      _clips(str(tmp_path / name))
    assert error.value.path.endswith(name)


def test_huge_and_missing_videos_are_refused_before_decoding(tmp_path):
  path = _video(tmp_path, 'big.avi')
  with pytest.raises(clips.VideoError, match='resolution 64x48 is above the limit'):
    _clips(path, max_source_pixels=1000)
  with pytest.raises(clips.VideoError, match='no such file'):
    _clips(str(tmp_path / 'absent.mp4'))


def test_a_truncated_video_keeps_what_decodes_and_says_so(tmp_path):
  path = _video(tmp_path, 'cut.avi', frames=64)
  data = open(path, 'rb').read()
  (tmp_path / 'cut.avi').write_bytes(data[:len(data) * 6 // 10])
  found, log = _clips(path)
  assert 1 <= len(found) < 4
  assert any('truncated' in warning for warning in log.warnings)


def test_bad_options_are_named():
  with pytest.raises(ValueError, match='frames'):
    clips.ClipOptions(frames=1)
  with pytest.raises(ValueError, match='fps'):
    clips.ClipOptions(fps=0)
