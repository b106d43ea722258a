"""tf.data input for training: clips (procedural or from shards) -> batches of numpy dicts.

Every source goes through the same tail (batch with drop_remainder, prefetch) and yields
`{"video": uint8 [B, T, S, S, 3]}`, this host's slice of the global batch; the train step scales
it to [-1, 1] on the device. TensorFlow is only used on the CPU: its GPUs are hidden so it never
takes accelerator memory from JAX.

Shards (TFRecord files of `tf.train.Example`, one clip each) hold the clip as one JPEG of its frames
stacked vertically (the authors' layout, `CLIP_JPEG`); frames are scaled, not cropped, to the
config's size, and clips shorter than the config's length repeat their last frame.

Resuming: synthetic clips are numbered, so a run resumed at step s gets exactly the batches an
uninterrupted run would have had. Shards are reshuffled with a seed that includes s instead
(skipping ahead would decode everything read before).
"""

import atexit
import gc
import glob
import os

import numpy as np
import tensorflow as tf

from data_pipeline import shards, synthetic
from data_pipeline.shards import CLIP_JPEG

SHARD_GLOBS = ('*.tfrecord', '*.tfrecord-*', '*.tfrecords')
_ENDLESS = 2 ** 62


def _hide_gpus_from_tensorflow() -> None:
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # devices were already initialised: nothing more can be done
    pass


def find_shards(data_dir: str | None, scene: str) -> list[str]:
  """TFRecord shards of a scene, `<data_dir>/<scene>/*.tfrecord*`, sorted; [] when none."""
  if not data_dir:
    return []
  folder = os.path.join(data_dir, scene)
  return sorted({path for pattern in SHARD_GLOBS
                 for path in glob.glob(os.path.join(folder, pattern))})


def synthetic_dataset(scene: str, frames: int, size: int, seed: int = 0, start_index: int = 0,
                      process_index: int = 0, process_count: int = 1, num_clips: int = 0,
                      block: int = 1) -> tf.data.Dataset:
  """Endless procedural clips {'video': uint8 [frames, size, size, 3]} of a built-in scene.

  Global clip numbers start at `start_index`, in blocks of `block`: host p of P takes the p-th
  block of every P, so the hosts together read each clip once, and with `block` = the host's
  batch, host p's batch is the p-th slice of the global batch one host would read (the same
  clips on the same devices, however many processes). `num_clips` > 0 cycles over the first
  `num_clips` clips instead.
  """
  synthetic.check_scene(scene)

  def render(index):
    return synthetic.render_clip(scene, int(index), frames, size, seed)

  def clip(index):
    if num_clips:
      index = index % num_clips
    video = tf.numpy_function(render, [index], tf.uint8, stateful=False)
    return {'video': tf.ensure_shape(video, (frames, size, size, 3))}

  def global_index(k):
    return (start_index + (k // block) * block * process_count + process_index * block +
            k % block)

  indices = tf.data.Dataset.range(_ENDLESS).map(global_index)
  return indices.map(clip, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def decode_strip(jpeg: tf.Tensor, size: int | None = None) -> tf.Tensor:
  """A JPEG strip of square frames (the authors' layout) -> uint8 [T, S, S, 3], in a tf.data graph.

  With `size`, S is as small as 1/2, 1/4 or 1/8 of the stored side allows while S >= size:
  libjpeg scales in the DCT while decoding, so a 128x128 strip decodes straight to 64x64 faster
  than at full size, averaging like an area filter. Without, S is the stored side. (The training
  input and the UCF101 reader both decode with this; `shards.decode_strip` is the host-side numpy
  twin that checks files.)
  """
  if size is None:
    strip = tf.io.decode_jpeg(jpeg, channels=3)
  else:
    width = tf.io.extract_jpeg_shape(jpeg)[1]
    usable = [tf.logical_and(width >= size * r, width % r == 0) for r in (2, 4, 8)]
    branch = tf.reduce_sum(tf.cast(tf.stack(usable), tf.int32))  # ratios 2, 4, 8 nest
    strip = tf.switch_case(branch, [lambda r=r: tf.io.decode_jpeg(jpeg, channels=3, ratio=r)
                                    for r in (1, 2, 4, 8)])
  side = tf.shape(strip)[1]
  return tf.reshape(strip, (-1, side, side, 3))


def repeat_last_frame(video: tf.Tensor, frames: int) -> tf.Tensor:
  """[T, ...] -> [max(T, frames), ...]: a clip shorter than `frames` repeats its last frame (as
  the authors' loader does)."""
  missing = tf.maximum(frames - tf.shape(video)[0], 0)
  return tf.concat([video, tf.repeat(video[-1:], missing, axis=0)], axis=0)


def decode_clip(serialized: tf.Tensor, frames: int, size: int) -> dict[str, tf.Tensor]:
  """One serialized Example -> {'video': uint8 [frames, size, size, 3]}."""
  features = tf.io.parse_single_example(
      serialized, {CLIP_JPEG: tf.io.FixedLenFeature([], tf.string)})
  video = decode_strip(features[CLIP_JPEG], size)
  # Too short: repeat the last frame; too long: the first frames.
  video = repeat_last_frame(video, frames)[:frames]

  def scale():  # what the JPEG decoder's scaling left: scaled, not cropped
    scaled = tf.image.resize(video, (size, size), method='area', antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(scaled), 0, 255), tf.uint8)

  video = tf.cond(tf.shape(video)[1] == size, lambda: video, scale)
  return {'video': tf.ensure_shape(video, (frames, size, size, 3))}


def shard_dataset(paths: list[str], frames: int, size: int, seed: int = 0,
                  process_index: int = 0, process_count: int = 1,
                  shuffle_buffer: int = 1024) -> tf.data.Dataset:
  """Endless, shuffled clips from TFRecord shards; host p reads shards p, p + P, ..."""
  if len(paths) < process_count:
    raise ValueError(f'{len(paths)} shards cannot feed {process_count} hosts: each host reads its '
                     'own shards; write more shards.')
  files = tf.data.Dataset.from_tensor_slices(paths).shard(process_count, process_index)
  files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True).repeat()
  records = files.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(paths)),
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  records = records.shuffle(shuffle_buffer, seed=seed)
  return records.map(lambda r: decode_clip(r, frames, size), num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)


class CorruptShardError(ValueError):
  """A shard that cannot be read or decoded."""


def _describe_corrupt_shards(paths: list[str]) -> str:
  """'Corrupt shard PATH: reason' for each shard that fails to read and decode whole."""
  problems = []
  for path in paths:
    try:
      for record in tf.data.TFRecordDataset(path):
        decode_clip(record, 1, 1)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
      problems.append(f'Corrupt shard {path}: {error.message.splitlines()[0]}')
  return '\n'.join(problems)


class Batches:
  """An iterator of numpy batches that releases its tf.data iterator on `close()` or at exit.

  (A tf.data iterator still running Python code, as the synthetic scenes do, when the interpreter
  shuts down can hang the exit; closing it first avoids that.)
  """

  def __init__(self, dataset: tf.data.Dataset, shards: list[str] | None = None):
    self._iterator = dataset.as_numpy_iterator()
    self._shards = shards or []
    atexit.register(self.close)

  def __iter__(self) -> 'Batches':
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._iterator is None:
      raise StopIteration
    try:
      return next(self._iterator)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
      # tf.data does not say which file failed: find it, and name it.
      raise CorruptShardError(_describe_corrupt_shards(self._shards) or str(error)) from error

  def close(self) -> None:
    self._iterator = None
    gc.collect()  # the tf.data iterator's threads stop when it is collected
    atexit.unregister(self.close)


def as_batches(dataset: tf.data.Dataset, batch_size: int,
               shards: list[str] | None = None) -> Batches:
  """The common tail: fixed-size batches of numpy dicts, prepared ahead of the consumer."""
  return Batches(dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE),
                 shards)


def train_batches(scene: str, data_dir: str | None, *, frames: int, size: int, batch_size: int,
                  global_batch_size: int, seed: int = 0, start_step: int = 0,
                  process_index: int = 0, process_count: int = 1, shuffle_buffer: int = 1024,
                  synthetic_clips: int = 0) -> tuple[Batches, str]:
  """This host's training batches (`batch_size` clips each) from step `start_step` on.

  Reads `<data_dir>/<scene>/*.tfrecord*`; without a `data_dir`, the built-in synthetic scene of
  that name. Returns the iterator and a line saying where the clips come from. ValueError
  (`check_source`) when a given `data_dir` has no shards of the scene.
  """
  _hide_gpus_from_tensorflow()
  check_source(scene, data_dir)
  if data_dir:
    paths = find_shards(data_dir, scene)
    dataset = shard_dataset(paths, frames, size, seed=seed + start_step,
                            process_index=process_index, process_count=process_count,
                            shuffle_buffer=shuffle_buffer)
    source = f'{len(paths)} shards of {scene!r} in {os.path.join(data_dir, scene)}'
  else:
    paths = []
    dataset = synthetic_dataset(scene, frames, size, seed=seed,
                                start_index=start_step * global_batch_size,
                                process_index=process_index, process_count=process_count,
                                num_clips=synthetic_clips, block=batch_size)
    source = (f'the built-in synthetic {scene!r} scenes (data_pipeline/synthetic.py): no data '
              'folder was given')
  return as_batches(dataset, batch_size, paths), source


def scenes_in(data_dir: str) -> dict[str, int]:
  """Scene name -> number of shards, for the folders of `data_dir` that hold shards."""
  if not os.path.isdir(data_dir):
    return {}
  found = {name: len(find_shards(data_dir, name)) for name in sorted(os.listdir(data_dir))
           if os.path.isdir(os.path.join(data_dir, name))}
  return {name: count for name, count in found.items() if count}


def check_source(scene: str, data_dir: str | None) -> None:
  """Raises ValueError, naming the folder and what it holds, when a `data_dir` is given and has
  no shards of `scene` (the synthetic scenes stand in only when no data folder is given) or holds
  the unmerged parts of a split prepare_data run (`prepare.Part`: its shards are not all the
  data yet), or when none is given and `scene` is no built-in scene: checked before training
  touches its work directory."""
  if data_dir:
    folder = os.path.join(data_dir, scene)
    parts = shards.part_manifests(folder)
    if parts:  # its shards are some of the data, not all: training would read them as if all
      raise ValueError(
          f'{folder} holds the parts of a split prepare_data run, not merged yet ('
          f'{len(parts)} part manifests such as {next(iter(parts))}): when every part has '
          f'finished, merge them with `python -m experiments.prepare_data --merge '
          f'--output={data_dir} --scene={scene}`, then train.')
    if find_shards(data_dir, scene):
      return
    if not os.path.isdir(data_dir):
      holds = f'{data_dir} does not exist'
    elif scenes_in(data_dir):
      holds = f'{data_dir} holds shards of ' + ', '.join(
          f'{name} ({count})' for name, count in scenes_in(data_dir).items())
    else:
      holds = f'{data_dir} holds no shards (prepare_data writes them)'
    raise ValueError(f'No prepared clips for scene {scene!r} in {os.path.join(data_dir, scene)}: '
                     f'{holds}. (Without a data folder the built-in synthetic scenes are used.)')
  try:
    synthetic.check_scene(scene)
  except ValueError as error:
    reason = str(error)
    raise ValueError(f'No data folder given and no built-in scene {scene!r}: '
                     f'{reason[:1].lower()}{reason[1:]}') from None


def config_batches(config, *, batch_size: int, global_batch_size: int, start_step: int = 0,
                   process_index: int = 0, process_count: int = 1) -> tuple[Batches, str]:
  """`train_batches` with the scene, data folder, clip shape, seed and data settings of an
  experiment config (`config.data.scene`, `config.data.data_dir`, ...)."""
  return train_batches(config.data.scene, config.data.data_dir or None,
                       frames=config.model.frames, size=config.model.size,
                       batch_size=batch_size, global_batch_size=global_batch_size,
                       seed=config.seed, start_step=start_step, process_index=process_index,
                       process_count=process_count, shuffle_buffer=config.data.shuffle_buffer,
                       synthetic_clips=config.data.synthetic_clips)
