"""Grids and GIFs of generated videos."""

import os

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from vgan_io import media
from vgan_jax import video_io
from vgan_jax.models import GeneratorOutput


def test_to_uint8_maps_the_range_ends():
  np.testing.assert_array_equal(media.to_uint8(np.array([-1.0, 0.0, 1.0, 3.0])),
                                [0, 128, 255, 255])


def test_grid_places_each_clip():
  videos = np.zeros((5, 2, 4, 6, 3), np.uint8)
  for i in range(5):
    videos[i] = 10 * (i + 1)
  grid = media.video_grid(videos, columns=3, padding=1)
  assert grid.shape == (2, 2 * 5 + 1, 3 * 7 + 1, 3)
  assert (grid[:, 1:5, 1:7] == 10).all() and (grid[:, 6:10, 8:14] == 50).all()
  assert (grid[:, 6:10, 15:21] == 255).all()  # the empty sixth cell
  assert media.video_grid(videos[:, :, :, :, :1], scale=2).shape[-1] == 3


def test_stream_videos_of_a_two_stream_output():
  output = GeneratorOutput(video=np.zeros((2, 4, 8, 8, 3)), foreground=np.ones((2, 4, 8, 8, 3)),
                           background=-np.ones((2, 8, 8, 3)), mask=np.ones((2, 4, 8, 8, 1)))
  streams = video_io.stream_videos(output)
  assert set(streams) == {'video', 'foreground', 'background', 'mask'}
  assert streams['background'].shape == (2, 4, 8, 8, 3) and (streams['background'] == 0).all()
  assert (streams['mask'] == 255).all()
  assert set(video_io.stream_videos(GeneratorOutput(output.video, output.video))) == {'video'}


def test_streams_side_by_side_are_background_foreground_mask_video_and_the_mask_is_0_to_1():
  """Figure 3's order, left to right: background, foreground, mask, video; the mask (a value in
  [0, 1], not [-1, 1] as the videos) maps 0 to black, 1 to white and 0.25 to 64."""
  n, t, s = 1, 2, 4
  output = GeneratorOutput(video=np.ones((n, t, s, s, 3)), foreground=np.zeros((n, t, s, s, 3)),
                           background=-np.ones((n, s, s, 3)),
                           mask=np.full((n, t, s, s, 1), 0.25))
  streams = video_io.stream_videos(output)
  np.testing.assert_array_equal(
      media.to_uint8(np.array([0.0, 0.25, 1.0]), 0.0, 1.0), [0, 64, 255])
  assert (streams['mask'] == 64).all()
  grid = video_io.streams_side_by_side(streams, 0, padding=1)
  assert grid.shape == (t, s + 2, 4 * (s + 1) + 1, 3)
  cells = [grid[:, 1:1 + s, 1 + i * (s + 1):1 + i * (s + 1) + s] for i in range(4)]
  assert [int(cell.min()) for cell in cells] == [0, 128, 64, 255]
  assert [int(cell.max()) for cell in cells] == [0, 128, 64, 255]


def test_written_videos_and_read_images_keep_their_colours(tmp_path):
  """Our writer takes RGB and our image reader gives RGB, while OpenCV's files are read and
  written as BGR(A): an orange video written by `write_video` decodes (with OpenCV itself) as
  orange, and orange PNGs written by OpenCV, with and without alpha, load as orange."""
  orange = (200, 100, 30)  # R, G, B
  path = str(tmp_path / 'orange.avi')
  media.write_video(path, np.full((3, 16, 16, 3), orange, np.uint8), 25.0)
  capture = cv2.VideoCapture(path)
  ok, frame = capture.read()
  capture.release()
  assert ok
  np.testing.assert_allclose(frame.mean(axis=(0, 1)), orange[::-1], atol=8)  # B, G, R
  cv2.imwrite(str(tmp_path / 'orange.png'), np.full((16, 16, 3), orange[::-1], np.uint8))
  image, _ = media.load_image(str(tmp_path / 'orange.png'), 16)
  np.testing.assert_array_equal(image.reshape(-1, 3).mean(0), orange)
  # With an alpha channel (OpenCV's BGRA) too.
  cv2.imwrite(str(tmp_path / 'alpha.png'), np.full((16, 16, 4), (*orange[::-1], 128), np.uint8))
  image, note = media.load_image(str(tmp_path / 'alpha.png'), 16)
  assert 'alpha dropped' in note
  np.testing.assert_array_equal(image.reshape(-1, 3).mean(0), orange)


def test_gif_has_every_frame_and_is_written_atomically(tmp_path):
  frames = np.stack([np.full((6, 6, 3), 20 * t, np.uint8) for t in range(5)])
  path = tmp_path / 'out' / 'clip.gif'
  media.write_gif(str(path), frames, fps=10)
  gif = Image.open(path)
  assert gif.n_frames == 5 and gif.info['duration'] == 100
  assert os.listdir(tmp_path / 'out') == ['clip.gif']  # no temporary left behind
  with pytest.raises(ValueError, match='uint8 frames'):
    media.write_gif(str(tmp_path / 'bad.gif'), frames.astype(float))
  assert not (tmp_path / 'bad.gif').exists()


def test_a_phone_photo_comes_in_upright(tmp_path):
  """A JPEG stored 64 wide x 32 high with EXIF orientation 6 (taken with the phone upright) is
  a 32x64 portrait: its stored left half (white) is on top."""
  stored = np.zeros((32, 64, 3), np.uint8)
  stored[:, :32] = 255
  exif = Image.Exif()
  exif[media.EXIF_ORIENTATION] = 6
  Image.fromarray(stored).save(tmp_path / 'phone.jpg', exif=exif, quality=95)
  image, note = media.load_image(str(tmp_path / 'phone.jpg'), 32)
  assert 'EXIF orientation 6 applied' in note and '32x64 centre-cropped' in note
  assert image[:8].mean() > 240 and image[-8:].mean() < 15  # the middle rows of the portrait


@pytest.mark.parametrize('orientation', range(1, 9))
def test_every_exif_orientation_matches_pillows(tmp_path, orientation):
  stored = np.random.default_rng(orientation).integers(0, 256, (12, 20, 3), np.uint8)
  exif = Image.Exif()
  exif[media.EXIF_ORIENTATION] = orientation
  path = tmp_path / 'photo.png'  # lossless, so the pixels compare exactly
  Image.fromarray(stored).save(path, exif=exif)
  expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert('RGB'))
  image, _ = media.load_image(str(path), 12)
  np.testing.assert_array_equal(image, media.square_crop(expected, 12))
