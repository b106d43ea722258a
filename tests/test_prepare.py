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
