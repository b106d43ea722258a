"""Running a trained generator (the GAN's, the future predictor's, the autoencoder's decoder) for
people to look at: batched generation, latent walks, and one writer of samples as MP4 and GIF
(with their streams side by side) and .npz; the work of the generate, future and baseline
commands, without their flags.
"""

import functools
import os
from typing import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from vgan_io import files, media
from vgan_jax import checkpoint, train_step, video_io
from vgan_jax.models import GeneratorOutput


def interpolate_latents(start: jax.Array, end: jax.Array, steps: int) -> jax.Array:
  """`steps` codes [steps, D] from `start` to `end` along the great circle (slerp): Gaussian codes
  live near a sphere, and a straight line between two would pass through its less likely inside."""
  fractions = jnp.linspace(0.0, 1.0, steps)[:, None]
  cosine = jnp.dot(start, end) / (jnp.linalg.norm(start) * jnp.linalg.norm(end))
  angle = jnp.arccos(jnp.clip(cosine, -1.0, 1.0))
  if float(angle) < 1e-6:
    return start + fractions * (end - start)
  return (jnp.sin((1 - fractions) * angle) * start + jnp.sin(fractions * angle) * end) / (
      jnp.sin(angle))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _apply(model_fn, model, state, inputs):
  """`model_fn(model, state, inputs)` jitted once per (function, network bundle, shapes): a
  training hook that samples every N steps compiles once, not at each call."""
  return model_fn(model, state, inputs)


def stream_batches(model_fn, model, state, inputs: jax.Array,
                   batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """`model_fn(model, state, inputs) -> GeneratorOutput` (train_step.generate with a GAN,
  train_step.decode with an autoencoder) run `batch_size` inputs at a time, jitted, yielding each
  batch's raw outputs as float32 numpy arrays (the fields of `generate_streams`): memory stays one
  batch's, whatever the number of inputs."""
  for start in range(0, len(inputs), batch_size):
    output = jax.device_get(_apply(model_fn, model, state, inputs[start:start + batch_size]))
    yield {name: value for name, value in output._asdict().items() if value is not None}


def generate_streams(model_fn, model, state, inputs: jax.Array,
                     batch_size: int) -> dict[str, np.ndarray]:
  """`stream_batches` concatenated: video [N, T, S, S, C], and for two streams foreground,
  background [N, S, S, C] and mask [N, T, S, S, 1]. Inputs: latents [N, D], or images
  [N, S, S, C] for future prediction."""
  return concatenate_batches(stream_batches(model_fn, model, state, inputs, batch_size))


def concatenate_batches(batches: Iterable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """Batches of raw outputs (`stream_batches`) as one dict of arrays."""
  parts = list(batches)
  return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def as_uint8_streams(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Raw float arrays -> the uint8 streams of `video_io.stream_videos`."""
  return video_io.stream_videos(GeneratorOutput(**raw))


def write_each(videos: dict[str, np.ndarray], stems: list[str], fps: float, scale: int,
               streams: bool) -> list[str]:
  """STEM.mp4/.gif of each video (enlarged `scale` times) and, with `streams` (two-stream
  generators), STEM_streams.mp4/.gif with its streams side by side; returns the paths."""
  paths = []
  for index, stem in enumerate(stems):
    paths += media.write_mp4_and_gif(stem, media.upscale(videos['video'][index], scale), fps)
    if streams and 'mask' in videos:
      side_by_side = video_io.streams_side_by_side(videos, index)
      paths += media.write_mp4_and_gif(stem + '_streams', media.upscale(side_by_side, scale),
                                       fps)
  return paths


def write_samples(output_dir: str, raw: dict[str, np.ndarray], arrays: dict[str, np.ndarray],
                  fps: float, scale: int, streams: bool) -> list[str]:
  """Generated samples as files in `output_dir`: sample_NNN.mp4/.gif (and with `streams`
  sample_NNN_streams.mp4/.gif), grid.mp4/.gif of all of them, and samples.npz with `arrays`
  (the latent codes, ...) and the raw float outputs. Returns the paths, samples.npz last."""
  videos = as_uint8_streams(raw)
  stems = [os.path.join(output_dir, f'sample_{i:03d}') for i in range(len(raw['video']))]
  paths = write_each(videos, stems, fps, scale, streams)
  paths += media.write_mp4_and_gif(os.path.join(output_dir, 'grid'),
                                   media.video_grid(videos['video'], scale=scale), fps)
  paths.append(os.path.join(output_dir, 'samples.npz'))
  files.write_npz(paths[-1], dict(arrays, **raw))
  return paths


class WrongModelKindError(ValueError):
  """A work directory that holds a future predictor where a GAN from noise was asked for, or the
  reverse."""


def load_model(workdir: str, step: int | None, conditional: bool):
  """(config, gan, state) from a work directory: checkpoint.NoCheckpointError without a
  checkpoint, WrongModelKindError for the other kind of model."""
  config, gan, state = checkpoint.restore_for_inference(workdir, step)
  if gan.conditional and not conditional:
    raise WrongModelKindError(f'{workdir} holds a future-prediction model, which starts from an '
                              'image, not a GAN that starts from noise.')
  if conditional and not gan.conditional:
    raise WrongModelKindError(f'{workdir} holds a GAN that starts from noise, not a '
                              'future-prediction model.')
  return config, gan, state


def default_scale(size: int) -> int:
  """How many times to enlarge frames of `size` pixels for viewing: to about 128."""
  return max(1, 128 // size)


def seeded_latents(config, num_samples: int, seed: int) -> jax.Array:
  """The latent codes z ~ N(0, I) [N, D] of `num_samples` samples: the same seed and N give the
  same codes."""
  latent_key = jax.random.split(jax.random.PRNGKey(seed))[0]
  return train_step.sample_latents(latent_key, num_samples, config.model.latent_dim)


def generated_samples(gan, state, config, num_samples: int, seed: int,
                      batch_size: int = 16) -> tuple[jax.Array, dict[str, np.ndarray]]:
  """(latents [N, D], raw outputs) of `num_samples` samples of a GAN from noise; the same seed
  gives the same latents (those `write_generated` writes)."""
  latents = seeded_latents(config, num_samples, seed)
  return latents, generate_streams(train_step.generate, gan, state, latents, batch_size)


def generated_batches(gan, state, config, num_samples: int, seed: int,
                      batch_size: int = 16) -> Iterator[dict[str, np.ndarray]]:
  """`generated_samples`' raw outputs, one batch at a time (bounded memory)."""
  return stream_batches(train_step.generate, gan, state,
                        seeded_latents(config, num_samples, seed), batch_size)


def write_generated(workdir: str, output_dir: str | None = None, num_samples: int = 16,
                    seed: int = 0, streams: bool = False, interpolate: int = 0,
                    fps: float = 25.0, upscale: int = 0, batch_size: int = 16,
                    step: int | None = None) -> list[str]:
  """Samples of the GAN in `workdir` as files (see experiments/generate.py); returns the paths.

  The same `seed` gives the same latent codes, hence the same videos.
  """
  if num_samples < 1 or interpolate < 0 or interpolate == 1 or batch_size < 1 or fps <= 0:
    raise ValueError('num_samples and batch_size must be at least 1, interpolate 0 or at '
                     'least 2, fps above 0.')
  config, gan, state = load_model(workdir, step, conditional=False)
  output_dir = output_dir or os.path.join(workdir, 'generated')
  scale = upscale or default_scale(config.model.size)
  latents, raw = generated_samples(gan, state, config, num_samples, seed, batch_size)
  walk_key = jax.random.split(jax.random.PRNGKey(seed))[1]
  arrays, walk_paths = dict(latents=np.asarray(latents)), []
  if interpolate:
    ends = train_step.sample_latents(walk_key, 2, config.model.latent_dim)
    walk = interpolate_latents(ends[0], ends[1], interpolate)
    walk_raw = generate_streams(train_step.generate, gan, state, walk, batch_size)
    walk_grid = media.video_grid(as_uint8_streams(walk_raw)['video'], columns=interpolate,
                                 scale=scale)
    walk_paths = media.write_mp4_and_gif(os.path.join(output_dir, 'interpolation'), walk_grid,
                                         fps)
    arrays.update(interpolation_latents=np.asarray(walk), interpolation_video=walk_raw['video'])
  paths = write_samples(output_dir, raw, arrays, fps, scale, streams)
  paths[-1:-1] = walk_paths  # samples.npz stays last
  logging.info('Step %d of %s: wrote %d samples to %s.', int(state.step), workdir, num_samples,
               output_dir)
  return paths


def unique_stems(paths: list[str]) -> list[str]:
  """File names without folder and extension, made unique by _2, _3, ... where they repeat
  (a/x.png and b/x.jpg -> x, x_2), so outputs named after them never overwrite each other."""
  stems, taken = [], set()
  for path in paths:
    base = stem = os.path.splitext(os.path.basename(path))[0]
    count = 1
    while stem in taken:
      count += 1
      stem = f'{base}_{count}'
    taken.add(stem)
    stems.append(stem)
  return stems


def predict_future(workdir: str, images: list[str], output_dir: str | None = None,
                   streams: bool = True, fps: float = 25.0, upscale: int = 0,
                   step: int | None = None) -> list[str]:
  """The predicted video of each image file, as files (see experiments/future.py); returns the
  paths. ValueError names an image that cannot be read."""
  if not images:
    raise ValueError('predict_future: no images given.')
  config, gan, state = load_model(workdir, step, conditional=True)
  size = config.model.size
  loaded = []
  for path in images:
    image, note = media.load_image(path, size)
    if note:
      logging.info('%s: %s.', path, note)
    loaded.append(image)
  raw = generate_streams(train_step.generate, gan, state, np.stack(loaded), batch_size=16)
  output_dir = output_dir or os.path.join(workdir, 'predictions')
  stems = [os.path.join(output_dir, stem) for stem in unique_stems(images)]
  paths = write_each(as_uint8_streams(raw), stems, fps, upscale or default_scale(size), streams)
  paths.append(os.path.join(output_dir, 'predictions.npz'))
  files.write_npz(paths[-1], dict(images=np.stack(loaded), sources=np.array(images), **raw))
  return paths
