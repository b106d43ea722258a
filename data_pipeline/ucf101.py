"""UCF101 for action recognition (Section 3.3): the standard layout, read from a local path.

  DATA_DIR/UCF-101/<Class>/v_<Class>_gXX_cYY.avi
  DATA_DIR/ucfTrainTestlist/classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt

Videos are decoded once (OpenCV, 25 fps, centre square scaled to the model's size, optionally
stabilized as prepare_data does) into a cache of shards (`shards.py`'s format: one Example per
video, all its frames as one JPEG strip, with its label). Training reads a random `frames`-long
window of each video per epoch; testing averages the predictions of `windows` evenly spaced
windows per video. Unreadable videos are skipped, counted and listed.

`write_synthetic_ucf` writes a tiny dataset in the same layout (squares moving left, right, up,
down...) for tests and for the small-scale replication in experiments/.
"""

import collections
import dataclasses
import hashlib
import json
import os
from typing import Iterable

import cv2
import numpy as np
import tensorflow as tf
from absl import logging

from data_pipeline import clips, input_pipeline, shards, stabilize
from vgan_io import files, media

VIDEOS = 'UCF-101'
LISTS = 'ucfTrainTestlist'
CLASS_INDEX = 'classInd.txt'
SPLITS = (1, 2, 3)
MAX_FRAMES = 300  # 12 s at 25 fps: longer videos keep their first 12 s (UCF101's mean is 7 s)


@dataclasses.dataclass(frozen=True)
class Video:
  path: str  # relative to DATA_DIR/UCF-101, as the split lists write it
  label: int  # 0-based, classInd order


def read_class_index(data_dir: str) -> list[str]:
  """Class names in label order (classInd.txt numbers them from 1)."""
  path = os.path.join(data_dir, LISTS, CLASS_INDEX)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path}: missing; --data_dir must hold {LISTS}/{CLASS_INDEX} (and '
                            f'{VIDEOS}/), as UCF101 ships them.')
  names = {}
  with open(path, encoding='utf-8-sig') as file:  # -sig: lists saved by Windows tools carry a BOM
    for number, line in enumerate(file, 1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) != 2 or not fields[0].isdigit():
        raise ValueError(f'{path}:{number}: expected "INDEX ClassName", got {line.strip()!r}.')
      names[int(fields[0])] = fields[1]
  if sorted(names) != list(range(1, len(names) + 1)):
    raise ValueError(f'{path}: class indices must run 1..{len(names)}.')
  return [names[i] for i in range(1, len(names) + 1)]


def read_split(data_dir: str, split: int, subset: str) -> list[Video]:
  """The videos of `subset` ('train' or 'test') of split 1, 2 or 3, with 0-based labels.

  Raises FileNotFoundError for a missing list file and ValueError for a class folder that
  classInd.txt does not name (or a label that disagrees with it), naming file and line.
  """
  if split not in SPLITS or subset not in ('train', 'test'):
    raise ValueError(f'UCF101 has splits {SPLITS} of train and test; got {split}, {subset!r}.')
  classes = {name: label for label, name in enumerate(read_class_index(data_dir))}
  path = os.path.join(data_dir, LISTS, f'{subset}list0{split}.txt')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path}: missing split file (UCF101 ships trainlist01-03.txt and '
                            f'testlist01-03.txt in {LISTS}/).')
  videos = []
  with open(path, encoding='utf-8-sig') as file:
    for number, line in enumerate(file, 1):
      fields = line.split()
      if not fields:
        continue
      class_name = fields[0].replace('\\', '/').split('/')[0]
      if class_name not in classes:
        raise ValueError(f'{path}:{number}: class folder {class_name!r} is not in '
                         f'{CLASS_INDEX}.')
      label = classes[class_name]
      if len(fields) > 1 and fields[1] != str(label + 1):
        raise ValueError(f'{path}:{number}: label {fields[1]} but {CLASS_INDEX} gives '
                         f'{class_name} the index {label + 1}.')
      videos.append(Video(fields[0], label))
  return videos


def label_fraction(videos: list[Video], fraction: float, seed: int) -> list[Video]:
  """A seeded random `fraction` of each class's videos (at least one per class), in list order."""
  if not 0 < fraction <= 1:
    raise ValueError(f'The label fraction must be in (0, 1]; got {fraction}.')
  rng = np.random.default_rng(seed)
  by_class = collections.defaultdict(list)
  for index, video in enumerate(videos):
    by_class[video.label].append(index)
  keep = set()
  for label in sorted(by_class):
    indices = by_class[label]
    count = max(1, int(round(fraction * len(indices))))
    keep.update(rng.choice(indices, count, replace=False).tolist())
  return [video for index, video in enumerate(videos) if index in keep]


def load_video(path: str, size: int, stabilized: bool = False,
               max_frames: int = MAX_FRAMES) -> np.ndarray:
  """uint8 [T, size, size, 3] at 25 fps, centre square; with `stabilized`, the longest segment
  of the stabilized video. Raises clips.VideoError for a video that cannot be read."""
  options = clips.ClipOptions(frames=2, size=size, stabilize=False)
  info = clips.probe(path, options)
  frames = []
  for frame in clips.read_frames(info, options, clips.VideoLog()):
    frames.append(frame)
    if len(frames) == max_frames:
      break
  if len(frames) < 2:
    raise clips.VideoError(path, f'{len(frames)} frames: not a video')
  video = np.stack(frames)
  return longest_stable_segment(video) if stabilized else video


def longest_stable_segment(video: np.ndarray) -> np.ndarray:
  """The longest segment of `video` (uint8 [T, S, S, 3]) stabilized as prepare_data does
  (`stabilize.stabilize`): what a stabilized evaluation trains and tests on."""
  segments = stabilize.stabilize(video)
  return max(segments, key=lambda segment: len(segment.frames)).frames


def videos_key(data_dir: str, videos: list[Video], size: int, stabilized: bool) -> str:
  """12 hex digits of a hash of what a cache of `videos` is made from: the data folder (its
  absolute path), each video's path, label, file size and modification time (-1 when missing),
  the frame size and stabilization."""
  digest = hashlib.sha256(json.dumps([os.path.abspath(data_dir), size, stabilized]).encode())
  for video in videos:
    path = os.path.join(data_dir, VIDEOS, video.path)
    try:
      stat = os.stat(path)
      identity = (stat.st_size, stat.st_mtime_ns)
    except OSError:
      identity = (-1, -1)
    digest.update(json.dumps([video.path, video.label, *identity]).encode())
  return digest.hexdigest()[:12]


def cache_split(data_dir: str, videos: list[Video], cache_path: str, size: int,
                stabilized: bool = False) -> dict:
  """Decodes `videos` into one shard at `cache_path` (once: an existing cache is reused).

  Returns its index {'videos': count, 'skipped': {path: reason}}, also written beside it.
  """
  index_path = cache_path + '.json'
  if os.path.exists(cache_path) and os.path.exists(index_path):
    with open(index_path) as file:
      return json.load(file)

  def decoded():
    for video in videos:
      path = os.path.join(data_dir, VIDEOS, video.path)
      try:
        yield video, load_video(path, size, stabilized)
      except (clips.VideoError, cv2.error) as error:
        yield video, getattr(error, 'reason', str(error))

  index, _ = write_cache(cache_path, decoded())
  files.write_json(index_path, index)
  return index


def write_cache(cache_path: str, decoded: Iterable[tuple[Video, np.ndarray | str]]
                ) -> tuple[dict, list[Video]]:
  """Writes the cache shard of one split's subset from any source of decoded videos.

  `decoded`: (video, uint8 frames [T, S, S, 3]) for each video, or (video, the reason it could
  not be read); this file's own source is `cache_split`, TensorFlow Datasets' UCF101 another
  (data_pipeline/tfds_ucf101.py). Each read video becomes one Example (its frames one JPEG
  strip, its path as source, its label); the others are logged and skipped. Returns the index
  {'videos': count, 'skipped': {path: reason}} (the caller writes it beside the shard) and every
  video seen, in order. ValueError when none could be read.
  """
  skipped, seen = {}, []

  def examples():
    for video, frames in decoded:
      seen.append(video)
      if isinstance(frames, str):
        skipped[video.path] = frames
        logging.warning('Skipped %s: %s', video.path, frames)
        continue
      yield shards.clip_example(shards.encode_strip(frames), frames=len(frames),
                                size=frames.shape[1], source=video.path, label=video.label)

  os.makedirs(os.path.dirname(os.path.abspath(cache_path)), exist_ok=True)
  count = shards.write_shard(cache_path, examples())
  if not count:
    raise ValueError(f'None of the {len(seen)} videos listed could be read (first: '
                     f'{next(iter(skipped.items()), None)}).')
  return {'videos': count, 'skipped': skipped}, seen


def _parse_record(serialized):
  """(JPEG strip, label, source) of a cached video, its frames not decoded yet."""
  features = tf.io.parse_single_example(serialized, {
      shards.CLIP_JPEG: tf.io.FixedLenFeature([], tf.string),
      'clip/label': tf.io.FixedLenFeature([], tf.int64),
      'clip/source': tf.io.FixedLenFeature([], tf.string)})
  return (features[shards.CLIP_JPEG], tf.cast(features['clip/label'], tf.int32),
          features['clip/source'])


def _parse(serialized):
  strip, label, source = _parse_record(serialized)
  return input_pipeline.decode_strip(strip), label, source


def train_dataset(cache_path: str, frames: int, batch_size: int, seed: int,
                  sources: list[str] | None = None, process_index: int = 0,
                  process_count: int = 1, start_batch: int = 0) -> tf.data.Dataset:
  """Endless batches {'video': uint8 [B, frames, S, S, 3], 'label': int32 [B]}: shuffled videos
  (only `sources`, the split-list paths, when given), a random window of each, a new window
  every epoch; the same batches for the same seed.

  Host p of P gets the p-th of the P slices of each global batch of `batch_size` * P videos,
  and decodes only those: the global batches are the same for any P, so P hosts train as one
  host with all their devices would (and a job resumed on another number of hosts goes on with
  the same batches). `start_batch`: the batches from that one on, exactly those an
  uninterrupted run sees (a resumed classifier reproduces the uninterrupted one).
  """
  global_batch_size = batch_size * process_count
  # The shuffle holds the records still encoded (decoded, 4096 UCF101 videos are GiBs), and
  # every host shuffles all of them alike: the global order is one, and each takes its slice.
  dataset = tf.data.TFRecordDataset(cache_path).map(_parse_record)
  if sources is not None:
    kept = tf.constant(sorted(sources))
    dataset = dataset.filter(lambda strip, label, source: tf.reduce_any(tf.equal(source, kept)))
  dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=True).repeat()
  dataset = dataset.enumerate().skip(start_batch * global_batch_size).filter(
      lambda index, item: index % global_batch_size // batch_size == process_index)
  dataset = dataset.map(
      lambda index, item: _random_window(input_pipeline.decode_strip(item[0]), item[1], frames,
                                         seed, index),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _random_window(video, label, frames, seed, index):
  """A `frames`-long window of `video` whose start is a pure function of (seed, index)."""
  video = input_pipeline.repeat_last_frame(video, frames)
  start = tf.random.stateless_uniform((), tf.stack([tf.cast(seed, tf.int64), index]), 0,
                                      tf.shape(video)[0] - frames + 1, tf.int32)
  return {'video': video[start:start + frames], 'label': label}


def test_windows(cache_path: str, frames: int, windows: int):
  """Per video, in file order: (uint8 [windows, frames, S, S, 3] evenly spaced windows, label)."""
  def spaced(video, label, source):
    del source
    video = input_pipeline.repeat_last_frame(video, frames)
    last = tf.shape(video)[0] - frames
    starts = tf.cast(tf.round(tf.linspace(0.0, tf.cast(last, tf.float32), windows)), tf.int32)
    return tf.map_fn(lambda s: video[s:s + frames], starts, fn_output_signature=tf.uint8), label

  dataset = tf.data.TFRecordDataset(cache_path).map(_parse).map(spaced)
  return dataset.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


MOTIONS = {'MoveLeft': (-1, 0), 'MoveRight': (1, 0), 'MoveUp': (0, -1), 'MoveDown': (0, 1),
           'Grow': (0, 0)}


def _synthetic_action(name: str, rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
  """A bright square doing `name` over a textured static background."""
  background = rng.uniform(0.0, 0.35, (size // 4, size // 4, 3)).astype(np.float32)
  background = cv2.resize(background, (size, size), interpolation=cv2.INTER_CUBIC)
  color = rng.uniform(0.6, 1.0, 3)
  side = size // 5
  dx, dy = MOTIONS[name]
  speed = rng.uniform(0.6, 1.2) * size / frames
  x0, y0 = rng.uniform(0.3, 0.7, 2) * size - side / 2 - np.array([dx, dy]) * speed * frames / 2
  video = []
  for t in range(frames):
    frame = background.copy()
    grow = int(t * side / frames) if name == 'Grow' else 0
    x, y = int(x0 + dx * speed * t) - grow // 2, int(y0 + dy * speed * t) - grow // 2
    frame[max(y, 0):max(y + side + grow, 0), max(x, 0):max(x + side + grow, 0)] = color
    video.append(frame)
  return np.round(np.stack(video) * 255).astype(np.uint8)


def write_synthetic_ucf(data_dir: str, classes: tuple[str, ...] = tuple(MOTIONS),
                        train_per_class: int = 6, test_per_class: int = 3, frames: int = 40,
                        size: int = 48, seed: int = 0) -> list[str]:
  """A UCF101-layout dataset of synthetic actions (split 1 only); returns the class names."""
  rng = np.random.default_rng(seed)
  lists = {'train': [], 'test': []}
  for name in classes:
    os.makedirs(os.path.join(data_dir, VIDEOS, name), exist_ok=True)
    for group in range(train_per_class + test_per_class):
      relative = f'{name}/v_{name}_g{group + 1:02d}_c01.avi'
      media.write_video(os.path.join(data_dir, VIDEOS, relative),
                           _synthetic_action(name, rng, frames, size), 25.0)
      lists['train' if group < train_per_class else 'test'].append(relative)
  os.makedirs(os.path.join(data_dir, LISTS), exist_ok=True)
  with open(os.path.join(data_dir, LISTS, CLASS_INDEX), 'w') as file:
    file.writelines(f'{i + 1} {name}\n' for i, name in enumerate(classes))
  with open(os.path.join(data_dir, LISTS, 'trainlist01.txt'), 'w') as file:
    file.writelines(f'{path} {classes.index(path.split("/")[0]) + 1}\n'
                    for path in lists['train'])
  with open(os.path.join(data_dir, LISTS, 'testlist01.txt'), 'w') as file:
    file.writelines(f'{path}\n' for path in lists['test'])
  return list(classes)
