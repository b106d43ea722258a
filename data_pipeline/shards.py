"""Clip shards on disk: TFRecord files of `tf.train.Example`s, one clip each, and their manifest.

A clip is stored as the authors stored theirs: ONE JPEG of its frames stacked vertically
([T * S, S, 3], `CLIP_JPEG`), so their released strips convert without re-encoding. Next to it:
scene, source file, first frame, frame rate, label (-1 when none) and the stabilization figures.

Every file appears whole or not at all: it is written under a temporary name starting with '.'
(which the shard globs do not match) and renamed when complete, so a killed run never leaves a
shard that looks finished. `manifest.json` in each output folder lists the shards, their clip
counts and every input that was skipped, with its reason; a rerun reads it to skip what is done.
Part I of K of a run split across machines writes `manifest.part-I-of-K.json` (`PART_MANIFEST`)
instead, until a merge combines the parts into `manifest.json` (`prepare.merge_parts`).

For tests only: with the environment variable `VGAN_JAX_TEST_PAUSE_AFTER_PARTIAL` set to a file
path, `write_shard` stops after the first clip of each shard (written, under its temporary name),
creates that file and waits while it exists, so a test can kill the writer exactly there, or
delete the file to let it go on. Unset (always, outside tests), nothing changes.
"""

import errno
import json
import os
import re
import time
from typing import Iterable, Iterator

import cv2
import numpy as np
import tensorflow as tf

from vgan_io import files
from vgan_io.files import atomic_path

CLIP_JPEG = 'clip/jpeg'  # bytes: frames [T, S, S, 3] stacked vertically into one [T*S, S, 3] JPEG
SHARD_SUFFIX = '.tfrecord'
MANIFEST = 'manifest.json'
# Part I of K of a prepare run split across machines writes its own manifest until they are merged.
PART_MANIFEST = 'manifest.part-{index:05d}-of-{count:05d}.json'
_PART_MANIFEST = re.compile(r'manifest\.part-(\d+)-of-(\d+)\.json')
MANIFEST_VERSION = 1
_STATS_PREFIX = 'clip/stabilization/'
PAUSE_AFTER_PARTIAL = 'VGAN_JAX_TEST_PAUSE_AFTER_PARTIAL'  # a test hook: see the module docstring

# Everything a shard's Example holds besides the stabilization figures; for `parse_example`.
FEATURES = {
    CLIP_JPEG: tf.io.FixedLenFeature([], tf.string),
    'clip/frames': tf.io.FixedLenFeature([], tf.int64),
    'clip/size': tf.io.FixedLenFeature([], tf.int64),
    'clip/scene': tf.io.FixedLenFeature([], tf.string, default_value=b''),
    'clip/source': tf.io.FixedLenFeature([], tf.string, default_value=b''),
    'clip/start_frame': tf.io.FixedLenFeature([], tf.int64, default_value=0),
    'clip/fps': tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
    'clip/label': tf.io.FixedLenFeature([], tf.int64, default_value=-1),
}


def encode_strip(frames: np.ndarray, quality: int = 95) -> bytes:
  """uint8 RGB frames [T, S, S, 3] -> one JPEG of them stacked vertically."""
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1] != frames.shape[2]:
    raise ValueError(f'A clip must be uint8 [T, S, S, 3]; got {frames.dtype} {frames.shape}.')
  strip = cv2.cvtColor(frames.reshape(-1, *frames.shape[2:]), cv2.COLOR_RGB2BGR)
  # 4:4:4: full-resolution colour (OpenCV's default halves it), which small frames need.
  ok, jpeg = cv2.imencode('.jpg', strip, [cv2.IMWRITE_JPEG_QUALITY, quality,
                                          cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                          cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
  if not ok:
    raise ValueError(f'OpenCV could not encode a {frames.shape} clip as JPEG.')
  return jpeg.tobytes()


def decode_strip(jpeg: bytes) -> np.ndarray:
  """A vertical JPEG strip -> uint8 RGB frames [T, S, S, 3]; ValueError when it is not one."""
  image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
  if image is None:
    raise ValueError('not a decodable JPEG')
  height, width = image.shape[:2]
  if height % width:
    raise ValueError(f'{width}x{height} is not a vertical strip of square frames (the height '
                     'must be a multiple of the width)')
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).reshape(height // width, width, width, 3)


def _bytes(value: bytes) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _float(value: float) -> tf.train.Feature:
  return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))


def clip_example(jpeg: bytes, *, frames: int, size: int, scene: str = '', source: str = '',
                 start_frame: int = 0, fps: float = 0.0, label: int = -1,
                 stats: dict | None = None) -> bytes:
  """One clip's serialized Example; `stats` (name -> number) go under clip/stabilization/."""
  feature = {
      CLIP_JPEG: _bytes(jpeg), 'clip/frames': _int(frames), 'clip/size': _int(size),
      'clip/scene': _bytes(scene.encode()), 'clip/source': _bytes(source.encode()),
      'clip/start_frame': _int(start_frame), 'clip/fps': _float(fps), 'clip/label': _int(label),
  }
  for name, value in (stats or {}).items():
    feature[_STATS_PREFIX + name] = _float(value)
  # deterministic: map fields in a fixed order, so the same clip always gives the same bytes.
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
      deterministic=True)


def parse_example(serialized: bytes) -> dict:
  """A serialized clip Example -> {'video': uint8 [T, S, S, 3], 'scene': str, ..., 'stats': {}}."""
  example = tf.train.Example.FromString(serialized)
  parsed = tf.io.parse_single_example(serialized, FEATURES)
  record = {name.split('/', 1)[1]: value.numpy() for name, value in parsed.items()
            if name != CLIP_JPEG}
  for name in ('scene', 'source'):
    record[name] = record[name].decode()
  record['video'] = decode_strip(parsed[CLIP_JPEG].numpy())
  record['stats'] = {name[len(_STATS_PREFIX):]: feature.float_list.value[0]
                     for name, feature in example.features.feature.items()
                     if name.startswith(_STATS_PREFIX)}
  return record


def read_shard(path: str) -> Iterator[dict]:
  """The parsed clips of one shard, in order (for inspection and tests; training uses tf.data)."""
  for record in tf.data.TFRecordDataset(path):
    yield parse_example(record.numpy())


def write_shard(path: str, examples: Iterable[bytes]) -> int:
  """Writes serialized Examples to a TFRecord at `path`, atomically; returns how many.

  With none, no file is written (an empty shard would only be noise).
  """
  count = 0
  pause = os.environ.get(PAUSE_AFTER_PARTIAL)
  try:
    with atomic_path(path, keep_empty=False, keep_extension=False) as temporary:
      with tf.io.TFRecordWriter(temporary) as writer:
        for example in examples:
          writer.write(example)
          count += 1
          if pause and count == 1:
            writer.flush()
            _pause_for_test(pause)
  except tf.errors.OpError as error:  # TensorFlow's writer raises its own kinds, not OSError
    if files.is_disk_full(error):
      raise OSError(errno.ENOSPC, files.NO_SPACE, path) from None
    raise OSError(f'{path}: cannot be written ({error.message})') from None
  return count


def _pause_for_test(marker: str) -> None:
  """The PAUSE_AFTER_PARTIAL hook: creates `marker`, then waits until it is deleted."""
  with open(marker, 'w') as file:
    file.write(f'{os.getpid()}\n')
  while os.path.exists(marker):
    time.sleep(0.01)


def new_manifest(scene: str, options: dict) -> dict:
  """An empty manifest: `inputs` maps each input to what became of it."""
  return {'version': MANIFEST_VERSION, 'scene': scene, 'options': options, 'inputs': {},
          'shards': {}, 'clips': 0}


def part_manifests(folder: str) -> dict[str, tuple[int, int]]:
  """The part manifests in `folder` (of split prepare runs not merged yet): {file name: (part
  index, number of parts)}, sorted by number of parts, then index."""
  if not os.path.isdir(folder):
    return {}
  found = {name: (int(match[1]), int(match[2])) for name in os.listdir(folder)
           if (match := _PART_MANIFEST.fullmatch(name))}
  return dict(sorted(found.items(), key=lambda item: item[1][::-1]))


def load_manifest(folder: str, scene: str, options: dict, name: str = MANIFEST) -> dict:
  """The folder's manifest (or its part manifest `name`), or a new one; ValueError if it was made
  with other options."""
  path = os.path.join(folder, name)
  if not os.path.exists(path):
    return new_manifest(scene, options)
  try:
    with open(path) as file:
      manifest = json.load(file)
    stored = manifest['options']
  except (ValueError, KeyError, TypeError) as error:
    raise ValueError(f'{path} is not a manifest this project wrote ({error}); move it away or '
                     'use another --output.') from None
  if stored != json.loads(json.dumps(options)):
    differences = option_differences(stored, options)
    if name != MANIFEST:
      raise ValueError(f'{path}, a part of a split run, was prepared with other options '
                       f'({differences}); give every part of a split the same options, or remove '
                       'that part.')
    raise ValueError(f'{folder} was prepared with other options ({differences}); use another '
                     'output folder, or the same options to add to it.')
  return manifest


def option_differences(stored: dict, options: dict, labels: tuple[str, str] = ('manifest', 'now')
                       ) -> str:
  """'frames: manifest 16, now 8, ...': the options (as JSON has them) in which two differ."""
  options = json.loads(json.dumps(options))
  return ', '.join(f'{key}: {labels[0]} {stored.get(key)!r}, {labels[1]} {options.get(key)!r}'
                   for key in sorted(set(stored) | set(options))
                   if stored.get(key) != options.get(key))


def record_input(manifest: dict, source: str, entry: dict) -> None:
  """Records what became of one input; a shard it produced is listed with its clip count."""
  previous = manifest['inputs'].get(source, {})
  if previous.get('shard'):
    manifest['shards'].pop(previous['shard'], None)
  manifest['inputs'][source] = entry
  if entry.get('shard'):
    manifest['shards'][entry['shard']] = entry['clips']
  manifest['clips'] = sum(manifest['shards'].values())
