"""One video file -> stabilized, square, fixed-length clips: the per-video work of prepare_data.

The steps, as the authors prepared their data:
  decode (OpenCV, frame by frame, so memory stays bounded whatever the length or resolution)
  -> resample to 25 fps (nearest source frame for each output time)
  -> centre-crop the largest square and scale it to `size` (128, as the authors stored clips)
  -> estimate the camera motion between adjacent frames (`stabilize.MotionEstimator`); a pair
     that fails cuts the video there into separate segments
  -> cut `frames`-long clips every `stride` frames within a segment, warp each to its first frame
  -> optionally drop clips that are too dark, too flat or static.

A whole video that cannot be used raises `VideoError` (file and reason); a part that cannot be used
is counted in a `VideoLog` by reason, and the rest of the video is kept. This module imports
neither TensorFlow nor Flax: it runs inside prepare_data's worker processes.
"""

import collections
import dataclasses
import math
import os
from typing import Iterator

import cv2
import numpy as np

from data_pipeline import stabilize as stabilization
from vgan_io.media import square_crop

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv',
                    '.flv', '.ogv', '.3gp', '.ts', '.mts')
# Our errors name each bad file once; OpenCV's own warnings about it would only repeat them.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp')


class VideoError(ValueError):
  """A video that yields no clips at all; the message names the file and the reason."""

  def __init__(self, path: str, reason: str):
    super().__init__(f'{path}: {reason}')
    self.path = path
    self.reason = reason


@dataclasses.dataclass(frozen=True)
class ClipOptions:
  """How videos become clips. Defaults are the authors': 32 frames of 128x128 at 25 fps."""
  frames: int = 32
  size: int = 128
  fps: float = 25.0
  stride: int = 32  # output frames between the starts of consecutive clips
  max_clips: int = 0  # per video; 0 keeps all
  stabilize: bool = True
  stabilize_options: stabilization.StabilizeOptions = stabilization.StabilizeOptions()
  # Clip filters, off at 0: mean pixel value (0-255), pixel standard deviation, and mean absolute
  # difference between consecutive stabilized frames.
  min_brightness: float = 0.0
  min_contrast: float = 0.0
  min_motion: float = 0.0
  # Source checks: frame rates outside this range are container errors, not real rates.
  min_source_fps: float = 1.0
  max_source_fps: float = 480.0
  max_source_pixels: int = 7680 * 4320  # 8K; larger frames are refused, not decoded

  def __post_init__(self):
    for name in ('frames', 'size', 'stride'):
      if getattr(self, name) < 1:
        raise ValueError(f'ClipOptions.{name} must be >= 1; got {getattr(self, name)}.')
    if self.frames < 2:
      raise ValueError(f'ClipOptions.frames must be >= 2; got {self.frames}.')
    if not self.fps > 0 or self.max_clips < 0:
      raise ValueError(f'ClipOptions needs fps > 0 and max_clips >= 0; got {self.fps}, '
                       f'{self.max_clips}.')

  def as_dict(self) -> dict:
    """Plain JSON-able values, for the manifest."""
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  path: str
  fps: float
  width: int
  height: int
  declared_frames: int  # what the container says; may be wrong


@dataclasses.dataclass(frozen=True)
class Clip:
  frames: np.ndarray  # uint8 [T, size, size, 3] RGB, stabilized to its first frame
  start_frame: int  # index of its first frame in the video resampled to `fps`
  stats: dict  # stabilization figures, `stabilize.clip_stats`


@dataclasses.dataclass
class VideoLog:
  """What happened to the parts of one video that did not become clips."""
  frames_read: int = 0  # at the output frame rate
  rejected: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  warnings: list = dataclasses.field(default_factory=list)


def is_video_path(path: str) -> bool:
  return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _open(path: str) -> cv2.VideoCapture:
  capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
  if not capture.isOpened():
    capture.release()
    raise VideoError(path, 'cannot be opened as a video (not a video file, or a codec FFmpeg '
                           'does not have)')
  return capture


def probe(path: str, options: ClipOptions = ClipOptions()) -> VideoInfo:
  """The video's frame rate and size, or VideoError if it cannot be used at all."""
  if not os.path.isfile(path):
    raise VideoError(path, 'no such file')
  if os.path.getsize(path) == 0:
    raise VideoError(path, 'empty file (0 bytes)')
  extension = os.path.splitext(path)[1].lower()
  if extension in IMAGE_EXTENSIONS:
    raise VideoError(path, f'a still image ({extension}), not a video')
  capture = _open(path)
  try:
    info = VideoInfo(path, capture.get(cv2.CAP_PROP_FPS),
                     int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                     int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
  finally:
    capture.release()
  if info.width <= 0 or info.height <= 0:
    raise VideoError(path, 'no frames could be decoded (no video stream)')
  if info.width * info.height > options.max_source_pixels:
    raise VideoError(path, f'resolution {info.width}x{info.height} is above the limit of '
                           f'{options.max_source_pixels} pixels per frame (max_source_pixels)')
  if not options.min_source_fps <= info.fps <= options.max_source_fps:  # NaN fails too
    raise VideoError(path, f'frame rate {info.fps:g} fps is outside '
                           f'[{options.min_source_fps:g}, {options.max_source_fps:g}]: the '
                           'container\'s timing is broken')
  return info


def resample_counts(source_fps: float, target_fps: float) -> Iterator[int]:
  """For source frames 0, 1, ...: how many times each appears at the target rate.

  Output frame k shows the source frame on screen at time k / target_fps, so a faster source drops
  frames and a slower one repeats them; equal rates give 1, 1, 1, ...
  """
  ratio = source_fps / target_fps
  output = 0
  source = 0
  while True:
    count = 0
    while math.floor(output * ratio + 1e-9) <= source:  # 1e-9: 0.1 * 3 is not 0.3
      count += 1
      output += 1
    yield count
    source += 1


def read_frames(info: VideoInfo, options: ClipOptions, log: VideoLog) -> Iterator[np.ndarray]:
  """Decoded RGB frames, resampled to options.fps and square-cropped to options.size."""
  capture = _open(info.path)
  decoded = 0
  try:
    for count in resample_counts(info.fps, options.fps):
      ok, frame = capture.read()
      if not ok:
        break
      decoded += 1
      if count:
        square = cv2.cvtColor(square_crop(frame, options.size), cv2.COLOR_BGR2RGB)
        for _ in range(count):
          log.frames_read += 1
          yield square
  finally:
    capture.release()
  if decoded == 0:
    raise VideoError(info.path, 'no frames could be decoded')
  if decoded == 1:
    raise VideoError(info.path, 'a single frame: a still image, not a video')
  if info.declared_frames > 0 and decoded < 0.9 * info.declared_frames:
    log.warnings.append(f'decoded {decoded} of the {info.declared_frames} frames the container '
                        'declares (truncated or corrupt): kept what decoded')


def _clip_rejection(frames: np.ndarray, options: ClipOptions) -> str:
  """Why a stabilized clip fails the optional filters, or ''."""
  if options.min_brightness and frames.mean() < options.min_brightness:
    return 'too dark'
  if options.min_contrast and frames.std() < options.min_contrast:
    return 'too flat'
  if options.min_motion:
    motion = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean()
    if motion < options.min_motion:
      return 'static'
  return ''


def iter_clips(path: str, options: ClipOptions = ClipOptions(),
               log: VideoLog | None = None) -> Iterator[Clip]:
  """The clips of one video, in order; parts that are not used are counted in `log`.

  Raises VideoError when the video cannot be read or is shorter than one clip.
  """
  log = log if log is not None else VideoLog()
  info = probe(path, options)
  estimator = (stabilization.MotionEstimator(options.stabilize_options) if options.stabilize
               else None)
  # The current segment's last `frames` frames, each with the motion to the frame before it.
  window = collections.deque(maxlen=options.frames)
  segment_length = 0
  clips = 0
  for frame in read_frames(info, options, log):
    motion = estimator(frame) if estimator else None
    if motion is not None and not motion.ok:
      # The camera motion cannot be followed across this pair: the segment ends here.
      log.rejected[f'segment cut: {motion.reason}'] += 1
      if segment_length < options.frames:
        log.rejected['segment shorter than a clip'] += 1
      window.clear()
      segment_length = 0
      motion = None
    window.append((frame, motion))
    segment_length += 1
    if segment_length < options.frames or (segment_length - options.frames) % options.stride:
      continue
    frames = np.stack([item[0] for item in window])
    motions = [item[1] for item in list(window)[1:]]
    if estimator:
      frames = stabilization.stabilize_clip(frames, [m.matrix for m in motions])
    reason = _clip_rejection(frames, options)
    if reason:
      log.rejected[f'clip {reason}'] += 1
      continue
    stats = stabilization.clip_stats(motions) if estimator else {}
    yield Clip(frames, log.frames_read - options.frames, stats)
    clips += 1
    if clips == options.max_clips:
      return
  if 0 < segment_length < options.frames and log.frames_read >= options.frames:
    log.rejected['segment shorter than a clip'] += 1
  if log.frames_read < options.frames:
    raise VideoError(path, f'{log.frames_read} frames at {options.fps:g} fps is shorter than one '
                           f'{options.frames}-frame clip')
