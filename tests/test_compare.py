"""The generator comparison (experiments/model_comparison.py, compare_models.py): its motion
statistics by hand, its summary over seeds, and the quick mode end to end with a resume."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import model_comparison, tasks
from vgan_jax import configs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(REPO, '.pytest_cache', 'xla')


def test_motion_statistics_by_hand():
  # One clip, 2 frames of 1x2 pixels, 1 channel: pixel A flips -1 -> 1 (variance over time 1),
  # pixel B stays 0 (variance 0).
  video = np.array([[[[[-1.0], [0.0]]], [[[1.0], [0.0]]]]])  # [1, 2, 1, 2, 1]
  assert model_comparison.motion_statistics(dict(video=video, mask=None)) == dict(
      temporal_variance=0.5, mask_mean=None, background_variance=None)
  # The mask gives A to the background (m = 0) and B to the foreground (m = 1): the background
  # is A alone, which moves with variance 1.
  mask = np.array([[[[[0.0], [1.0]]], [[[0.0], [1.0]]]]])
  stats = model_comparison.motion_statistics(dict(video=video, mask=mask))
  assert stats['mask_mean'] == 0.5 and stats['background_variance'] == pytest.approx(1.0)
  # The other way round the background is B, which is still; half-and-half weighs them equally.
  assert model_comparison.motion_statistics(dict(video=video, mask=1 - mask))[
      'background_variance'] == pytest.approx(0.0)
  half = model_comparison.motion_statistics(dict(video=video, mask=np.full_like(mask, 0.5)))
  assert half['background_variance'] == pytest.approx(0.5) and half['mask_mean'] == 0.5


def test_summary_is_mean_and_sample_std_over_seeds():
  def run(model, seed, fvd, mask=None):
    return dict(scene='golf', model=model, seed=seed, fvd=fvd, kvd=fvd / 100,
                temporal_variance=0.01, mask_mean=mask, background_variance=mask)
  results = dict(protocol=dict(clips_per_side=64, frames=16, frame_size=32, num_steps=10,
                               batch_size=16, width=16),
                 runs={'a': run('two_stream', 0, 10.0, 0.2), 'b': run('two_stream', 1, 14.0, 0.4),
                       'c': run('one_stream', 0, 30.0), 'd': dict(
                           scene='beach', model='one_stream', seed=0, fvd=1.0, kvd=0.0,
                           temporal_variance=0.0, mask_mean=None, background_variance=None)})
  summary = model_comparison.summarize(results, ['golf'], ['two_stream', 'one_stream'])
  two, one = summary['rows']
  assert (two['model'], two['runs'], one['runs']) == ('two_stream', 2, 1)
  assert two['fvd'] == pytest.approx([12.0, np.sqrt(8.0)])  # ddof=1: ((2^2 + 2^2) / 1)^0.5
  assert two['mask_mean'] == pytest.approx([0.3, np.sqrt(0.02)])
  assert one['fvd'] == [30.0, 0.0] and one['mask_mean'] is None
  table = model_comparison.markdown_table(summary)
  assert '| golf | two_stream | 2 | 12 ± 3 | 0.120 ± 0.028 | 0.0100 | 0.30 | 0.3000 |' in table
  assert '| golf | one_stream | 1 | 30 ± 0 | 0.300 ± 0.000 | 0.0100 |  |  |' in table
  assert '64 clips a side, their first 16 frames at 32x32' in table


class _PixelFeatures:
  """Stands in for I3D: a clip's features are its pixels, so equal features are equal clips."""

  def of_batches(self, batches):
    return np.concatenate([np.reshape(b, (len(b), -1)) for b in batches]).astype(np.float64)


def test_every_run_is_compared_with_the_same_real_clips(tmp_path, monkeypatch):
  """The real side of FVD is the scene's clips drawn with seed 0 whatever the runs' (or the base
  config's) seed, so the numbers of all models and seeds compare; the seed does change which
  synthetic clips a seeded config reads, so this is not vacuous."""
  monkeypatch.setenv('VGAN_JAX_FVD_CACHE', str(tmp_path))
  base = model_comparison.quick_config(configs.get_config('tiny'))
  base.seed = 0
  from_seed_0 = model_comparison.real_features(base, 'golf', _PixelFeatures())
  base.seed = 5
  from_seed_5 = model_comparison.real_features(base, 'golf', _PixelFeatures())
  np.testing.assert_array_equal(from_seed_5, from_seed_0)
  seeded = base.copy_and_resolve_references()
  seeded.data.scene = 'golf'
  assert not np.array_equal(tasks.real_fvd_features(seeded, _PixelFeatures()), from_seed_0)


def test_unknown_models_and_other_protocols_are_refused(tmp_path):
  base = model_comparison.quick_config(configs.get_config('tiny'))
  with pytest.raises(ValueError, match="model 'three_stream'"):
    model_comparison.compare(base, ['golf'], ['three_stream'], [0], str(tmp_path))
  with pytest.raises(ValueError, match='fvd_frames=17'):
    base.fvd_frames = 17
    model_comparison.compare(base, ['golf'], ['two_stream'], [0], str(tmp_path))
  (tmp_path / model_comparison.RESULTS_FILE).write_text(json.dumps(dict(
      protocol=dict(clips_per_side=2048), runs={})))
  base.fvd_frames = 9
  with pytest.raises(ValueError, match='clips_per_side 2048 -> 4.*another output folder'):
    model_comparison.compare(base, ['golf'], ['two_stream'], [0], str(tmp_path))


def test_quick_comparison_end_to_end_and_resumed(tmp_path):
  command = [sys.executable, '-m', 'experiments.compare_models', '--quick', '--seeds=0',
             f'--output={tmp_path}']
  def run():
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, VGAN_JAX_CACHE=CACHE, PYTHONPATH=REPO,
                                     VGAN_JAX_FVD_CACHE=str(tmp_path / 'fvd_cache')))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout

  printed = run()
  summary = json.load(open(tmp_path / model_comparison.SUMMARY_FILE))
  rows = {row['model']: row for row in summary['rows']}
  assert list(rows) == ['real', 'two_stream', 'one_stream', 'autoencoder']
  for model in model_comparison.MODELS:
    assert np.isfinite(rows[model]['fvd'][0]) and rows[model]['fvd'][0] > 0
    assert rows[model]['temporal_variance'][0] >= 0
    assert (rows[model]['mask_mean'] is None) == (model == 'one_stream')
  for model in ('two_stream', 'autoencoder'):  # both decode with the two-stream generator
    assert 0 <= rows[model]['mask_mean'][0] <= 1
  assert rows['real']['fvd'] is None and rows['real']['temporal_variance'][0] > 0
  assert summary['protocol']['clips_per_side'] == 4 and summary['protocol']['frames'] == 9
  assert os.path.isdir(tmp_path / 'golf' / 'one_stream_seed0' / 'checkpoints')
  assert os.path.exists(tmp_path / 'golf' / 'autoencoder_seed0' / 'gmm.npz')
  assert printed.endswith(f'Written to {tmp_path}/summary.md.\n')
  assert (tmp_path / 'summary.md').read_text() in printed
  # A rerun finds every run in results.json: nothing retrains, the same table.
  results = (tmp_path / model_comparison.RESULTS_FILE).read_text()
  assert run() == printed
  assert (tmp_path / model_comparison.RESULTS_FILE).read_text() == results
