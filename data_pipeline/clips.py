"""One video file -> stabilized, square, fixed-length clips: the per-video work of prepare_data.

The steps, as the authors prepared their data:
  decode (OpenCV, frame by frame, so memory stays bounded whatever the length or resolution;
     animated GIF, WebP and PNG through Pillow, with their frame delays)
  -> resample to 25 fps on the frames' presentation times (each output time shows the frame on
     screen then), so variable-frame-rate phone and screen recordings keep their speed and a
     container's wrong nominal rate (1000 fps in browser webm files) does not matter
  -> centre-crop the largest square and scale it to `size` (128, as the authors stored clips)
  -> estimate the camera motion between adjacent frames (`stabilize.MotionEstimator`); a pair
     that fails cuts the video there into separate segments
  -> cut `frames`-long clips every `stride` frames within a segment, warp each to its first frame
  -> optionally drop clips that are too dark, too flat or static, or that a user-supplied scene
     classifier does not call the wanted scene (`scene_filter`).

A whole video that cannot be used raises `VideoError` (file and reason); a part that cannot be used
is counted in a `VideoLog` by reason, and the rest of the video is kept. This module imports
neither TensorFlow nor Flax: it runs inside prepare_data's worker processes.
"""

import collections
import dataclasses
import math
import os
from typing import Any, Iterable, Iterator

import av
import cv2
import numpy as np
from PIL import Image

from data_pipeline import scene_filter as scene_filtering
from data_pipeline import stabilize as stabilization
from vgan_io.media import square_crop

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv',
                    '.flv', '.ogv', '.3gp', '.ts', '.mts')
# Our errors name each bad file once; OpenCV's own warnings about it would only repeat them.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp')
# Images that may be animated: read as videos when they are (Pillow decodes them with their frame
# delays; OpenCV and FFmpeg do not read animated WebP).
ANIMATION_EXTENSIONS = ('.gif', '.webp', '.png', '.apng')
# Browsers show a GIF frame whose delay is under 20 ms (0 included) for 100 ms; so do we.
MIN_FRAME_DELAY, DEFAULT_FRAME_DELAY = 0.02, 0.1
# Transfer functions of HDR video (PyAV's ColorTrc values): OpenCV tone-maps neither.
HDR_TRANSFERS = {16: 'PQ (SMPTE 2084)', 18: 'HLG (ARIB STD-B67)'}
BT2020_PRIMARIES = 9
TIMING_PACKETS = 64  # packets read to measure a video's frame rate from its timestamps


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
  # Keep only clips a user-supplied scene classifier calls the wanted scene (`scene_filter`).
  scene_filter: scene_filtering.SceneFilter | None = None

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
    """Plain JSON-able values, for the manifest (the scene filter only when there is one, so
    folders prepared before it existed still match; its classifier by name)."""
    record = dataclasses.asdict(dataclasses.replace(self, scene_filter=None))
    del record['scene_filter']
    if self.scene_filter:
      record['scene_filter'] = self.scene_filter.as_dict()
    return record


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What `probe` found. `fps`: the frame rate the timestamps show (the container's nominal
  rate where they cannot tell), used only where a frame's own timestamp is missing or out of
  order; `notes`: warnings about the whole video (HDR), for the log and the manifest."""
  path: str
  fps: float
  width: int
  height: int
  declared_frames: int  # what the container says; may be wrong
  animated_image: bool = False  # decoded by Pillow, with its frame delays
  notes: tuple[str, ...] = ()


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
  # With a scene filter: (start frame, score, kept) of each clip it judged, in order.
  scene_scores: list = dataclasses.field(default_factory=list)


def is_video_path(path: str) -> bool:
  """A video file by its extension, or an animated GIF, WebP or PNG (opened to tell)."""
  extension = os.path.splitext(path)[1].lower()
  if extension in ANIMATION_EXTENSIONS:
    return _is_animated(path)
  return extension in VIDEO_EXTENSIONS


def _is_animated(path: str) -> bool:
  """Whether an image file has more than one frame (reads its header, decodes nothing)."""
  try:
    with Image.open(path) as image:
      return bool(getattr(image, 'is_animated', False))
  except (OSError, ValueError, EOFError):
    return False


def _animation(path: str) -> tuple[int, float, int, int] | None:
  """(frames, seconds, width, height) of an animated image; None for a still or unreadable
  one."""
  try:
    with Image.open(path) as image:
      frames = getattr(image, 'n_frames', 1)
      if frames < 2:
        return None
      seconds = 0.0
      for index in range(frames):
        image.seek(index)
        seconds += frame_delay(image.info.get('duration'))
      return frames, seconds, image.width, image.height
  except (OSError, ValueError, EOFError):
    return None


def frame_delay(milliseconds) -> float:
  """Seconds an animation frame stays on screen, from its delay in ms, as browsers show it."""
  seconds = (milliseconds or 0) / 1000
  return seconds if seconds >= MIN_FRAME_DELAY else DEFAULT_FRAME_DELAY


def _stream_timing_and_notes(path: str) -> tuple[float | None, tuple[str, ...]]:
  """(the frame rate the first `TIMING_PACKETS` packets' timestamps show, or None when they do
  not show one; warnings about the colour encoding) from PyAV, which sees what OpenCV does
  not: timestamps without decoding, and the transfer function."""
  try:
    with av.open(path) as container:
      stream = container.streams.video[0]
      context = stream.codec_context
      notes = ()
      transfer = HDR_TRANSFERS.get(int(context.color_trc or 0))
      if transfer:
        gamut = ', BT.2020 primaries' if int(context.color_primaries or 0) == BT2020_PRIMARIES else ''
        notes = (f'HDR video ({transfer} transfer{gamut}): decoded to 8-bit without tone mapping, '
                 'so its colours look washed out; convert it to SDR first for faithful colours',)
      times = []
      for packet in container.demux(stream):
        if packet.pts is not None and packet.size:
          times.append(float(packet.pts * stream.time_base))
        if len(times) == TIMING_PACKETS:
          break
  except (av.error.FFmpegError, IndexError, OSError, ValueError):
    return None, ()
  intervals = np.diff(np.unique(times))  # sorted: packets come in decoding order
  return (float(1 / np.median(intervals)) if len(intervals) else None), notes


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
    animation = _animation(path) if extension in ANIMATION_EXTENSIONS else None
    if animation is None:
      raise VideoError(path, f'a still image ({extension}), not a video')
    frames, seconds, width, height = animation
    info = VideoInfo(path, frames / seconds, width, height, frames, animated_image=True)
  else:
    capture = _open(path)
    try:
      nominal = capture.get(cv2.CAP_PROP_FPS)
      width, height = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                       int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
      declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
      capture.release()
    measured, notes = _stream_timing_and_notes(path)
    info = VideoInfo(path, measured or nominal, width, height, declared, notes=notes)
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


TIME_TOLERANCE = 1e-6  # seconds: a frame whose time is an output time is the one shown then


def frames_on_screen(timed_frames: Iterable[tuple[float | None, Any]], target_fps: float,
                     fallback_fps: float) -> Iterator[tuple[Any, int, bool]]:
  """Resampling on presentation times: (frame, how many output frames show it, whether its time
  was made up) for each (time in seconds, frame) of a video, in order.

  Output frame k shows the frame on screen at k / target_fps (times count from the first
  frame's), so a faster or variable source drops frames and a slower one repeats them. The last
  frame stays on screen as long as the interval before it. A time that is missing (None, NaN) or
  not after the previous frame's becomes the previous one's + 1 / fallback_fps.
  """
  period, output = 1.0 / target_fps, 0
  previous = start = None  # previous: (time, frame, made up)
  last_interval = 1.0 / fallback_fps

  def shown_before(end: float) -> int:
    nonlocal output
    count = max(0, math.ceil((end - TIME_TOLERANCE) / period) - output)
    output += count
    return count

  for raw_time, frame in timed_frames:
    usable = raw_time is not None and math.isfinite(raw_time)
    if previous is None:
      start, time, made_up = (raw_time if usable else 0.0), 0.0, False
    else:
      time = raw_time - start if usable else -math.inf
      made_up = not time > previous[0]
      if made_up:
        time = previous[0] + 1.0 / fallback_fps
      last_interval = time - previous[0]
      yield previous[1], shown_before(time), previous[2]
    previous = (time, frame, made_up)
  if previous is not None:
    yield previous[1], shown_before(previous[0] + last_interval), previous[2]


def _timed_frames(info: VideoInfo) -> Iterator[tuple[float | None, np.ndarray]]:
  """(presentation time in seconds, BGR frame) of each decoded frame: OpenCV's timestamps (the
  frames' own, not the container's nominal rate), or an animation's frame delays."""
  if info.animated_image:
    with Image.open(info.path) as image:
      time = 0.0
      for index in range(image.n_frames):
        image.seek(index)
        yield time, np.ascontiguousarray(np.asarray(image.convert('RGB'))[:, :, ::-1])
        time += frame_delay(image.info.get('duration'))
    return
  capture = _open(info.path)
  try:
    while True:
      ok, frame = capture.read()
      if not ok:
        return
      yield capture.get(cv2.CAP_PROP_POS_MSEC) / 1000, frame
  finally:
    capture.release()


def read_frames(info: VideoInfo, options: ClipOptions, log: VideoLog) -> Iterator[np.ndarray]:
  """Decoded RGB frames, resampled to options.fps on their presentation times
  (`frames_on_screen`) and square-cropped to options.size. `info.notes` and frames without a
  usable timestamp go to `log.warnings`."""
  log.warnings.extend(info.notes)
  decoded = made_up = 0
  for frame, count, timed_by_rate in frames_on_screen(_timed_frames(info), options.fps, info.fps):
    decoded += 1
    made_up += timed_by_rate
    if count:
      square = cv2.cvtColor(square_crop(frame, options.size), cv2.COLOR_BGR2RGB)
      for _ in range(count):
        log.frames_read += 1
        yield square
  if decoded == 0:
    raise VideoError(info.path, 'no frames could be decoded')
  if decoded == 1:
    raise VideoError(info.path, 'a single frame: a still image, not a video')
  if made_up:
    log.warnings.append(f'{made_up} of {decoded} frames had no usable timestamp (missing or out '
                        f'of order): timed at {info.fps:g} fps')
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
  categories_seen = set()
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
    raw = frames = np.stack([item[0] for item in window])
    motions = [item[1] for item in list(window)[1:]]
    if estimator:
      frames = stabilization.stabilize_clip(frames, [m.matrix for m in motions])
    reason = _clip_rejection(frames, options)
    if reason:
      log.rejected[f'clip {reason}'] += 1
      continue
    stats = stabilization.clip_stats(motions) if estimator else {}
    if options.scene_filter:
      # The frames before stabilization: no warped borders for the classifier to see.
      try:
        score, seen = options.scene_filter.score(raw)
      except ValueError as error:
        raise VideoError(path, str(error)) from None
      categories_seen.update(seen)
      kept = score >= options.scene_filter.threshold
      log.scene_scores.append((log.frames_read - options.frames, round(score, 4), kept))
      if not kept:
        log.rejected[f'clip {scene_filtering.REJECTION}'] += 1
        continue
      stats = {**stats, 'scene_score': score}
    yield Clip(frames, log.frames_read - options.frames, stats)
    clips += 1
    if clips == options.max_clips:
      _note_unseen_categories(options, log, categories_seen)
      return
  _note_unseen_categories(options, log, categories_seen)
  if 0 < segment_length < options.frames and log.frames_read >= options.frames:
    log.rejected['segment shorter than a clip'] += 1
  if log.frames_read < options.frames:
    raise VideoError(path, f'{log.frames_read} frames at {options.fps:g} fps is shorter than one '
                           f'{options.frames}-frame clip')


def _note_unseen_categories(options: ClipOptions, log: VideoLog, seen: set) -> None:
  """A warning for wanted categories the classifier never named in this video (a misspelt
  --scene_categories would otherwise only reject every clip)."""
  if options.scene_filter and log.scene_scores:
    unseen = [c for c in options.scene_filter.categories if c not in seen]
    if unseen:
      log.warnings.append(f'the scene classifier never named {", ".join(unseen)} in this video\'s '
                          'clips: check --scene_categories against its category names')
