"""Every reader of clips keeps frame order (issue 21, item 4).

Each test writes a clip whose frame t is a flat grey of FIRST + STEP * t (it brightens visibly and
monotonically with time), stores it the way one reader expects (a TFRecord shard, one of the
authors' released strips, a UCF101 video and its decoded cache, a video file) and checks that what
the reader returns brightens the same way: frame t within a codec's tolerance of its grey, and
every frame brighter than the one before. A reader that decodes the frames in reverse order, or
shuffles them, fails here.
"""

import os

import cv2
import numpy as np
import pytest

from data_pipeline import clips, input_pipeline, prepare, shards, ucf101
from experiments import video_sources
from vgan_io import media

FIRST, STEP = 6, 8  # frame t: grey FIRST + STEP * t; 32 frames end at 254
JPEG_TOLERANCE = 3  # grey levels: a flat grey survives JPEG almost exactly
VIDEO_TOLERANCE = 6  # Motion-JPEG and MPEG-4 map greys through limited-range YUV


def _ramp(frames: int, size: int) -> np.ndarray:
  """uint8 [frames, size, size, 3]: frame t a flat grey of FIRST + STEP * t."""
  levels = FIRST + STEP * np.arange(frames)
  assert levels[-1] <= 255
  return np.ascontiguousarray(np.broadcast_to(
      levels[:, None, None, None], (frames, size, size, 3)).astype(np.uint8))


def _assert_ramp(video, first_frame: int = 0, tolerance: float = JPEG_TOLERANCE,
                 step: int = 1) -> None:
  """`video` [T, H, W, C] is the ramp's frames first_frame, first_frame + step, ... in order:
  each frame's mean within `tolerance` of its grey, and each brighter than the one before."""
  video = np.asarray(video, np.float64)
  means = video.reshape(len(video), -1).mean(axis=1)
  expected = FIRST + STEP * (first_frame + step * np.arange(len(video)))
  assert np.abs(means - expected).max() <= tolerance, (means.round(1), expected)
  assert np.all(np.diff(means) > 0), means.round(1)  # brightens monotonically: time runs forward
  assert video.std(axis=(1, 2, 3)).max() <= tolerance  # each frame is one flat grey


def _write_shard(path, video) -> None:
  shards.write_shard(str(path), [shards.clip_example(shards.encode_strip(video),
                                                     frames=len(video), size=video.shape[1])])


def _first_clip(data_dir, scene: str, frames: int, size: int) -> np.ndarray:
  """The training reader's first clip [frames, size, size, 3] (one clip per batch)."""
  batches, _ = input_pipeline.train_batches(scene, str(data_dir), frames=frames, size=size,
                                            batch_size=1, global_batch_size=1, shuffle_buffer=1)
  try:
    return next(batches)['video'][0]
  finally:
    batches.close()


@pytest.mark.parametrize('size', [32, 24, 16])  # as stored; scaled after decoding; by libjpeg
def test_training_reader_keeps_frame_order(tmp_path, size):
  """input_pipeline's tf.data decoder, at the stored size and scaled both ways it scales."""
  (tmp_path / 'golf').mkdir()
  _write_shard(tmp_path / 'golf' / 'ramp.tfrecord', _ramp(16, 32))
  video = _first_clip(tmp_path, 'golf', 16, size)
  assert video.shape == (16, size, size, 3)
  _assert_ramp(video)


def test_training_reader_repeats_the_last_frame_not_the_first(tmp_path):
  (tmp_path / 'golf').mkdir()
  _write_shard(tmp_path / 'golf' / 'ramp.tfrecord', _ramp(12, 32))
  video = _first_clip(tmp_path, 'golf', 16, 32)
  _assert_ramp(video[:12])
  np.testing.assert_array_equal(video[12:], np.repeat(video[11:12], 4, axis=0))
  assert abs(video[15].mean() - (FIRST + STEP * 11)) <= JPEG_TOLERANCE


def test_numpy_strip_reader_keeps_frame_order(tmp_path):
  """shards.decode_strip, and read_shard (parse_example) that uses it."""
  video = _ramp(16, 32)
  _assert_ramp(shards.decode_strip(shards.encode_strip(video)))
  _write_shard(tmp_path / 'ramp.tfrecord', video)
  (record,) = shards.read_shard(str(tmp_path / 'ramp.tfrecord'))
  assert record['video'].shape == (16, 32, 32, 3)
  _assert_ramp(record['video'])


def test_released_strips_keep_frame_order(tmp_path):
  """One of the authors' strips (32 frames of 128x128 stacked vertically, 128 x 4096, listed in
  golf.txt) through prepare_released, then read by training at 64x64 and by read_shard."""
  root = tmp_path / 'frames-stable-many'
  (root / 'golf').mkdir(parents=True)
  strip = _ramp(32, 128).reshape(32 * 128, 128, 3)
  assert strip.shape == (4096, 128, 3)
  assert cv2.imwrite(str(root / 'golf' / '000.jpg'), strip)  # a plain JPEG, as released
  (tmp_path / 'golf.txt').write_text('golf/000.jpg 3\n')
  summary = prepare.prepare_released(str(tmp_path / 'golf.txt'), str(root),
                                     str(tmp_path / 'data'), 'golf', progress=False)
  assert summary.total_clips == 1
  video = _first_clip(tmp_path / 'data', 'golf', 32, 64)
  assert video.shape == (32, 64, 64, 3)
  _assert_ramp(video)
  (path,) = input_pipeline.find_shards(str(tmp_path / 'data'), 'golf')
  (record,) = shards.read_shard(path)
  assert record['video'].shape == (32, 128, 128, 3) and record['label'] == 3
  _assert_ramp(record['video'])


def test_ucf101_reader_and_its_cache_keep_frame_order(tmp_path):
  """load_video, then the decoded cache as training (random windows) and testing (evenly spaced
  windows) read it."""
  relative = 'Ramp/v_Ramp_g01_c01.avi'
  os.makedirs(tmp_path / ucf101.VIDEOS / 'Ramp')
  media.write_video(str(tmp_path / ucf101.VIDEOS / relative), _ramp(24, 32), 25.0)
  _assert_ramp(ucf101.load_video(str(tmp_path / ucf101.VIDEOS / relative), 32),
               tolerance=VIDEO_TOLERANCE)
  cache = str(tmp_path / 'cache.tfrecord')
  assert ucf101.cache_split(str(tmp_path), [ucf101.Video(relative, 0)], cache, 32)['videos'] == 1

  (whole, label), = ucf101.test_windows(cache, 24, 1)
  assert whole.shape == (1, 24, 32, 32, 3) and label == 0
  _assert_ramp(whole[0], tolerance=VIDEO_TOLERANCE)
  (windows, _), = ucf101.test_windows(cache, 8, 3)  # starts 0, 8, 16
  for index, window in enumerate(windows):
    _assert_ramp(window, first_frame=8 * index, tolerance=VIDEO_TOLERANCE)

  batches = ucf101.train_dataset(cache, 8, 4, seed=0).as_numpy_iterator()
  batch = next(batches)
  assert batch['video'].shape == (4, 8, 32, 32, 3)
  for window in batch['video']:  # each a random window: 8 consecutive frames, forward
    start = int(round((window[0].mean() - FIRST) / STEP))
    assert 0 <= start <= 16
    _assert_ramp(window, first_frame=start, tolerance=VIDEO_TOLERANCE)


@pytest.mark.parametrize('extension', ['.avi', '.mp4'])
def test_video_file_readers_keep_frame_order(tmp_path, extension):
  """clips.read_frames (at the source's 25 fps, and resampled from 50 fps: every other frame)
  and the clips cut from it."""
  path = str(tmp_path / ('ramp' + extension))
  media.write_video(path, _ramp(20, 32), 25.0)
  options = clips.ClipOptions(frames=8, size=32, stride=8, stabilize=False)
  frames = list(clips.read_frames(clips.probe(path, options), options, clips.VideoLog()))
  _assert_ramp(np.stack(frames), tolerance=VIDEO_TOLERANCE)
  found = list(clips.iter_clips(path, options))
  assert [clip.start_frame for clip in found] == [0, 8]
  for clip in found:
    _assert_ramp(clip.frames, first_frame=clip.start_frame, tolerance=VIDEO_TOLERANCE)

  fast = str(tmp_path / ('fast' + extension))
  media.write_video(fast, _ramp(20, 32), 50.0)
  resampled = list(clips.read_frames(clips.probe(fast, options), options, clips.VideoLog()))
  assert len(resampled) == 10
  _assert_ramp(np.stack(resampled), step=2, tolerance=VIDEO_TOLERANCE)


def test_fvd_video_sources_keep_frame_order(tmp_path):
  """experiments/video_sources.py: a folder of video files and a folder of shards."""
  (tmp_path / 'videos').mkdir()
  for index in range(2):
    media.write_video(str(tmp_path / 'videos' / f'v{index}.avi'), _ramp(12, 32), 25.0)
  from_files, _ = video_sources.load_videos(str(tmp_path / 'videos'), 2, 10, size=32)
  assert from_files.shape == (2, 10, 32, 32, 3)
  for video in from_files:
    _assert_ramp(video, tolerance=VIDEO_TOLERANCE)

  (tmp_path / 'data' / 'golf').mkdir(parents=True)
  for index in range(2):
    _write_shard(tmp_path / 'data' / 'golf' / f'ramp{index}.tfrecord', _ramp(12, 32))
  from_shards, _ = video_sources.load_videos(str(tmp_path / 'data' / 'golf'), 2, 10)
  assert from_shards.shape == (2, 10, 32, 32, 3)
  for video in from_shards:
    _assert_ramp(video)
