"""Future prediction: the encoder, the reconstruction term, prediction from image files."""

import os
import subprocess
import sys

import cv2
import jax
import numpy as np
import pytest
import video_files

from data_pipeline import synthetic
from experiments import tasks
from vgan_io import media
from vgan_jax import checkpoint, configs, losses, models, sampling, train_state, train_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _future_config():
  config = configs.get_config('test')
  config.model.generator_input = 'image'
  config.model.encoder_width = 8
  return config


@pytest.fixture(scope='module')
def future_workdir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('future'))
  config = _future_config()
  config.num_steps = 1
  config.data.scene = 'golf'
  tasks.train_gan(config, workdir)
  return workdir


def test_reconstruction_loss_by_hand():
  predicted = np.array([[0.5, -1.0], [0.0, 1.0]], np.float32)
  target = np.array([[0.0, 0.0], [0.0, 0.0]], np.float32)
  assert float(losses.reconstruction_loss(predicted, target, 'l1')) == pytest.approx(2.5 / 4)
  assert float(losses.reconstruction_loss(predicted, target, 'l2')) == pytest.approx(2.25 / 4)
  with pytest.raises(ValueError, match="'l1' or 'l2'"):
    losses.reconstruction_loss(predicted, target, 'l3')


def test_encoder_maps_an_image_to_a_code_and_the_generator_to_a_video():
  config = _future_config()
  encoder = models.ImageEncoder(depth=5, width=4, latent_dim=7)
  image = jax.numpy.zeros((2, 32, 32, 3))
  variables = encoder.init(jax.random.PRNGKey(0), image, train=False)
  assert encoder.apply(variables, image, train=False).shape == (2, 7)
  assert [name for name in variables['params'] if name.startswith('conv')] == [
      f'conv{i}' for i in range(5)]
  predictor = models.build_generator(config.model)
  variables = predictor.init(jax.random.PRNGKey(0), image, train=False)
  output = predictor.apply(variables, image, train=False)
  assert output.video.shape == (2, 16, 32, 32, 3) and output.mask.shape == (2, 16, 32, 32, 1)
  assert set(variables['params']) == {'encoder', 'generator'}
  config.model.encoder_depth = 6  # 32 / 2**6 is not whole
  with pytest.raises(ValueError, match='encoder_depth=6'):
    configs.validate(config)


def test_future_prediction_learns_to_copy_the_first_frame():
  config = _future_config()
  config.optimizer.learning_rate = 1e-3
  gan = train_state.build_gan(config)
  assert gan.conditional and gan.reconstruction_weight == 10.0
  state = train_state.init_train_state(gan, config, jax.random.PRNGKey(0))
  batch = {'video': np.stack([synthetic.render_clip('golf', i, 16, 32) for i in range(4)])}
  step = jax.jit(train_step.make_train_step(gan))
  history = []
  for _ in range(100):
    state, metrics = step(state, batch)
    history.append(float(metrics['reconstruction_loss']))
  # Over the last 10 steps: a GAN's single steps spike (to ~0.45x the start, where the mean is
  # ~0.32x), and the exact path varies with XLA's threaded reductions.
  assert np.mean(history[-10:]) < 0.5 * history[0], history[::10]
  # The L1 metric is the distance between the first generated frame and the input image.
  output = train_step.generate(gan, state, batch['video'][:, 0])
  assert output.video.shape == (4, 16, 32, 32, 3)


def test_predict_takes_png_and_jpeg_grey_and_rgba(future_workdir, tmp_path):
  rng = np.random.default_rng(0)
  rgba = rng.integers(0, 255, (50, 70, 4), dtype=np.uint8)
  cv2.imwrite(str(tmp_path / 'rgba.png'), rgba)
  cv2.imwrite(str(tmp_path / 'grey.jpg'), rgba[..., 0])
  cv2.imwrite(str(tmp_path / 'deep.png'), (rgba[..., :3].astype(np.uint16) * 257))
  images = [str(tmp_path / name) for name in ('rgba.png', 'grey.jpg', 'deep.png')]
  paths = sampling.predict_future(future_workdir, images, str(tmp_path / 'out'), upscale=2)
  for stem in ('rgba', 'grey', 'deep'):
    frames = video_files.read_video_frames(tmp_path / 'out' / f'{stem}.mp4')
    assert frames.shape == (16, 64, 64, 3)
    assert str(tmp_path / 'out' / f'{stem}_streams.gif') in paths
  arrays = np.load(tmp_path / 'out' / 'predictions.npz')
  assert arrays['images'].shape == (3, 32, 32, 3) and arrays['video'].shape == (3, 16, 32, 32, 3)
  np.testing.assert_array_equal(arrays['images'][1][..., 0], arrays['images'][1][..., 2])  # grey


def test_load_image_crops_scales_and_notes(tmp_path):
  image = np.zeros((40, 80, 3), np.uint8)
  image[:, 20:60] = 255  # the centre square is white
  cv2.imwrite(str(tmp_path / 'wide.png'), image)
  loaded, note = media.load_image(str(tmp_path / 'wide.png'), 32)
  assert loaded.shape == (32, 32, 3) and loaded.min() == 255
  assert note == '80x40 centre-cropped and scaled to 32x32'


def test_bad_inputs_get_clear_errors(future_workdir, tmp_path):
  (tmp_path / 'notes.png').write_text('not an image')
  with pytest.raises(ValueError, match=r'notes.png: not an image OpenCV can read'):
    sampling.predict_future(future_workdir, [str(tmp_path / 'notes.png')])
  with pytest.raises(ValueError, match='missing.jpg: no such file'):
    sampling.predict_future(future_workdir, [str(tmp_path / 'missing.jpg')])
  with pytest.raises(checkpoint.NoCheckpointError, match='No checkpoints in'):
    sampling.predict_future(str(tmp_path / 'nothing'), [str(tmp_path / 'notes.png')])
  with pytest.raises(sampling.WrongModelKindError,
                     match='future-prediction model, which starts from an image'):
    sampling.write_generated(future_workdir)


def test_command_line_trains_and_predicts(tmp_path):
  image = synthetic.render_clip('beach', 0, frames=1, size=48)[0]
  cv2.imwrite(str(tmp_path / 'photo.jpg'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  common = [sys.executable, '-m', 'experiments.future', '--config=test',
            '--config.model.encoder_width=4', f'--workdir={tmp_path / "run"}']
  result = subprocess.run(common + ['--mode=train', '--config.num_steps=1'], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  result = subprocess.run(common + ['--mode=predict', f'--images={tmp_path / "photo.jpg"}'],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert os.path.exists(tmp_path / 'run' / 'predictions' / 'photo.mp4')
  result = subprocess.run(common + ['--mode=predict'], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      'future: --mode=predict needs --images=a.png,b.jpg,...')
  result = subprocess.run(common[:-1] + [f'--workdir={tmp_path / "none"}', '--mode=predict',
                                         f'--images={tmp_path / "photo.jpg"}'],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('future: No checkpoints in') and 'experiments.future --mode=train' in last


def test_images_with_the_same_name_get_their_own_predictions(future_workdir, tmp_path):
  image = synthetic.render_clip('beach', 0, frames=1, size=32)[0]
  for folder in ('a', 'b'):
    (tmp_path / folder).mkdir()
    cv2.imwrite(str(tmp_path / folder / 'photo.png'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  paths = sampling.predict_future(future_workdir, [str(tmp_path / 'a' / 'photo.png'),
                                                   str(tmp_path / 'b' / 'photo.png')],
                                  str(tmp_path / 'out'), streams=False)
  assert sorted(os.listdir(tmp_path / 'out')) == [
      'photo.gif', 'photo.mp4', 'photo_2.gif', 'photo_2.mp4', 'predictions.npz']
  assert all(os.path.exists(path) for path in paths) and len(paths) == 5
  assert sampling.unique_stems(['x/a.png', 'y/a.jpg', 'z/a_2.png', 'b.png']) == [
      'a', 'a_2', 'a_2_2', 'b']
