"""A generator's output for people to look at: its streams (video, foreground, background, mask)
as uint8 videos, and side by side as in the paper's Figure 3. The file writing itself is
`vgan_io.media`'s.
"""

import numpy as np

from vgan_io.media import to_uint8, video_grid
from vgan_jax.models import GeneratorOutput


def stream_videos(output: GeneratorOutput) -> dict[str, np.ndarray]:
  """The streams of a generator output as uint8 videos [N, T, H, W, C]: 'video', and for two
  streams also 'foreground', 'background' (repeated over time) and 'mask' (white = foreground)."""
  videos = {'video': to_uint8(output.video)}
  if output.mask is not None:
    frames = output.video.shape[1]
    videos['foreground'] = to_uint8(output.foreground)
    videos['background'] = np.repeat(to_uint8(output.background)[:, None], frames, axis=1)
    videos['mask'] = to_uint8(output.mask, 0.0, 1.0)
  return videos


STREAM_ORDER = ('background', 'foreground', 'mask', 'video')  # Figure 3, left to right


def streams_side_by_side(streams: dict[str, np.ndarray], index: int,
                         padding: int = 1) -> np.ndarray:
  """One sample of `stream_videos`' streams as one uint8 video [T, H + 2p, 4 (W + p) + p, 3]:
  background, foreground, mask and the final video, left to right (as the paper's Figure 3)."""
  clips = [np.repeat(streams[name][index], 3 // streams[name].shape[-1], axis=-1)
           for name in STREAM_ORDER]
  return video_grid(np.stack(clips), columns=len(clips), padding=padding)
