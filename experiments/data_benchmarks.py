"""Speed of the data side, for `experiments.benchmark`: stabilization (frames/s and residual
background motion against known jitter) and the tf.data input pipeline (clips/s)."""

import os
import tempfile
import time

import cv2
import numpy as np
import tensorflow as tf

from data_pipeline import input_pipeline, shards, stabilize, synthetic


def background_residual(to_first: list[np.ndarray], shake: np.ndarray, size: int) -> float:
  """Mean distance (px) between where background points land after stabilization and where they
  truly are in frame 0, over a grid of points and all frames."""
  ys, xs = np.mgrid[8:size - 8:8, 8:size - 8:8]
  points = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float64).reshape(-1, 1, 2)
  residual = [np.linalg.norm(cv2.perspectiveTransform(points, matrix) - cv2.perspectiveTransform(
      points, shake[0] @ np.linalg.inv(shake[t])), axis=-1).mean()
              for t, matrix in enumerate(to_first)]
  return float(np.mean(residual))


def time_stabilization(features: str, size: int, frames: int = 64, seeds: int = 3,
                       crop_height: int = 0) -> dict[str, float]:
  """Frames/s of motion estimation + warping on one core, and the residual background motion."""
  cv2.setNumThreads(1)
  options = stabilize.StabilizeOptions(features=features)
  seconds, residuals, cuts = 0.0, [], 0
  for seed in range(seeds):
    video, shake, _ = synthetic.jittered_scene(frames, size, seed=seed)
    if crop_height:  # a wide source frame: the middle rows (timing only)
      top = (size - crop_height) // 2
      video = np.ascontiguousarray(video[:, top:top + crop_height])
    start = time.perf_counter()
    segments = stabilize.stabilize(video, options)
    seconds += time.perf_counter() - start
    cuts += len(segments) - 1
    if len(segments) == 1 and not crop_height:
      to_first = stabilize.accumulate([m.matrix for m in segments[0].motions])
      residuals.append(background_residual(to_first, shake, size))
  cv2.setNumThreads(-1)
  return dict(frames_per_second=frames * seeds / seconds, cuts=cuts,
              residual_px=float(np.mean(residuals)) if residuals else float('nan'))


def run_stabilization_benchmark() -> None:
  print('Stabilization, one core (frames/s of features + matching + RANSAC + warp; residual '
        'background motion vs the known jitter):')
  for label, size, crop in (('128x128', 128, 0), ('640x272 source', 640, 272)):
    for features in stabilize.FEATURES:
      r = time_stabilization(features, size, seeds=3 if not crop else 1, crop_height=crop)
      residual = '' if crop else f', residual {r["residual_px"]:.3f} px'
      print(f'  {features:5s} {label}: {r["frames_per_second"]:.0f} frames/s{residual}, '
            f'{r["cuts"]} cuts')


def _write_benchmark_shards(folder: str, clips: int = 256, count: int = 8) -> list[str]:
  """`clips` 32-frame 128x128 synthetic clips as JPEG strips in `count` shards."""
  paths = []
  for shard in range(count):
    examples = []
    for index in range(shard, clips, count):
      video = synthetic.render_clip(synthetic.SCENES[index % 4], index, frames=32, size=128)
      examples.append(shards.clip_example(shards.encode_strip(video), frames=32, size=128))
    path = os.path.join(folder, f'bench-{shard:02d}.tfrecord')
    shards.write_shard(path, examples)
    paths.append(path)
  return paths


def _clips_per_second(dataset: tf.data.Dataset, batch_size: int, threads: int,
                      seconds: float = 4.0) -> float:
  options = tf.data.Options()
  options.threading.private_threadpool_size = threads
  options.threading.max_intra_op_parallelism = 1
  iterator = iter(dataset.batch(batch_size, drop_remainder=True).prefetch(2)
                  .with_options(options))
  for _ in range(3):  # warm up: file opening, shuffle buffer
    next(iterator)
  batches, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    next(iterator)
    batches += 1
  return batches * batch_size / (time.perf_counter() - start)


def run_pipeline_benchmark(frames: int = 32, size: int = 64, batch_size: int = 32) -> None:
  tf.config.set_visible_devices([], 'GPU')
  with tempfile.TemporaryDirectory() as folder:
    paths = _write_benchmark_shards(folder)
    records = tf.data.TFRecordDataset(paths).cache().repeat()
    bare = records.map(lambda r: input_pipeline.decode_clip(r, frames, size))
    baseline = _clips_per_second(bare, batch_size, threads=1)
    print(f'Input pipeline, 128x128 strips -> {frames}x{size}x{size}: bare decode + resize on one '
          f'thread {baseline:.0f} clips/s')
    for threads in (1, os.cpu_count() or 1):
      dataset = input_pipeline.shard_dataset(paths, frames, size, seed=0, shuffle_buffer=256)
      rate = _clips_per_second(dataset, batch_size, threads)
      print(f'  whole pipeline (read, interleave, shuffle, parse, decode, resize, batch), '
            f'{threads} threads: {rate:.0f} clips/s ({rate / baseline / threads:.0%} of bare '
            'per thread)')
