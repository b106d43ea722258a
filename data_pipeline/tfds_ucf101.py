"""UCF101 as TensorFlow Datasets prepared it: a second source for the evaluation (Section 3.3).

`evaluate --tfds_data_dir=DIR` reads the `ucf101` dataset that `tfds build ucf101` (TFDS's own
builder, tensorflow_datasets/video/ucf101.py) wrote into DIR, instead of the videos and split
lists of a UCF101 folder (data_pipeline/ucf101.py). Nothing is downloaded: only a prepared
dataset is read (never `download_and_prepare`), and a missing one is a ValueError naming DIR.

What TFDS holds, and how it maps onto the file-list reader:

* Splits: TFDS has one config per official split, `ucf101_1`, `ucf101_2`, `ucf101_3` (full
  resolution, 320x240) and `ucf101_1_256` (split 1, every frame scaled to 256x256 by ffmpeg,
  the 4:3 aspect not kept), each with the splits 'train' and 'test' of trainlist0S.txt and
  testlist0S.txt. Split 1 reads `ucf101_1`, or `ucf101_1_256` when only that is prepared (its
  squeezed frames are then scaled whole, not their centre square: slightly other inputs).
* Labels: TFDS's ClassLabel names (tensorflow_datasets/video/ucf101_labels.txt) are the 101
  class names of classInd.txt in its order (case-insensitively alphabetical: Hammering before
  HammerThrow), and its labels are 0-based: label = classInd index - 1, exactly
  `ucf101.read_split`'s labels. No mapping is needed; `class_names` returns TFDS's.
* Videos: every frame as TFDS decoded it (JPEG per frame; no frame rate is stored: UCF101 is
  recorded at 25 fps, the rate the file-list reader resamples to), the centre square scaled to
  the model's size with the file-list reader's filter (`media.square_crop`), the first
  `ucf101.MAX_FRAMES`, optionally stabilized the same way; then the same cache shard
  (`ucf101.write_cache`) and the same training windows and test windows.
* Identity and order: a TFDS example does not keep its video's file name (the builder uses it
  as the key, which TFDS hashes into the order of the records and drops), so each video is
  named by its `tfds_id` (file and record, e.g. 'ucf101-train.tfrecord-00003-of-00016__12') and
  listed in record order, read sequentially. The label fraction (`ucf101.label_fraction`, same
  seed) keeps the same number of videos per class as from the split lists; which videos, it
  draws from this order, so the members differ from the file-list reader's (the same draw on
  the same order gives the same members: tests/test_tfds.py).
"""

import hashlib
import json
import os
from typing import Iterator

import numpy as np
import tensorflow as tf

from data_pipeline import ucf101
from vgan_io import files, media

NAME = 'ucf101'
# The TFDS configs of each official split, in order of preference (full resolution first).
CONFIGS = {1: ('ucf101_1', 'ucf101_1_256'), 2: ('ucf101_2',), 3: ('ucf101_3',)}
SUBSETS = ('train', 'test')


def _tfds():
  """tensorflow_datasets, imported when first needed (an optional extra: `.[tfds]`)."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ValueError('Reading UCF101 from TensorFlow Datasets needs the package '
                     'tensorflow-datasets: pip install -e ".[tfds]".') from None
  return tfds


def prepared_builder(data_dir: str, split: int):
  """The TFDS builder of UCF101's `split` (1, 2, 3) prepared in `data_dir`.

  Tries the split's configs (`CONFIGS`) in order and returns the first whose data is there;
  ValueError naming the folder and the configs looked for when none is (or the folder does not
  exist). Never downloads or prepares anything.
  """
  if split not in CONFIGS:
    raise ValueError(f'UCF101 has splits {ucf101.SPLITS}; got {split}.')
  if not os.path.isdir(data_dir):
    raise ValueError(f'--tfds_data_dir={data_dir}: no such folder (a TensorFlow Datasets '
                     f'data_dir in which `tfds build {NAME}` has prepared UCF101).')
  tfds = _tfds()
  for config in CONFIGS[split]:
    builder = tfds.builder(f'{NAME}/{config}', data_dir=data_dir)
    try:
      builder.as_dataset(split=SUBSETS[0])  # builds the reader only; raises when no data
    except AssertionError:  # TFDS's "could not find data in ...": not prepared
      continue
    return builder
  names = ' or '.join(f'{NAME}/{config}' for config in CONFIGS[split])
  raise ValueError(
      f'No prepared {names} in {data_dir}: run `tfds build {NAME} --config={CONFIGS[split][0]} '
      f'--data_dir={data_dir}` there first (TFDS downloads the UCF101 archive and its split '
      'lists itself, about 7 GB, and decodes the videos with ffmpeg; this program never '
      'downloads), or give a UCF101 folder with --data_dir.')


def class_names(builder) -> list[str]:
  """The class names in label order: TFDS's ClassLabel names, classInd.txt's order."""
  return list(builder.info.features['label'].names)


def fit_frames(frames: np.ndarray, size: int, stabilized: bool = False) -> np.ndarray:
  """uint8 [T, H, W, 3] as decoded -> uint8 [T, size, size, 3]: each frame's centre square
  scaled as the file-list reader scales it (`media.square_crop`); with `stabilized`, the longest
  stabilized segment (`ucf101.longest_stable_segment`)."""
  video = np.stack([media.square_crop(frame, size) for frame in frames])
  return ucf101.longest_stable_segment(video) if stabilized else video


def _first_frames(encoded: tf.Tensor, max_frames: int) -> tf.Tensor:
  """The first `max_frames` of a video kept encoded (tf.string [T], one image each) -> uint8
  [min(T, max_frames), H, W, 3]: the frames after those are never decoded."""
  return tf.map_fn(lambda image: tf.io.decode_image(image, channels=3, expand_animations=False),
                   encoded[:max_frames], fn_output_signature=tf.uint8)


def decoded_videos(builder, subset: str, size: int, stabilized: bool = False,
                   max_frames: int = ucf101.MAX_FRAMES
                   ) -> Iterator[tuple[ucf101.Video, np.ndarray | str]]:
  """(video, uint8 frames [T, size, size, 3]) of each example of `subset` ('train', 'test'),
  in record order (files in order, read one after the other: the same order on every run), or
  (video, the reason it is skipped); `ucf101.Video.path` is the example's tfds_id."""
  tfds = _tfds()
  dataset = builder.as_dataset(
      split=subset, shuffle_files=False,
      decoders={'video': tfds.decode.SkipDecoding()},  # decoded below, only the frames kept
      read_config=tfds.ReadConfig(add_tfds_id=True, interleave_cycle_length=1))
  dataset = dataset.map(
      lambda example: (example['tfds_id'], example['label'],
                       _first_frames(example['video'], max_frames)),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  for tfds_id, label, frames in dataset.as_numpy_iterator():
    video = ucf101.Video(tfds_id.decode(), int(label))
    if len(frames) < 2:
      yield video, f'{len(frames)} frames: not a video'
      continue
    yield video, fit_frames(frames, size, stabilized)


def dataset_key(data_dir: str, builder, size: int, stabilized: bool) -> str:
  """12 hex digits of a hash of what a cache is made from: the data_dir (absolute), the dataset,
  config and version, the name, size and modification time of each file TFDS prepared, the
  frame size and stabilization (a rebuilt dataset gets a new cache)."""
  digest = hashlib.sha256(json.dumps([os.path.abspath(data_dir), builder.name,
                                      builder.builder_config.name, str(builder.version), size,
                                      stabilized]).encode())
  folder = os.fspath(builder.data_dir)
  if os.path.isdir(folder):
    for name in sorted(os.listdir(folder)):
      stat = os.stat(os.path.join(folder, name))
      digest.update(json.dumps([name, stat.st_size, stat.st_mtime_ns]).encode())
  return digest.hexdigest()[:12]


def cache_subset(builder, subset: str, cache_path: str, size: int,
                 stabilized: bool = False) -> tuple[list[ucf101.Video], dict]:
  """Decodes `subset` of `builder` into the cache shard at `cache_path` (once: an existing cache
  is reused) and returns its videos (in record order) and its index {'videos': count,
  'skipped': {tfds_id: reason}, 'entries': [[tfds_id, label], ...]}, also written beside it:
  the entries list the videos without reading the dataset again."""
  index_path = cache_path + '.json'
  if os.path.exists(cache_path) and os.path.exists(index_path):
    with open(index_path) as file:
      index = json.load(file)
  else:
    index, seen = ucf101.write_cache(cache_path,
                                     decoded_videos(builder, subset, size, stabilized))
    index['entries'] = [[video.path, video.label] for video in seen]
    files.write_json(index_path, index)
  return [ucf101.Video(path, label) for path, label in index['entries']], index


def cached_split(data_dir: str, split: int, cache_dir: str, size: int, stabilized: bool = False
                 ) -> tuple[list[str], list[ucf101.Video], list[ucf101.Video], str, str, dict]:
  """What evaluation.evaluate_split needs of a split, from TFDS's UCF101 in `data_dir`:
  (class names, training videos, test videos, training cache, test cache, skipped videos
  {tfds_id: reason}); the caches are the file-list reader's format, in `cache_dir`."""
  builder = prepared_builder(data_dir, split)
  suffix = '_stabilized' if stabilized else ''
  key = dataset_key(data_dir, builder, size, stabilized)
  caches, videos, skipped = [], [], {}
  for subset in SUBSETS:
    caches.append(os.path.join(cache_dir, f'tfds_{builder.builder_config.name}_{subset}_'
                                          f'{size}px{suffix}_{key}.tfrecord'))
    listed, index = cache_subset(builder, subset, caches[-1], size, stabilized)
    videos.append(listed)
    skipped.update(index['skipped'])
  return class_names(builder), videos[0], videos[1], caches[0], caches[1], skipped
