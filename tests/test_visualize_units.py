"""Figure 6, the encoder's hidden units: receptive fields, a planted unit found again, the CLI's
files, and its errors."""

import json
import os
import subprocess
import sys

import cv2
import jax
import numpy as np
import pytest

from experiments import tasks
from experiments import unit_visualization as vu
from vgan_jax import configs, models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 32  # the test config's frame size
SQUARE = (8, 20, 8)  # top, left, side of the bright square in the planted image
PLANTED_UNIT = 2


def _train_one_step(workdir: str, future: bool) -> str:
  config = configs.get_config('test')
  config.num_steps = 1
  if future:
    config.model.generator_input = 'image'
    config.model.encoder_width = 4
  config.data.scene = 'golf'
  tasks.train_gan(config, workdir)
  return workdir


@pytest.fixture(scope='module')
def future_workdir(tmp_path_factory):
  return _train_one_step(str(tmp_path_factory.mktemp('future')), future=True)


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
  """dark.png, noise_a.png, square.png (a white square on black), noise_b.png: 32x32 RGB."""
  folder = tmp_path_factory.mktemp('images')
  noise = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
  square = np.zeros((SIZE, SIZE, 3), np.uint8)
  top, left, side = SQUARE
  square[top:top + side, left:left + side] = 255
  images = {'dark': np.full((SIZE, SIZE, 3), 20, np.uint8), 'noise_a': noise[0],
            'square': square, 'noise_b': noise[1]}
  for name, image in images.items():
    cv2.imwrite(str(folder / f'{name}.png'), image)
  return str(folder)


def _cli(*args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, VGAN_JAX_CACHE=os.path.join(REPO, '.pytest_cache', 'xla'))
  return subprocess.run([sys.executable, '-m', 'experiments.visualize_units', *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=120)


def test_receptive_field_by_hand():
  # Layer 0: 4 pixels, step 2, starting one pixel before the image (the padding).
  assert models.receptive_field(0, (0, 0)) == (-1, -1, 4)
  assert models.receptive_field(0, (1, 2)) == (1, 3, 4)
  # Layer 2: size 4 + 3*2 = 10, then 10 + 3*4 = 22; step 8; start -1 - 2 - 4 = -7.
  assert models.receptive_field(2, (0, 0)) == (-7, -7, 22)
  assert models.receptive_field(2, (1, 2)) == (1, 9, 22)


@pytest.mark.parametrize('layer, position', [(0, (0, 0)), (0, (1, 2)), (2, (0, 0)),
                                             (2, (1, 2))])
def test_receptive_field_is_where_the_encoder_looks(layer, position):
  # The input pixels that move one activation (its gradient's support) fill the receptive
  # field, clipped to the image: LeakyReLU never has a zero slope.
  encoder = models.ImageEncoder(depth=3, width=4, latent_dim=5)
  image = jax.random.uniform(jax.random.PRNGKey(1), (1, SIZE, SIZE, 3), minval=-1, maxval=1)
  variables = encoder.init(jax.random.PRNGKey(0), image, train=False)
  row, column = position

  def activation(x):
    return vu.encoder_activations(encoder, variables, x, layer)[0, row, column, 1]

  support = np.abs(np.asarray(jax.grad(activation)(image))[0]).sum(-1) > 0
  rows, columns = np.nonzero(support)
  top, left, size = models.receptive_field(layer, position)
  assert (rows.min(), rows.max()) == (max(top, 0), min(top + size, SIZE) - 1)
  assert (columns.min(), columns.max()) == (max(left, 0), min(left + size, SIZE) - 1)


def test_activations_are_what_the_encoder_feeds_on():
  # With an identity `code` layer the encoder returns its last conv layer's output, after
  # BatchNorm (here with statistics far from 0 and 1, so it matters) and LeakyReLU.
  encoder = models.ImageEncoder(depth=2, width=4, latent_dim=8 * 8 * 8)
  image = jax.random.uniform(jax.random.PRNGKey(1), (2, SIZE, SIZE, 3), minval=-1, maxval=1)
  variables = encoder.init(jax.random.PRNGKey(0), image, train=False)
  params = dict(variables['params'], code={'kernel': np.eye(512, dtype=np.float32),
                                           'bias': np.zeros(512, np.float32)})
  stats = {'norm1': {'mean': np.full(8, 0.05, np.float32), 'var': np.full(8, 4e-4, np.float32)}}
  variables = {'params': params, 'batch_stats': stats}
  activations = vu.encoder_activations(encoder, variables, image, 1)
  assert activations.shape == (2, 8, 8, 8)
  assert (np.asarray(activations) < 0).any()  # LeakyReLU's negative side is in there too
  np.testing.assert_allclose(activations.reshape(2, -1),
                             encoder.apply(variables, image, train=False), rtol=1e-5, atol=1e-6)


def test_crop_region_pads_outside_the_image_with_grey():
  image = np.arange(5 * 5 * 3, dtype=np.uint8).reshape(5, 5, 3)
  crop = vu.crop_region(image, -1, 3, 4)
  assert crop.shape == (4, 4, 3)
  assert (crop[0] == vu.GREY).all() and (crop[:, 2:] == vu.GREY).all()
  np.testing.assert_array_equal(crop[1:, :2], image[0:3, 3:5])


def test_a_planted_unit_finds_the_bright_square(future_workdir, image_folder):
  config, encoder, variables, _ = vu.load_encoder(future_workdir)
  # Unit PLANTED_UNIT of layer 0 becomes a brightness detector: the sum of its 4x4x3 inputs.
  conv0 = dict(variables['params']['conv0'])
  conv0['kernel'] = conv0['kernel'].at[..., PLANTED_UNIT].set(1.0)
  conv0['bias'] = conv0['bias'].at[PLANTED_UNIT].set(0.0)
  variables = dict(variables, params=dict(variables['params'], conv0=conv0))
  paths = vu.find_images(image_folder)
  pixels = vu.load_images(paths, config.model.size)
  activations = vu.unit_activations(encoder, variables, pixels, 0, [0, PLANTED_UNIT])
  assert activations.shape == (4, SIZE // 2, SIZE // 2, 2)

  top = vu.top_activations(activations[..., 1], 3)
  assert [os.path.basename(paths[n]) for n, *_ in top] == ['square.png'] * 3
  # A field wholly inside the square sees 48 inputs of +1 (white, scaled to [-1, 1]).
  assert top[0][3] == pytest.approx(48.0, rel=1e-5)
  image, row, column, _ = top[0]
  crop_top, crop_left, size = models.receptive_field(0, (row, column))
  square_top, square_left, side = SQUARE
  assert square_top <= crop_top and crop_top + size <= square_top + side
  assert square_left <= crop_left and crop_left + size <= square_left + side
  assert (vu.crop_region(pixels[image], crop_top, crop_left, size) == 255).all()


def test_cli_writes_a_png_per_unit_and_an_index(future_workdir, image_folder, tmp_path):
  output_dir = str(tmp_path / 'units')
  result = _cli(f'--workdir={future_workdir}', f'--images={image_folder}', '--layer=1',
                '--units=0,3', '--top_k=3', f'--output_dir={output_dir}')
  assert result.returncode == 0, result.stderr[-2000:]
  # Layer 1 sees 10x10 pixels, enlarged 7 times to 70; 3 crops in a row, 2 white pixels apart.
  for unit in (0, 3):
    png = cv2.imread(os.path.join(output_dir, f'unit_{unit:03d}.png'))
    assert png.shape == (70 + 2 * 2, 3 * 70 + 4 * 2, 3)
  with open(os.path.join(output_dir, 'units.json')) as file:
    index = json.load(file)
  assert index['layer'] == 1 and index['receptive_field'] == 10 and index['num_images'] == 4
  assert [entry['unit'] for entry in index['units']] == [0, 3]
  for entry in index['units']:
    assert len(entry['top']) == 3
    values = [top['activation'] for top in entry['top']]
    assert values == sorted(values, reverse=True)
    assert all(os.path.dirname(top['image']) == image_folder for top in entry['top'])


def test_default_layer_and_units_and_a_grid(future_workdir, image_folder, tmp_path):
  written = vu.visualize_units(future_workdir, image_folder, num_units=2, top_k=3,
                               output_dir=str(tmp_path), columns=2)
  assert [os.path.basename(path) for path in written] == ['unit_000.png', 'unit_001.png',
                                                          'units.json']
  # The last layer (4) sees 4 + 6 + 12 + 24 + 48 = 94 pixels: no enlargement; 2 rows of 2.
  assert cv2.imread(written[0]).shape == (2 * 94 + 3 * 2, 2 * 94 + 3 * 2, 3)


def test_a_gan_checkpoint_is_refused(tmp_path, image_folder):
  workdir = _train_one_step(str(tmp_path / 'gan'), future=False)
  result = _cli(f'--workdir={workdir}', f'--images={image_folder}')
  assert result.returncode == 1
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith('visualize_units: ') and 'not a future-prediction model' in last_line
  assert 'experiments.future --mode=train' in last_line


def test_bad_inputs_are_named(future_workdir, image_folder, tmp_path):
  with pytest.raises(FileNotFoundError, match='No checkpoints'):
    vu.visualize_units(str(tmp_path / 'nowhere'), image_folder)
  empty = tmp_path / 'empty'
  empty.mkdir()
  (empty / 'notes.txt').write_text('not an image')
  with pytest.raises(ValueError, match=f'{empty}: no images'):
    vu.visualize_units(future_workdir, str(empty))
  broken = empty / 'broken.png'
  broken.write_text('not an image either')
  with pytest.raises(ValueError, match=f'{broken}: not an image'):
    vu.visualize_units(future_workdir, str(empty))
  with pytest.raises(ValueError, match=f'{tmp_path / "missing.png"}: no such file'):
    vu.visualize_units(future_workdir, f'{image_folder},{tmp_path / "missing.png"}')
  with pytest.raises(ValueError, match='unit 8 is out of range.*units 0 to 7'):
    vu.visualize_units(future_workdir, image_folder, layer=1, units=['1', '8'])
  with pytest.raises(ValueError, match='--layer=5: the encoder has conv layers 0 to 4'):
    vu.visualize_units(future_workdir, image_folder, layer=5)
