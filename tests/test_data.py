"""The built-in scenes and the tf.data input: determinism, resume, per-host slices, shards."""

import numpy as np
import pytest

from data_pipeline import input_pipeline, shards, synthetic


@pytest.mark.parametrize('scene', synthetic.SCENES)
def test_scenes_are_deterministic_videos_with_a_static_background_and_motion(scene):
  clip = synthetic.render_clip(scene, 5, frames=16, size=32)
  assert clip.shape == (16, 32, 32, 3) and clip.dtype == np.uint8
  np.testing.assert_array_equal(clip, synthetic.render_clip(scene, 5, frames=16, size=32))
  assert not np.array_equal(clip, synthetic.render_clip(scene, 6, frames=16, size=32))
  assert not np.array_equal(clip, synthetic.render_clip(scene, 5, frames=16, size=32, seed=1))
  changed = np.abs(np.diff(clip.astype(int), axis=0)).max(axis=-1) > 0  # [T-1, H, W]
  assert changed.any(axis=0).mean() > 0.01  # something moves ...
  assert changed.mean() < 0.5  # ... over a mostly static scene
  assert clip.std() > 10  # not a flat colour


@pytest.mark.parametrize('scene', synthetic.SCENES)
@pytest.mark.parametrize('index', [0, 5])
def test_scene_background_is_exactly_constant_where_nothing_moves(scene, index):
  """Outside `foreground_mask`, every pixel keeps one value in every frame (a static background,
  as the paper's stabilized footage has; a camera panning 1 px every 4 frames fails here), and
  the mask is not everything: a third of the pixels or more are background in every frame."""
  clip = synthetic.render_clip(scene, index, frames=16, size=32)
  mask = synthetic.foreground_mask(scene, index, frames=16, size=32)
  assert mask.shape == clip.shape[:3] and mask.dtype == bool
  still = ~mask
  first_still = np.argmax(still, axis=0)  # per pixel, a frame where it shows the background
  background = np.take_along_axis(clip, first_still[None, ..., None], axis=0)[0]
  differs = np.any(clip != background, axis=-1) & still  # [T, H, W]
  assert not differs.any(), f'{differs.sum()} background pixels change, in frames ' + str(
      np.nonzero(differs.any(axis=(1, 2)))[0].tolist())
  assert still.all(axis=0).mean() > 0.3 and mask.any()  # a mask, but not the whole picture


def test_scene_size_follows_the_request():
  assert synthetic.render_clip('beach', 0, frames=32, size=64).shape == (32, 64, 64, 3)


def test_unknown_scene_names_the_known_ones():
  with pytest.raises(ValueError, match="No built-in synthetic scene 'moon'.*beach, golf"):
    synthetic.render_clip('moon', 0)


def _take(batches, count):
  out = [next(batches)['video'] for _ in range(count)]
  batches.close()
  return out


def test_synthetic_batches_resume_at_a_step_exactly():
  kwargs = dict(frames=16, size=32, batch_size=4, global_batch_size=4, seed=3)
  from_start, source = input_pipeline.train_batches('golf', None, **kwargs)
  assert 'built-in synthetic' in source
  first = _take(from_start, 3)
  resumed, _ = input_pipeline.train_batches('golf', None, start_step=2, **kwargs)
  np.testing.assert_array_equal(_take(resumed, 1)[0], first[2])
  assert first[0].shape == (4, 16, 32, 32, 3) and first[0].dtype == np.uint8


def test_hosts_read_disjoint_halves_of_each_global_batch():
  kwargs = dict(frames=16, size=16, batch_size=2, global_batch_size=4)
  one_host, _ = input_pipeline.train_batches('babies', None, frames=16, size=16, batch_size=4,
                                             global_batch_size=4)
  whole = _take(one_host, 2)
  halves = [_take(input_pipeline.train_batches('babies', None, process_index=p, process_count=2,
                                               **kwargs)[0], 2) for p in (0, 1)]
  for step in range(2):  # host p's batch is the p-th half of the one-host batch, in order
    np.testing.assert_array_equal(np.concatenate([part[step] for part in halves]), whole[step])


def test_a_host_resumes_at_its_slice_of_the_global_batch_of_that_step():
  """Resuming at step s on host p of P starts at global clip s * global batch, not s * this
  host's batch: host 0 of 2 resumed at step 1 reads what it read at step 1 from the start."""
  kwargs = dict(frames=16, size=16, batch_size=2, global_batch_size=4, process_index=0,
                process_count=2)
  from_start = _take(input_pipeline.train_batches('babies', None, **kwargs)[0], 2)
  resumed = _take(input_pipeline.train_batches('babies', None, start_step=1, **kwargs)[0], 1)
  np.testing.assert_array_equal(resumed[0], from_start[1])


def _write_shard(path, clips):
  """Clips [T, H, W, 3] as the authors stored them: one JPEG of the frames stacked vertically."""
  shards.write_shard(str(path), [shards.clip_example(shards.encode_strip(clip), frames=len(clip),
                                                     size=clip.shape[1]) for clip in clips])


def test_shards_are_read_scaled_and_short_clips_repeat_their_last_frame(tmp_path):
  clip = synthetic.render_clip('beach', 0, frames=8, size=64)  # 8 frames stored at 64x64
  (tmp_path / 'beach').mkdir()
  _write_shard(tmp_path / 'beach' / 'clips-00000.tfrecord', [clip])
  batches, source = input_pipeline.train_batches('beach', str(tmp_path), frames=16, size=32,
                                                 batch_size=2, global_batch_size=2)
  assert '1 shards' in source
  video = _take(batches, 1)[0]
  assert video.shape == (2, 16, 32, 32, 3) and video.dtype == np.uint8
  expected = clip.reshape(8, 32, 2, 32, 2, 3).mean(axis=(2, 4))  # area scaling 64 -> 32
  assert np.abs(video[0, :8].astype(float) - expected).mean() < 6  # JPEG tolerance
  for t in range(8, 16):
    np.testing.assert_array_equal(video[0, t], video[0, 7])


def test_a_stored_clip_longer_than_the_model_gives_its_first_frames(tmp_path):
  """A clip stored with more frames than the model takes is cut to its first frames (a clip
  starts where the video does), not its last: frames of rising brightness show which."""
  clip = np.repeat(np.arange(0, 240, 20, dtype=np.uint8), 16 * 16 * 3).reshape(12, 16, 16, 3)
  (tmp_path / 'golf').mkdir()
  _write_shard(tmp_path / 'golf' / 'clips-00000.tfrecord', [clip])
  batches, _ = input_pipeline.train_batches('golf', str(tmp_path), frames=4, size=16,
                                            batch_size=1, global_batch_size=1)
  video = _take(batches, 1)[0]
  np.testing.assert_allclose(video[0].mean(axis=(1, 2, 3)), [0, 20, 40, 60], atol=3)


def test_corrupt_shard_fails_naming_the_file(tmp_path):
  (tmp_path / 'golf').mkdir()
  (tmp_path / 'golf' / 'bad.tfrecord').write_bytes(b'this is not a TFRecord file at all')
  batches, _ = input_pipeline.train_batches('golf', str(tmp_path), frames=16, size=32,
                                            batch_size=1, global_batch_size=1)
  with pytest.raises(input_pipeline.CorruptShardError, match=r'Corrupt shard .*golf/bad.tfrecord'):
    next(batches)
  batches.close()


def _three_golf_shards(root):
  """root/golf/clips-{0,1,2}.tfrecord, 4 clips of 4 frames of 16x16 each (12 distinct clips)."""
  (root / 'golf').mkdir()
  for shard in range(3):
    _write_shard(root / 'golf' / f'clips-{shard}.tfrecord',
                 [synthetic.render_clip('golf', 4 * shard + i, frames=4, size=16)
                  for i in range(4)])


def test_shard_batches_are_deterministic_given_a_seed(tmp_path):
  _three_golf_shards(tmp_path)

  def first_batches(seed):
    batches, _ = input_pipeline.train_batches('golf', str(tmp_path), frames=4, size=16,
                                              batch_size=4, global_batch_size=4, seed=seed)
    return np.stack(_take(batches, 3))

  np.testing.assert_array_equal(first_batches(1), first_batches(1))
  assert not np.array_equal(first_batches(1), first_batches(2))


def test_a_resumed_shard_run_does_not_replay_the_clips_of_its_first_steps(tmp_path):
  """Shards are reshuffled with a seed that includes the step resumed at: a run restarted at
  step 3 gets another order of clips, not again the batches the run began with."""
  _three_golf_shards(tmp_path)

  def first_batches(start_step):
    batches, _ = input_pipeline.train_batches('golf', str(tmp_path), frames=4, size=16,
                                              batch_size=4, global_batch_size=4, seed=1,
                                              start_step=start_step)
    return np.stack(_take(batches, 3))

  assert not np.array_equal(first_batches(3), first_batches(0))
