"""prepare_data's work: video files, or the authors' released JPEG strips, -> clip shards.

Output: `<output>/<scene>/*.tfrecord` (one shard per video, or per `clips_per_shard` released
strips) and `<output>/<scene>/manifest.json`, the folder `train --data_dir=<output>` reads.

Work is spread over worker processes, one video (or one shard of strips) each. Every worker writes
its own shard atomically and reports what it did; only the main process writes the manifest, after
each input, so a killed run loses at most the inputs in flight, and a rerun skips the inputs the
manifest lists as done (and unchanged since). An input that cannot be used is skipped with one
log line naming it and the reason, recorded in the manifest, and the run goes on.

Split across machines (`Part`: `prepare_data --num_shards=K --shard_index=I`, e.g. one Slurm array
task each), part I takes the inputs whose shard file name hashes to I modulo K (`part_of`): the
name is a pure function of the input's absolute path (`shard_name`), or for released strips of
the list file's chunk number, so every machine that sees the inputs at the same paths (the same
mount) agrees, whatever order its listings come in (the manifest and every clip record that path
anyway, so other paths would give other outputs even unsplit). Parts write their own manifest,
`manifest.part-I-of-K.json`, and lock, and leave each other's partial files alone; `merge_parts`
(or the next unsplit run on the folder) combines them into `manifest.json` and removes them,
leaving the folder byte for byte as one unsplit run over all the inputs would.
"""

import collections
import contextlib
import concurrent.futures
import ctypes
import dataclasses
import glob
import hashlib
import json
import multiprocessing
import os
import re
import signal
import sys
import tempfile
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
  part: 'Part | None' = None  # of a split run: part index of count
  merged: int | None = None  # by merge_parts: how many part manifests it merged

  def lines(self) -> list[str]:
    if self.merged is not None:
      lines = [(f'Merged {self.merged} parts into {os.path.join(self.folder, shards.MANIFEST)}: '
                if self.merged else 'Nothing to merge (no part manifests: merged already): ') +
               f'{self.inputs} inputs; {self.folder} holds {self.total_clips} clips.']
    elif self.part:
      rate = self.clips_written / max(self.seconds, 1e-9)
      lines = [f'Part {self.part.index} of {self.part.count}: {self.inputs} inputs '
               f'({self.already_done} already done): wrote {self.clips_written} clips in '
               f'{self.seconds:.1f} s ({rate:.1f} clips/s); the part holds {self.total_clips} '
               'clips.',
               f'When all {self.part.count} parts are done, merge them: python -m '
               f'experiments.prepare_data --merge --output={os.path.dirname(self.folder)} '
               f'--scene={os.path.basename(self.folder)}']
    else:
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


def part_of(name: str, count: int) -> int:
  """Which of `count` parts of a split run takes the input whose shard file is `name`: a stable
  hash (SHA-1) of the name, the same on every machine and in every rerun."""
  return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], 'big') % count


@dataclasses.dataclass(frozen=True)
class Part:
  """Part `index` of `count` of a prepare run split across machines (`--shard_index`,
  `--num_shards`): it takes the inputs `part_of` gives it, and writes its own manifest
  (shards.PART_MANIFEST) and lock, until `merge_parts` combines the parts."""
  index: int
  count: int

  def __post_init__(self):
    if self.count < 1:
      raise ValueError(f'--num_shards (the number of parts the inputs are split into) must be at '
                       f'least 1; got {self.count}.')
    if not 0 <= self.index < self.count:
      raise ValueError(f'--shard_index must be in [0, {self.count}) for --num_shards='
                       f'{self.count} (the part this process takes); got {self.index}.')

  def takes(self, name: str) -> bool:
    return part_of(name, self.count) == self.index

  @property
  def manifest(self) -> str:
    return shards.PART_MANIFEST.format(index=self.index, count=self.count)

  @property
  def lock(self) -> str:
    return f'{files.LOCK}.part-{self.index:05d}-of-{self.count:05d}'

  def owns(self, name: str) -> bool:
    """Whether the file `name` (a shard, or its manifest) is this part's to write."""
    return name == self.manifest or (name.endswith(shards.SHARD_SUFFIX) and self.takes(name))


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
  if options.scene_filter:
    entry['scene_filter'] = scene_decisions(log.scene_scores)
  return entry


def scene_decisions(scores: Sequence[tuple[int, float, bool]]) -> dict:
  """A video's scene-filter decisions for its manifest entry: how many clips were kept and
  rejected, and each judged clip's [start frame, score] (rounded to 4 places), by decision."""
  kept = [[start, score] for start, score, keep in scores if keep]
  rejected = [[start, score] for start, score, keep in scores if not keep]
  return {'kept': len(kept), 'rejected': len(rejected), 'kept_scores': kept,
          'rejected_scores': rejected}


def check_writable(folder: str) -> None:
  """Creates `folder` if needed; OSError naming it when files cannot be written there."""
  try:
    os.makedirs(folder, exist_ok=True)
    # A name of its own: the parts of a split run check the same folder at once.
    handle, path = tempfile.mkstemp(dir=folder, prefix='.write-check.', suffix=files.PARTIAL)
    try:
      os.write(handle, b'ok')
    finally:
      os.close(handle)
      with contextlib.suppress(FileNotFoundError):  # a run clearing partial files took it
        os.remove(path)
  except OSError as error:
    raise OSError(f'The output folder {folder} is not writable: {error.strerror or error}.') \
        from None


# How a run's per-input jobs are done: (function, jobs, workers, folder) -> (job, result) pairs;
# `run_in_processes` here, or beam_prepare.BeamExecutor on an Apache Beam runner.
Executor = Callable[[Callable, Sequence[tuple], int, str], Iterable[tuple]]


def run_in_processes(function: Callable, jobs: Sequence[tuple], workers: int,
                     folder: str = '') -> Iterable[tuple]:
  """(job, result) for each job as it completes, in a pool of `workers` processes (in this
  process when workers <= 1). `folder`: the output folder (unused here; see `Executor`)."""
  del folder
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


class _Run:
  """Where a run records what became of each input: `manifest.json`, or for a part of a split run
  its own part manifest, with `manifest.json` (what earlier runs did) read to skip what is done."""

  def __init__(self, folder: str, manifest: dict, part: Part | None = None,
               earlier: dict | None = None):
    self.folder, self.manifest, self.part = folder, manifest, part
    self.earlier = earlier or {'inputs': {}}
    self.path = os.path.join(folder, part.manifest if part else shards.MANIFEST)

  def takes(self, name: str) -> bool:
    """Whether the input whose shard file is `name` is this run's (all are, unsplit)."""
    return self.part is None or self.part.takes(name)

  def entry(self, key: str) -> dict:
    return self.manifest['inputs'].get(key) or self.earlier['inputs'].get(key) or {}

  def begin(self, inputs: Sequence) -> None:
    """A part says, before any work, which split it belongs to, what all of the split's inputs
    are (a digest: the merge checks that every part was given the same) and that it has not
    finished; an unsplit run has nothing to say."""
    if self.part:
      digest = hashlib.sha1(repr(list(inputs)).encode()).hexdigest()
      self.manifest['part'] = {'index': self.part.index, 'count': self.part.count,
                               'inputs': digest, 'complete': False}
      files.write_json(self.path, self.manifest)

  def finish(self) -> None:
    if self.part:
      self.manifest['part']['complete'] = True
      files.write_json(self.path, self.manifest)

  def record(self, source: str, entry: dict, summary: Summary) -> None:
    shards.record_input(self.manifest, source, entry)
    files.write_json(self.path, self.manifest)
    summary.clips_written += entry.get('clips', 0)
    summary.total_clips = self.manifest['clips']
    summary.rejected.update(entry.get('rejected', {}))
    if entry['status'] != 'done':
      summary.skipped[entry['reason']] += 1
      logging.warning('Skipped %s: %s', source, entry['reason'])
    for warning in entry.get('warnings', []):
      logging.warning('%s: %s', source, warning)

  def is_done(self, source: str) -> bool:
    """Done before, unchanged since, and (when it made one) its shard still there."""
    entry = self.entry(source)
    if not entry or not os.path.exists(source) or entry.get('status') == 'missing':
      return False
    if {k: entry.get(k) for k in ('bytes', 'mtime')} != _file_identity(source):
      return False
    return not entry.get('shard') or os.path.exists(os.path.join(self.folder, entry['shard']))


def _scene_folder(output: str, scene: str) -> str:
  if not scene or os.sep in scene or scene.startswith('.'):
    raise ValueError(f'The scene name must be a plain folder name such as "beach"; got '
                     f'{scene!r}.')
  return os.path.join(output, scene)


_PART_LOCK = re.compile(re.escape(files.LOCK) + r'\.part-(\d+)-of-(\d+)')  # Part.lock


@contextlib.contextmanager
def _whole_folder(folder: str) -> Iterator[None]:
  """Holds the folder's lock exclusively: refused at once while another unsplit run, a merge or
  any part of a split run (they hold it shared) is at work there."""
  with contextlib.ExitStack() as stack:
    try:
      stack.enter_context(files.exclusive_lock(folder, 'prepare_data run'))
    except files.FolderInUseError:
      holders = []
      for name in sorted(os.listdir(folder)):
        match = _PART_LOCK.fullmatch(name)
        if match:
          with open(os.path.join(folder, name), errors='replace') as file:
            holder = file.read().strip()
          if holder:
            holders.append(f'part {int(match[1])} of {int(match[2])}: {holder}')
      if not holders:
        raise
      raise files.FolderInUseError(
          f'{folder} is in use by parts of a split prepare_data run ({"; ".join(holders)}); wait '
          'for them to end (then merge them), or use another folder.') from None
    yield


@contextlib.contextmanager
def _started(output: str, scene: str, options: dict,
             part: Part | None = None) -> Iterator[_Run]:
  """The run's scene folder and manifest for the block, holding the folder's lock: a second
  unsplit prepare_data on the folder is refused at once (it would remove this one's partial files
  and overwrite its manifest). An unsplit run first merges any parts a split run left (finished
  or not: what they did is kept, and this run does the rest). Part I of K holds the folder's
  lock shared with the other parts and a lock of its own, and touches only its own files.
  ValueError for a bad scene name or parts that do not fit, OSError for an unwritable folder."""
  if part is not None and part.count == 1:
    part = None
  folder = _scene_folder(output, scene)
  check_writable(folder)
  if part is None:
    with _whole_folder(folder):
      removed = files.remove_partial_files(folder)
      if removed:
        logging.info('Removed %d partial files a stopped run left in %s.', len(removed), folder)
      manifest = shards.load_manifest(folder, scene, options)
      merged = _merge_parts_into(folder, manifest, options, 'this run', complete=False)
      _remove_part_locks(folder)
      if merged:
        logging.info('Merged %d parts of a split run into %s.', merged, folder)
      yield _Run(folder, manifest)
    return
  with files.shared_lock(folder, 'prepare_data run'):
    with files.exclusive_lock(folder, f'prepare_data part {part.index} of {part.count}',
                              name=part.lock):
      removed = files.remove_partial_files(folder, owned=part.owns)
      if removed:
        logging.info('Removed %d partial files a stopped run of part %d of %d left in %s.',
                     len(removed), part.index, part.count, folder)
      earlier = shards.load_manifest(folder, scene, options)
      for name, (_, count) in shards.part_manifests(folder).items():
        if count != part.count:
          raise ValueError(f'{folder} holds parts of a split into {count} parts ({name}) that are '
                           f'not merged yet: merge them (prepare_data --merge) or remove them '
                           f'before splitting into {part.count}.')
        shards.load_manifest(folder, scene, options, name)  # ValueError for other options
      yield _Run(folder, shards.load_manifest(folder, scene, options, part.manifest), part,
                 earlier)


def _merge_parts_into(folder: str, manifest: dict, options: dict, reference: str,
                      complete: bool) -> int:
  """Records what the part manifests in `folder` hold in `manifest`, writes it as manifest.json
  and removes the parts and their lock files (the caller holds the folder's lock exclusively: no
  part is at work); returns how many there were. `options`: those the parts must have been made
  with (`reference` says whose they are, for messages). With `complete`, every part of the
  split must be there, finished, over the same inputs. ValueError when they do not fit."""
  found = shards.part_manifests(folder)
  if not found:
    return 0
  counts = sorted({count for _, count in found.values()})
  if len(counts) > 1:
    examples = ', '.join(next(f'{name} ({count} parts)' for name, (_, c) in found.items()
                              if c == count) for count in counts)
    raise ValueError(f'Cannot merge the parts in {folder}: they come from splits into different '
                     f'numbers of parts ({examples}); remove the parts of all but one split '
                     '(--num_shards), and run the missing ones of that split.')
  (count,) = counts
  parts = {}
  for name in found:
    try:
      with open(os.path.join(folder, name)) as file:
        parts[name] = json.load(file)
      stored = parts[name]['options']
    except (ValueError, KeyError, TypeError) as error:
      raise ValueError(f'{os.path.join(folder, name)} is not a part manifest this project wrote '
                       f'({error}); remove it, and rerun that part.') from None
    if stored != json.loads(json.dumps(options)):
      raise ValueError(f'Cannot merge {name} into {folder}: it was prepared with other options '
                       f'than {reference} (' + shards.option_differences(
                           stored, options, (name, reference)) +
                       '); rerun that part with the same options as the rest, or remove it.')
  if complete:
    info = {found[name][0]: part.get('part', {}) for name, part in parts.items()}
    missing = [i for i in range(count) if i not in info]
    unfinished = [i for i, part in sorted(info.items()) if not part.get('complete')]
    problems = ([f'{_parts(missing, "has")} not run'] if missing else []) + (
        [f'{_parts(unfinished, "was")} stopped before the end'] if unfinished else [])
    if problems:
      raise ValueError(f'Cannot merge the {count} parts in {folder} yet: '
                       f'{"; ".join(problems)}: run them (the same command with --shard_index=N; '
                       'each goes on from what it did) and merge again.')
    digests = collections.defaultdict(list)
    for index, part in sorted(info.items()):
      digests[part.get('inputs')].append(index)
    if len(digests) > 1:
      raise ValueError(f'Cannot merge the {count} parts in {folder}: they were given different '
                       'inputs (' + ' / '.join(_parts(indices) for indices in digests.values()) +
                       '); rerun every part with the same --input (or --from_list): each keeps '
                       'what it did.')
  for name, part in parts.items():
    for key, entry in sorted(part['inputs'].items()):
      shards.record_input(manifest, key, entry)
  files.write_json(os.path.join(folder, shards.MANIFEST), manifest)
  for name in found:
    os.remove(os.path.join(folder, name))
  return len(found)


def _parts(indices: Sequence[int], verb: str = '') -> str:
  """[2] -> 'part 2'; [1, 3, 4] -> 'parts 1, 3 and 4'; with `verb` ('has'), its number agrees."""
  text = [str(i) for i in indices]
  if len(text) == 1:
    return f'part {text[0]}' + (f' {verb}' if verb else '')
  plural = {'has': 'have', 'was': 'were'}.get(verb, verb)
  return 'parts ' + ', '.join(text[:-1]) + ' and ' + text[-1] + (f' {plural}' if verb else '')


def _remove_part_locks(folder: str) -> None:
  """Removes the lock files of parts (safe while holding the folder's lock exclusively: a part
  takes its own lock only while it holds the folder's shared)."""
  for name in os.listdir(folder):
    if _PART_LOCK.fullmatch(name):
      os.remove(os.path.join(folder, name))


def merge_parts(output: str, scene: str) -> Summary:
  """Combines the part manifests of a finished split run (`Part`) in `<output>/<scene>` into its
  manifest.json and removes them; the folder is then byte for byte what one unsplit run over
  all the inputs would have written. ValueError when parts are missing, unfinished, of splits into
  different numbers of parts, made with other options or given other inputs; nothing to merge in
  a folder with a manifest.json and no parts is no error (the merge ran already)."""
  folder = _scene_folder(output, scene)
  if not os.path.isdir(folder):
    raise ValueError(f'Nothing to merge: {folder} does not exist.')
  with _whole_folder(folder):
    files.remove_partial_files(folder)
    found = shards.part_manifests(folder)
    if not found and not os.path.exists(os.path.join(folder, shards.MANIFEST)):
      raise ValueError(f'Nothing to merge in {folder}: it holds no part manifests '
                       '(manifest.part-I-of-K.json, written by prepare_data --num_shards=K '
                       '--shard_index=I) and no manifest.json.')
    # The reference: manifest.json's options, or else the first part's; every part must match.
    reference = shards.MANIFEST if os.path.exists(os.path.join(folder, shards.MANIFEST)) else \
        next(iter(found))
    try:
      with open(os.path.join(folder, reference)) as file:
        options = json.load(file).get('options')
    except (ValueError, AttributeError):
      options = None
    if not isinstance(options, dict):
      raise ValueError(f'{os.path.join(folder, reference)} is not a manifest this project '
                       'wrote; move it away.')
    manifest = shards.load_manifest(folder, scene, options)
    merged = _merge_parts_into(folder, manifest, options, reference, complete=True)
    _remove_part_locks(folder)
    if not merged:
      logging.info('Nothing to merge in %s: no part manifests (merged already).', folder)
    summary = Summary(folder, inputs=len(manifest['inputs']), total_clips=manifest['clips'],
                      merged=merged)
    for _, entry in sorted(manifest['inputs'].items()):
      if entry.get('status') != 'done':
        summary.skipped[entry.get('reason', '?')] += 1
    return summary


def _progress(jobs: Sequence, unit: str, show: bool) -> tqdm.tqdm:
  return tqdm.tqdm(total=len(jobs), unit=unit, disable=not show or not jobs, dynamic_ncols=True)


def prepare_videos(inputs: Sequence[str], output: str, scene: str,
                   options: clips.ClipOptions = clips.ClipOptions(), workers: int = 1,
                   quality: int = 95, progress: bool = True, part: Part | None = None,
                   executor: Executor = run_in_processes) -> Summary:
  """Videos named by `inputs` (files, folders, globs) -> shards in `<output>/<scene>`; with
  `part`, only that part's share of them (see `Part`); `executor` does the videos' jobs (a
  process pool of `workers`, or beam_prepare.BeamExecutor)."""
  start = time.time()
  if options.scene_filter:
    options.scene_filter.load()  # ValueError naming it, before any work; workers import it too
  options_record = {'source': 'videos', 'quality': quality, **options.as_dict()}
  with _started(output, scene, options_record, part) as run:
    folder = run.folder
    videos, problems = find_videos(inputs)
    if not videos:
      raise ValueError('No video files in ' + '; '.join(f'{path} ({reason})'
                                                         for path, reason in problems))
    missing = {os.path.abspath(path): reason for path, reason in problems}
    run.begin(sorted(missing) + videos)
    mine = [source for source in videos if run.takes(shard_name(source))]
    summary = Summary(folder, inputs=len(mine), part=run.part)
    for path, reason in missing.items():
      if run.takes(shard_name(path)):
        run.record(path, {'status': 'missing', 'reason': reason}, summary)
    jobs = [(source, folder, scene, options, quality) for source in mine
            if not run.is_done(source)]
    summary.already_done = len(mine) - len(jobs)
    if run.part:
      logging.info('Part %d of %d: %d of the %d videos.', run.part.index, run.part.count,
                   len(mine), len(videos))
    logging.info('%d videos to prepare into %s (%d already done), %d workers.', len(jobs), folder,
                 summary.already_done, workers)
    with _progress(jobs, 'video', progress) as bar:
      for job, entry in executor(process_video, jobs, workers, folder):
        try:
          run.record(job[0], entry, summary)
        except OSError as error:
          if files.is_disk_full(error) and entry.get('shard'):
            # The manifest could not list this shard: remove it, so the folder holds exactly
            # what the manifest says (and a rerun redoes it).
            os.remove(os.path.join(folder, entry['shard']))
          raise
        bar.update()
        bar.set_postfix(clips=summary.clips_written,
                        clips_per_s=f'{summary.clips_written / (time.time() - start):.1f}')
    run.finish()
    summary.total_clips, summary.seconds = run.manifest['clips'], time.time() - start
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
                     progress: bool = True, part: Part | None = None,
                     executor: Executor = run_in_processes) -> Summary:
  """The authors' released clips (`list_file` lines relative to `root`) -> shards; with `part`,
  only that part's share of the shards (see `Part`); `executor` as for `prepare_videos`."""
  start = time.time()
  entries = read_strip_list(list_file)
  with _started(output, scene, {
      'source': 'released', 'list': os.path.abspath(list_file), 'root': os.path.abspath(root),
      'clips_per_shard': clips_per_shard}, part) as run:
    folder = run.folder
    chunks = [entries[i:i + clips_per_shard] for i in range(0, len(entries), clips_per_shard)]
    stem = os.path.splitext(os.path.basename(list_file))[0]
    run.begin(entries)
    jobs = []
    for index, chunk in enumerate(chunks):
      name = f'{stem}-{index:05d}-of-{len(chunks):05d}{shards.SHARD_SUFFIX}'
      if not run.takes(name):
        continue
      if run.entry(name).get('status') != 'done' or not os.path.exists(os.path.join(folder, name)):
        jobs.append((chunk, root, os.path.join(folder, name), scene))
      else:
        jobs.append(None)
    summary = Summary(folder, inputs=len(jobs), part=run.part)
    jobs = [job for job in jobs if job]
    summary.already_done = summary.inputs - len(jobs)
    with _progress(jobs, 'shard', progress) as bar:
      for job, entry in executor(convert_strips, jobs, workers, folder):
        for relative, reason in entry['skipped_strips'].items():
          logging.warning('Skipped strip %s: %s', os.path.join(root, relative), reason)
          summary.rejected[f'strip: {reason}'] += 1
        run.record(os.path.basename(job[2]), entry, summary)
        bar.update()
    run.finish()
    summary.total_clips, summary.seconds = run.manifest['clips'], time.time() - start
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
