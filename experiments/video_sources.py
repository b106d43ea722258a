"""Videos to measure, from wherever a user has them, without flags: experiments/fvd.py's sources.

  SOURCE                               what is read
  a training work directory            samples of its generator (a GAN from noise), or of the
                                       autoencoder + GMM baseline when it holds gmm.npz
  a shard folder (DATA_DIR/SCENE)      its clips (TFRecord JPEG strips), in file order
  a folder of video files              the videos as prepare_data reads them: 25 fps, centre
                                       square scaled to `size`, one clip from the start of each
  a .npz with a `video` array          [N, T, H, W, 3], uint8 or float in [-1, 1]
  a built-in scene name (beach, ...)   data_pipeline/synthetic.py's clips at `size`

Every source gives uint8 videos [count, frames, H, W, 3] and a line saying where they came from.
A source that cannot give that many clips of that many frames is refused with a ValueError
naming it.
"""

import glob
import os

import numpy as np

from data_pipeline import clips, input_pipeline, shards, synthetic
from experiments import autoencoder_baseline
from vgan_io import media
from vgan_jax import sampling
from vgan_jax.metrics import i3d


def _truncate(videos: np.ndarray, count: int, frames: int, source: str) -> np.ndarray:
  """The first `count` videos' first `frames` frames; ValueError when there are fewer."""
  if len(videos) < count:
    raise ValueError(f'{source}: {len(videos)} clips; {count} were asked for.')
  if videos.shape[1] < frames:
    raise ValueError(f'{source}: its clips have {videos.shape[1]} frames; {frames} were asked '
                     'for.')
  return np.ascontiguousarray(videos[:count, :frames])


def generator_samples(workdir: str, count: int, seed: int) -> tuple[dict[str, np.ndarray], str]:
  """(raw outputs, where) of `count` samples (seed `seed`) of the model in `workdir`: the
  autoencoder + GMM baseline when it holds gmm.npz, else its GAN from noise."""
  if os.path.exists(os.path.join(workdir, autoencoder_baseline.GMM_FILE)):
    _, state, _, raw = autoencoder_baseline.decoded_samples(workdir, count, seed)
    kind = 'the autoencoder + GMM baseline'
  else:
    config, gan, state = sampling.load_model(workdir, None, conditional=False)
    _, raw = sampling.generated_samples(gan, state, config, count, seed)
    kind = f'the {config.model.generator} generator'
  return raw, f'{count} samples of {kind} in {workdir} at step {int(state.step)} (seed {seed})'


def _shard_clips(folder: str, count: int, frames: int) -> tuple[np.ndarray, str]:
  paths = input_pipeline.find_shards(os.path.dirname(os.path.abspath(folder)),
                                     os.path.basename(os.path.abspath(folder)))
  videos = []
  for path in paths:
    for record in shards.read_shard(path):
      videos.append(record['video'][:frames])  # only what is measured stays in memory
      if len(videos) == count:
        break
    if len(videos) == count:
      break
  if len({video.shape[1:] for video in videos}) > 1:
    raise ValueError(f'{folder}: its clips have different sizes; measure one size at a time.')
  frames = min((len(video) for video in videos), default=0)
  stacked = np.stack([video[:frames] for video in videos]) if videos else np.zeros((0, 0))
  return stacked, f'the first {len(videos)} clips of the {len(paths)} shards in {folder}'


def _video_files(folder: str, count: int, frames: int, size: int) -> tuple[np.ndarray, str]:
  paths = sorted(path for path in glob.glob(os.path.join(folder, '**', '*'), recursive=True)
                 if clips.is_video_path(path))
  options = clips.ClipOptions(frames=frames, size=size, stabilize=False)
  videos, skipped = [], []
  for path in paths:
    if len(videos) == count:
      break
    try:
      log = clips.VideoLog()
      read = []
      for frame in clips.read_frames(clips.probe(path, options), options, log):
        read.append(frame)
        if len(read) == frames:
          break
    except clips.VideoError as error:
      skipped.append(f'{path}: {error}')
      continue
    if len(read) < frames:
      skipped.append(f'{path}: {len(read)} frames at 25 fps, fewer than {frames}')
      continue
    videos.append(np.stack(read))
  note = f'; skipped {len(skipped)} ({skipped[0]})' if skipped else ''
  stacked = np.stack(videos) if videos else np.zeros((0, frames, size, size, 3), np.uint8)
  return stacked, (f'{len(videos)} video files in {folder}, their first {frames} frames at 25 fps, '
                   f'centre squares scaled to {size}x{size}{note}')


def _npz_videos(path: str) -> tuple[np.ndarray, str]:
  try:
    with np.load(path, allow_pickle=False) as arrays:
      if 'video' not in arrays.files:
        raise ValueError(f'{path}: no `video` array (it has {", ".join(arrays.files)}).')
      videos = arrays['video']
  except (OSError, EOFError) as error:
    raise ValueError(f'{path}: not a readable .npz ({error}).') from None
  if videos.ndim != 5 or videos.shape[-1] != 3:
    raise ValueError(f'{path}: `video` must be [N, T, H, W, 3]; got {list(videos.shape)}.')
  if videos.dtype != np.uint8:
    videos = media.to_uint8(videos)  # float in [-1, 1], rounded as stored clips are
  return videos, f'the `video` array of {path}'


def load_videos(source: str, count: int, frames: int, seed: int = 0,
                size: int = 64) -> tuple[np.ndarray, str]:
  """uint8 videos [count, frames, H, W, 3] from `source` (see the module docstring) and a line
  saying where they came from. ValueError (checkpoint.NoCheckpointError for a work directory
  without a checkpoint) names the source and what is wrong."""
  if frames < i3d.MIN_FRAMES:
    raise ValueError(f'{frames} frames: I3D needs at least {i3d.MIN_FRAMES} (with fewer its last '
                     'pooling is empty and FVD is NaN).')
  if count < 2:
    raise ValueError(f'{count} clips: a covariance needs at least 2 a side.')
  if source.endswith('.npz'):
    videos, where = _npz_videos(source)
  elif os.path.isdir(os.path.join(source, 'checkpoints')):
    raw, where = generator_samples(source, count, seed)
    videos = media.to_uint8(raw['video'])
  elif os.path.isdir(source) and input_pipeline.find_shards(
      os.path.dirname(os.path.abspath(source)), os.path.basename(os.path.abspath(source))):
    videos, where = _shard_clips(source, count, frames)
  elif os.path.isdir(source):
    videos, where = _video_files(source, count, frames, size)
    if not len(videos) and 'skipped' not in where:
      raise ValueError(f'{source}: no checkpoints, shards (*.tfrecord) or video files here.')
  elif source in synthetic.SCENES:
    videos = np.stack([synthetic.render_clip(source, i, frames, size) for i in range(count)])
    where = f'the built-in synthetic {source!r} scene (data_pipeline/synthetic.py)'
  elif not os.path.exists(source):
    raise ValueError(f'{source}: no such file, folder or built-in scene.')
  else:
    raise ValueError(f'{source}: not a work directory, shard folder, folder of videos or .npz.')
  return _truncate(videos, count, frames, source), where
