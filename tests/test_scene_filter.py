"""prepare_data --scene_filter: a user's scene classifier (a stub here, by mean blue) keeps the
clips of the wanted scene; scores in shards and manifest, bad flags, a failing classifier."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from data_pipeline import clips, prepare, scene_filter, shards
from vgan_io import media

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STUB = textwrap.dedent('''
    import numpy as np

    def classify(frames):
      """'beach' when blue dominates: its probability is the blue share of the frame."""
      rgb = frames.reshape(len(frames), -1, 3).mean(axis=1) + 1e-6
      blue = rgb[:, 2] / rgb.sum(axis=1)
      return [{'beach': float(b), 'golf_course': float(1 - b)} for b in blue]

    def broken(frames):
      raise RuntimeError('model not loaded')

    def wrong_shape(frames):
      return np.zeros(3)
''')


@pytest.fixture
def stub(tmp_path, monkeypatch):
  folder = tmp_path / 'stub'
  folder.mkdir()
  (folder / 'stub_places.py').write_text(STUB)
  monkeypatch.syspath_prepend(str(folder))
  return str(folder)


def _video(path, colours, frames_each=8, side=32):
  """A video of solid colours with some noise, `frames_each` frames of each."""
  rng = np.random.default_rng(0)
  frames = np.concatenate([np.broadcast_to(np.array(c, np.uint8), (frames_each, side, side, 3))
                           for c in colours]).astype(np.int16)
  frames = np.clip(frames + rng.integers(-10, 10, frames.shape), 0, 255).astype(np.uint8)
  media.write_video(str(path), frames, 25.0)
  return str(path)


BLUE, RED = (20, 40, 220), (220, 30, 20)


def _options(classifier='stub_places:classify', threshold=0.5):
  return clips.ClipOptions(frames=8, size=32, stride=8, stabilize=False,
                           scene_filter=scene_filter.SceneFilter(classifier, ('beach',),
                                                                 threshold))


def test_scene_filter_keeps_the_wanted_clips_and_records_its_decisions(tmp_path, stub):
  videos = tmp_path / 'videos'
  videos.mkdir()
  mixed = _video(videos / 'mixed.avi', [BLUE, BLUE, RED, RED])
  red = _video(videos / 'red.avi', [RED, RED])
  output = str(tmp_path / 'data')
  summary = prepare.prepare_videos([str(videos)], output, 'beach', _options(), progress=False)

  assert summary.total_clips == 2
  assert summary.rejected['clip not the wanted scene'] == 4
  with open(os.path.join(output, 'beach', shards.MANIFEST)) as file:
    manifest = json.load(file)
  assert manifest['options']['scene_filter'] == {
      'classifier': 'stub_places:classify', 'categories': ['beach'], 'threshold': 0.5,
      'sampled_frames': 4}
  entry = manifest['inputs'][mixed]
  assert entry['status'] == 'done' and entry['clips'] == 2
  assert entry['rejected'] == {'clip not the wanted scene': 2}
  decisions = entry['scene_filter']
  assert (decisions['kept'], decisions['rejected']) == (2, 2)
  assert [start for start, _ in decisions['kept_scores']] == [0, 8]
  assert [start for start, _ in decisions['rejected_scores']] == [16, 24]
  assert all(score > 0.7 for _, score in decisions['kept_scores'])
  assert all(score < 0.2 for _, score in decisions['rejected_scores'])
  entry = manifest['inputs'][red]
  assert entry['status'] == 'skipped' and 'clip not the wanted scene: 2' in entry['reason']
  assert entry['scene_filter']['kept'] == 0 and entry['scene_filter']['rejected'] == 2

  records = list(shards.read_shard(os.path.join(output, 'beach', manifest['shards'] and
                                                manifest['inputs'][mixed]['shard'])))
  assert [r['start_frame'] for r in records] == [0, 8]
  scores = dict(decisions['kept_scores'])
  for record in records:
    assert record['stats']['scene_score'] == pytest.approx(scores[record['start_frame']], abs=1e-3)

  # Other filter settings are other options: a rerun into the same folder is refused.
  with pytest.raises(ValueError, match='prepared with other options.*scene_filter'):
    prepare.prepare_videos([str(videos)], output, 'beach', _options(threshold=0.9),
                           progress=False)
  # Without a filter the options record is as before (no scene_filter key).
  assert 'scene_filter' not in clips.ClipOptions().as_dict()


def test_a_failing_classifier_skips_its_video_with_the_reason(tmp_path, stub):
  video = _video(tmp_path / 'blue.avi', [BLUE, BLUE])
  for function, reason in (('broken', 'failed: RuntimeError: model not loaded'),
                           ('wrong_shape', 'returned an array float64 [3], not 4')):
    output = str(tmp_path / function)
    summary = prepare.prepare_videos([video], output, 'beach',
                                     _options(f'stub_places:{function}'), progress=False)
    assert summary.total_clips == 0
    (reason_seen,) = summary.skipped
    assert f'scene classifier stub_places:{function} {reason}' in reason_seen
    assert not [n for n in os.listdir(os.path.join(output, 'beach')) if n.endswith('.tfrecord')]


def test_a_category_the_classifier_never_names_is_a_warning(tmp_path, stub):
  video = _video(tmp_path / 'blue.avi', [BLUE, BLUE])
  options = clips.ClipOptions(frames=8, size=32, stride=8, stabilize=False,
                              scene_filter=scene_filter.SceneFilter('stub_places:classify',
                                                                    ('beach', 'beech')))
  log = clips.VideoLog()
  assert len(list(clips.iter_clips(video, options, log))) == 2  # 'beach' alone passes
  assert log.warnings == ["the scene classifier never named beech in this video's clips: check "
                          '--scene_categories against its category names']


def test_bad_scene_filter_values():
  with pytest.raises(ValueError, match=r'--scene_threshold must be in \(0, 1\]; got 1.5'):
    scene_filter.SceneFilter('m:f', ('beach',), 1.5)
  with pytest.raises(ValueError, match='--scene_categories must name at least one'):
    scene_filter.SceneFilter('m:f', ())
  with pytest.raises(ValueError, match='must be module:function .* needs PyTorch'):
    scene_filter.SceneFilter('weights/resnet18_places365.pth.tar', ('beach',))
  with pytest.raises(ValueError, match='has no function'):
    scene_filter.SceneFilter('json:no_such_function', ('beach',)).load()


def _cli(*flags, env=None):
  result = subprocess.run([sys.executable, '-m', 'experiments.prepare_data', '--progress=false',
                           *flags], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=env)
  return result.returncode, result.stderr.strip().splitlines()[-1]


def test_command_line_scene_filter_and_a_module_that_cannot_be_imported(tmp_path, stub):
  videos = tmp_path / 'videos'
  videos.mkdir()
  _video(videos / 'mixed.avi', [BLUE, RED])
  _video(videos / 'red.avi', [RED])
  common = [f'--input={videos}', '--scene=beach', f'--output={tmp_path / "data"}',
            '--frames=8', '--size=32', '--stride=8', '--nostabilize']
  env = {**os.environ, 'PYTHONPATH': stub}
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.prepare_data', '--progress=false', *common,
       '--workers=2', '--scene_filter=stub_places:classify', '--scene_categories=beach',
       '--scene_threshold=0.5'], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  # Two videos, two workers: each spawned worker imports the classifier by its name.
  assert 'wrote 1 clips' in result.stdout and '2 x clip not the wanted scene' in result.stdout

  assert _cli(*common, '--scene_filter=no_such_module:classify', '--scene_categories=beach',
              env=env) == (1, "prepare_data: --scene_filter=no_such_module:classify: cannot "
                              "import module 'no_such_module' (ModuleNotFoundError: No module "
                              "named 'no_such_module').")
