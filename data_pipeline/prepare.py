"""prepare_data's work: video files, or the authors' released JPEG strips, -> clip shards.

Output: `<output>/<scene>/*.tfrecord` (one shard per video, or per `clips_per_shard` released
strips) and `<output>/<scene>/manifest.json`, the folder `train --data_dir=<output>` reads.

Work is spread over worker processes, one video (or one shard of strips) each. Every worker writes
its own shard atomically and reports what it did; only the main process writes the manifest, after
each input, so a killed run loses at most the inputs in flight, and a rerun skips the inputs the
manifest lists as done (and unchanged since). An input that cannot be used is skipped with one
log line naming it and the reason, recorded in the manifest, and the run goes on.
"""

import collections
import contextlib
import concurrent.futures
import ctypes
import dataclasses
import glob
import hashlib
import multiprocessing
import os
import re
import signal
import sys
import time
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
import tqdm
from absl import logging

from data_pipeline import clips, shards, synthetic
from vgan_io import files, media

CLIPS_PER_RELEASED_SHARD = 1024


@dataclasses.dataclass
class Summary:
  """What one prepare run did."""
  folder: str
  inputs: int = 0  # videos (or strip lists' shards) considered
  already_done: int = 0
  clips_written: int = 0  # by this run
  total_clips: int = 0  # in the folder, by the manifest
  skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  rejected: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  seconds: float = 0.0

  def lines(self) -> list[str]:
    rate = self.clips_written / max(self.seconds, 1e-9)
    lines = [f'{self.inputs} inputs ({self.already_done} already done): wrote '
             f'{self.clips_written} clips in {self.seconds:.1f} s ({rate:.1f} clips/s); '
             f'{self.folder} now holds {self.total_clips} clips.']
    if self.skipped:
      lines.append(f'Skipped {sum(self.skipped.values())} inputs: ' + _counts(self.skipped))
    if self.rejected:
      lines.append('Rejected parts of videos: ' + _counts(self.rejected))
    return lines


def _counts(counter: collections.Counter) -> str:
  return '; '.join(f'{count} x {reason}' for reason, count in counter.most_common())


def find_videos(inputs: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """Video paths (absolute, sorted, unique) named by `inputs`, and (input, reason) problems.

  An input is a file (taken whatever its extension, so a mislabelled one gets a clear reason
  later), a folder (searched recursively for `clips.is_video_path`: video extensions and
  animated images) or a glob.
  """
  videos, problems = set(), []
  for pattern in inputs:
    if os.path.isdir(pattern):
      found = [path for root, _, names in os.walk(pattern)
               for path in (os.path.join(root, name) for name in names)
               if clips.is_video_path(path)]
      if not found:
        problems.append((pattern, 'a folder with no video files '
                                  f'({", ".join(clips.VIDEO_EXTENSIONS)}, or animated '
                                  f'{", ".join(clips.ANIMATION_EXTENSIONS)})'))
    elif os.path.isfile(pattern):
      found = [pattern]
    else:
      found = [path for path in glob.glob(pattern, recursive=True) if os.path.isfile(path)]
      if not found:
        problems.append((pattern, 'no such file or folder, and no file matches it as a glob'))
    videos.update(os.path.abspath(path) for path in found)
  return sorted(videos), problems


def shard_name(source: str) -> str:
  """A stable, unique shard file name for a source: its stem plus a hash of its full path."""
  stem = re.sub(r'[^A-Za-z0-9_.-]+', '_', os.path.splitext(os.path.basename(source))[0])[:60]
  digest = hashlib.sha1(os.path.abspath(source).encode()).hexdigest()[:10]
  return f'{stem}-{digest}{shards.SHARD_SUFFIX}'


def _file_identity(path: str) -> dict:
  stat = os.stat(path)
  return {'bytes': stat.st_size, 'mtime': stat.st_mtime}


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _initialize_worker(parent: int) -> None:
  cv2.setNumThreads(1)  # one video per process: OpenCV's own threads would only contend
  # End with the main process, even when it is killed with SIGKILL (which runs no cleanup): an
  # orphan would go on writing shards and race the next run.
  if sys.platform.startswith('linux'):
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
  if os.getppid() != parent:  # it died before the line above
    os._exit(1)


def process_video(source: str, folder: str, scene: str, options: clips.ClipOptions,
                  quality: int) -> dict:
  """One video -> its shard in `folder`; returns its manifest entry. Never raises for bad video;
  raises OSError for a full disk (no later video could be written either)."""
  log = clips.VideoLog()
  entry = _file_identity(source)
  name = shard_name(source)

  def examples():
    for clip in clips.iter_clips(source, options, log):
      yield shards.clip_example(
          shards.encode_strip(clip.frames, quality), frames=options.frames, size=options.size,
          scene=scene, source=source, start_frame=clip.start_frame, fps=options.fps,
          stats=clip.stats)

  try:
    count = shards.write_shard(os.path.join(folder, name), examples())
  except clips.VideoError as error:
    entry.update(status='skipped', reason=error.reason, clips=0)
  except (cv2.error, MemoryError, OSError) as error:
    if files.is_disk_full(error):
      raise
    entry.update(status='skipped', reason=f'{type(error).__name__}: {error}'.strip(), clips=0)
  else:
    if count:
      entry.update(status='done', shard=name, clips=count)
    else:
      entry.update(status='skipped', clips=0, reason='no usable clips (' + ', '.join(
          f'{reason}: {n}' for reason, n in log.rejected.most_common()) + ')')
  entry.update(frames=log.frames_read, rejected=dict(log.rejected), warnings=log.warnings)
  return entry


def check_writable(folder: str) -> None:
  """Creates `folder` if needed; OSError naming it when files cannot be written there."""
  try:
    os.makedirs(folder, exist_ok=True)
    with files.atomic_path(os.path.join(folder, '.write-check')) as temporary:
      with open(temporary, 'w') as file:
        file.write('ok')
    os.remove(os.path.join(folder, '.write-check'))
  except OSError as error:
    raise OSError(f'The output folder {folder} is not writable: {error.strerror or error}.') \
        from None


def _run_jobs(function: Callable, jobs: Sequence[tuple], workers: int) -> Iterable[tuple]:
  """(job, result) for each job as it completes; in this process when workers <= 1."""
  if workers <= 1 or len(jobs) <= 1:
    for job in jobs:
      yield job, function(*job)
    return
  # 'spawn': the parent has TensorFlow's threads running, which a fork would copy broken.
  context = multiprocessing.get_context('spawn')
  with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context,
                                              initializer=_initialize_worker,
                                              initargs=(os.getpid(),)) as pool:
    futures = {pool.submit(function, *job): job for job in jobs}
    try:
      for future in concurrent.futures.as_completed(futures):
        yield futures[future], future.result()
    except BaseException:
      for future in futures:
        future.cancel()
      raise


@contextlib.contextmanager
def _started(output: str, scene: str, options: dict) -> Iterator[tuple[str, dict]]:
  """(the scene folder, its manifest) for the block, holding the folder's lock (a second
  prepare_data on the same folder is refused at once: it would remove this one's partial files
  and overwrite its manifest). ValueError for a bad scene name, OSError for an unwritable
  folder."""
  if not scene or os.sep in scene or scene.startswith('.'):
    raise ValueError(f'The scene name must be a plain folder name such as "beach"; got '
                     f'{scene!r}.')
  folder = os.path.join(output, scene)
  check_writable(folder)
  with files.exclusive_lock(folder, 'prepare_data run'):
    removed = files.remove_partial_files(folder)
    if removed:
      logging.info('Removed %d partial files a stopped run left in %s.', len(removed), folder)
    yield folder, shards.load_manifest(folder, scene, options)


def _record(manifest: dict, folder: str, source: str, entry: dict, summary: Summary) -> None:
  shards.record_input(manifest, source, entry)
  files.write_json(os.path.join(folder, shards.MANIFEST), manifest)
  summary.clips_written += entry.get('clips', 0)
  summary.total_clips = manifest['clips']
  summary.rejected.update(entry.get('rejected', {}))
  if entry['status'] != 'done':
    summary.skipped[entry['reason']] += 1
    logging.warning('Skipped %s: %s', source, entry['reason'])
  for warning in entry.get('warnings', []):
    logging.warning('%s: %s', source, warning)


def _is_done(manifest: dict, folder: str, source: str) -> bool:
  """Done before, unchanged since, and (when it made one) its shard still there."""
  entry = manifest['inputs'].get(source)
  if not entry or not os.path.exists(source) or entry.get('status') == 'missing':
    return False
  if {k: entry.get(k) for k in ('bytes', 'mtime')} != _file_identity(source):
    return False
  return not entry.get('shard') or os.path.exists(os.path.join(folder, entry['shard']))


def _progress(jobs: Sequence, unit: str, show: bool) -> tqdm.tqdm:
  return tqdm.tqdm(total=len(jobs), unit=unit, disable=not show or not jobs, dynamic_ncols=True)


def prepare_videos(inputs: Sequence[str], output: str, scene: str,
                   options: clips.ClipOptions = clips.ClipOptions(), workers: int = 1,
                   quality: int = 95, progress: bool = True) -> Summary:
  """Videos named by `inputs` (files, folders, globs) -> shards in `<output>/<scene>`."""
  start = time.time()
  options_record = {'source': 'videos', 'quality': quality, **options.as_dict()}
  with _started(output, scene, options_record) as (folder, manifest):
    videos, problems = find_videos(inputs)
    if not videos:
      raise ValueError('No video files in ' + '; '.join(f'{path} ({reason})'
                                                         for path, reason in problems))
    summary = Summary(folder, inputs=len(videos))
    for path, reason in problems:
      _record(manifest, folder, os.path.abspath(path), {'status': 'missing', 'reason': reason},
              summary)
    jobs = [(source, folder, scene, options, quality) for source in videos
            if not _is_done(manifest, folder, source)]
    summary.already_done = len(videos) - len(jobs)
    logging.info('%d videos to prepare into %s (%d already done), %d workers.', len(jobs), folder,
                 summary.already_done, workers)
    with _progress(jobs, 'video', progress) as bar:
      for job, entry in _run_jobs(process_video, jobs, workers):
        try:
          _record(manifest, folder, job[0], entry, summary)
        except OSError as error:
          if files.is_disk_full(error) and entry.get('shard'):
            # The manifest could not list this shard: remove it, so the folder holds exactly
            # what the manifest says (and a rerun redoes it).
            os.remove(os.path.join(folder, entry['shard']))
          raise
        bar.update()
        bar.set_postfix(clips=summary.clips_written,
                        clips_per_s=f'{summary.clips_written / (time.time() - start):.1f}')
    summary.total_clips, summary.seconds = manifest['clips'], time.time() - start
    return summary


def read_strip_list(list_file: str) -> list[tuple[str, int]]:
  """The authors' list file: one `path [label]` per line -> [(path, label or -1)]."""
  entries = []
  with open(list_file) as file:
    for number, line in enumerate(file, 1):
      fields = line.split()
      if not fields or fields[0].startswith('#'):
        continue
      if len(fields) > 2 or (len(fields) == 2 and not re.fullmatch(r'-?\d+', fields[1])):
        raise ValueError(f'{list_file}:{number}: expected "path [integer label]", got '
                         f'{line.strip()!r}.')
      entries.append((fields[0], int(fields[1]) if len(fields) == 2 else -1))
  if not entries:
    raise ValueError(f'{list_file} lists no clips.')
  return entries


def convert_strips(entries: Sequence[tuple[str, int]], root: str, path: str,
                   scene: str) -> dict:
  """Released strips -> one shard at `path`, the JPEG bytes copied unchanged; manifest entry."""
  skipped = {}

  def examples():
    for relative, label in entries:
      source = os.path.join(root, relative)
      try:
        with open(source, 'rb') as file:
          jpeg = file.read()
        video = shards.decode_strip(jpeg)
      except (OSError, ValueError) as error:
        skipped[relative] = getattr(error, 'strerror', None) or str(error)
        continue
      yield shards.clip_example(jpeg, frames=len(video), size=video.shape[1], scene=scene,
                                source=relative, label=label)

  count = shards.write_shard(path, examples())
  entry = {'status': 'done' if count else 'skipped', 'clips': count, 'skipped_strips': skipped}
  if count:
    entry['shard'] = os.path.basename(path)
  else:
    entry['reason'] = 'none of its strips could be read'
  return entry


def prepare_released(list_file: str, root: str, output: str, scene: str, workers: int = 1,
                     clips_per_shard: int = CLIPS_PER_RELEASED_SHARD,
                     progress: bool = True) -> Summary:
  """The authors' released clips (`list_file` lines relative to `root`) -> shards."""
  start = time.time()
  entries = read_strip_list(list_file)
  with _started(output, scene, {
      'source': 'released', 'list': os.path.abspath(list_file), 'root': os.path.abspath(root),
      'clips_per_shard': clips_per_shard}) as (folder, manifest):
    chunks = [entries[i:i + clips_per_shard] for i in range(0, len(entries), clips_per_shard)]
    stem = os.path.splitext(os.path.basename(list_file))[0]
    jobs = []
    for index, chunk in enumerate(chunks):
      name = f'{stem}-{index:05d}-of-{len(chunks):05d}{shards.SHARD_SUFFIX}'
      entry = manifest['inputs'].get(name, {})
      if entry.get('status') != 'done' or not os.path.exists(os.path.join(folder, name)):
        jobs.append((chunk, root, os.path.join(folder, name), scene))
    summary = Summary(folder, inputs=len(chunks), already_done=len(chunks) - len(jobs))
    with _progress(jobs, 'shard', progress) as bar:
      for job, entry in _run_jobs(convert_strips, jobs, workers):
        for relative, reason in entry['skipped_strips'].items():
          logging.warning('Skipped strip %s: %s', os.path.join(root, relative), reason)
          summary.rejected[f'strip: {reason}'] += 1
        _record(manifest, folder, os.path.basename(job[2]), entry, summary)
        bar.update()
    summary.total_clips, summary.seconds = manifest['clips'], time.time() - start
    return summary


def render_demo_videos(folder: str, scene: str, count: int = 4, frames: int = 100,
                       size: int = 160, fps: float = 25.0, seed: int = 0) -> list[str]:
  """Built-in scene clips with camera shake added, as Motion-JPEG AVI files: the default input.

  The scene is rendered and shaken at twice the size and scaled down, as a camera's sensor would
  (shaking at the final size would blur the texture that stabilization tracks). Files already
  there are kept (they are a pure function of the arguments).
  """
  synthetic.check_scene(scene)
  os.makedirs(folder, exist_ok=True)
  paths = []
  for index in range(count):
    path = os.path.join(folder, f'{scene}_{seed}_{index:03d}.avi')
    paths.append(path)
    if os.path.exists(path):
      continue
    video = synthetic.render_clip(scene, index, frames=frames, size=2 * size, seed=seed)
    shaken, _ = synthetic.add_camera_shake(video, seed=seed * 1000 + index)
    small = [cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA) for frame in shaken]
    media.write_video(path, np.stack(small), fps)
  return paths
