"""The one pytree that training carries: both networks, their BatchNorm statistics, both optax
states, the step and the PRNG key. Checkpoints save and restore exactly this.

The modules and optimizers that interpret it are not in it (they are code, built from the config):
`GAN` bundles them, so a step function closes over a `GAN` and takes only arrays.
"""

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from vgan_jax import configs, models

PyTree = Any


@flax.struct.dataclass
class GANTrainState:
  """Everything that changes during GAN training (all leaves are arrays)."""
  step: jax.Array  # int32 scalar: iterations done (one D and one G update each)
  generator_params: PyTree
  generator_batch_stats: PyTree
  discriminator_params: PyTree
  discriminator_batch_stats: PyTree
  generator_opt_state: optax.OptState
  discriminator_opt_state: optax.OptState
  rng: jax.Array  # uint32[2] raw PRNG key: where the latent codes of the next step come from


@dataclasses.dataclass(frozen=True)
class GAN:
  """The code that gives a `GANTrainState` meaning: both networks and both optimizers."""
  generator: nn.Module
  discriminator: nn.Module
  generator_optimizer: optax.GradientTransformation
  discriminator_optimizer: optax.GradientTransformation
  latent_dim: int
  mask_penalty: float
  # Future prediction (config.model.generator_input == 'image'): the generator starts from the
  # clip's first frame, and its loss adds reconstruction_weight * distance(first frame, input).
  conditional: bool = False
  reconstruction_weight: float = 0.0
  reconstruction_loss: str = 'l1'


def adam(optimizer_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The paper's Adam (lr 2e-4, beta1 0.5), the same for G and D."""
  return optax.adam(optimizer_config.learning_rate, b1=optimizer_config.b1,
                    b2=optimizer_config.b2)


def build_gan(config: ml_collections.ConfigDict) -> GAN:
  """Networks and optimizers of a config (a GAN from noise, or future prediction from an image,
  by `config.model.generator_input`); raises ValueError for a config that cannot build."""
  configs.validate(config)
  conditional = config.model.generator_input == 'image'
  return GAN(generator=models.build_generator(config.model),
             discriminator=models.build_discriminator(config.model),
             generator_optimizer=adam(config.optimizer),
             discriminator_optimizer=adam(config.optimizer),
             latent_dim=config.model.latent_dim,
             mask_penalty=config.mask_penalty,
             conditional=conditional,
             reconstruction_weight=config.reconstruction_weight if conditional else 0.0,
             reconstruction_loss=config.reconstruction_loss)


def generator_input_shape(gan: GAN, config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """The shape of one generator input: [latent_dim], or [S, S, C] for an image."""
  if gan.conditional:
    return video_shape(config)[1:]
  return (gan.latent_dim,)


def video_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int, int]:
  """[T, H, W, C] of one clip under this config."""
  model = config.model
  return (model.frames, model.size, model.size, model.channels)


def create_train_state(gan: GAN, config: ml_collections.ConfigDict,
                       rng: jax.Array) -> GANTrainState:
  """Freshly initialised state (the paper's initialisation) for a raw PRNG key `rng`."""
  generator_key, discriminator_key, rng = jax.random.split(rng, 3)
  generator_input = jnp.zeros((1,) + generator_input_shape(gan, config), jnp.float32)
  video = jnp.zeros((1,) + video_shape(config), jnp.float32)
  generator_vars = gan.generator.init(generator_key, generator_input, train=False)
  discriminator_vars = gan.discriminator.init(discriminator_key, video, train=False)
  return GANTrainState(
      step=jnp.zeros((), jnp.int32),
      generator_params=generator_vars['params'],
      generator_batch_stats=generator_vars['batch_stats'],
      discriminator_params=discriminator_vars['params'],
      discriminator_batch_stats=discriminator_vars['batch_stats'],
      generator_opt_state=gan.generator_optimizer.init(generator_vars['params']),
      discriminator_opt_state=gan.discriminator_optimizer.init(discriminator_vars['params']),
      rng=rng)


def init_train_state(gan: GAN, config: ml_collections.ConfigDict, rng: jax.Array,
                     sharding: jax.sharding.Sharding | None = None) -> GANTrainState:
  """`create_train_state` compiled, its arrays placed with `sharding` (e.g. replicated on a mesh).

  Compiled rather than run op by op: much faster to start on a CPU.
  """
  return jax.jit(functools.partial(create_train_state, gan, config), out_shardings=sharding)(rng)
