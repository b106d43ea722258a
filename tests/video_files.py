"""Small video files the data tests write for themselves: good ones and each kind of bad one."""

import fractions
import os
import struct

import av
import cv2
import numpy as np
from PIL import Image

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


def write_timed_video(path, times, size=32, fmt=None, codec='libx264', rate=30, time_base=600,
                      color_trc=None, color_primaries=None):
  """A video whose frame i is a flat grey of 4 * i shown at times[i] seconds (presentation
  timestamps in units of 1/time_base s; the container's nominal rate is `rate`), written with
  PyAV; color_trc/color_primaries tag its colour encoding (PyAV's ColorTrc/ColorPrimaries)."""
  base = fractions.Fraction(1, time_base)
  with av.open(str(path), 'w', format=fmt) as container:
    stream = container.add_stream(codec, rate=rate)
    stream.width = stream.height = size
    stream.pix_fmt = 'yuv420p'
    stream.time_base = stream.codec_context.time_base = base
    if color_trc is not None:
      stream.codec_context.color_trc = color_trc
      stream.codec_context.color_primaries = color_primaries
    for index, time in enumerate(times):
      frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 4 * index, np.uint8), 'rgb24')
      frame.pts, frame.time_base = int(round(time * time_base)), base
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return str(path)


def rotate_mp4(path, degrees):
  """Sets the display matrix of an MP4's (first) track to a `degrees` clockwise rotation, as a
  phone held upright writes it (the pixels stay as stored)."""
  with open(path, 'rb') as file:
    data = bytearray(file.read())
  box = data.find(b'tkhd')
  offset = box + 44 + (12 if data[box + 4] == 1 else 0)  # version 1 has 64-bit times
  a, b, c, d = {90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}[degrees]
  data[offset:offset + 36] = struct.pack('>9i', a << 16, b << 16, 0, c << 16, d << 16, 0, 0, 0,
                                         1 << 30)
  with open(path, 'wb') as file:
    file.write(bytes(data))


def write_animation(path, count=40, delay_ms=40, size=(32, 48)):
  """An animated GIF/WebP/PNG (by the extension) whose frame i is a flat grey of 6 * i."""
  os.makedirs(os.path.dirname(str(path)), exist_ok=True)
  frames = [Image.fromarray(np.full((*size, 3), 6 * i, np.uint8)) for i in range(count)]
  frames[0].save(str(path), save_all=True, append_images=frames[1:], duration=delay_ms, loop=0)
  return str(path)
