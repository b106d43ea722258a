"""prepare_data on Apache Beam: the process pool's per-input work, run by any Beam runner.

  python -m experiments.prepare_data --input=clips --scene=golf --runner=DirectRunner --workers=8
  python -m experiments.prepare_data --input=/mnt/videos --output=/mnt/data --scene=golf \\
      --runner=DataflowRunner --pipeline_options="--project=P --region=R \\
      --temp_location=gs://B/tmp --extra_package=dist/vgan_jax-0.1.0.tar.gz"

The driver (the process running prepare_data) does everything but the per-input work exactly as
the process pool does (`prepare.prepare_videos` and `prepare.prepare_released` with
`executor=BeamExecutor(...)`): it lists the inputs, holds the folder's lock, reads the manifest,
decides what is left and writes the manifest. The pipeline runs the same function per input
(`prepare.process_video`, `prepare.convert_strips`), so its shards are byte for byte the pool's,
and every input it cannot use comes back as a manifest entry with the reason, as in the pool.

Safe under retries: a runner may run an element twice (a retried bundle, a speculative copy of a
slow one). Each input's shard has a name fixed by the input (`prepare.shard_name`) and appears by
an atomic rename of a temporary file of its own, so a second run of an element writes the same
bytes under the same name and no reader ever sees half a shard. Each element's manifest entry is
written the same way, to `<folder>/.beam-results/KEY.json` (KEY: a digest of the job and, for a
file, its size and time), and an element whose entry exists already is not done again. The driver
records the entries in the manifest when the pipeline ends, and removes them. If the pipeline fails
or the driver is killed, what finished stays in `.beam-results/`: the rerun takes those entries
without redoing their inputs, and does the rest.

Workers must see the inputs and the output folder at the driver's paths: a filesystem that all of
them mount (NFS, Filestore, a GCS FUSE mount), not gs:// URLs, and they need this package
(`--extra_package` with an sdist, or `--sdk_container_image`). Apache Beam is an optional
dependency: `pip install 'vgan_jax[beam]'`.
"""

import dataclasses
import hashlib
import json
import logging as python_logging
import os
import shlex
from typing import Callable, Iterator, Sequence

import apache_beam as beam
import cv2
from absl import logging
from apache_beam.options import pipeline_options as beam_options

from vgan_io import files

RESULTS = '.beam-results'  # in the scene folder; '.' keeps it out of every shard glob
RUNNERS = ('DirectRunner', 'DataflowRunner', 'FlinkRunner', 'SparkRunner', 'PrismRunner',
           'PortableRunner')


class PipelineFailed(ValueError):
  """The Beam pipeline stopped before its end; what finished is kept for the rerun."""


def job_key(job: tuple) -> str:
  """A file name for `job`'s result: the same for the same job on every machine and rerun, and
  different once the input file changes (its size and modification time are part of it)."""
  identity = []
  for value in job:
    if isinstance(value, str) and os.path.isfile(value):
      stat = os.stat(value)
      identity.append((value, stat.st_size, stat.st_mtime))
  digest = hashlib.sha1(repr((job, identity)).encode()).hexdigest()
  return f'{digest[:20]}.json'


def _last_line(error: BaseException) -> str:
  """The line of a Beam error that says what went wrong (it wraps a worker's traceback)."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return lines[-1] if lines else type(error).__name__


def _read_result(path: str) -> dict | None:
  """A stored entry, or None when there is none (or only the remains of a damaged write)."""
  try:
    with open(path) as file:
      entry = json.load(file)
  except (OSError, ValueError):
    return None
  return entry if isinstance(entry, dict) and 'status' in entry else None


class PrepareInput(beam.DoFn):
  """(key, job) -> (key, manifest entry): runs `function(*job)` unless an earlier attempt stored
  its entry already, and stores the entry as `results/key` atomically (see the module docstring).
  """

  def __init__(self, function: Callable[..., dict], results: str):
    self.function, self.results = function, results

  def setup(self):
    cv2.setNumThreads(1)  # one input per worker thread, as in the process pool

  def process(self, element: tuple[str, tuple]) -> Iterator[tuple[str, dict]]:
    key, job = element
    path = os.path.join(self.results, key)
    entry = _read_result(path)
    if entry is None:
      entry = self.function(*job)  # OSError only for a full disk: the runner retries or fails
      files.write_json(path, entry)
    yield key, entry


@dataclasses.dataclass
class BeamExecutor:
  """Runs prepare's jobs as a Beam pipeline: `prepare.prepare_videos(..., executor=...)`.

  `runner`: a Beam runner name (RUNNERS); `pipeline_args`: its pipeline options as command-line
  words (`--project=P --region=R ...`), passed through to Beam unchanged. For the DirectRunner,
  with no --direct_running_mode among them, `workers` > 1 runs elements in that many worker
  processes (multi_processing mode), 1 in this process.
  """
  runner: str
  pipeline_args: Sequence[str] = ()

  def __post_init__(self):
    if self.runner not in RUNNERS:
      raise ValueError(f'--runner must be one of {", ".join(RUNNERS)} (Apache Beam runners); got '
                       f'{self.runner!r}.')
    if isinstance(self.pipeline_args, str):
      self.pipeline_args = shlex.split(self.pipeline_args)

  def options(self, workers: int) -> beam_options.PipelineOptions:
    args = [f'--runner={self.runner}', *self.pipeline_args]
    if self.runner == 'DirectRunner' and not any(
        arg.startswith('--direct_running_mode') for arg in args):
      args += ([f'--direct_running_mode=multi_processing', f'--direct_num_workers={workers}']
               if workers > 1 else ['--direct_running_mode=in_memory'])
    return beam_options.PipelineOptions(args)

  def __call__(self, function: Callable[..., dict], jobs: Sequence[tuple], workers: int,
               folder: str) -> Iterator[tuple[tuple, dict]]:
    """(job, entry) for every job, after the pipeline (entries stored by an earlier run first,
    without running them again). When the pipeline fails, the finished jobs' entries are given
    all the same, then PipelineFailed says why."""
    # Beam's own INFO lines (each worker's start and end, every stage) would bury prepare's.
    python_logging.getLogger('apache_beam').setLevel(python_logging.WARNING)
    results = os.path.join(folder, RESULTS)
    os.makedirs(results, exist_ok=True)
    files.remove_partial_files(results)
    keys = {job_key(job): job for job in jobs}
    stored = {key for key in keys if _read_result(os.path.join(results, key))}
    if stored:
      logging.info('Taking the results of %d inputs that an earlier Beam run finished.',
                   len(stored))
    yield from self._collect(keys, stored, results)
    todo = [(key, job) for key, job in keys.items() if key not in stored]
    failure = None
    if todo:
      logging.info('Running %d inputs on Beam (%s).', len(todo), self.runner)
      try:
        with beam.Pipeline(options=self.options(workers)) as pipeline:
          _ = (pipeline
               | 'Inputs' >> beam.Create(todo)
               | 'Spread' >> beam.Reshuffle()  # one element per bundle, across the workers
               | 'Prepare' >> beam.ParDo(PrepareInput(function, results)))
      except Exception as error:  # pylint: disable=broad-except
        failure = error  # Beam wraps a worker's error in its own kinds
    yield from self._collect(keys, {key for key, _ in todo}, results)
    if failure is not None:
      raise PipelineFailed(f'The Beam pipeline ({self.runner}) failed: {_last_line(failure)}; '
                           'the inputs it finished are recorded: rerun the same command for the '
                           'rest.') from failure
    try:
      os.rmdir(results)
    except OSError:  # other parts of a split run still use it
      pass

  @staticmethod
  def _collect(keys: dict, wanted: set, results: str) -> Iterator[tuple[tuple, dict]]:
    """Gives each wanted job's stored entry, removing it once the caller has recorded it."""
    for key in sorted(wanted):
      path = os.path.join(results, key)
      entry = _read_result(path)
      if entry is not None:
        yield keys[key], entry
        os.remove(path)
