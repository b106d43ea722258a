"""The paper's numbers, layers and update equations, checked on what the code builds and runs.

Vondrick, Pirsiavash and Torralba 2016, "Generating Videos with Scene Dynamics"; the numbers are
listed in ../shared/DESIGN.md ("The paper in numbers"). Each test names where the paper gives
what it pins (or the authors' Torch code, cvondrick/videogan, where the paper is silent):
  Section 3.1  Review of GANs: Eq. 1, the losses.
  Section 3.2  Generator Network: one stream, two streams (Eq. 2), the mask's sparsity prior.
  Section 3.3  Discriminator Network.
  Section 3.4  Learning and Implementation: Adam, batch, initialisation, BatchNorm, activations.
  Section 4.2  Video Generation: the autoencoder + Gaussian mixture baseline.
  Section 4.3  Video Representation Learning: the action classifier.
  Section 4.4  Future Generation: Eq. 3, the image encoder and the first frame's reconstruction.
Layers are checked on the built networks (every submodule's input and output, recorded with
`nn.intercept_methods`) at the `tiny` size; the update equations on the `test` config.
"""

import functools

import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from data_pipeline import synthetic
from vgan_jax import configs, models, parallel, train_state, train_step
from vgan_jax.models import layers

# The paper's numbers, written out here so that a change of the config's is a change to review.
LEARNING_RATE, BETA1, BETA2, ADAM_EPS = 2e-4, 0.5, 0.999, 1e-8  # Section 3.4 (beta2, eps: Adam's)
CONV_STDDEV = 0.01  # Section 3.4: every weight N(0, 0.01)
BATCHNORM_SCALE_STDDEV = 0.02  # the authors' code: BatchNorm scales N(1, 0.02)
SLOPE = 0.2  # Section 3.4: LeakyReLU's slope in the discriminator
MASK_PENALTY = 0.1  # Section 3.2: lambda of the mask's sparsity prior
RECONSTRUCTION_WEIGHT = 10.0  # Section 4.4, Eq. 3: lambda (the authors' code: 10, L1)
BATCHNORM_EPSILON = 1e-5  # Torch's default

# --- 1. The numbers of the `paper` config.

PAPER_CONFIG = [
    # (where the paper gives it, config field, the paper's value)
    ('Section 3.2', 'model.frames', 32),  # 32 frames (about a second at 25 fps) ...
    ('Section 3.2', 'model.size', 64),  # ... of 64x64 ...
    ('Section 3.2', 'model.channels', 3),  # ... colour pixels
    ('Section 3.2', 'model.width', 64),  # G's last hidden layer (512-256-128-64), D's first
    ('Section 3.2', 'model.generator', 'two_stream'),  # the paper's model
    ('Section 3.2', 'mask_penalty', MASK_PENALTY),
    ('Section 3.4', 'model.latent_dim', 100),
    ('Section 3.4', 'optimizer.learning_rate', LEARNING_RATE),
    ('Section 3.4', 'optimizer.b1', BETA1),
    ('Section 3.4', 'optimizer.b2', BETA2),
    ('Section 3.4', 'batch_size', 64),
    ('Section 3.4', 'model.conv_init_stddev', CONV_STDDEV),
    ('Section 3.4', 'model.batchnorm_scale_stddev', BATCHNORM_SCALE_STDDEV),
    ('Section 4.2', 'baseline.gmm_components', 256),
    ('Section 4.3', 'classifier.dropout', 0.5),  # on the penultimate layer
    ('Section 4.4', 'model.encoder_depth', 5),  # the image encoder's convolutions
    ('Section 4.4', 'reconstruction_weight', RECONSTRUCTION_WEIGHT),
    ('Section 4.4', 'reconstruction_loss', 'l1'),  # the text's L1 (Eq. 3 shows a squared L2)
]


@pytest.mark.parametrize('field, value', [
    pytest.param(field, value, id=f'{section.replace(" ", "_")}-{field}')
    for section, field, value in PAPER_CONFIG])
def test_paper_config_holds_the_papers_number(field, value):
  """Each number the `paper` config holds is the paper's (the section is in the test's id)."""
  config = configs.get_config('paper')
  section, name = field.rpartition('.')[::2]
  got = (config[section] if section else config)[name]
  assert got == value and type(got) is type(value), (field, got)


def test_leaky_relu_has_the_papers_slope_section_3_4():
  """Section 3.4: LeakyReLU 0.2 (DCGAN's), in its values and in its gradient."""
  assert layers.LEAKY_SLOPE == SLOPE
  x = jnp.array([-2.0, -0.5, 0.5, 1.5])
  np.testing.assert_allclose(layers.leaky_relu(x), [-0.4, -0.1, 0.5, 1.5], rtol=1e-6)
  gradient = jax.grad(lambda x: layers.leaky_relu(x).sum())(x)
  np.testing.assert_allclose(gradient, [SLOPE, SLOPE, 1.0, 1.0], rtol=1e-6)


def _kernel_shapes(module, *inputs) -> dict[str, tuple[int, ...]]:
  """{'path/of/layer': kernel shape} of every layer of `module` (shapes only, nothing computed)."""
  params = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *inputs, train=False))
  return {'/'.join(path[:-1]): leaf.shape for path, leaf in
          flax.traverse_util.flatten_dict(params['params']).items() if path[-1] == 'kernel'}


def test_paper_networks_have_the_papers_widths_sections_3_2_to_4_4():
  """The `paper` config's built networks, every layer's kernel: G (Section 3.2) 100 -> 512 -> 256
  -> 128 -> 64 -> 3 colours (+ 1 mask channel), b 100 -> 512 -> ... -> 64 -> 3; D (Section 3.3)
  3 -> 64 -> 128 -> 256 -> 512 -> 1; the classifier (Section 4.3) D with 101 outputs (UCF101);
  the autoencoder (Section 4.2) D with a 100-d code; the image encoder (Section 4.4) 5 layers to
  the 100-d code. 4x4(x4) kernels; the first of G and the last of D span 2x4x4."""
  config = configs.get_config('paper')
  model = config.model
  z, video = jnp.zeros((1, 100)), jnp.zeros((1, 32, 64, 64, 3))
  trunk = {'trunk/ConvTranspose_0': (2, 4, 4, 100, 512), 'trunk/UpConv_0': (4, 4, 4, 512, 256),
           'trunk/UpConv_1': (4, 4, 4, 256, 128), 'trunk/UpConv_2': (4, 4, 4, 128, 64)}
  background = {'background/ConvTranspose_0': (4, 4, 100, 512),
                'background/UpConv_0': (4, 4, 512, 256), 'background/UpConv_1': (4, 4, 256, 128),
                'background/UpConv_2': (4, 4, 128, 64), 'background/UpConv_3': (4, 4, 64, 3)}
  generator = dict(trunk, **background, video=(4, 4, 4, 64, 3), mask=(4, 4, 4, 64, 1))
  assert _kernel_shapes(models.build_generator(model), z) == generator
  d_trunk = {'trunk/DownConv_0': (4, 4, 4, 3, 64), 'trunk/DownConv_1': (4, 4, 4, 64, 128),
             'trunk/DownConv_2': (4, 4, 4, 128, 256), 'trunk/DownConv_3': (4, 4, 4, 256, 512)}
  assert _kernel_shapes(models.build_discriminator(model), video) == dict(
      d_trunk, logit=(2, 4, 4, 512, 1))
  assert _kernel_shapes(models.build_classifier(model, 101), video) == dict(
      d_trunk, head=(2, 4, 4, 512, 101))
  encoder = _kernel_shapes(models.build_autoencoder(model), video)
  assert {path: shape for path, shape in encoder.items() if path.startswith('encoder/')} == {
      **{f'encoder/{path}': shape for path, shape in d_trunk.items()},
      'encoder/code': (2, 4, 4, 512, 100)}
  assert {path: shape for path, shape in encoder.items() if path.startswith('decoder/')} == {
      f'decoder/{path}': shape for path, shape in generator.items()}
  model.generator_input = 'image'
  future = _kernel_shapes(models.build_generator(model), jnp.zeros((1, 64, 64, 3)))
  image_encoder = {path: shape for path, shape in future.items() if path.startswith('encoder/')}
  assert [path for path in image_encoder if 'conv' in path] == [
      f'encoder/conv{i}' for i in range(5)]
  assert image_encoder['encoder/conv0'][:3] == (4, 4, 3)
  assert image_encoder['encoder/code'][-1] == 100 and future['generator/video'] == (4, 4, 4, 64, 3)


def test_built_gan_autoencoder_and_classifier_use_the_paper_numbers():
  """What `train_state` builds from the `paper` config carries its numbers (Sections 3.2, 3.4,
  4.2-4.4): sizes, initialisation scales, the mask prior, the reconstruction term, dropout."""
  config = configs.get_config('paper')
  gan = train_state.build_gan(config)
  assert gan.latent_dim == 100 and gan.mask_penalty == MASK_PENALTY
  assert not gan.conditional and gan.reconstruction_weight == 0.0  # Eq. 3 is future prediction's
  assert isinstance(gan.generator, models.TwoStreamGenerator)
  for network in (gan.generator, gan.discriminator):
    assert (network.frames, network.size, network.channels, network.width) == (32, 64, 3, 64)
    assert network.conv_init_stddev == CONV_STDDEV
    assert network.batchnorm_scale_stddev == BATCHNORM_SCALE_STDDEV
  autoencoder = train_state.build_autoencoder(config)
  assert autoencoder.model.encoder.latent_dim == 100
  assert autoencoder.mask_penalty == MASK_PENALTY
  classifier = train_state.build_classifier(config, 101)
  assert classifier.model.dropout_rate == 0.5 and classifier.model.num_classes == 101
  assert models.ActionClassifier().dropout_rate == 0.5  # the module's own default too
  config.model.generator_input = 'image'
  future = train_state.build_gan(config)
  assert future.conditional and future.reconstruction_weight == RECONSTRUCTION_WEIGHT
  assert future.reconstruction_loss == 'l1' and future.mask_penalty == MASK_PENALTY
  encoder = future.generator.encoder
  assert (encoder.depth, encoder.latent_dim, encoder.conv_init_stddev) == (5, 100, CONV_STDDEV)


def _optimizer(name: str) -> optax.GradientTransformation:
  config = configs.get_config('paper')
  if name == 'autoencoder':
    return train_state.build_autoencoder(config).optimizer
  return getattr(train_state.build_gan(config), f'{name}_optimizer')


@pytest.mark.parametrize('name', ['generator', 'discriminator', 'autoencoder'])
def test_optimizer_is_the_papers_adam_over_two_steps_section_3_4(name):
  """Section 3.4: Adam with learning rate 2e-4 and beta1 0.5 (beta2 0.999, eps 1e-8: Adam's own)
  for G and D, as `train_state` builds them from the `paper` config (and the baseline's), against
  Adam by hand over two updates of a toy pytree. (One update cannot tell: Adam's first is
  lr * g / |g| whatever the betas; the second's gradients differ in sign and size.)"""
  optimizer = _optimizer(name)
  gradients = [np.array([1.0, -3.0, 0.5, 2.0]), np.array([-1.0, 1.0, 0.25, -4.0])]
  params = {'w': jnp.zeros(4, jnp.float32)}
  state = optimizer.init(params)
  first = second = np.zeros(4)
  for t, gradient in enumerate(gradients, start=1):
    updates, state = optimizer.update({'w': jnp.asarray(gradient, jnp.float32)}, state, params)
    first = BETA1 * first + (1 - BETA1) * gradient
    second = BETA2 * second + (1 - BETA2) * gradient ** 2
    want = -LEARNING_RATE * (first / (1 - BETA1 ** t)) / (
        np.sqrt(second / (1 - BETA2 ** t)) + ADAM_EPS)
    np.testing.assert_allclose(updates['w'], want, rtol=1e-5, err_msg=f'{name}, update {t}')


# --- 2. Every network's layers: activations, normalisations, initialisation.

NETWORKS = ('one_stream', 'two_stream', 'discriminator', 'future_predictor', 'autoencoder',
            'classifier')
BATCH = 4


def _tiny_config():
  config = configs.get_config('tiny')  # 16 frames of 32x32, width 16
  config.model.encoder_width = 16  # the image encoder's widths 16 ... 256 (64 ... 1024 at paper)
  return config


def _encode(module, inputs, **kwargs):
  """The encoder half of a future predictor or an autoencoder (as an `apply` method)."""
  return module.encoder(inputs, **kwargs)


@functools.lru_cache(maxsize=None)
def _network(name: str):
  """(module, its input [BATCH, ...], its variables, the method to run) of one network at the
  `tiny` size, built by the code's builders and initialised as training initialises them. For
  the future predictor and the autoencoder, their encoders (behind which is the generator of
  'two_stream')."""
  config = _tiny_config()
  model = config.model
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  latents = jax.random.normal(keys[0], (BATCH, model.latent_dim))
  video = jax.random.uniform(keys[1], (BATCH, model.frames, model.size, model.size, 3),
                             minval=-1.0, maxval=1.0)
  if name == 'one_stream':
    model.generator = 'one_stream'
    module, inputs = models.build_generator(model), latents
  elif name == 'two_stream':
    module, inputs = models.build_generator(model), latents
  elif name == 'discriminator':
    module, inputs = models.build_discriminator(model), video
  elif name == 'future_predictor':
    model.generator_input = 'image'
    module, inputs = models.build_generator(model), video[:, 0]
  elif name == 'autoencoder':
    module, inputs = models.build_autoencoder(model), video
  else:
    module, inputs = models.build_classifier(model, 101, config.classifier.dropout), video
  method = _encode if name in ('future_predictor', 'autoencoder') else None
  variables = jax.jit(lambda x: module.init(jax.random.PRNGKey(1), x, train=False,
                                            method=method))(inputs[:1])
  return module, inputs, variables, method


def _run(module, variables, inputs, **kwargs):
  """`module.apply(variables, inputs, mutable=['batch_stats'], **kwargs)`, jitted, and what each
  submodule saw: (output, {'path/of/submodule': (its first input, its output)}, the paths in call
  order). Submodules whose output is not arrays (a deferred BatchNorm) are left out."""
  order = []

  def run(variables, inputs):
    calls = {}

    def record(next_fun, args, call_kwargs, context):
      output = next_fun(*args, **call_kwargs)
      leaves = jax.tree.leaves(output)
      if (context.method_name == '__call__' and args and isinstance(args[0], jax.Array)
          and all(isinstance(leaf, jax.Array) for leaf in leaves)):
        path = '/'.join(context.module.path)
        calls[path] = (args[0], output)
        order.append(path)
      return output

    with nn.intercept_methods(record):
      output, _ = module.apply(variables, inputs, mutable=['batch_stats'], **kwargs)
    return output, calls

  output, calls = jax.jit(run)(variables, inputs)
  return output, calls, order


def _at(tree, path: str):
  for name in path.split('/'):
    tree = tree[name]
  return tree


def _relu(z):
  return np.maximum(z, 0.0)


def _leaky_relu(z):
  return np.where(z >= 0, z, SLOPE * z)


def _identity(z):
  return z


def _assert_batch_norm(calls, params, path: str, activation) -> None:
  """The layer at `path` is training-mode BatchNorm (the batch's mean and biased variance over all
  but the channel axis, its scale and shift) followed by `activation`; a fair share of the
  normalised values are negative, so a wrong activation shows."""
  x, y = (np.asarray(value, np.float64) for value in calls[path])
  axes = tuple(range(x.ndim - 1))
  layer = _at(params, path)
  z = ((x - x.mean(axes)) / np.sqrt(x.var(axes) + BATCHNORM_EPSILON) * np.asarray(layer['scale'])
       + np.asarray(layer['bias']))
  assert (z < -0.1).mean() > 0.2, path
  np.testing.assert_allclose(y, activation(z), atol=2e-4, err_msg=path)


def _children(order, prefix: str) -> list[str]:
  """The direct submodules of `prefix` in call order, by name."""
  if not prefix:
    return [path for path in order if path and '/' not in path]
  depth = prefix.count('/') + 1
  return [path.split('/')[-1] for path in order
          if path.startswith(prefix + '/') and path.count('/') == depth]


def _assert_conv_batchnorm_stack(calls, order, params, prefix, convs, activation, last=None):
  """`prefix`'s layers are `convs`, each followed by BatchNorm and `activation`, then `last` (a
  layer with neither) if given, nothing else in between (each layer's input is the previous
  one's output). Returns the last BatchNorm's output."""
  names = []
  for i, conv in enumerate(convs):
    names += [conv, f'BatchNorm_{i}']
  assert _children(order, prefix) == names + ([last] if last else []), prefix
  paths = [f'{prefix}/{name}' for name in names + ([last] if last else [])]
  for i in range(1, len(paths)):
    np.testing.assert_array_equal(calls[paths[i]][0], calls[paths[i - 1]][1], err_msg=paths[i])
  for norm in paths[1:2 * len(convs):2]:
    _assert_batch_norm(calls, params, norm, activation)
  return np.asarray(calls[paths[2 * len(convs) - 1]][1])


def _assert_generator_trunk(calls, order, params, prefix: str) -> np.ndarray:
  """Section 3.4: G's video trunk is the code's 'full' convolution then 3 up-convolutions, each
  followed by BatchNorm and ReLU (Section 3.2's 2x4x4 block up to half the clip). Returns the
  trunk's output, the heads' input."""
  hidden = _assert_conv_batchnorm_stack(calls, order, params, f'{prefix}trunk', [
      'ConvTranspose_0', 'UpConv_0', 'UpConv_1', 'UpConv_2'], _relu)
  np.testing.assert_array_equal(calls[f'{prefix}trunk'][1], hidden)
  return hidden


def _assert_discriminator_trunk(calls, order, params, prefix: str = '') -> np.ndarray:
  """Sections 3.3 and 3.4: D's trunk (also the classifier's and the autoencoder's encoder's) is
  4 strided convolutions, LeakyReLU(0.2) after each (negative values times 0.2, not zeroed),
  BatchNorm before it on all but the first. Returns the trunk's output."""
  trunk = f'{prefix}trunk'
  assert _children(order, trunk) == ['DownConv_0', 'DownConv_1', 'BatchNorm_0', 'DownConv_2',
                                     'BatchNorm_1', 'DownConv_3', 'BatchNorm_2'], trunk
  first = np.asarray(calls[f'{trunk}/DownConv_0'][1])
  assert (first < 0).mean() > 0.2
  np.testing.assert_allclose(calls[f'{trunk}/DownConv_1'][0], _leaky_relu(first), rtol=1e-6,
                             atol=1e-7, err_msg='no BatchNorm, LeakyReLU on the first layer')
  for i in range(3):
    norm = f'{trunk}/BatchNorm_{i}'
    np.testing.assert_array_equal(calls[norm][0], calls[f'{trunk}/DownConv_{i + 1}'][1])
    _assert_batch_norm(calls, params, norm, _leaky_relu)
    if i < 2:
      np.testing.assert_array_equal(calls[f'{trunk}/DownConv_{i + 2}'][0], calls[norm][1])
  np.testing.assert_array_equal(calls[trunk][1], calls[f'{trunk}/BatchNorm_2'][1])
  return np.asarray(calls[trunk][1])


def _scaled(variables, paths, factor: float):
  """`variables` with the kernels at `paths` times `factor`: heads whose pre-activations reach
  well past +-1, as a trained net's do, so that tanh and sigmoid are far from linear there."""
  params = jax.tree.map(lambda leaf: leaf, variables['params'])  # new containers
  for path in paths:
    layer = _at(params, path)
    layer['kernel'] = layer['kernel'] * factor
  return dict(variables, params=params)


def _assert_saturating_input(pre_activation) -> None:
  assert (np.abs(np.asarray(pre_activation)) > 1.5).mean() > 0.1


def test_one_stream_generator_layers_are_the_papers():
  """Sections 3.2 and 3.4, on the built one-stream G: BatchNorm + ReLU after every layer but the
  last, tanh on the last: the video is in (-1, 1) and is tanh of the last layer's output."""
  module, inputs, variables, _ = _network('one_stream')
  variables = _scaled(variables, ['video'], 30.0)
  output, calls, order = _run(module, variables, inputs, train=True)
  assert order[-1] == '' and _children(order, '') == ['trunk', 'video']
  hidden = _assert_generator_trunk(calls, order, variables['params'], '')
  np.testing.assert_array_equal(calls['video'][0], hidden)
  pre_activation = np.asarray(calls['video'][1])
  _assert_saturating_input(pre_activation)
  video = np.asarray(output.video)
  assert np.abs(video).max() <= 1.0
  np.testing.assert_allclose(video, np.tanh(pre_activation), atol=1e-6)
  np.testing.assert_array_equal(output.foreground, output.video)


def test_two_stream_generator_layers_are_the_papers():
  """Section 3.2 (Eq. 2) and 3.4, on the built two-stream G: the shared trunk BatchNorm + ReLU
  after every layer; the foreground head tanh, the mask head sigmoid, the background (a 2-D
  DCGAN generator) BatchNorm + ReLU after every layer but its last, tanh on that;
  G = m * f + (1 - m) * b. Checked layer by layer on the 'plain' heads (the default 'fused' ones
  compute the same from the same parameters: tests/test_models.py)."""
  module, inputs, variables, _ = _network('two_stream')
  variables = _scaled(variables, ['video', 'mask', 'background/UpConv_3'], 30.0)
  plain = module.clone(impl='plain')
  output, calls, order = _run(plain, variables, inputs, train=True)
  params = variables['params']
  assert _children(order, '') == ['trunk', 'video', 'mask', 'background']
  hidden = _assert_generator_trunk(calls, order, params, '')
  for head in ('video', 'mask'):
    np.testing.assert_array_equal(calls[head][0], hidden, err_msg=head)
  _assert_conv_batchnorm_stack(calls, order, params, 'background', [
      'ConvTranspose_0', 'UpConv_0', 'UpConv_1', 'UpConv_2'], _relu, last='UpConv_3')
  foreground_pre, mask_pre = np.asarray(calls['video'][1]), np.asarray(calls['mask'][1])
  background_pre = np.asarray(calls['background/UpConv_3'][1])
  for pre_activation in (foreground_pre, mask_pre, background_pre):
    _assert_saturating_input(pre_activation)
  foreground, mask = np.asarray(output.foreground), np.asarray(output.mask)
  background = np.asarray(output.background)
  assert np.abs(foreground).max() <= 1.0 and np.abs(background).max() <= 1.0
  assert 0.0 <= mask.min() and mask.max() <= 1.0
  np.testing.assert_allclose(foreground, np.tanh(foreground_pre), atol=1e-6)
  np.testing.assert_allclose(mask, 1 / (1 + np.exp(-mask_pre.astype(np.float64))), atol=1e-6)
  np.testing.assert_allclose(background, np.tanh(background_pre), atol=1e-6)
  np.testing.assert_allclose(output.video, mask * foreground + (1 - mask) * background[:, None],
                             atol=1e-6)


def test_discriminator_layers_are_the_papers():
  """Sections 3.3 and 3.4, on the built D: LeakyReLU(0.2) after every layer but the last,
  BatchNorm on all but the first; the last layer's output is the logit, with no activation
  (Eq. 1's cross entropy takes logits)."""
  module, inputs, variables, _ = _network('discriminator')
  logits, calls, order = _run(module, variables, inputs, train=True)
  assert _children(order, '') == ['trunk', 'logit']
  features = _assert_discriminator_trunk(calls, order, variables['params'])
  np.testing.assert_array_equal(calls['logit'][0], features)
  np.testing.assert_array_equal(logits, np.asarray(calls['logit'][1]).reshape(BATCH))


def test_future_encoder_layers_are_the_papers():
  """Section 4.4, on the built future predictor G(E(x0)): the image encoder's 5 stride-2
  convolutions, LeakyReLU(0.2) after each (as in D), BatchNorm before it on all but the first,
  then a linear map (no activation) to the code that the generator takes as its z."""
  module, inputs, variables, method = _network('future_predictor')
  code, calls, order = _run(module, variables, inputs, train=True, method=method)
  params = variables['params']
  assert _children(order, 'encoder') == ['conv0', 'conv1', 'norm1', 'conv2', 'norm2', 'conv3',
                                         'norm3', 'conv4', 'norm4', 'code']
  features = np.asarray(calls['encoder/conv0'][1])
  assert (features < 0).mean() > 0.2
  for i in range(1, 5):
    np.testing.assert_allclose(calls[f'encoder/conv{i}'][0], _leaky_relu(features), rtol=1e-6,
                               atol=1e-7, err_msg=f'conv{i}')
    np.testing.assert_array_equal(calls[f'encoder/norm{i}'][0], calls[f'encoder/conv{i}'][1])
    _assert_batch_norm(calls, params, f'encoder/norm{i}', _identity)
    features = np.asarray(calls[f'encoder/norm{i}'][1])
  np.testing.assert_allclose(calls['encoder/code'][0], _leaky_relu(features).reshape(BATCH, -1),
                             rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(code, calls['encoder/code'][1])
  assert code.shape == (BATCH, 100) and (code < 0).mean() > 0.2  # linear: negative codes remain
  assert isinstance(module, models.FuturePredictor)  # G(E(x0)): the code is the generator's z


def test_autoencoder_encoder_layers_are_the_papers():
  """Section 4.2, on the built autoencoder: its encoder is D's trunk (LeakyReLU 0.2, BatchNorm on
  all but the first layer) with a 100-d linear code in place of the logit."""
  module, inputs, variables, method = _network('autoencoder')
  code, calls, order = _run(module, variables, inputs, train=True, method=method)
  assert _children(order, 'encoder') == ['trunk', 'code']
  features = _assert_discriminator_trunk(calls, order, variables['params'], 'encoder/')
  np.testing.assert_array_equal(calls['encoder/code'][0], features)
  np.testing.assert_array_equal(code, np.asarray(calls['encoder/code'][1]).reshape(BATCH, 100))


def test_classifier_layers_are_the_papers():
  """Section 4.3, on the built classifier: D's trunk (LeakyReLU 0.2, BatchNorm on all but the
  first layer), dropout 0.5 on its features (the penultimate layer: half zeroed, the rest
  doubled), then the K-way layer's logits with no activation (softmax is in the loss)."""
  module, inputs, variables, _ = _network('classifier')
  logits, calls, order = _run(module, variables, inputs, train=True,
                              rngs={'dropout': jax.random.PRNGKey(2)})
  assert _children(order, '') == ['trunk', 'Dropout_0', 'head']
  features = _assert_discriminator_trunk(calls, order, variables['params'])
  np.testing.assert_array_equal(calls['Dropout_0'][0], features)
  dropped = np.asarray(calls['Dropout_0'][1])
  kept = dropped != 0
  assert abs(1 - kept.mean() - 0.5) < 5 * 0.5 / np.sqrt(kept.size), 1 - kept.mean()  # 5 s.e.
  np.testing.assert_allclose(dropped[kept], features[kept] / (1 - 0.5), rtol=1e-6)
  np.testing.assert_array_equal(calls['head'][0], dropped)
  np.testing.assert_array_equal(logits, np.asarray(calls['head'][1]).reshape(BATCH, 101))


# Weight layers: G's 5 (Section 3.2), with the mask's and the background's 5 for two streams;
# D's 5 (Section 3.3), the autoencoder's encoder's too; the image encoder's 5 and its linear code
# (Section 4.4).
KERNELS = {'one_stream': 5, 'two_stream': 11, 'discriminator': 5, 'future_predictor': 6,
           'autoencoder': 5, 'classifier': 5}


@pytest.mark.parametrize('name', NETWORKS)
def test_initialisation_is_the_papers_layer_by_layer_section_3_4(name):
  """Section 3.4: every weight N(0, 0.01) -- each layer's kernel, G's first layer included, its
  mean and standard deviation within 5 standard errors, Gaussian (the kurtosis of all kernels
  pooled is 3) -- and biases 0; BatchNorm scales N(1, 0.02) and shifts 0 (the authors' code),
  its running statistics starting at mean 0, variance 1. On the built network's parameters."""
  _, _, variables, _ = _network(name)
  params = flax.traverse_util.flatten_dict(variables['params'], sep='/')
  kernels = {path: np.asarray(leaf, np.float64).ravel() for path, leaf in params.items()
             if path.endswith('/kernel')}
  assert len(kernels) == KERNELS[name], sorted(kernels)
  for path, kernel in kernels.items():
    tolerance = 5 / np.sqrt(2 * kernel.size)  # 5 standard errors of a standard deviation
    assert tolerance < 0.2, (path, kernel.size)  # enough weights for a tight check
    assert abs(kernel.std() / CONV_STDDEV - 1) < tolerance, (path, kernel.std())
    assert abs(kernel.mean()) < 5 * CONV_STDDEV / np.sqrt(kernel.size), (path, kernel.mean())
  pooled = np.concatenate(list(kernels.values())) / CONV_STDDEV
  assert abs(np.mean(pooled ** 4) / np.mean(pooled ** 2) ** 2 - 3) < 0.1  # Gaussian
  biases = [path for path, leaf in params.items() if path.endswith('/bias')]
  assert biases and all(not np.asarray(params[path]).any() for path in biases)
  scales = np.concatenate([np.asarray(leaf).ravel() for path, leaf in params.items()
                           if path.endswith('/scale')])
  assert abs(scales.mean() - 1) < 5 * BATCHNORM_SCALE_STDDEV / np.sqrt(scales.size)
  assert abs(scales.std() / BATCHNORM_SCALE_STDDEV - 1) < 5 / np.sqrt(2 * scales.size)
  stats = flax.traverse_util.flatten_dict(variables['batch_stats'], sep='/')
  assert stats and all(np.all(np.asarray(leaf) == (path.endswith('/var')))
                       for path, leaf in stats.items())


# --- 3. The G update against its equation (Eq. 1's non-saturating G loss, Section 3.2's mask
# prior, Eq. 3's reconstruction), as tests/test_train_step.py checks the D update.


def _generator_gradient(gan, state, real):
  """G's loss and its gradient by hand, jitted, as a function of (G's parameters, D's parameters,
  the mask prior's weight, the generated frame that is compared with the input image):
    -mean log sigmoid(D(G(z)))               the non-saturating G loss of Eq. 1 (fakes -> real)
    + weight * mean |m(z)|                   Section 3.2's sparsity prior on the mask
    + 10 * mean |G(x0)[frame] - x0|          Eq. 3, future prediction only (frame 0 in the paper)
  z is the step's (drawn from the state's key), or for future prediction the clip's first frame.
  Returns ((total, (adversarial, prior, reconstruction)), gradient)."""
  if gan.conditional:
    inputs = real[:, 0]
  else:
    inputs = train_step.sample_latents(jax.random.split(state.rng)[1], real.shape[0],
                                       gan.latent_dim)

  @jax.jit
  def gradient(generator_params, discriminator_params, mask_weight, frame):
    def total(generator_params):
      output, _ = gan.generator.apply(
          {'params': generator_params, 'batch_stats': state.generator_batch_stats}, inputs,
          train=True, mutable=['batch_stats'])
      logits, _ = gan.discriminator.apply(
          {'params': discriminator_params, 'batch_stats': state.discriminator_batch_stats},
          output.video, train=True, mutable=['batch_stats'])
      adversarial = jnp.mean(jax.nn.softplus(-logits))  # -log sigmoid(logits)
      prior = mask_weight * jnp.mean(jnp.abs(output.mask))
      reconstruction = jnp.mean(jnp.abs(jnp.take(output.video, frame, axis=1) - real[:, 0]))
      weight = RECONSTRUCTION_WEIGHT if gan.conditional else 0.0
      return adversarial + prior + weight * reconstruction, (adversarial, prior, reconstruction)

    return jax.value_and_grad(total, has_aux=True)(generator_params)

  return gradient


def _adam_moments(opt_state):
  """(first, second) moment pytrees of the one Adam inside an optax state."""
  is_adam = lambda node: isinstance(node, optax.ScaleByAdamState)
  (adam,) = [node for node in jax.tree.leaves(opt_state, is_leaf=is_adam) if is_adam(node)]
  return adam.mu, adam.nu


def _misfit(got, want) -> tuple[float, str]:
  """The worst leaf's worst |got - want| in tolerances (rtol 1e-3 of the value, 1e-4 of the
  leaf's largest), and that leaf's path: <= 1 passes."""
  worst = (0.0, '')
  for (path, g), w in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want)):
    g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
    tolerance = 1e-3 * np.abs(w) + 1e-4 * np.abs(w).max() + 1e-30
    worst = max(worst, (float((np.abs(g - w) / tolerance).max()), jax.tree_util.keystr(path)))
  return worst


def _assert_generator_update(gan, before, after, metrics, gradient, variants):
  """`after`'s G Adam moments are those of one step on `gradient(before's G, after's D, prior
  0.1, frame 0)`; and each of `variants` (name: arguments) gives moments the check tells apart."""
  (total, (adversarial, prior, reconstruction)), grads = gradient(
      before.generator_params, after.discriminator_params, MASK_PENALTY, 0)
  np.testing.assert_allclose(metrics['generator_total_loss'], total, rtol=1e-5)
  np.testing.assert_allclose(metrics['generator_loss'], adversarial, rtol=1e-5)
  np.testing.assert_allclose(metrics['mask_penalty'], prior, rtol=1e-5)
  if gan.conditional:
    np.testing.assert_allclose(metrics['reconstruction_loss'], reconstruction, rtol=1e-5)
  first, second = _adam_moments(after.generator_opt_state)
  misfit = _misfit(first, jax.tree.map(lambda g: (1 - BETA1) * g, grads))
  assert misfit[0] <= 1, misfit
  misfit = _misfit(second, jax.tree.map(lambda g: (1 - BETA2) * g * g, grads))
  assert misfit[0] <= 1, misfit
  for name, arguments in variants.items():  # the check is sharp enough to tell these apart
    _, other = gradient(before.generator_params, *arguments)
    misfit = _misfit(first, jax.tree.map(lambda g: (1 - BETA1) * g, other))
    assert misfit[0] > 10, (name, misfit)


def test_generator_update_is_adam_on_its_loss_through_the_updated_discriminator(test_config):
  """Eq. 1 and Section 3.2: the G update is Adam on the gradient of the non-saturating G loss
  plus 0.1 * mean|m| (the mask prior is in the loss, not only logged), judged by the D that this
  step's D update made, on the same latents. (Set up as tests/test_train_step.py sets up its D
  update check, so XLA's cache compiles the step once for both.)"""
  gan = train_state.build_gan(test_config)
  mesh = parallel.create_mesh()
  step = parallel.jit_step(train_step.make_train_step(gan), mesh)
  state = train_state.init_train_state(gan, test_config, jax.random.PRNGKey(test_config.seed),
                                       parallel.replicated(mesh))
  model = test_config.model
  batch = {'video': np.stack([synthetic.render_clip('golf', i, model.frames, model.size)
                              for i in range(test_config.batch_size)])}
  before = jax.device_get(state)  # the step donates its state
  after, metrics = step(state, parallel.shard_batch(batch, mesh))
  after = jax.device_get(after)
  gradient = _generator_gradient(gan, before, train_step.normalize_video(batch['video']))
  _assert_generator_update(gan, before, after, metrics, gradient, {
      'through the D before its update': (before.discriminator_params, MASK_PENALTY, 0),
      'without the mask prior': (after.discriminator_params, 0.0, 0)})


def test_future_generator_update_reconstructs_the_first_frame():
  """Section 4.4, Eq. 3: future prediction's G update adds 10 * mean|G(x0)[first frame] - x0|
  (L1) to the loss of the GAN's update, through the updated D. (The config, batch and step of
  tests/test_future.py's learning test, so XLA's cache compiles the step once for both; Adam's
  moments do not depend on its learning rate.)"""
  config = configs.get_config('test')
  config.model.generator_input = 'image'
  config.model.encoder_width = 8
  config.optimizer.learning_rate = 1e-3
  gan = train_state.build_gan(config)
  state = train_state.init_train_state(gan, config, jax.random.PRNGKey(0))
  batch = {'video': np.stack([synthetic.render_clip('golf', i, 16, 32) for i in range(4)])}
  before = jax.device_get(state)
  after, metrics = jax.jit(train_step.make_train_step(gan))(state, batch)
  after = jax.device_get(after)
  gradient = _generator_gradient(gan, before, train_step.normalize_video(batch['video']))
  frames = config.model.frames
  _assert_generator_update(gan, before, after, metrics, gradient, {
      'the last frame reconstructed': (after.discriminator_params, MASK_PENALTY, frames - 1),
      'the second frame reconstructed': (after.discriminator_params, MASK_PENALTY, 1),
      'through the D before its update': (before.discriminator_params, MASK_PENALTY, 0),
      'without the mask prior': (after.discriminator_params, 0.0, 0)})
