"""Clip extraction: frame-rate resampling, square crops, clip counts and the bad videos."""


import cv2
import numpy as np
import pytest
import video_files
from PIL import Image

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
def test_a_constant_rate_is_resampled_to_the_frame_on_screen(source, target, first):
  timed = ((i / source + 3.0, i) for i in range(600))  # times count from the first frame's
  shown = list(clips.frames_on_screen(timed, target, source))
  counts = [count for _, count, _ in shown]
  assert [frame for frame, _, _ in shown] == list(range(600)) and not any(
      made_up for _, _, made_up in shown)
  assert counts[:6] == first
  assert abs(sum(counts) - 600 * target / source) <= 1


def test_missing_and_out_of_order_times_are_made_up_from_the_rate():
  timed = [(0.0, 'a'), (None, 'b'), (0.12, 'c'), (0.1, 'd'), (float('nan'), 'e')]
  shown = list(clips.frames_on_screen(timed, 25, 25))
  # b: 0 + 0.04; c: 0.12; d: not after c, so 0.16; e: 0.2, shown as long as the interval before.
  assert shown == [('a', 1, False), ('b', 2, True), ('c', 1, False), ('d', 1, True),
                   ('e', 1, True)]


def _greys(frames):
  return [int(round(frame.mean())) for frame in frames]


def _read(path, **options):
  options = clips.ClipOptions(**{**UNSTABILIZED, **options})
  log = clips.VideoLog()
  return np.stack(list(clips.read_frames(clips.probe(path, options), options, log))), log


def test_variable_frame_rate_is_resampled_on_timestamps(tmp_path):
  """The issue's phone video: 30 frames of 1/60 s, then 30 of 1/20 s (frame i a grey of 4 i)."""
  times = [i / 60 for i in range(30)] + [0.5 + i / 20 for i in range(30)]
  path = video_files.write_timed_video(tmp_path / 'vfr.mp4', times)
  frames, log = _read(path)
  greys = _greys(frames)
  assert abs(greys[10] - 96) <= 3 and abs(greys[20] - 144) <= 3  # source frames 24 and 36
  assert len(frames) == 50 and not log.warnings  # 2 s at 25 fps


def test_a_container_claiming_1000_fps_is_timed_by_its_frames(tmp_path):
  """A browser's MediaRecorder webm: the container says 1000 fps (so does OpenCV), the frames
  are 1/30 s apart."""
  path = video_files.write_timed_video(tmp_path / 'browser.webm', [i / 30 for i in range(60)],
                                       fmt='webm', codec='libvpx', rate=1000, time_base=1000)
  assert cv2.VideoCapture(path).get(cv2.CAP_PROP_FPS) == 1000
  info = clips.probe(path, clips.ClipOptions(**UNSTABILIZED))
  assert abs(info.fps - 30) < 0.5
  frames, _ = _read(path)
  # 2 s (the millisecond timestamps may round the last interval up: one more output frame)
  assert len(frames) in (50, 51) and abs(_greys(frames)[25] - 4 * 30) <= 3  # 1 s in: frame 30


@pytest.mark.parametrize('name', ['loop.gif', 'loop.webp', 'loop.png'])
def test_animated_images_are_videos_timed_by_their_frame_delays(tmp_path, name):
  path = video_files.write_animation(tmp_path / name, count=40, delay_ms=40)  # 1.6 s
  assert clips.is_video_path(path)
  frames, _ = _read(path)
  assert frames.shape == (40, 32, 32, 3) and abs(_greys(frames)[39] - 6 * 39) <= 4
  assert [clip.start_frame for clip in _clips(path)[0]] == [0, 16]


def test_an_animation_without_frame_delays_runs_at_10_fps_as_in_browsers(tmp_path):
  path = video_files.write_animation(tmp_path / 'fast.gif', count=20, delay_ms=0)
  assert len(_read(path)[0]) == 50  # 20 frames of 100 ms: 2 s


def test_still_images_are_not_videos_and_folder_scans_skip_them(tmp_path):
  still = tmp_path / 'still.gif'
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(still)
  assert not clips.is_video_path(str(still)) and clips.is_video_path(str(tmp_path / 'a.mp4'))
  with pytest.raises(clips.VideoError, match=r'a still image \(.gif\)'):
    _clips(str(still))


def test_hdr_video_is_named_in_the_log(tmp_path):
  """An HLG (ARIB STD-B67) BT.2020 video, as phones record: OpenCV decodes it without tone
  mapping; the log (and so the manifest) says so for that video."""
  path = video_files.write_timed_video(tmp_path / 'hlg.mp4', [i / 25 for i in range(20)],
                                       color_trc=18, color_primaries=9)
  _, log = _read(path)
  assert len(log.warnings) == 1
  assert log.warnings[0].startswith('HDR video (HLG (ARIB STD-B67) transfer, BT.2020 primaries)')
  sdr = video_files.write_timed_video(tmp_path / 'sdr.mp4', [i / 25 for i in range(20)])
  assert not _read(sdr)[1].warnings


@pytest.mark.parametrize('degrees, shape', [(90, (48, 32)), (180, (32, 48)), (270, (48, 32))])
def test_phone_rotation_is_applied(tmp_path, degrees, shape):
  """A frame stored 48 wide x 32 high, its left half white, in an MP4 whose display matrix turns
  it `degrees` clockwise: decoded upright (90: the white half on top)."""
  path = str(tmp_path / 'phone.mp4')
  stored = np.zeros((20, 32, 48, 3), np.uint8)
  stored[:, :, :24] = 255
  media.write_h264(path, stored, 25)
  video_files.rotate_mp4(path, degrees)
  frame = video_files.read_video_frames(path)[0].astype(int)
  assert frame.shape[:2] == shape
  white = {90: frame[:24], 180: frame[:, 24:], 270: frame[24:]}[degrees]
  assert white.mean() > 240 and frame.mean() < 140
  square = _read(path)[0][0].astype(int)  # the pipeline's decoder, then the centre square
  white = {90: square[:16], 180: square[:, 16:], 270: square[16:]}[degrees]
  assert white.mean() > 240 and square.mean() < 140


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
