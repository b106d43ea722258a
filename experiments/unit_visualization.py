"""Figure 6 of the paper without flags: the image regions that most activate hidden units of a
future predictor's image encoder; experiments/visualize_units.py's work (see there).
"""

import os
from typing import Any, Sequence

import cv2
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from vgan_io import files, media
from vgan_jax import models, sampling, train_step

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')
INDEX = 'units.json'
GREY = 128  # fills the parts of a receptive field that lie outside the image
VIEW_SIZE = 64  # crops are enlarged (nearest neighbour) to at least this many pixels
GAP = 2  # white pixels between and around the crops of a unit's PNG
BATCH_SIZE = 64  # images per encoder call (padded, so there is one compile)

def find_images(spec: str) -> list[str]:
  """The image files of `spec`: a folder (its image files, sorted; not recursive) or a comma list
  of files and folders. Raises ValueError naming a missing path or a folder without images."""
  items = [item.strip() for item in (spec or '').split(',') if item.strip()]
  if not items:
    raise ValueError('--images: give a folder of images or a comma list of image files.')
  paths = []
  for item in items:
    if os.path.isdir(item):
      found = sorted(os.path.join(item, name) for name in os.listdir(item)
                     if name.lower().endswith(IMAGE_EXTENSIONS)
                     and os.path.isfile(os.path.join(item, name)))
      if not found:
        raise ValueError(f'{item}: no images ({", ".join(IMAGE_EXTENSIONS)}) in this folder.')
      paths += found
    elif os.path.isfile(item):
      paths.append(item)
    else:
      raise ValueError(f'{item}: no such file or folder.')
  return paths


def load_images(paths: Sequence[str], size: int) -> np.ndarray:
  """uint8 RGB [N, size, size, 3] of image files (centre-cropped and scaled); ValueError names a
  file that is not an image."""
  images, changed = [], []
  for path in paths:
    image, note = media.load_image(path, size)
    images.append(image)
    if note:
      changed.append(f'{path}: {note}')
  if changed:  # one line, not one per image: folders can hold thousands
    logging.info('%d of %d images converted, e.g. %s.', len(changed), len(paths), changed[0])
  return np.stack(images)


def encoder_variables(state: Any) -> dict:
  """The image encoder's variables within a future-prediction train state."""
  return {'params': state.generator_params['encoder'],
          # A depth-1 encoder has no BatchNorm, hence no statistics.
          'batch_stats': state.generator_batch_stats.get('encoder', {})}


def encoder_activations(encoder: Any, variables: dict, images: jax.Array,
                        layer: int) -> jax.Array:
  """images [N, S, S, C] (uint8, or float in [-1, 1]) -> the output of `encoder`'s conv layer
  `layer` after its BatchNorm (inference mode) and LeakyReLU: [N, S / 2**(layer+1), ..., C_l]."""
  return encoder.apply(variables, train_step.normalize_video(jnp.asarray(images)), train=False,
                       output_layer=layer)


def unit_activations(encoder: Any, variables: dict, images: np.ndarray, layer: int,
                     units: Sequence[int], batch_size: int = BATCH_SIZE) -> np.ndarray:
  """`encoder_activations` of `units` only, float32 [N, h, w, len(units)], `batch_size` images at
  a time (the last batch padded, so there is one compile)."""
  batch_size = min(batch_size, len(images))
  # The variables are an argument, not a closure: as constants they would be compiled into the
  # program (tens of MB for the paper's encoder). XLA drops the layers after `layer`.
  compute = jax.jit(lambda variables, batch: encoder_activations(
      encoder, variables, batch, layer)[..., jnp.asarray(units)])
  parts = []
  for begin in range(0, len(images), batch_size):
    batch = images[begin:begin + batch_size]
    padded = np.concatenate([batch, np.zeros((batch_size - len(batch),) + batch.shape[1:],
                                              batch.dtype)])
    parts.append(np.asarray(compute(variables, padded))[:len(batch)])
  return np.concatenate(parts)


def top_activations(activations: np.ndarray, k: int) -> list[tuple[int, int, int, float]]:
  """(image index, row, column, value) of the `k` largest values of [N, h, w], largest first
  (ties: the earlier image, then the earlier position)."""
  flat = np.asarray(activations, np.float32).reshape(-1)
  order = np.argsort(-flat, kind='stable')[:k]
  indices = np.unravel_index(order, activations.shape)
  return [(int(n), int(row), int(column), float(flat[i]))
          for n, row, column, i in zip(*indices, order)]


def crop_region(image: np.ndarray, top: int, left: int, size: int, fill: int = GREY) -> np.ndarray:
  """The [size, size, C] square of `image` [H, W, C] at (top, left); what lies outside the image
  is `fill`, so every crop of a layer has the same size."""
  height, width = image.shape[:2]
  crop = np.full((size, size) + image.shape[2:], fill, image.dtype)
  rows = slice(max(top, 0), min(top + size, height))
  columns = slice(max(left, 0), min(left + size, width))
  if rows.start < rows.stop and columns.start < columns.stop:
    crop[rows.start - top:rows.stop - top, columns.start - left:columns.stop - left] = \
        image[rows, columns]
  return crop


def view_scale(size: int, target: int = VIEW_SIZE) -> int:
  """The whole factor that enlarges `size` pixels to at least `target` (at least 1)."""
  return max(1, -(-target // size))


def tile_crops(crops: Sequence[np.ndarray], columns: int = 0, scale: int = 1,
               gap: int = GAP) -> np.ndarray:
  """uint8 crops [size, size, 3] -> one uint8 image, `columns` per row (0: one row), each
  enlarged `scale` times, with `gap` white pixels between and around them."""
  stacked = np.stack(crops)[:, None]  # as one-frame videos for video_grid
  return media.video_grid(stacked, columns=columns or len(crops), padding=gap,
                             scale=scale)[0]


def load_encoder(workdir: str, step: int | None = None) -> tuple[Any, Any, dict, int]:
  """(config, encoder module, encoder variables, step) of the future-prediction model in
  `workdir`. FileNotFoundError without a checkpoint, ValueError for a GAN from noise."""
  config, gan, state = sampling.load_model(workdir, step, conditional=True)
  return config, gan.generator.encoder, encoder_variables(state), int(state.step)


def choose_layer(layer: int | None, depth: int) -> int:
  """`layer`, or the last of `depth` when None; ValueError when out of range."""
  if layer is None:
    return depth - 1
  if not 0 <= layer < depth:
    raise ValueError(f'--layer={layer}: the encoder has conv layers 0 to {depth - 1}.')
  return layer


def choose_units(units: Sequence[str | int], channels: int, num_units: int) -> list[int]:
  """Channel indices from `units` (strings or ints), or the first `num_units`; ValueError names
  an index that is not a whole number in [0, channels)."""
  if not units:
    if num_units < 1:
      raise ValueError(f'--num_units={num_units}: must be at least 1.')
    return list(range(min(num_units, channels)))
  chosen = []
  for unit in units:
    try:
      index = int(unit)
    except ValueError:
      raise ValueError(f'--units: {unit!r} is not a whole number.') from None
    if not 0 <= index < channels:
      raise ValueError(f'--units: unit {index} is out of range: the layer has units 0 to '
                       f'{channels - 1}.')
    chosen.append(index)
  return chosen


def unit_entries(top: Sequence[tuple[int, int, int, float]], paths: Sequence[str],
                 layer: int) -> list[dict]:
  """The index's records of one unit's strongest activations."""
  entries = []
  for image, row, column, value in top:
    crop_top, crop_left, size = models.receptive_field(layer, (row, column))
    entries.append({'image': paths[image], 'position': [row, column],
                    'crop': {'top': crop_top, 'left': crop_left, 'size': size},
                    'activation': value})
  return entries


def write_png(path: str, image: np.ndarray) -> None:
  """uint8 RGB [H, W, 3] as a PNG at `path`, atomically."""
  with files.atomic_path(path) as temporary:
    if not cv2.imwrite(temporary, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
      raise OSError(f'{path}: OpenCV could not write the PNG.')


def visualize_units(workdir: str, images: str, layer: int | None = None,
                    units: Sequence[str | int] = (), num_units: int = 16, top_k: int = 8,
                    output_dir: str | None = None, step: int | None = None,
                    columns: int = 0) -> list[str]:
  """Writes a PNG per unit and units.json (see the module docstring); returns their paths."""
  if top_k < 1 or columns < 0:
    raise ValueError(f'--top_k={top_k} must be at least 1 and --columns={columns} not negative.')
  paths = find_images(images)  # before the checkpoint: a wrong path should fail fast
  config, encoder, variables, step = load_encoder(workdir, step)
  layer = choose_layer(layer, encoder.depth)
  units = choose_units(units, encoder.width * 2 ** layer, num_units)
  pixels = load_images(paths, config.model.size)
  activations = unit_activations(encoder, variables, pixels, layer, units)
  size = models.receptive_field(layer, (0, 0))[2]
  output_dir = output_dir or os.path.join(workdir, 'units')
  index = {'workdir': os.path.abspath(workdir), 'step': step, 'layer': layer,
           'receptive_field': size, 'image_size': config.model.size, 'num_images': len(paths),
           'units': []}
  written = []
  for i, unit in enumerate(units):
    top = top_activations(activations[..., i], top_k)
    entries = unit_entries(top, paths, layer)
    crops = [crop_region(pixels[n], *models.receptive_field(layer, (row, column)))
             for n, row, column, _ in top]
    written.append(os.path.join(output_dir, f'unit_{unit:03d}.png'))
    write_png(written[-1], tile_crops(crops, columns, view_scale(size)))
    index['units'].append({'unit': unit, 'png': os.path.basename(written[-1]), 'top': entries})
  written.append(os.path.join(output_dir, INDEX))
  files.write_json(written[-1], index)
  logging.info('Step %d, layer %d: the top %d activations of %d units over %d images, in %s.',
               step, layer, top_k, len(units), len(paths), output_dir)
  return written
