"""The GAN step: it updates both nets, learns, and gives the same update on 1 and 2 devices."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipeline import synthetic
from vgan_jax import losses as vgan_losses
from vgan_jax import parallel, train_state, train_step


def _setup(config, devices=None):
  gan = train_state.build_gan(config)
  mesh = parallel.create_mesh(devices)
  step = parallel.jit_step(train_step.make_train_step(gan), mesh)
  state = train_state.init_train_state(gan, config, jax.random.PRNGKey(config.seed),
                                       parallel.replicated(mesh))
  return state, step, mesh


def _batch(config, start=0):
  model = config.model
  return {'video': np.stack([synthetic.render_clip('golf', start + i, model.frames, model.size)
                             for i in range(config.batch_size)])}


def _leaves_differ(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_one_step_updates_both_networks_and_the_counter(test_config):
  state, step, mesh = _setup(test_config)
  before = jax.device_get(state)
  state, metrics = step(state, parallel.shard_batch(_batch(test_config), mesh))
  after = jax.device_get(state)
  assert int(after.step) == 1
  for field in ('generator_params', 'discriminator_params', 'generator_batch_stats',
                'discriminator_batch_stats', 'generator_opt_state', 'discriminator_opt_state',
                'rng'):
    assert _leaves_differ(getattr(before, field), getattr(after, field)), field
  for name in ('discriminator_loss', 'generator_loss', 'mask_mean', 'mask_penalty'):
    assert np.isfinite(float(metrics[name])), name
  assert 0.0 < float(metrics['mask_mean']) < 1.0
  np.testing.assert_allclose(metrics['mask_penalty'], 0.1 * metrics['mask_mean'], rtol=1e-5)
  # At initialisation D cannot tell real from fake: log 4 for D, log 2 for G.
  assert abs(float(metrics['discriminator_loss']) - np.log(4)) < 0.1
  assert abs(float(metrics['generator_loss']) - np.log(2)) < 0.1


def test_discriminator_update_is_adam_on_the_gradient_of_its_loss(test_config):
  """The step differentiates D's real and fake passes separately; its D update is the one that
  the gradient of Eq. 1's D loss, with both passes in one function, gives."""
  state, step, mesh = _setup(test_config)
  batch = _batch(test_config)
  new_state, metrics = step(state, parallel.shard_batch(batch, mesh))
  state, _, _ = _setup(test_config)  # the same initial state (the step donated the first)

  gan = train_state.build_gan(test_config)
  real = train_step.normalize_video(jnp.asarray(batch['video']))
  latents = train_step.sample_latents(jax.random.split(state.rng)[1], real.shape[0],
                                      gan.latent_dim)
  # Jitted, not eager: op-by-op dispatch of the CPU convolutions took most of this test's time.
  output, _ = jax.jit(lambda variables, z: gan.generator.apply(
      variables, z, train=True, mutable=['batch_stats']))(
          {'params': state.generator_params, 'batch_stats': state.generator_batch_stats}, latents)

  discriminate = train_step._discriminate  # pylint: disable=protected-access

  def loss(params):
    real_logits, stats = discriminate(gan, params, state.discriminator_batch_stats, real)
    fake_logits, _ = discriminate(gan, params, stats, output.video)
    return vgan_losses.discriminator_loss(real_logits, fake_logits)

  value, grads = jax.jit(jax.value_and_grad(loss))(state.discriminator_params)
  _, want = gan.discriminator_optimizer.update(grads, state.discriminator_opt_state,
                                               state.discriminator_params)
  np.testing.assert_allclose(metrics['discriminator_loss'], value, rtol=1e-5)
  # Adam's moments after one step are multiples of the gradient and its square (the parameters
  # are not compared: a first Adam step is lr * sign(g), unstable where g is rounding noise).
  for got, expected in zip(jax.tree.leaves(new_state.discriminator_opt_state),
                           jax.tree.leaves(want)):
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * scale)
  assert any(float(np.abs(g).max()) > 0 for g in jax.tree.leaves(grads))


@pytest.mark.parametrize('compute_dtype', ['float32', 'bfloat16'])
def test_discriminator_learns_a_fixed_batch(test_config, compute_dtype):
  test_config.optimizer.learning_rate = 1e-3  # a few dozen steps, not hundreds
  test_config.model.compute_dtype = compute_dtype
  state, step, mesh = _setup(test_config)
  batch = parallel.shard_batch(_batch(test_config), mesh)
  losses = []
  for _ in range(30):
    state, metrics = step(state, batch)
    losses.append(float(metrics['discriminator_loss']))
  assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3]), losses
  # Mixed precision: parameters and optimizer states stay float32.
  assert {str(leaf.dtype) for leaf in jax.tree.leaves(state)} <= {'float32', 'int32', 'uint32'}


def test_bfloat16_computes_its_convolutions_in_bfloat16(test_config):
  test_config.model.compute_dtype = 'bfloat16'
  gan = train_state.build_gan(test_config)
  state = train_state.init_train_state(gan, test_config, jax.random.PRNGKey(0))
  text = jax.jit(train_step.make_train_step(gan)).lower(state, _batch(test_config)).as_text()
  convolutions = [line for line in text.splitlines() if 'convolution' in line]
  assert convolutions and all('bf16' in line for line in convolutions)
  output = train_step.generate(gan, state, jnp.zeros((2, test_config.model.latent_dim)))
  assert output.video.dtype == jnp.float32  # losses and D's input in float32


def test_one_stream_generator_trains(test_config):
  test_config.model.generator = 'one_stream'
  state, step, mesh = _setup(test_config)
  state, metrics = step(state, parallel.shard_batch(_batch(test_config), mesh))
  assert 'mask_mean' not in metrics and np.isfinite(float(metrics['generator_loss']))


def test_uint8_and_float_batches_give_the_same_step(test_config):
  state, step, mesh = _setup(test_config)
  uint8 = _batch(test_config)
  as_float = {'video': uint8['video'].astype(np.float32) / 127.5 - 1.0}
  _, m_uint8 = step(jax.tree.map(jnp.copy, state), parallel.shard_batch(uint8, mesh))
  _, m_float = step(state, parallel.shard_batch(as_float, mesh))
  np.testing.assert_allclose(m_uint8['discriminator_loss'], m_float['discriminator_loss'],
                             rtol=1e-5)


def test_two_devices_give_the_update_of_one(test_config):
  """BatchNorm statistics and gradients are over the global batch however it is split."""
  assert jax.device_count() >= 2, 'conftest forces 2 CPU devices'
  results = []
  for devices in (jax.devices()[:1], jax.devices()[:2]):
    state, step, mesh = _setup(test_config, devices)
    for i in range(3):
      state, _ = step(state, parallel.shard_batch(_batch(test_config, i * 4), mesh))
    results.append(jax.device_get(state))
  one, two = results
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_batch_that_does_not_split_over_devices_is_refused(test_config):
  mesh = parallel.create_mesh(jax.devices()[:2])
  with pytest.raises(ValueError, match='batch_size=5 does not split over 2 devices'):
    parallel.process_batch_size(5, mesh)


def test_one_host_feeds_the_whole_global_batch_over_its_devices():
  """`process_batch_size` is a host's share of the global batch (global / hosts), not a device's:
  one process with 2 devices reads all 8 clips of a global batch of 8, which `shard_batch` splits
  4 and 4, so the step trains on the configured batch and not on half of it."""
  mesh = parallel.create_mesh()
  assert mesh.devices.size == 2 and jax.process_count() == 1
  assert parallel.process_batch_size(8, mesh) == 8
  batch = parallel.shard_batch({'video': np.zeros((8, 3), np.float32)}, mesh)
  assert batch['video'].shape == (8, 3)
  assert [s.data.shape[0] for s in batch['video'].addressable_shards] == [4, 4]


def test_prefetch_to_device_keeps_order_and_places_batches(test_config):
  mesh = parallel.create_mesh()
  batches = [{'video': np.full((2, 1), i, np.uint8)} for i in range(5)]
  placed = list(parallel.prefetch_to_device(iter(batches), mesh, size=2))
  assert [int(b['video'][0, 0]) for b in placed] == list(range(5))
  assert all(b['video'].sharding == parallel.batch_sharded(mesh) for b in placed)
