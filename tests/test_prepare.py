"""prepare_data end to end: shards and manifest, bad inputs, resuming, a killed run, workers, the
authors' released strips, the command line, and training batches from what it wrote."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import video_files

from data_pipeline import clips, input_pipeline, prepare, shards, synthetic
from vgan_io import files
from vgan_jax import train_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONS = clips.ClipOptions(frames=16, size=64, stride=16)


def _manifest(output, scene):
  with open(os.path.join(output, scene, shards.MANIFEST)) as file:
    return json.load(file)


def _good_videos(folder, count=2, frames=40):
  os.makedirs(folder, exist_ok=True)
  return [video_files.write_test_video(os.path.join(folder, f'shaky{i}.avi'), frames=frames,
                                       height=64, width=64, shaky=True) for i in range(count)]


def test_prepare_writes_shards_and_a_manifest_and_skips_bad_inputs(tmp_path, caplog):
  videos = tmp_path / 'videos'
  good = _good_videos(videos)
  bad = video_files.write_bad_videos(videos)
  (tmp_path / 'no_videos_here').mkdir()
  (tmp_path / 'no_videos_here' / 'readme.txt').write_text('hello')
  inputs = [str(videos), str(videos / 'photo.png'), str(tmp_path / 'no_videos_here'),
            str(tmp_path / 'nowhere' / '*.mp4')]
  output = str(tmp_path / 'data')
  with caplog.at_level(logging.WARNING):
    summary = prepare.prepare_videos(inputs, output, 'beach', OPTIONS, progress=False)

  assert summary.clips_written == summary.total_clips == 4  # 40 frames: 2 clips of 16, twice
  manifest = _manifest(output, 'beach')
  assert manifest['clips'] == 4 and len(manifest['shards']) == 2
  for path in good:
    entry = manifest['inputs'][path]
    assert entry['status'] == 'done' and entry['clips'] == 2
    assert os.path.exists(os.path.join(output, 'beach', entry['shard']))
  for name, reason in bad.items():
    entry = manifest['inputs'][str(videos / name)]
    assert entry['status'] == 'skipped' and entry['clips'] == 0
    assert any(part in entry['reason'] for part in reason.split('|')), (name, entry['reason'])
    lines = [r.getMessage() for r in caplog.records if str(videos / name) in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith('Skipped'), (name, lines)
  assert 'no video files' in manifest['inputs'][str(tmp_path / 'no_videos_here')]['reason']
  assert 'no file matches' in manifest['inputs'][str(tmp_path / 'nowhere' / '*.mp4')]['reason']
  assert sum(summary.skipped.values()) == len(bad) + 2
  assert 'Skipped 11 inputs' in '\n'.join(summary.lines())

  # Each clip: 16 stabilized 64x64 frames with its source, start and stabilization figures.
  records = [r for name in manifest['shards']
             for r in shards.read_shard(os.path.join(output, 'beach', name))]
  assert sorted((r['source'], r['start_frame']) for r in records) == sorted(
      (path, start) for path in good for start in (0, 16))
  assert all(r['video'].shape == (16, 64, 64, 3) and r['scene'] == 'beach' and r['fps'] == 25
             and r['stats']['camera_motion_px'] > 1 for r in records)

  # Training batches from the shards: the config's shape, uint8, scaled to [-1, 1] on device.
  batches, source = input_pipeline.train_batches('beach', output, frames=8, size=16,
                                                 batch_size=3, global_batch_size=3)
  assert '2 shards' in source
  video = next(batches)['video']
  batches.close()
  assert video.shape == (3, 8, 16, 16, 3) and video.dtype == np.uint8
  scaled = np.asarray(train_step.normalize_video(video))
  assert scaled.min() >= -1.0 and scaled.max() <= 1.0 and scaled.std() > 0.1


def test_rerun_skips_done_inputs_and_redoes_changed_ones(tmp_path):
  good = _good_videos(tmp_path / 'videos')
  output = str(tmp_path / 'data')
  first = prepare.prepare_videos([str(tmp_path / 'videos')], output, 'golf', OPTIONS,
                                 progress=False)
  again = prepare.prepare_videos([str(tmp_path / 'videos')], output, 'golf', OPTIONS,
                                 progress=False)
  assert (first.clips_written, again.already_done, again.clips_written) == (4, 2, 0)
  assert again.total_clips == 4
  os.utime(good[0], (time.time() + 10, time.time() + 10))  # edited since
  third = prepare.prepare_videos([str(tmp_path / 'videos')], output, 'golf', OPTIONS,
                                 progress=False)
  assert (third.already_done, third.clips_written, third.total_clips) == (1, 2, 4)
  with pytest.raises(ValueError, match='prepared with other options.*frames: manifest 16, now 8'):
    prepare.prepare_videos([str(tmp_path / 'videos')], output, 'golf',
                           clips.ClipOptions(frames=8, size=64, stride=16), progress=False)


def test_output_that_is_not_writable_and_inputs_without_videos(tmp_path):
  _good_videos(tmp_path / 'videos', count=1)
  (tmp_path / 'a_file').write_text('')
  with pytest.raises(OSError, match='output folder .*a_file/golf is not writable'):
    prepare.prepare_videos([str(tmp_path / 'videos')], str(tmp_path / 'a_file'), 'golf', OPTIONS)
  (tmp_path / 'empty').mkdir()
  with pytest.raises(ValueError, match=r'No video files in .*empty \(a folder with no video'):
    prepare.prepare_videos([str(tmp_path / 'empty')], str(tmp_path / 'out'), 'golf', OPTIONS)


def test_two_workers_write_the_same_shards_as_one(tmp_path):
  _good_videos(tmp_path / 'videos')
  for workers in (1, 2):
    summary = prepare.prepare_videos([str(tmp_path / 'videos')], str(tmp_path / f'w{workers}'),
                                     'golf', OPTIONS, workers=workers, progress=False)
    assert summary.clips_written == 4
  one, two = _manifest(tmp_path / 'w1', 'golf'), _manifest(tmp_path / 'w2', 'golf')
  assert one['shards'] == two['shards']
  for name in one['shards']:
    assert (tmp_path / 'w1' / 'golf' / name).read_bytes() == (
        tmp_path / 'w2' / 'golf' / name).read_bytes()


def _command(*flags):
  return [sys.executable, '-m', 'experiments.prepare_data', '--progress=false', *flags]


def _wait_for_pause(process, marker, seconds=300):
  """Waits until prepare_data stops at the shards.PAUSE_AFTER_PARTIAL hook (`marker` exists).

  It cannot pass that point until the test lets it, so nothing here races it: the time limit only
  turns a hang into a failure.
  """
  deadline = time.monotonic() + seconds
  while not marker.exists():
    assert process.poll() is None, 'prepare_data ended before it reached the pause'
    assert time.monotonic() < deadline, f'prepare_data did not pause within {seconds} s'
    time.sleep(0.01)


def test_killed_prepare_data_leaves_no_half_shard_and_a_rerun_completes(tmp_path):
  """SIGKILL lands while the second shard is half-written, the first done: deterministically, at
  the writer's test pause (shards.PAUSE_AFTER_PARTIAL), not whenever a polling loop sees it."""
  videos = _good_videos(tmp_path / 'videos', count=3, frames=160)
  output = tmp_path / 'data'
  marker = tmp_path / 'paused'
  flags = [f'--input={tmp_path / "videos"}', '--scene=golf', f'--output={output}', '--workers=1',
           '--frames=16', '--size=64', '--stride=16']
  process = subprocess.Popen(_command(*flags), cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             env=dict(os.environ, **{shards.PAUSE_AFTER_PARTIAL: str(marker)}))
  try:
    _wait_for_pause(process, marker)  # one clip into the first shard:
    marker.unlink()  # let it finish that shard ...
    _wait_for_pause(process, marker)  # ... and stop one clip into the second.
    process.send_signal(signal.SIGKILL)
    process.wait()
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
  left = os.listdir(output / 'golf')
  assert any(files.PARTIAL in name for name in left)  # the shard it was writing ...
  (partial,) = [name for name in left if files.PARTIAL in name]
  assert partial.startswith('.' + prepare.shard_name(videos[1]))  # (the second video's) ...
  assert (output / 'golf' / partial).stat().st_size > 0  # ... half-written,
  visible = input_pipeline.find_shards(str(output), 'golf')
  assert 1 <= len(visible) < 3  # is not among the shards training would read,
  assert [os.path.basename(path) for path in visible] == [prepare.shard_name(videos[0])]
  for path in visible:  # and those it would read are whole.
    assert len(list(shards.read_shard(path))) == 10

  summary = prepare.prepare_videos([str(tmp_path / 'videos')], str(output), 'golf', OPTIONS,
                                   progress=False)
  # The manifest listed the first video as done before the second was started.
  assert summary.already_done == len(visible) == 1 and summary.total_clips == 30
  assert not [name for name in os.listdir(output / 'golf') if files.PARTIAL in name]
  rerun_shards = input_pipeline.find_shards(str(output), 'golf')  # one per video, none twice
  assert len(rerun_shards) == 3
  assert all(len(list(shards.read_shard(path))) == 10 for path in rerun_shards)
  manifest = _manifest(output, 'golf')
  assert all(manifest['inputs'][path]['status'] == 'done' for path in videos)


def _alive(pid):
  """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
  try:
    with open(f'/proc/{pid}/stat') as file:
      return file.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except OSError:
    return False


def _children(pid):
  """The pids of the processes whose parent is `pid` (Linux /proc)."""
  children = []
  for name in os.listdir('/proc'):
    try:
      with open(f'/proc/{name}/stat') as file:
        fields = file.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
      continue
    if name.isdigit() and int(fields[1]) == pid:
      children.append(int(name))
  return children


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='PR_SET_PDEATHSIG is Linux\'s')
def test_workers_end_with_a_killed_prepare_data(tmp_path):
  """SIGKILL to the main process while its 2 workers write (one held at the test pause): the
  workers end with it instead of writing on as orphans."""
  _good_videos(tmp_path / 'videos', count=4, frames=160)
  marker = tmp_path / 'paused'
  flags = [f'--input={tmp_path / "videos"}', '--scene=golf', f'--output={tmp_path / "data"}',
           '--workers=2', '--frames=16', '--size=64', '--stride=16']
  process = subprocess.Popen(_command(*flags), cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             env=dict(os.environ, **{shards.PAUSE_AFTER_PARTIAL: str(marker)}))
  try:
    _wait_for_pause(process, marker)
    children = _children(process.pid)
    assert len(children) >= 2  # the workers (and multiprocessing's resource tracker)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in children):
      assert time.monotonic() < deadline, 'workers outlived the killed prepare_data'
      time.sleep(0.05)
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()


def _write_strips(root, count, frames=8, size=32):
  """Released-style strips root/golf/NAME.jpg and their frames."""
  os.makedirs(os.path.join(root, 'golf'), exist_ok=True)
  names, videos = [], []
  for index in range(count):
    video = synthetic.render_clip('golf', index, frames=frames, size=size)
    name = f'golf/{index:03d}.jpg'
    with open(os.path.join(root, name), 'wb') as file:
      file.write(shards.encode_strip(video, quality=90))
    names.append(name)
    videos.append(video)
  return names, videos


def test_released_strips_convert_without_reencoding(tmp_path):
  root = tmp_path / 'frames-stable-many'
  names, videos = _write_strips(root, 5)
  (root / 'golf' / 'broken.jpg').write_bytes(b'not a jpeg')
  list_file = tmp_path / 'golf.txt'
  list_file.write_text(''.join(f'{name} {i % 2}\n' for i, name in enumerate(names)) +
                       'golf/broken.jpg\ngolf/missing.jpg 1\n')
  summary = prepare.prepare_released(str(list_file), str(root), str(tmp_path / 'data'), 'golf',
                                     clips_per_shard=3, progress=False)
  assert summary.total_clips == 5 and summary.inputs == 3  # 7 lines in shards of 3
  assert summary.rejected == {'strip: not a decodable JPEG': 1,
                              'strip: No such file or directory': 1}
  paths = input_pipeline.find_shards(str(tmp_path / 'data'), 'golf')
  assert [os.path.basename(p) for p in paths] == [
      'golf-00000-of-00003.tfrecord', 'golf-00001-of-00003.tfrecord']
  raw = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(paths)]
  for example, name, index in zip(raw, names, range(5)):
    feature = example.features.feature
    assert feature[shards.CLIP_JPEG].bytes_list.value[0] == (root / name).read_bytes()
    assert feature['clip/label'].int64_list.value[0] == index % 2
    assert feature['clip/source'].bytes_list.value[0].decode() == name
  manifest = _manifest(tmp_path / 'data', 'golf')
  assert 'golf/broken.jpg' in manifest['inputs']['golf-00001-of-00003.tfrecord'][
      'skipped_strips']

  # Training reads them as any other shards: frames scaled (not cropped) to the config's size.
  batches, _ = input_pipeline.train_batches('golf', str(tmp_path / 'data'), frames=8, size=16,
                                            batch_size=5, global_batch_size=5, shuffle_buffer=1)
  video = next(batches)['video']
  batches.close()
  assert video.shape == (5, 8, 16, 16, 3)
  expected = {v.reshape(8, 16, 2, 16, 2, 3).mean(axis=(2, 4)).mean().round() for v in videos}
  assert {video[i].astype(float).mean().round() for i in range(5)} <= {
      e + d for e in expected for d in (-2, -1, 0, 1, 2)}

  list_file.write_text('golf/000.jpg 1 extra\n')
  with pytest.raises(ValueError, match=r'golf.txt:1: expected "path \[integer label\]"'):
    prepare.prepare_released(str(list_file), str(root), str(tmp_path / 'other'), 'golf')


def test_command_line_demo_and_a_bad_flag(tmp_path):
  result = subprocess.run(
      _command(f'--output={tmp_path}', '--demo_videos=1', '--workers=1', '--frames=16',
               '--stride=32', '--features=flow'),
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'wrote 3 clips' in result.stdout  # 100 frames: 16-frame clips every 32
  assert os.listdir(tmp_path / 'demo_videos' / 'beach') == ['beach_0_000.avi']
  assert len(input_pipeline.find_shards(str(tmp_path), 'beach')) == 1

  result = subprocess.run(_command(f'--input={tmp_path}', f'--output={tmp_path}'), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      'prepare_data: --scene is required with --input or --from_list: it names the data (the '
      'folder under --output that `train --scene` reads).')


def test_a_second_prepare_data_on_the_same_folder_is_refused_at_once(tmp_path, lock_holder):
  """It would remove the first one's partial files and overwrite its manifest."""
  _good_videos(tmp_path / 'videos', count=1)
  pid = lock_holder(tmp_path / 'data' / 'golf', 'prepare_data run')
  with pytest.raises(files.FolderInUseError, match=r'data/golf is in use by another '
                                                   rf'prepare_data run \(pid {pid},'):
    prepare.prepare_videos([str(tmp_path / 'videos')], str(tmp_path / 'data'), 'golf', OPTIONS,
                           progress=False)
  lock_holder.release()
  summary = prepare.prepare_videos([str(tmp_path / 'videos')], str(tmp_path / 'data'), 'golf',
                                   OPTIONS, progress=False)
  assert summary.total_clips > 0


def test_an_hdr_video_is_kept_with_its_warning_in_the_manifest(tmp_path):
  (tmp_path / 'videos').mkdir()
  path = video_files.write_timed_video(tmp_path / 'videos' / 'hlg.mp4', [i / 25 for i in range(20)],
                                       size=64, color_trc=18, color_primaries=9)
  prepare.prepare_videos([path], str(tmp_path / 'data'), 'golf',
                         clips.ClipOptions(frames=16, size=32, stride=16, stabilize=False),
                         progress=False)
  entry = _manifest(tmp_path / 'data', 'golf')['inputs'][path]
  assert entry['status'] == 'done' and entry['clips'] == 1
  assert [warning[:10] for warning in entry['warnings']] == ['HDR video ']


def test_a_folder_scan_finds_animated_images_and_leaves_still_ones(tmp_path):
  """The scan passes each file's full path: an animated GIF (decided by opening it) is a video,
  a still GIF and a JPEG are not."""
  video_files.write_animation(tmp_path / 'nested' / 'loop.gif', count=40, delay_ms=40)
  video_files.write_animation(tmp_path / 'still.gif', count=1)
  video_files.write_test_video(tmp_path / 'clip.avi')
  (tmp_path / 'photo.jpg').write_bytes(b'not even an image')
  videos, problems = prepare.find_videos([str(tmp_path)])
  assert [os.path.relpath(path, tmp_path) for path in videos] == ['clip.avi', 'nested/loop.gif']
  assert not problems


# A split run (prepare.Part: --num_shards=K --shard_index=I), tiny unstabilized videos.
SPLIT_OPTIONS = clips.ClipOptions(frames=8, size=32, stride=8, stabilize=False)


def _videos_in_every_part(folder, count, per_part=1):
  """Small videos (2 clips each) named so that each of `count` parts takes `per_part` of them: the
  assignment hashes the absolute path, which pytest's tmp_path changes from run to run."""
  os.makedirs(folder, exist_ok=True)
  chosen, index = {part: [] for part in range(count)}, 0
  while any(len(paths) < per_part for paths in chosen.values()):
    path = os.path.join(str(folder), f'v{index}.avi')
    index += 1
    paths = chosen[prepare.part_of(prepare.shard_name(path), count)]
    if len(paths) < per_part:
      paths.append(video_files.write_test_video(path, frames=20, height=32, width=32))
  return chosen


def _folder_bytes(folder):
  """{name: bytes} of every file in `folder`, hidden ones (the lock) included."""
  return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def _split(inputs, output, count, order=None, **kwargs):
  return [prepare.prepare_videos(inputs, str(output), 'golf', SPLIT_OPTIONS, progress=False,
                                 part=prepare.Part(index, count), **kwargs)
          for index in (order or range(count))]


def test_part_assignment_is_a_stable_hash_of_the_shard_name():
  # SHA-1 of the name: the same on every machine and in every Python (no salted hash()).
  assert [prepare.part_of(f'clip-{i}.tfrecord', 16) for i in range(6)] == [1, 2, 2, 1, 7, 4]
  assert prepare.shard_name('/data/videos/a b.mp4') == 'a_b-f9b7b2952d.tfrecord'
  with pytest.raises(ValueError, match=r'^--num_shards \(the number of parts .*got 0\.$'):
    prepare.Part(0, 0)
  for index in (-1, 3):
    with pytest.raises(ValueError, match=rf'^--shard_index must be in \[0, 3\) for '
                                         rf'--num_shards=3 \(the part .*\); got {index}\.$'):
      prepare.Part(index, 3)


def test_a_split_run_merged_is_byte_identical_to_one_run(tmp_path):
  """3 parts, run in any order, each leaving the others' partial files alone, merged: every file
  of the folder (shards, manifest.json, the lock) has the same name and bytes as after one
  unsplit run over all inputs; so has a folder whose parts an unsplit run absorbed."""
  videos = tmp_path / 'videos'
  chosen = _videos_in_every_part(videos, 3)
  (videos / 'notes.mp4').write_text('not a video\n' * 10)
  inputs = [str(videos), str(tmp_path / 'nowhere' / '*.mp4')]
  one = prepare.prepare_videos(inputs, str(tmp_path / 'one'), 'golf', SPLIT_OPTIONS,
                               progress=False)
  assert one.total_clips == 6 and sum(one.skipped.values()) == 2
  expected = _folder_bytes(tmp_path / 'one' / 'golf')

  folder = tmp_path / 'split' / 'golf'
  (first,) = _split(inputs, tmp_path / 'split', 3, order=[2])
  assert first.part == prepare.Part(2, 3) and 'Part 2 of 3' in first.lines()[0]
  assert '--merge --output=' in first.lines()[1]
  # What killed runs of parts 0 and 1 would leave; part 1 clears only its own.
  stale = {part: f'.{prepare.shard_name(chosen[part][0])}.abcd1234{files.PARTIAL}'
           for part in (0, 1)}
  for name in stale.values():
    (folder / name).write_bytes(b'half a shard')
  _split(inputs, tmp_path / 'split', 3, order=[1])
  assert (folder / stale[0]).exists() and not (folder / stale[1]).exists()
  with pytest.raises(ValueError, match=r'holds the parts of a split prepare_data run, not merged '
                                       r'yet \(2 part manifests .*--merge --output='):
    input_pipeline.check_source('golf', str(tmp_path / 'split'))
  with pytest.raises(ValueError, match=r'Cannot merge the 3 parts in .*golf yet: part 0 has not '
                                       r'run: run them \(the same command with --shard_index=N'):
    prepare.merge_parts(str(tmp_path / 'split'), 'golf')
  (last,) = _split(inputs, tmp_path / 'split', 3, order=[0])
  assert not (folder / stale[0]).exists()
  part_file = folder / prepare.Part(0, 3).manifest
  before = part_file.read_bytes()
  (again,) = _split(inputs, tmp_path / 'split', 3, order=[0])  # a rerun of a finished part
  assert again.already_done == again.inputs == last.inputs and again.clips_written == 0
  assert part_file.read_bytes() == before

  merged = prepare.merge_parts(str(tmp_path / 'split'), 'golf')
  assert merged.lines()[0].startswith('Merged 3 parts into ')
  assert merged.total_clips == 6 and merged.skipped == one.skipped
  assert _folder_bytes(folder) == expected  # names and bytes of every file, manifest included
  input_pipeline.check_source('golf', str(tmp_path / 'split'))
  assert prepare.merge_parts(str(tmp_path / 'split'), 'golf').lines()[0].startswith(
      'Nothing to merge')  # a second merge (a rerun dependent job) changes nothing
  assert _folder_bytes(folder) == expected

  # The next unsplit run merges what parts left, finished or not, and does the rest.
  (done,) = _split(inputs, tmp_path / 'absorbed', 3, order=[1])
  rest = prepare.prepare_videos(inputs, str(tmp_path / 'absorbed'), 'golf', SPLIT_OPTIONS,
                                progress=False)
  assert (rest.already_done, rest.clips_written) == (done.inputs, 6 - done.total_clips)
  assert _folder_bytes(tmp_path / 'absorbed' / 'golf') == expected


def test_released_strips_split_and_merged_are_byte_identical_to_one_run(tmp_path):
  names, _ = _write_strips(tmp_path / 'root', 6, frames=4, size=16)
  list_file = tmp_path / 'golf.txt'
  list_file.write_text(''.join(f'{name}\n' for name in names))
  kwargs = dict(clips_per_shard=1, progress=False)
  prepare.prepare_released(str(list_file), str(tmp_path / 'root'), str(tmp_path / 'one'), 'golf',
                           **kwargs)
  summaries = [prepare.prepare_released(str(list_file), str(tmp_path / 'root'),
                                        str(tmp_path / 'split'), 'golf',
                                        part=prepare.Part(index, 2), **kwargs)
               for index in (1, 0)]
  assert sum(summary.inputs for summary in summaries) == 6
  prepare.merge_parts(str(tmp_path / 'split'), 'golf')
  assert _folder_bytes(tmp_path / 'split' / 'golf') == _folder_bytes(tmp_path / 'one' / 'golf')


def test_split_runs_share_the_folder_and_refuse_what_does_not_fit(tmp_path):
  chosen = _videos_in_every_part(tmp_path / 'videos', 2)
  inputs = [str(tmp_path / 'videos')]
  output = tmp_path / 'data'
  folder = output / 'golf'
  part0 = prepare.Part(0, 2)

  # Part 0 at work (its locks held, as a run on another machine holds them): part 1 goes ahead;
  # a second part 0, an unsplit run and a merge are refused at once, naming it.
  with files.shared_lock(str(folder), 'prepare_data run'), \
      files.exclusive_lock(str(folder), 'prepare_data part 0 of 2', name=part0.lock):
    _split(inputs, output, 2, order=[1])
    with pytest.raises(files.FolderInUseError,
                       match=rf'golf is in use by another prepare_data part 0 of 2 \(pid '
                             rf'{os.getpid()},'):
      _split(inputs, output, 2, order=[0])
    for attempt in (lambda: prepare.prepare_videos(inputs, str(output), 'golf', SPLIT_OPTIONS,
                                                   progress=False),
                    lambda: prepare.merge_parts(str(output), 'golf')):
      with pytest.raises(files.FolderInUseError,
                         match=r'golf is in use by parts of a split prepare_data run \(part 0 '
                               rf'of 2: pid {os.getpid()}, started .*\); wait for them to end'):
        attempt()
  # ... while an unsplit run is at work, a part is refused.
  with files.exclusive_lock(str(folder), 'prepare_data run'):
    with pytest.raises(files.FolderInUseError, match=r'in use by another prepare_data run \(pid'):
      _split(inputs, output, 2, order=[0])

  # A part of another split, or with other options, while these parts are not merged.
  with pytest.raises(ValueError, match=r'holds parts of a split into 2 parts \(manifest\.part-'
                                       r'00001-of-00002\.json\) that are not merged yet'):
    _split(inputs, output, 3, order=[0])
  with pytest.raises(ValueError, match=r'manifest\.part-00001-of-00002\.json, a part of a split '
                                       r'run, was prepared with other options \(quality: '
                                       r'manifest 95, now 80\)'):
    _split(inputs, output, 2, order=[0], quality=80)

  # Merging: an unfinished part, parts of different splits, other options, other inputs.
  _split(chosen[0], output, 2, order=[0])  # given only some of the inputs: not part 1's
  part_file = folder / part0.manifest
  good = json.loads(part_file.read_text())
  for change, message in [
      (dict(part={**good['part'], 'complete': False}),
       r'Cannot merge the 2 parts in .* yet: part 0 was stopped before the end: run them'),
      (dict(options={**good['options'], 'quality': 80}),
       r'Cannot merge manifest\.part-00001-of-00002\.json into .*golf: it was prepared with '
       r'other options than manifest\.part-00000-of-00002\.json \(quality: '
       r'manifest\.part-00001-of-00002\.json 95, manifest\.part-00000-of-00002\.json 80\); '
       r'rerun that part'),
      ({}, r'Cannot merge the 2 parts in .*golf: they were given different inputs \(part 0 / '
           r'part 1\); rerun every part with the same --input')]:
    files.write_json(str(part_file), {**good, **change})
    with pytest.raises(ValueError, match=message):
      prepare.merge_parts(str(output), 'golf')
  (folder / prepare.Part(2, 3).manifest).write_text(part_file.read_text())
  with pytest.raises(ValueError, match=r'Cannot merge the parts in .*golf: they come from splits '
                                       r'into different numbers of parts \(manifest\.part-00000-'
                                       r'of-00002\.json \(2 parts\), manifest\.part-00002-of-'
                                       r'00003\.json \(3 parts\)\)'):
    prepare.merge_parts(str(output), 'golf')
  (folder / prepare.Part(2, 3).manifest).unlink()
  _split(inputs, output, 2, order=[0])  # part 0 again, with every input: now they merge
  assert prepare.merge_parts(str(output), 'golf').total_clips == 4
  assert sorted(os.listdir(folder)) == sorted(
      [files.LOCK, shards.MANIFEST] + [prepare.shard_name(p) for p in chosen[0] + chosen[1]])
  with pytest.raises(ValueError, match=r'Nothing to merge in .*nowhere: it holds no part '
                                       r'manifests'):
    (output / 'nowhere').mkdir()
    prepare.merge_parts(str(output), 'nowhere')


def test_command_line_part_merge_and_a_bad_index(tmp_path):
  """--num_shards/--shard_index reach the library (part 0 here; part 1 in-process), --merge
  combines them; a bad index is one line."""
  chosen = _videos_in_every_part(tmp_path / 'videos', 2)
  flags = [f'--input={tmp_path / "videos"}', '--scene=golf', f'--output={tmp_path / "data"}',
           '--workers=1', '--frames=8', '--size=32', '--stride=8', '--nostabilize']
  result = subprocess.run(_command(*flags, '--num_shards=2', '--shard_index=0'), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.startswith('Part 0 of 2: 1 inputs (0 already done): wrote 2 clips')
  assert os.listdir(tmp_path / 'data' / 'golf').count(prepare.shard_name(chosen[0][0])) == 1
  _split([str(tmp_path / 'videos')], tmp_path / 'data', 2, order=[1])
  result = subprocess.run(_command('--merge', '--scene=golf', f'--output={tmp_path / "data"}'),
                          cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.startswith('Merged 2 parts into ') and 'holds 4 clips' in result.stdout
  assert not shards.part_manifests(str(tmp_path / 'data' / 'golf'))

  result = subprocess.run(_command(*flags, '--num_shards=4', '--shard_index=4'), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      'prepare_data: --shard_index must be in [0, 4) for --num_shards=4 (the part this process '
      'takes); got 4.')
