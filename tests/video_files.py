"""Small video files the data tests write for themselves: good ones and each kind of bad one."""

import os

import cv2
import numpy as np

from data_pipeline import synthetic
from vgan_io import media


def write_test_video(path, frames=40, fps=25.0, height=48, width=64, scene='golf', shaky=False):
  """A built-in scene (or, `shaky`, the jittered stabilization scene) as a video file."""
  side = max(height, width)
  if shaky:
    video, _, _ = synthetic.jittered_scene(frames, side, seed=0)
  else:
    video = synthetic.render_clip(scene, 0, frames=frames, size=side)
  media.write_video(str(path), np.ascontiguousarray(video[:, :height, :width]), fps)
  return str(path)


def write_bad_videos(folder):
  """Writes each kind of bad input into `folder`; {file name: what its error must say}."""
  folder = str(folder)
  good = write_test_video(os.path.join(folder, 'good.mp4'))
  with open(good, 'rb') as file:
    data = file.read()
  os.remove(good)
  write_test_video(os.path.join(folder, 'short.avi'), frames=10)
  write_test_video(os.path.join(folder, 'odd_rate.avi'), fps=1000)
  media.write_video(os.path.join(folder, 'zero_frames.avi'), np.zeros((0, 32, 32, 3), np.uint8),
                      25)
  with open(os.path.join(folder, 'truncated.mp4'), 'wb') as file:
    file.write(data[:len(data) // 2])  # an MP4 cut short loses its index (moov atom)
  with open(os.path.join(folder, 'empty.mp4'), 'wb'):
    pass
  with open(os.path.join(folder, 'notes.mp4'), 'w') as file:
    file.write('not a video\n' * 100)
  with open(os.path.join(folder, 'corrupt.avi'), 'wb') as file:
    file.write(np.random.default_rng(0).bytes(5000))
  frame = synthetic.render_clip('golf', 0, frames=1, size=32)[0]
  cv2.imwrite(os.path.join(folder, 'photo.png'), frame)
  cv2.imwrite(os.path.join(folder, 'photo.jpg'), frame)
  os.rename(os.path.join(folder, 'photo.jpg'), os.path.join(folder, 'photo_named_like_a.mov'))
  return {
      'short.avi': 'shorter than one 16-frame clip',
      'odd_rate.avi': 'frame rate 1000 fps is outside',
      'zero_frames.avi': 'no frames could be decoded',
      'truncated.mp4': 'cannot be opened as a video',
      'empty.mp4': 'empty file',
      'notes.mp4': 'cannot be opened as a video',
      'corrupt.avi': 'cannot be opened as a video|no frames could be decoded',
      'photo.png': 'a still image',
      'photo_named_like_a.mov': 'a single frame: a still image',
  }


def read_video_frames(path) -> np.ndarray:
  """Every frame OpenCV decodes from a video file, BGR uint8 [T, H, W, 3]."""
  capture = cv2.VideoCapture(str(path))
  frames = []
  while True:
    ok, frame = capture.read()
    if not ok:
      capture.release()
      return np.stack(frames)
    frames.append(frame)
