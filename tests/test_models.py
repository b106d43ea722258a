"""Shapes, Eq. 2, the streams' ranges, and the CPU convolutions against XLA's reference."""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgan_jax import configs, models
from vgan_jax import memory
from vgan_jax.conv import CpuBudgets
from vgan_jax.models import generator as generator_module
from vgan_jax.models import layers


@pytest.mark.parametrize('name', ['paper', 'tiny'])
def test_shapes_of_every_module(name):
  config = configs.get_config(name)
  frames, size, width = config.model.frames, config.model.size, config.model.width
  z = jnp.zeros((2, config.model.latent_dim))
  video = jnp.zeros((2, frames, size, size, 3))
  sizes = dict(frames=frames, size=size, width=width)
  init = lambda module, x: jax.eval_shape(  # shapes only: no paper-size compute
      lambda: module.init_with_output(jax.random.PRNGKey(0), x, train=False))[0]

  assert init(models.VideoTrunk(**sizes), z).shape == (2, frames // 2, size // 2, size // 2, width)
  assert init(models.ImageGenerator(**sizes), z).shape == (2, size, size, 3)
  one = init(models.OneStreamGenerator(**sizes), z)
  assert one.video.shape == (2, frames, size, size, 3) and one.mask is None
  two = init(models.TwoStreamGenerator(**sizes), z)
  assert two.video.shape == two.foreground.shape == (2, frames, size, size, 3)
  assert two.background.shape == (2, size, size, 3)
  assert two.mask.shape == (2, frames, size, size, 1)
  assert init(models.DiscriminatorTrunk(**sizes), video).shape == (
      2, frames // 16, size // 16, size // 16, 8 * width)
  assert init(models.Discriminator(**sizes), video).shape == (2,)


def test_paper_generator_layers_have_the_papers_shapes():
  config = configs.get_config('paper')
  params = jax.eval_shape(lambda: models.build_generator(config.model).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 100)), train=False))['params']
  kernels = [params['trunk'][f'{kind}_{i}']['kernel'].shape for kind, i in
             [('ConvTranspose', 0), ('UpConv', 0), ('UpConv', 1), ('UpConv', 2)]]
  assert kernels == [(2, 4, 4, 100, 512), (4, 4, 4, 512, 256), (4, 4, 4, 256, 128),
                     (4, 4, 4, 128, 64)]
  assert params['video']['kernel'].shape == (4, 4, 4, 64, 3)
  assert params['mask']['kernel'].shape == (4, 4, 4, 64, 1)


def _two_stream(test_config, mask_bias=None):
  generator = models.build_generator(test_config.model)
  z = jax.random.normal(jax.random.PRNGKey(1), (3, test_config.model.latent_dim))
  variables = generator.init(jax.random.PRNGKey(0), z, train=False)
  if mask_bias is not None:
    params = flax.core.unfreeze(variables['params'])
    params['mask']['bias'] = jnp.full_like(params['mask']['bias'], mask_bias)
    variables = dict(variables, params=params)
  # Training mode: BatchNorm on batch statistics, so the streams have their full range at init.
  return generator.apply(variables, z, train=True, mutable=['batch_stats'])[0]


def test_two_stream_output_is_the_masked_blend(test_config):
  out = _two_stream(test_config)
  by_hand = out.mask * out.foreground + (1 - out.mask) * out.background[:, None]
  np.testing.assert_allclose(out.video, by_hand, atol=1e-6)
  assert float(jnp.abs(out.foreground - out.background[:, None]).max()) > 1e-3  # not trivial


def test_mask_is_in_unit_interval_and_video_in_tanh_range(test_config):
  for bias in (None, 30.0, -30.0):
    out = _two_stream(test_config, bias)
    assert float(out.mask.min()) >= 0.0 and float(out.mask.max()) <= 1.0
    assert float(jnp.abs(out.video).max()) <= 1.0


def test_background_is_constant_over_time(test_config):
  out = _two_stream(test_config, mask_bias=-30.0)  # mask ~ 0: only the background shows
  assert float(out.mask.max()) < 1e-6
  for t in range(out.video.shape[1]):
    np.testing.assert_allclose(out.video[:, t], out.background, atol=1e-5)
  out = _two_stream(test_config, mask_bias=30.0)  # mask ~ 1: the foreground, which moves
  assert float(jnp.abs(out.video[:, 1:] - out.video[:, :-1]).max()) > 1e-4


def test_paper_initialisation(test_config):
  params = models.build_discriminator(test_config.model).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 16, 32, 32, 3)), train=False)['params']
  kernel = np.asarray(params['trunk']['DownConv_1']['kernel'])
  assert abs(kernel.std() - 0.01) < 0.001 and abs(kernel.mean()) < 0.001
  assert not np.asarray(params['trunk']['DownConv_0']['bias']).any()
  assert 'bias' not in params['trunk']['DownConv_1']  # BatchNorm follows
  scale = np.asarray(params['trunk']['BatchNorm_0']['scale'])
  assert abs(scale.mean() - 1.0) < 0.02 and 0.0 < scale.std() < 0.05


def test_discriminator_names_a_wrong_input_shape(test_config):
  discriminator = models.build_discriminator(test_config.model)
  with pytest.raises(ValueError, match=r'\[B, 16, 32, 32, 3\].*got \[2, 8, 32, 32, 3\]'):
    discriminator.init(jax.random.PRNGKey(0), jnp.zeros((2, 8, 32, 32, 3)), train=False)


@pytest.mark.parametrize('impl', ['decomposed', 'matmul', 'auto'])
def test_networks_give_the_same_output_whichever_convolutions_run(test_config, impl):
  """One set of parameters; the two-stream generator's fused video + mask heads included."""
  model = test_config.model
  z = jax.random.normal(jax.random.PRNGKey(0), (2, model.latent_dim))

  def build(build_fn, conv_impl):
    with model.unlocked():
      model.conv_impl = conv_impl
    return build_fn(model)

  variables = build(models.build_generator, 'xla').init(jax.random.PRNGKey(1), z, train=False)
  reference = build(models.build_generator, 'xla').apply(variables, z, train=False)
  got = build(models.build_generator, impl).apply(variables, z, train=False)
  for name in ('video', 'mask', 'background'):
    np.testing.assert_allclose(getattr(got, name), getattr(reference, name), atol=1e-5)
  video = jax.random.uniform(jax.random.PRNGKey(2), reference.video.shape, minval=-1.0)
  d_variables = build(models.build_discriminator, 'xla').init(jax.random.PRNGKey(3), video,
                                                               train=False)
  np.testing.assert_allclose(
      build(models.build_discriminator, impl).apply(d_variables, video, train=False),
      build(models.build_discriminator, 'xla').apply(d_variables, video, train=False), atol=1e-5)


@pytest.mark.parametrize('activation', ['identity', 'relu', 'leaky_relu'])
def test_batch_norm_matches_flax_in_values_gradients_and_statistics(activation):
  """`layers.BatchNorm` (its backward recomputed from its input) against `nn.BatchNorm` followed by
  the activation: output, gradients, running statistics, inference mode, parameter names."""
  ours_activation, reference_activation = {
      'identity': (lambda x: x, lambda x: x),
      'relu': (nn.relu, nn.relu),
      'leaky_relu': (layers.leaky_relu, lambda x: nn.leaky_relu(x, 0.2)),
  }[activation]
  keys = jax.random.split(jax.random.PRNGKey(4), 3)
  # Channels with their own offsets and spreads, so that normalising changes them.
  x = 3.0 + jnp.arange(1.0, 7.0) * jax.random.normal(keys[0], (4, 3, 5, 6))
  cotangent = jax.random.normal(keys[1], x.shape)
  scale_init = layers.batchnorm_scale_init(0.5)

  def build(train):
    ours = layers.BatchNorm(not train, scale_init, ours_activation)
    reference = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                             scale_init=scale_init)

    def reference_apply(variables, x, **kwargs):
      out = reference.apply(variables, x, **kwargs)
      if isinstance(out, tuple):  # with the updated statistics
        return reference_activation(out[0]), out[1]
      return reference_activation(out)

    return ours.apply, reference_apply

  ours, reference = build(train=True)
  variables = layers.BatchNorm(False, scale_init).init(keys[2], x)
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(
      jnp.shape, nn.BatchNorm(use_running_average=False, scale_init=scale_init).init(keys[2], x))
  variables = {'params': variables['params'],
               'batch_stats': {'mean': jnp.full(6, 0.5), 'var': jnp.full(6, 2.0)}}
  results = []
  for apply in (ours, reference):
    def loss(params, x):
      y, updates = apply({**variables, 'params': params}, x, mutable=['batch_stats'])
      return jnp.vdot(y, cotangent), (y, updates['batch_stats'])
    (_, aux), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
        variables['params'], x)
    results.append((aux, grads))
  (ours_aux, ours_grads), (reference_aux, reference_grads) = results
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
               (ours_aux, ours_grads), (reference_aux, reference_grads))
  assert float(jnp.abs(ours_grads[0]['scale']).min()) > 0  # the gradient reaches every channel

  ours, reference = build(train=False)  # inference: the running statistics
  np.testing.assert_allclose(ours(variables, x), reference(variables, x), rtol=1e-5, atol=1e-5)


def test_recomputed_in_backward_has_autodiffs_gradients():
  keys = jax.random.split(jax.random.PRNGKey(6), 3)
  heads = jax.random.normal(keys[0], (2, 3, 4, 4, 4))
  background = jax.random.normal(keys[1], (2, 4, 4, 3))
  cotangents = [jax.random.normal(k, s) for k, s in zip(
      jax.random.split(keys[2], 3), [(2, 3, 4, 4, 3), (2, 3, 4, 4, 3), (2, 3, 4, 4, 1)])]

  def grads(fn):
    loss = lambda *args: sum(jnp.vdot(y, c) for y, c in zip(fn(*args), cotangents))
    return jax.jit(jax.grad(loss, argnums=(0, 1)))(heads, background)

  plain = grads(generator_module.compose)
  recomputed = grads(memory.recomputed_in_backward(generator_module.compose))
  for got, want in zip(recomputed, plain):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(want).max()) > 0


def test_leaky_relu_gradient_from_its_output_is_autodiffs():
  x = jnp.array([-2.0, -0.5, 0.0, 0.5, 3.0])
  np.testing.assert_allclose(layers.leaky_relu(x), nn.leaky_relu(x, 0.2))
  np.testing.assert_allclose(jax.grad(lambda x: jnp.vdot(layers.leaky_relu(x), x + 1))(x),
                             jax.grad(lambda x: jnp.vdot(nn.leaky_relu(x, 0.2), x + 1))(x))


@pytest.mark.parametrize('chunked', [False, True])
def test_generator_gradients_are_the_same_whichever_convolutions_run(test_config, chunked,
                                                                     monkeypatch):
  """Training mode: with the CPU convolutions and the backward passes that recompute BatchNorm,
  ReLU and Eq. 2 (`recomputed_in_backward`), parameter gradients and batch statistics agree with
  plain autodiff through XLA's convolutions."""
  budgets = CpuBudgets(chunk_bytes=1, unchunked_bytes=0) if chunked else CpuBudgets()
  model = test_config.model
  z = jax.random.normal(jax.random.PRNGKey(0), (3, model.latent_dim))
  cotangents, results = None, []
  for impl in ('xla', 'auto'):
    with model.unlocked():
      model.conv_impl = impl
    with monkeypatch.context() as patch:
      if impl == 'xla':  # the reference: autodiff all the way
        patch.setattr(layers, 'recomputed_in_backward', lambda fn: fn)
        patch.setattr(generator_module, 'recomputed_in_backward', lambda fn: fn)
      results.append(generator_gradients(model, z, cotangents, budgets))
    cotangents = cotangents or results[-1][2]
  (grads_xla, stats_xla, _), (grads_auto, stats_auto, _) = results
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4),
               (grads_auto, stats_auto), (grads_xla, stats_xla))
  assert float(jnp.abs(grads_xla['trunk']['BatchNorm_3']['scale']).max()) > 0


def test_fused_and_plain_two_stream_generators_agree(test_config):
  """The fused heads (one layer, recomputed BatchNorm + ReLU and Eq. 2) and Eq. 2 as written:
  the same parameter tree, outputs (both modes), batch statistics and parameter gradients."""
  model = test_config.model
  z = jax.random.normal(jax.random.PRNGKey(0), (3, model.latent_dim))
  results, variables = [], []
  for impl in ('plain', 'fused'):
    with model.unlocked():
      model.two_stream_impl = impl
    generator = models.build_generator(model)
    assert generator.impl == impl
    variables.append(generator.init(jax.random.PRNGKey(1), z, train=False))
    inference = generator.apply(variables[0], z, train=False)
    cotangents = results[0][1][2] if results else None
    results.append((inference, generator_gradients(model, z, cotangents)))
  # The same parameter tree (names, shapes and initial values).
  jax.tree.map(np.testing.assert_array_equal, variables[0], variables[1])
  (plain_out, (plain_grads, plain_stats, _)), (fused_out, (fused_grads, fused_stats, _)) = results
  for name in ('video', 'foreground', 'background', 'mask'):
    np.testing.assert_allclose(getattr(fused_out, name), getattr(plain_out, name), atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
               (fused_grads, fused_stats), (plain_grads, plain_stats))
  assert float(jnp.abs(plain_grads['mask']['kernel']).max()) > 0


def test_unknown_two_stream_impl_is_refused(test_config):
  with test_config.unlocked():
    test_config.model.two_stream_impl = 'fast'
  with pytest.raises(ValueError, match="two_stream_impl='fast'"):
    configs.validate(test_config)


def generator_gradients(model, z, cotangents, budgets=CpuBudgets()):
  """(parameter gradients, updated batch statistics, cotangents) of <G(z), cotangents> in
  training mode; random cotangents for the video and the mask when None."""
  generator = models.build_generator(model, budgets)
  variables = generator.init(jax.random.PRNGKey(1), z, train=False)
  if cotangents is None:
    shapes = jax.eval_shape(lambda: generator.apply(variables, z, train=False))
    cotangents = [jax.random.normal(jax.random.PRNGKey(2), shapes.video.shape),
                  jax.random.normal(jax.random.PRNGKey(3), shapes.mask.shape)]

  def loss(params):
    out, updates = generator.apply({**variables, 'params': params}, z, train=True,
                                   mutable=['batch_stats'])
    return (jnp.vdot(out.video, cotangents[0]) + jnp.vdot(out.mask, cotangents[1]),
            updates['batch_stats'])

  return (*jax.jit(jax.grad(loss, has_aux=True))(variables['params']), cotangents)
