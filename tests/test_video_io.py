"""Grids and GIFs of generated videos."""

import os

import numpy as np
import pytest
from PIL import Image

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
