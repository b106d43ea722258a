"""What the notebooks (`notebooks/`) share: the runtime set-up, where their work goes (Google Drive
when it is mounted, so a restarted Colab runtime resumes), videos shown inline, and a run's
TensorBoard scalars as a plot. The notebooks' own cells call the library directly; only what
would otherwise be repeated in every notebook lives here.

  from experiments import notebook
  notebook.setup()
  workdir = notebook.work_directory('quickstart')
  notebook.show_videos({'sample 0': video}, fps=8)
"""

import os
from typing import Mapping, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before TensorFlow loads: no C++ banners

import numpy as np
from absl import logging

from experiments import common
from vgan_io import media

DRIVE_ROOT = os.path.join('/content', 'drive', 'MyDrive')  # where Colab mounts Google Drive
LOCAL_ROOT = os.path.join('runs', 'notebooks')


def setup() -> None:
  """The commands' runtime set-up (persistent compilation cache, quieter library logs), the
  library's progress log shown in the notebook, and mediapy's video encoding through the ffmpeg
  binary that the `imageio-ffmpeg` wheel ships (no system ffmpeg needed)."""
  import imageio_ffmpeg  # pylint: disable=g-import-not-at-top (notebook extra)
  import mediapy  # pylint: disable=g-import-not-at-top
  common.setup_runtime()
  logging.set_verbosity(logging.INFO)
  mediapy.set_ffmpeg(imageio_ffmpeg.get_ffmpeg_exe())


def work_directory(name: str, drive_root: str = DRIVE_ROOT, local_root: str = LOCAL_ROOT) -> str:
  """`drive_root/vgan_jax/NAME` when Google Drive is mounted there (work survives a restart of
  the runtime: rerunning the notebook resumes from its checkpoints), else `local_root/NAME`."""
  root = (os.path.join(drive_root, 'vgan_jax') if os.path.isdir(drive_root) else local_root)
  return os.path.join(root, name)


def viewable(video: np.ndarray, pixels: int = 128) -> np.ndarray:
  """A video [T, H, W, C] (uint8, or float in [-1, 1]; C 1 or 3) as uint8 RGB enlarged by whole
  pixels (nearest neighbour) to about `pixels` wide, so 32x32 frames are not a blur."""
  video = np.asarray(video)
  if video.ndim != 4 or video.shape[-1] not in (1, 3):
    raise ValueError(f'A video is [T, H, W, 1 or 3]; got shape {list(video.shape)}.')
  if video.dtype != np.uint8:
    video = media.to_uint8(video)
  if video.shape[-1] == 1:
    video = np.repeat(video, 3, axis=-1)
  return media.upscale(video, max(1, pixels // video.shape[2]))


def show_videos(videos: Mapping[str, np.ndarray], fps: float = 8.0, pixels: int = 128,
                columns: int | None = None) -> None:
  """Plays titled videos ({title: [T, H, W, C]}, see `viewable`) inline, looping (mediapy)."""
  import mediapy  # pylint: disable=g-import-not-at-top
  mediapy.show_videos({title: viewable(video, pixels) for title, video in videos.items()},
                      fps=fps, columns=columns)


def read_scalars(workdir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{tag: (steps, values)} of every scalar in the TensorBoard event files under `workdir`
  (the training loop's `train/...`, `eval/...`), steps ascending. ValueError when there are none."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top
  series: dict[str, dict[int, float]] = {}
  for folder, _, names in sorted(os.walk(workdir)):
    if not any(name.startswith('events.out.tfevents') for name in names):
      continue
    events = event_accumulator.EventAccumulator(folder, size_guidance={'tensors': 0})
    events.Reload()
    for tag in events.Tags()['tensors']:
      for event in events.Tensors(tag):
        value = tensor_util.make_ndarray(event.tensor_proto)
        if value.ndim == 0 and value.dtype.kind == 'f':  # scalars, not images or text
          series.setdefault(tag, {})[event.step] = float(value)
  if not series:
    raise ValueError(f'{workdir}: no TensorBoard scalars there (has it trained?).')
  return {tag: (np.array(sorted(points)), np.array([points[s] for s in sorted(points)]))
          for tag, points in sorted(series.items())}


def plot_scalars(workdir: str, tags: Sequence[str]):
  """A matplotlib figure of the scalars `tags` of `read_scalars(workdir)` against the step, one
  panel each. ValueError naming a tag that is not there."""
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  scalars = read_scalars(workdir)
  missing = [tag for tag in tags if tag not in scalars]
  if missing:
    raise ValueError(f'{workdir}: no scalars {", ".join(missing)} (it has '
                     f'{", ".join(scalars)}).')
  figure, axes = pyplot.subplots(1, len(tags), figsize=(4 * len(tags), 3), squeeze=False)
  for axis, tag in zip(axes[0], tags):
    axis.plot(*scalars[tag], marker='.')
    axis.set(title=tag, xlabel='step')
  figure.tight_layout()
  return figure
