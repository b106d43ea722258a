"""Pure training steps: (state, batch) -> (state, metrics), to be jitted once by the caller, for
every kind of training (`vgan_jax/train_state.py`); `make_train_step(networks)` gives the one for
a bundle of networks. Also the networks in inference mode (`generate`, `encode`, `decode`,
`classify`).

A batch is a dict of arrays; `batch["video"]` is [B, T, H, W, C], uint8 in [0, 255] (scaled here,
on the device, so the host sends a quarter of the bytes) or float in [-1, 1].
"""

import functools

import jax
import jax.numpy as jnp
import optax

from vgan_jax import losses
from vgan_jax.memory import computed_after
from vgan_jax.models import GeneratorOutput
from vgan_jax.train_state import (GAN, AutoencoderNetworks, AutoencoderTrainState, Classifier,
                                  ClassifierTrainState, GANTrainState)


def normalize_video(video: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]; float input is taken to be in [-1, 1] already."""
  if video.dtype == jnp.uint8:
    return video.astype(jnp.float32) / 127.5 - 1.0
  return video.astype(jnp.float32)


def sample_latents(rng: jax.Array, batch_size: int, latent_dim: int) -> jax.Array:
  """z ~ N(0, I): [batch_size, latent_dim]."""
  return jax.random.normal(rng, (batch_size, latent_dim), jnp.float32)


def _discriminate(gan: GAN, params, batch_stats, video):
  """D in training mode: (logits [B], updated batch statistics)."""
  logits, updates = gan.discriminator.apply({'params': params, 'batch_stats': batch_stats}, video,
                                            train=True, mutable=['batch_stats'])
  return logits, updates['batch_stats']


def gan_train_step(gan: GAN, state: GANTrainState,
                   batch: dict[str, jax.Array]) -> tuple[GANTrainState, dict[str, jax.Array]]:
  """One iteration of the authors' Torch loop: one D update, then one G update on the same fakes.

  G runs forward once; its pullback (`jax.vjp`) carries the updated D's gradient back for the G
  update, as Torch's autograd does. D sees real and fake clips in separate passes (so BatchNorm
  normalises each batch by its own statistics, as in DCGAN). Under `jax.jit` with the batch
  sharded, every mean here is over the global batch.
  """
  real = normalize_video(batch['video'])
  rng, latent_key = jax.random.split(state.rng)

  # --- Discriminator update: real -> 1, fake -> 0. The loss is a sum of a real and a fake term,
  # so each pass gets its own gradient, and the real pass runs first, before G: XLA then need not
  # hold both passes' activations, or the real pass's with G's (~1 GiB each at paper size, batch
  # 64; its CPU scheduler would start the real pass first and finish it last).
  def discriminator_objective(params, batch_stats, video, label):
    logits, batch_stats = _discriminate(gan, params, batch_stats, video)
    return losses.cross_entropy_to(logits, label), (batch_stats, logits)

  objective = jax.value_and_grad(discriminator_objective, has_aux=True)
  (real_loss, (discriminator_batch_stats, real_logits)), real_grads = objective(
      state.discriminator_params, state.discriminator_batch_stats, real, 1.0)

  if gan.conditional:  # future prediction: from the clip's first frame
    generator_input = real[:, 0]
  else:
    generator_input = sample_latents(latent_key, real.shape[0], gan.latent_dim)
  generator_input = computed_after(generator_input, real_grads)

  def generate(params):
    output, updates = gan.generator.apply(
        {'params': params, 'batch_stats': state.generator_batch_stats}, generator_input,
        train=True, mutable=['batch_stats'])
    return (output.video, output.mask), updates['batch_stats']

  (fake, mask), generator_pullback, generator_batch_stats = jax.vjp(
      generate, state.generator_params, has_aux=True)

  (fake_loss, (discriminator_batch_stats, fake_logits)), fake_grads = objective(
      state.discriminator_params, discriminator_batch_stats, jax.lax.stop_gradient(fake), 0.0)
  discriminator_loss = real_loss + fake_loss  # = losses.discriminator_loss(real_logits, fake_logits)
  grads = jax.tree.map(jnp.add, real_grads, fake_grads)
  updates, discriminator_opt_state = gan.discriminator_optimizer.update(
      grads, state.discriminator_opt_state, state.discriminator_params)
  discriminator_params = optax.apply_updates(state.discriminator_params, updates)

  # --- Generator update: the updated D judges the same fakes, labelled real; plus the mask prior
  # and, for future prediction, the distance of the first generated frame to the input image.
  def generator_objective(fake, mask):
    logits, stats = _discriminate(gan, discriminator_params, discriminator_batch_stats, fake)
    adversarial = losses.generator_loss(logits)
    penalty = 0.0 if mask is None else losses.mask_penalty(mask, gan.mask_penalty)
    reconstruction = (losses.reconstruction_loss(fake[:, 0], real[:, 0], gan.reconstruction_loss)
                      if gan.conditional else 0.0)
    total = adversarial + penalty + gan.reconstruction_weight * reconstruction
    return total, (stats, adversarial, penalty, reconstruction)

  objective = jax.value_and_grad(generator_objective, argnums=(0, 1), has_aux=True)
  (generator_total, parts), cotangents = objective(fake, mask)
  discriminator_batch_stats, generator_loss, penalty, reconstruction = parts
  (grads,) = generator_pullback(cotangents)
  updates, generator_opt_state = gan.generator_optimizer.update(
      grads, state.generator_opt_state, state.generator_params)
  generator_params = optax.apply_updates(state.generator_params, updates)

  new_state = state.replace(
      step=state.step + 1,
      generator_params=generator_params,
      generator_batch_stats=generator_batch_stats,
      discriminator_params=discriminator_params,
      discriminator_batch_stats=discriminator_batch_stats,
      generator_opt_state=generator_opt_state,
      discriminator_opt_state=discriminator_opt_state,
      rng=rng)
  metrics = {
      'discriminator_loss': discriminator_loss,
      'generator_loss': generator_loss,
      'generator_total_loss': generator_total,
      'discriminator_real': jax.nn.sigmoid(real_logits).mean(),  # D's mean P(real) on real clips
      'discriminator_fake': jax.nn.sigmoid(fake_logits).mean(),  # ... and on generated ones
  }
  if gan.conditional:
    metrics['reconstruction_loss'] = reconstruction
  if mask is not None:
    metrics['mask_penalty'] = penalty
    metrics['mask_mean'] = mask.mean()
  return new_state, metrics


def autoencoder_train_step(networks: AutoencoderNetworks, state: AutoencoderTrainState,
                           batch: dict[str, jax.Array]
                           ) -> tuple[AutoencoderTrainState, dict[str, jax.Array]]:
  """One Adam update of encoder and decoder together on reconstruction, plus the two-stream mask
  prior `mask_penalty * mean|m|` that the GAN's generator has (so the streams mean what the
  GAN's do). BatchNorm uses the (global) batch's statistics and updates its averages."""
  target = normalize_video(batch['video'])

  def objective(params):
    (code, output), updates = networks.model.apply(
        {'params': params, 'batch_stats': state.batch_stats}, target, train=True,
        mutable=['batch_stats'])
    reconstruction = losses.reconstruction_loss(output.video, target,
                                                networks.reconstruction_loss)
    penalty = (jnp.zeros(()) if output.mask is None
               else losses.mask_penalty(output.mask, networks.mask_penalty))
    return reconstruction + penalty, (updates['batch_stats'], reconstruction, penalty, code,
                                      output.mask)

  (loss, (batch_stats, reconstruction, penalty, code, mask)), grads = jax.value_and_grad(
      objective, has_aux=True)(state.params)
  updates, opt_state = networks.optimizer.update(grads, state.opt_state, state.params)
  new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)
  metrics = {'loss': loss, 'reconstruction_loss': reconstruction,
             # The spread of the codes, which the mixture will model.
             'code_rms': jnp.sqrt(jnp.mean(jnp.square(code)))}
  if mask is not None:
    metrics.update(mask_penalty=penalty, mask_mean=mask.mean())
  return new_state, metrics


def classifier_train_step(classifier: Classifier, state: ClassifierTrainState,
                          batch: dict[str, jax.Array]
                          ) -> tuple[ClassifierTrainState, dict[str, jax.Array]]:
  """One Adam step on softmax cross entropy of batch {'video': uint8, 'label': int [B]}, with
  dropout on the penultimate layer (a new mask each step from the state's key)."""
  video = normalize_video(batch['video'])
  rng, dropout_key = jax.random.split(state.rng)

  def loss_fn(params):
    logits, updates = classifier.model.apply(
        {'params': params, 'batch_stats': state.batch_stats}, video, train=True,
        train_trunk=not classifier.linear, rngs={'dropout': dropout_key},
        mutable=['batch_stats'])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
    return loss, (updates['batch_stats'], logits)

  (loss, (batch_stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = classifier.optimizer.update(grads, state.opt_state, state.params)
  new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state, rng=rng)
  accuracy = (logits.argmax(-1) == batch['label']).mean()
  return new_state, {'loss': loss, 'accuracy': accuracy}


_STEPS = {GAN: gan_train_step, AutoencoderNetworks: autoencoder_train_step,
          Classifier: classifier_train_step}


def make_train_step(networks: GAN | AutoencoderNetworks | Classifier):
  """The pure (state, batch) -> (state, metrics) step of a bundle of networks, bound to it."""
  return functools.partial(_STEPS[type(networks)], networks)


def generate(gan: GAN, state: GANTrainState, inputs: jax.Array) -> GeneratorOutput:
  """G in inference mode (BatchNorm running averages): latents [N, D], or for future prediction
  images [N, S, S, C] in [-1, 1] (or uint8) -> GeneratorOutput."""
  if gan.conditional:
    inputs = normalize_video(inputs)
  return gan.generator.apply(
      {'params': state.generator_params, 'batch_stats': state.generator_batch_stats}, inputs,
      train=False)


def encode(networks: AutoencoderNetworks, state: AutoencoderTrainState,
           videos: jax.Array) -> jax.Array:
  """The autoencoder's encoder in inference mode (BatchNorm running averages): videos
  [N, T, S, S, C], uint8 or float in [-1, 1] -> codes [N, latent_dim]."""
  return networks.model.apply({'params': state.params, 'batch_stats': state.batch_stats},
                              normalize_video(videos), train=False, method='encode')


def decode(networks: AutoencoderNetworks, state: AutoencoderTrainState,
           codes: jax.Array) -> GeneratorOutput:
  """The autoencoder's decoder in inference mode: codes [N, latent_dim] -> GeneratorOutput."""
  return networks.model.apply({'params': state.params, 'batch_stats': state.batch_stats}, codes,
                              train=False, method='decode')


def classify(classifier: Classifier, state: ClassifierTrainState, videos: jax.Array) -> jax.Array:
  """Class probabilities [B, K] of uint8 (or [-1, 1]) videos, in inference mode."""
  logits = classifier.model.apply({'params': state.params, 'batch_stats': state.batch_stats},
                                  normalize_video(videos), train=False)
  return jax.nn.softmax(logits)
