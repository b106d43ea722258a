"""prepare_data on Apache Beam: the per-video transform under Beam's TestPipeline (entries and
shards as the plain function makes them, a retried element done once), a failed pipeline that
keeps what finished, a killed driver whose finished results the rerun takes, and one run of the
command on the DirectRunner in multi-processing mode, byte for byte the process pool's folder."""

import json
import os
import subprocess
import sys

import pytest
import video_files

beam = pytest.importorskip('apache_beam', reason='Apache Beam is the optional extra '
                                                   "vgan_jax[beam] (make test installs it)")
from apache_beam.testing import test_pipeline, util  # pylint: disable=g-import-not-at-top

from data_pipeline import beam_prepare, clips, prepare  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONS = clips.ClipOptions(frames=8, size=32, stride=8, stabilize=False)


def _videos(folder, count=2):
  os.makedirs(folder, exist_ok=True)
  paths = [video_files.write_test_video(os.path.join(folder, f'clip{i}.avi'), frames=16 + 8 * i,
                                        height=32, width=32) for i in range(count)]
  with open(os.path.join(folder, 'notes.mp4'), 'w') as file:
    file.write('not a video\n' * 10)
  return paths + [os.path.join(folder, 'notes.mp4')]


def _folder_bytes(folder):
  """{name: bytes} of every file in `folder`, hidden ones (the lock) included."""
  return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def counted_process_video(counter, *job):
  """prepare.process_video that first notes its video in the folder `counter` (a folder, not a
  file: a file's size is part of a job's key)."""
  os.makedirs(counter, exist_ok=True)
  with open(os.path.join(counter, 'calls'), 'a') as file:
    file.write(f'{job[0]}\n')
  return prepare.process_video(*job)


def _calls(counter):
  path = os.path.join(counter, 'calls')
  return open(path).read().split() if os.path.exists(path) else []


def test_the_per_video_transform_under_test_pipeline(tmp_path):
  """Each (key, job) -> (key, the entry process_video gives), its shard the same bytes; the same
  element twice (a retried bundle) runs once and gives the same entry; a bad file an entry with
  its reason."""
  videos = _videos(tmp_path / 'videos')
  direct = tmp_path / 'direct'
  direct.mkdir()
  expected = {path: prepare.process_video(path, str(direct), 'golf', OPTIONS, 95)
              for path in videos}
  folder = tmp_path / 'beam'
  results = folder / beam_prepare.RESULTS
  results.mkdir(parents=True)
  counter = str(tmp_path / 'calls')
  jobs = [(counter, path, str(folder), 'golf', OPTIONS, 95) for path in videos]
  elements = [(beam_prepare.job_key(job), job) for job in jobs]
  with test_pipeline.TestPipeline() as pipeline:
    output = (pipeline
              | beam.Create(elements[:1] + elements)  # the first one twice, one after the other
              | beam.ParDo(beam_prepare.PrepareInput(counted_process_video, str(results))))
    util.assert_that(output, util.equal_to(
        [(elements[0][0], expected[videos[0]])] +
        [(key, expected[job[1]]) for key, job in elements]))
  assert sorted(_calls(counter)) == sorted(videos)  # the repeated element ran once
  assert expected[videos[0]]['status'] == 'done' and expected[videos[0]]['clips'] == 2
  assert expected[videos[2]]['status'] == 'skipped' and 'cannot be opened as a video' in \
      expected[videos[2]]['reason']
  shards = sorted(name for name in os.listdir(direct) if not name.startswith('.'))
  assert len(shards) == 2 and shards == sorted(
      name for name in os.listdir(folder) if not name.startswith('.'))
  for name in shards:
    assert (direct / name).read_bytes() == (folder / name).read_bytes()
  assert sorted(os.listdir(results)) == sorted(key for key, _ in elements)


_PROCESS_VIDEO = prepare.process_video  # the real one, while the test replaces it


def _failing_process_video(source, *rest):
  if source.endswith('clip1.avi'):
    raise OSError(28, 'No space left on device', source)
  return _PROCESS_VIDEO(source, *rest)


def test_a_failed_pipeline_keeps_what_finished_and_a_killed_driver_loses_nothing(
    tmp_path, monkeypatch):
  """A worker error stops the pipeline with one line; the inputs it finished are in the
  manifest, and the rerun does only the rest. A driver killed before recording the results:
  the rerun takes them from .beam-results without running their inputs again. Both end with the
  folder of one process-pool run."""
  videos = _videos(tmp_path / 'videos')
  inputs = [str(tmp_path / 'videos')]
  prepare.prepare_videos(inputs, str(tmp_path / 'pool'), 'golf', OPTIONS, progress=False)
  expected = _folder_bytes(tmp_path / 'pool' / 'golf')
  executor = beam_prepare.BeamExecutor('DirectRunner')  # workers=1: in this process

  monkeypatch.setattr(prepare, 'process_video', _failing_process_video)
  with pytest.raises(beam_prepare.PipelineFailed,
                     match=r'The Beam pipeline \(DirectRunner\) failed: .*No space left on device'
                           r'.*the inputs it finished are recorded: rerun'):
    prepare.prepare_videos(inputs, str(tmp_path / 'beam'), 'golf', OPTIONS, progress=False,
                           executor=executor)
  monkeypatch.undo()
  # What finished before the failure (Beam's order decides how much) is in the manifest.
  with open(tmp_path / 'beam' / 'golf' / 'manifest.json') as file:
    recorded = json.load(file)['inputs']
  assert videos[1] not in recorded and set(recorded) <= set(videos)
  rerun = prepare.prepare_videos(inputs, str(tmp_path / 'beam'), 'golf', OPTIONS,
                                 progress=False, executor=executor)
  assert rerun.already_done == len(recorded)  # the rest, clip1.avi (3 clips) among them, again
  assert rerun.clips_written == 5 - sum(entry['clips'] for entry in recorded.values())
  assert _folder_bytes(tmp_path / 'beam' / 'golf') == expected

  # A driver killed after the pipeline, before it recorded anything: results stay stored.
  folder = tmp_path / 'killed'
  folder.mkdir()
  counter = str(tmp_path / 'calls')
  jobs = [(counter, path, str(folder), 'golf', OPTIONS, 95) for path in videos]
  results = executor(counted_process_video, jobs, 1, str(folder))
  first_job, first_entry = next(results)
  results.close()  # the driver dies here
  assert len(_calls(counter)) == 3 and len(os.listdir(folder / beam_prepare.RESULTS)) == 3
  again = dict((job[1], entry) for job, entry in executor(counted_process_video, jobs, 1,
                                                          str(folder)))
  assert len(_calls(counter)) == 3  # nothing ran again
  assert again[first_job[1]] == first_entry and set(again) == set(videos)
  assert not (folder / beam_prepare.RESULTS).exists()  # all recorded: the folder is removed


def test_command_line_direct_runner_in_processes_is_byte_identical_to_the_pool(tmp_path):
  """prepare_data --runner=DirectRunner --workers=2 (2 worker processes) and the process pool of
  2 on the same inputs: the same files with the same bytes, manifest.json and the lock included.
  A runner Beam has not and --pipeline_options without --runner: one line each."""
  _videos(tmp_path / 'videos', count=3)
  common = [f'--input={tmp_path / "videos"}', '--scene=golf', '--frames=8', '--size=32',
            '--stride=8', '--nostabilize', '--workers=2', '--progress=false']
  prepare.prepare_videos([str(tmp_path / 'videos')], str(tmp_path / 'pool'), 'golf', OPTIONS,
                         workers=2, progress=False)
  result = subprocess.run([sys.executable, '-m', 'experiments.prepare_data', *common,
                           f'--output={tmp_path / "beam"}', '--runner=DirectRunner'],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'wrote 9 clips' in result.stdout and 'Skipped 1 inputs' in result.stdout
  assert _folder_bytes(tmp_path / 'beam' / 'golf') == _folder_bytes(tmp_path / 'pool' / 'golf')

  with pytest.raises(ValueError, match=r'--runner must be one of DirectRunner, DataflowRunner'):
    beam_prepare.BeamExecutor('DirectRuner')
  executor = beam_prepare.BeamExecutor('FlinkRunner', '--flink_master=host:8081 --parallelism=4')
  assert executor.options(8).get_all_options()['flink_master'] == 'host:8081'
  assert executor.options(8).get_all_options()['parallelism'] == 4
  direct = beam_prepare.BeamExecutor('DirectRunner').options(3).get_all_options()
  assert (direct['direct_running_mode'], direct['direct_num_workers']) == ('multi_processing', 3)
