"""Videos and images as files and grids: uint8 conversion, grids of clips, GIF, MP4/AVI (OpenCV),
H.264 MP4 that browsers play (PyAV), centre crops, image loading. Writes are atomic (temporary
file, then rename).
"""

import os

import av
import cv2
import numpy as np
from PIL import Image

from vgan_io.files import atomic_path


def to_uint8(video: np.ndarray, low: float = -1.0, high: float = 1.0) -> np.ndarray:
  """Values in [low, high] -> uint8 [0, 255] (clipped)."""
  scaled = (np.asarray(video, np.float32) - low) / (high - low)
  return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def video_grid(videos: np.ndarray, columns: int | None = None, padding: int = 1,
               scale: int = 1) -> np.ndarray:
  """uint8 videos [N, T, H, W, C] (C 1 or 3) -> one uint8 video [T, rows*(H+p)+p, ...(W), 3].

  Clips are laid out row by row, `columns` wide (default: a square-ish grid), separated by
  `padding` white pixels; `scale` enlarges each pixel (nearest neighbour) for tiny frames.
  """
  videos = np.asarray(videos)
  if videos.ndim != 5:
    raise ValueError(f'video_grid takes [N, T, H, W, C] videos; got shape {videos.shape}.')
  if videos.shape[-1] == 1:
    videos = np.repeat(videos, 3, axis=-1)
  if scale > 1:
    videos = videos.repeat(scale, axis=2).repeat(scale, axis=3)
  n, t, h, w, c = videos.shape
  columns = columns or int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / columns))
  grid = np.full((t, rows * (h + padding) + padding, columns * (w + padding) + padding, c), 255,
                 np.uint8)
  for i in range(n):
    top = padding + (i // columns) * (h + padding)
    left = padding + (i % columns) * (w + padding)
    grid[:, top:top + h, left:left + w] = videos[i]
  return grid


def write_gif(path: str, frames: np.ndarray, fps: float = 8.0) -> None:
  """uint8 frames [T, H, W, 3] -> an endlessly looping GIF at `path`, written atomically."""
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4:
    raise ValueError(f'write_gif takes uint8 frames [T, H, W, C]; got {frames.dtype} '
                     f'{frames.shape}.')
  images = [Image.fromarray(frame) for frame in frames]
  with atomic_path(path) as temporary:
    images[0].save(temporary, format='GIF', save_all=True, append_images=images[1:],
                   duration=int(round(1000 / fps)), loop=0)


def square_crop(frame: np.ndarray, size: int) -> np.ndarray:
  """The centred largest square of [H, W, C], scaled to [size, size, C] (area filter)."""
  height, width = frame.shape[:2]
  side = min(height, width)
  top, left = (height - side) // 2, (width - side) // 2
  square = frame[top:top + side, left:left + side]
  if side == size:
    return np.ascontiguousarray(square)
  interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
  return cv2.resize(square, (size, size), interpolation=interpolation)


# EXIF orientation (tag 0x0112) -> how the stored pixels [H, W, ...] become upright.
EXIF_ORIENTATION = 0x0112
_UPRIGHT = {
    2: lambda image: image[:, ::-1],  # mirrored left-right
    3: lambda image: image[::-1, ::-1],  # upside down
    4: lambda image: image[::-1],  # mirrored top-bottom
    5: lambda image: np.swapaxes(image, 0, 1),  # mirrored along the main diagonal
    6: lambda image: np.rot90(image, -1),  # turned 90 degrees clockwise (a phone held upright)
    7: lambda image: np.swapaxes(image[::-1, ::-1], 0, 1),  # mirrored along the other diagonal
    8: lambda image: np.rot90(image, 1),  # turned 90 degrees counter-clockwise
}


def exif_orientation(path: str) -> int:
  """The EXIF orientation (1-8) of an image file; 1 (as stored) when it has none."""
  try:
    with Image.open(path) as image:
      orientation = image.getexif().get(EXIF_ORIENTATION, 1)
  except (OSError, ValueError, SyntaxError):
    return 1
  return orientation if orientation in _UPRIGHT else 1


def load_image(path: str, size: int) -> tuple[np.ndarray, str]:
  """An image file -> (uint8 RGB [size, size, 3], a note on how it was changed, or '').

  A phone photo's EXIF orientation is applied first, so it comes in upright (a JPEG stored 64x32
  with orientation 6 is 32x64). Raises ValueError naming the file when it is not an image OpenCV
  can read.
  """
  if not os.path.isfile(path):
    raise ValueError(f'{path}: no such file.')
  image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
  if image is None or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
    raise ValueError(f'{path}: not an image OpenCV can read (PNG, JPEG, BMP, WebP, TIFF, ...).')
  notes = []
  orientation = exif_orientation(path)
  if orientation != 1:  # IMREAD_UNCHANGED leaves the pixels as stored
    image = np.ascontiguousarray(_UPRIGHT[orientation](image))
    notes.append(f'EXIF orientation {orientation} applied')
  if image.dtype == np.uint16:
    image = (image // 257).astype(np.uint8)
  elif image.dtype != np.uint8:
    raise ValueError(f'{path}: {image.dtype} pixels; only 8- and 16-bit images are supported.')
  if image.ndim == 2 or image.shape[2] == 1:
    image, kind = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), 'grey'
  elif image.shape[2] == 4:
    image, kind = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB), 'RGBA (alpha dropped)'
  else:
    image, kind = cv2.cvtColor(image, cv2.COLOR_BGR2RGB), ''
  if kind:
    notes.append(f'{kind} converted to RGB')
  height, width = image.shape[:2]
  if (height, width) != (size, size):
    notes.append(f'{width}x{height} centre-cropped and scaled to {size}x{size}')
  return square_crop(image, size), '; '.join(notes)


def upscale(video: np.ndarray, factor: int) -> np.ndarray:
  """uint8 [..., H, W, C] -> [..., H * factor, W * factor, C], nearest neighbour (for viewing)."""
  if factor <= 1:
    return video
  return video.repeat(factor, axis=-3).repeat(factor, axis=-2)


def write_mp4_and_gif(stem: str, video: np.ndarray, fps: float) -> list[str]:
  """uint8 [T, H, W, 3] -> STEM.mp4 and STEM.gif at `fps`; returns the two paths."""
  paths = [stem + '.mp4', stem + '.gif']
  write_video(paths[0], video, fps)
  write_gif(paths[1], video, fps)
  return paths


_FOURCC = {'.avi': 'MJPG', '.mp4': 'mp4v', '.mov': 'mp4v', '.mkv': 'MJPG'}


def write_video(path: str, frames: np.ndarray, fps: float) -> None:
  """uint8 RGB frames [T, H, W, 3] -> a video at `path`, atomically: Motion-JPEG (near-lossless)
  in .avi/.mkv, MPEG-4 part 2 in .mp4/.mov (the codecs every OpenCV build can write).

  MPEG-4 needs even sizes: an odd height or width gets one more row or column (a copy of the
  last), where the encoder would otherwise drop one.
  """
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f'write_video takes uint8 RGB frames [T, H, W, 3]; got {frames.dtype} '
                     f'{frames.shape}.')
  extension = os.path.splitext(path)[1].lower()
  if extension not in _FOURCC:
    raise ValueError(f'{path}: write_video writes {", ".join(_FOURCC)} files.')
  if _FOURCC[extension] == 'mp4v':
    frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)),
                    mode='edge')
  height, width = frames.shape[1:3]
  with atomic_path(path) as temporary:
    writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*_FOURCC[extension]), fps,
                             (width, height))
    if not writer.isOpened():
      raise OSError(f'OpenCV cannot write {_FOURCC[extension]} video to {path}.')
    try:
      for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
      writer.release()


def write_h264(path: str, frames: np.ndarray, fps: int = 25, crf: int = 18) -> None:
  """uint8 RGB frames [T, H, W, 3] -> an H.264 MP4 at `path` that every browser plays, atomically.

  PyAV's libx264 (its wheels ship it; OpenCV's `mp4v` is MPEG-4 part 2, which browsers do not
  play), yuv420p pixels, quality `crf` (0 lossless .. 51; 18 looks lossless), the index first
  (`movflags=+faststart`) so a page can start playing before the file is loaded. yuv420p needs
  even sizes: an odd height or width gets one more row or column (a copy of the last).
  ValueError for frames of another type or shape; OSError when the file cannot be written.
  """
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
    raise ValueError(f'write_h264 takes uint8 RGB frames [T, H, W, 3]; got {frames.dtype} '
                     f'{frames.shape}.')
  frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)),
                  mode='edge')
  with atomic_path(path) as temporary:
    try:
      with av.open(temporary, 'w', format='mp4', options={'movflags': '+faststart'}) as output:
        stream = output.add_stream('libx264', rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt, stream.options = 'yuv420p', {'crf': str(crf)}
        for frame in frames:
          output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')))
        output.mux(stream.encode())
    except av.FFmpegError as error:
      raise OSError(f'{path}: cannot write H.264 video ({error}).') from None
