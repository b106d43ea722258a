"""Videos to measure, from wherever a user has them, without flags: experiments/fvd.py's sources.

  SOURCE                               what is read
  a training work directory            samples of its generator (a GAN from noise), or of the
                                       autoencoder + GMM baseline when it holds gmm.npz
  a shard folder (DATA_DIR/SCENE)      its clips (TFRecord JPEG strips), in file order
  a folder of video files              the videos as prepare_data reads them: 25 fps, centre
                                       square scaled to `size`, one clip from the start of each
  a .npz with a `video` array          [N, T, H, W, 3], uint8 or float in [-1, 1]
  a built-in scene name (beach, ...)   data_pipeline/synthetic.py's clips at `size`

Every source gives uint8 videos [count, frames, H, W, 3], a batch at a time (`VideoSource`: so
thousands of clips never sit in memory at once) or all together (`load_videos`), and a line
saying where they came from. A source that cannot give that many clips of that many frames is
refused with a ValueError naming it.
"""

import glob
import itertools
import os
import zipfile
from typing import Iterator

import numpy as np

from data_pipeline import clips, input_pipeline, shards, synthetic
from experiments import autoencoder_baseline
from vgan_io import media
from vgan_jax import sampling
from vgan_jax.metrics import i3d


def _generator_batches(workdir: str, count: int, seed: int,
                       batch_size: int) -> tuple[Iterator[dict[str, np.ndarray]], str]:
  """Raw output batches of `count` samples (seed `seed`) of the model in `workdir` and where
  they come from: the autoencoder + GMM baseline when it holds gmm.npz, else its GAN."""
  if os.path.exists(os.path.join(workdir, autoencoder_baseline.GMM_FILE)):
    state, batches = autoencoder_baseline.decoded_batches(workdir, count, seed, batch_size)
    kind = 'the autoencoder + GMM baseline'
  else:
    config, gan, state = sampling.load_model(workdir, None, conditional=False)
    batches = sampling.generated_batches(gan, state, config, count, seed, batch_size)
    kind = f'the {config.model.generator} generator'
  return batches, (f'{count} samples of {kind} in {workdir} at step {int(state.step)} '
                   f'(seed {seed})')


def generator_samples(workdir: str, count: int, seed: int) -> tuple[dict[str, np.ndarray], str]:
  """(raw outputs, where) of `count` samples of the model in `workdir`, all at once (see
  `_generator_batches`): video [N, T, S, S, C] in [-1, 1], and mask etc. for two streams."""
  batches, where = _generator_batches(workdir, count, seed, 16)
  return sampling.concatenate_batches(batches), where


def _shard_clips(folder: str, count: int, frames: int) -> tuple[Iterator[np.ndarray], str]:
  paths = input_pipeline.find_shards(os.path.dirname(os.path.abspath(folder)),
                                     os.path.basename(os.path.abspath(folder)))
  clips_of = (record['video'][:frames] for path in paths for record in shards.read_shard(path))
  return clips_of, f'the first {count} clips of the {len(paths)} shards in {folder}'


def _video_files(folder: str, count: int, frames: int, size: int,
                 skipped: list[str]) -> tuple[Iterator[np.ndarray], str]:
  paths = sorted(path for path in glob.glob(os.path.join(folder, '**', '*'), recursive=True)
                 if clips.is_video_path(path))
  options = clips.ClipOptions(frames=frames, size=size, stabilize=False)

  def read_each():
    for path in paths:
      try:
        read = list(itertools.islice(
            clips.read_frames(clips.probe(path, options), options, clips.VideoLog()), frames))
      except clips.VideoError as error:
        skipped.append(f'{path}: {error}')
        continue
      if len(read) < frames:
        skipped.append(f'{path}: {len(read)} frames at 25 fps, fewer than {frames}')
        continue
      yield np.stack(read)

  if not paths:
    raise ValueError(f'{folder}: no checkpoints, shards (*.tfrecord) or video files here.')
  return read_each(), (f'the first {count} readable video files in {folder}, their first {frames} '
                       f'frames at 25 fps, centre squares scaled to {size}x{size}')


def _npz_videos(path: str) -> np.ndarray:
  try:
    with np.load(path, allow_pickle=False) as arrays:
      names, videos = arrays.files, arrays['video'] if 'video' in arrays.files else None
  except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:  # damaged or not an npz
    raise ValueError(f'{path}: not a readable .npz ({error}).') from None
  if videos is None:
    raise ValueError(f'{path}: no `video` array (it has {", ".join(names)}).')
  if videos.ndim != 5 or videos.shape[-1] != 3:
    raise ValueError(f'{path}: `video` must be [N, T, H, W, 3]; got {list(videos.shape)}.')
  return videos


def _as_uint8(videos: np.ndarray) -> np.ndarray:
  return videos if videos.dtype == np.uint8 else media.to_uint8(videos)  # rounded as stored


class VideoSource:
  """`count` uint8 videos [frames, H, W, 3] from `source` (see the module docstring), opened
  (model loaded, shards or files listed) when made, read when `batches` is iterated.

  `description`: where the videos come from (and, once read, which files were skipped and why);
  `frame_size`: [H, W] once read.
  ValueError names the source and what is wrong: when made for a source that does not exist or
  cannot be read; while reading, when the source runs out before `count` clips of `frames`
  frames, or its clips differ in size. (FVD's own minimums: `check_fvd_protocol`.)
  checkpoint.NoCheckpointError for a work directory without a checkpoint.
  """

  def __init__(self, source: str, count: int, frames: int, seed: int = 0, size: int = 64,
               batch_size: int = 16):
    if count < 1 or frames < 1:
      raise ValueError(f'{source}: {count} clips of {frames} frames asked for; give at least 1.')
    self.source, self.count, self.frames, self.batch_size = source, count, frames, batch_size
    self.skipped: list[str] = []
    self.frame_size: list[int] | None = None
    if source.endswith('.npz'):
      videos = _npz_videos(source)
      self._clips, where = iter(videos), f'the first {count} of the `video` array of {source}'
    elif os.path.isdir(os.path.join(source, 'checkpoints')):
      batches, where = _generator_batches(source, count, seed, batch_size)
      self._clips = (clip for batch in batches for clip in media.to_uint8(batch['video']))
    elif os.path.isdir(source) and input_pipeline.find_shards(
        os.path.dirname(os.path.abspath(source)), os.path.basename(os.path.abspath(source))):
      self._clips, where = _shard_clips(source, count, frames)
    elif os.path.isdir(source):
      self._clips, where = _video_files(source, count, frames, size, self.skipped)
    elif source in synthetic.SCENES:
      self._clips = (synthetic.render_clip(source, i, frames, size) for i in range(count))
      where = f'{count} clips of the built-in {source!r} scene (data_pipeline/synthetic.py)'
    elif not os.path.exists(source):
      raise ValueError(f'{source}: no such file, folder or built-in scene.')
    else:
      raise ValueError(f'{source}: not a work directory, shard folder, folder of videos or .npz.')
    self._where = where

  @property
  def description(self) -> str:
    note = (f'; skipped {len(self.skipped)} ({self.skipped[0]})' if self.skipped else '')
    return self._where + note

  def batches(self) -> Iterator[np.ndarray]:
    """uint8 [b, frames, H, W, 3], b = batch_size but for the last; `count` clips in all."""
    read, shape, batch = 0, None, []
    for clip in itertools.islice(self._clips, self.count):
      if len(clip) < self.frames:
        raise ValueError(f'{self.source}: its clips have {len(clip)} frames; {self.frames} were '
                         f'asked for (--frames={len(clip)} or fewer reads them).')
      clip = _as_uint8(np.asarray(clip[:self.frames]))
      if shape is not None and clip.shape != shape:
        raise ValueError(f'{self.source}: its clips have different sizes ({list(shape[1:3])} '
                         f'and {list(clip.shape[1:3])}); measure one size at a time.')
      shape = clip.shape
      self.frame_size = list(shape[1:3])
      batch.append(clip)
      read += 1
      if len(batch) == self.batch_size:
        yield np.stack(batch)
        batch = []
    if batch:
      yield np.stack(batch)
    if read < self.count:
      skipped = f' (skipped {len(self.skipped)}: {self.skipped[0]})' if self.skipped else ''
      raise ValueError(f'{self.source}: {read} clips; {self.count} were asked for{skipped}.')


def check_fvd_protocol(count: int, frames: int) -> None:
  """ValueError unless `count` clips a side of `frames` frames can give an FVD: I3D needs 9
  frames (with fewer its last pooling is empty and FVD is NaN), a covariance 2 clips."""
  if frames < i3d.MIN_FRAMES:
    raise ValueError(f'{frames} frames: I3D needs at least {i3d.MIN_FRAMES} (with fewer its last '
                     'pooling is empty and FVD is NaN).')
  if count < 2:
    raise ValueError(f'{count} clips: a covariance needs at least 2 a side.')


def load_videos(source: str, count: int, frames: int, seed: int = 0,
                size: int = 64) -> tuple[np.ndarray, str]:
  """All of `VideoSource(source, count, frames, seed, size)`'s videos [count, frames, H, W, 3]
  (uint8), enough for FVD (`check_fvd_protocol`), and where they came from; their errors."""
  check_fvd_protocol(count, frames)
  videos = VideoSource(source, count, frames, seed, size)
  stacked = np.concatenate(list(videos.batches()))
  return stacked, videos.description
