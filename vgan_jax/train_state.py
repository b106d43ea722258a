"""What training carries and what gives it meaning, for every kind of training in the project.

Each kind has one state pytree (all leaves arrays: parameters, BatchNorm statistics, optax state,
step, PRNG key; checkpoints save and restore exactly this) and one frozen bundle of the code that
interprets it (Flax modules, optax optimizers and loss settings, built from the config):

  GAN                  GANTrainState          the GAN (Eq. 1, 2) and future prediction (Eq. 3)
  AutoencoderNetworks  AutoencoderTrainState  the autoencoder of the paper's baseline
  Classifier           ClassifierTrainState   action recognition with D's trunk (Section 3.3)

`create_train_state(networks, config, rng)` makes any of them fresh (the paper's
initialisation); `vgan_jax.train_step.make_train_step(networks)` is any of their pure steps.
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


@flax.struct.dataclass
class AutoencoderTrainState:
  """Everything that changes during autoencoder training. `rng` is carried (and checkpointed)
  like the GAN's, though the reconstruction step draws no random numbers."""
  step: jax.Array  # int32 scalar: updates done
  params: PyTree  # {'encoder': ..., 'decoder': ...}
  batch_stats: PyTree
  opt_state: optax.OptState
  rng: jax.Array


@flax.struct.dataclass
class ClassifierTrainState:
  """Everything that changes while training an action classifier."""
  step: jax.Array
  params: PyTree  # {'trunk': D's trunk, 'head': the K-way layer}
  batch_stats: PyTree
  opt_state: optax.OptState
  rng: jax.Array  # where dropout masks come from


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


@dataclasses.dataclass(frozen=True)
class AutoencoderNetworks:
  """The code that gives an `AutoencoderTrainState` meaning."""
  model: models.Autoencoder
  optimizer: optax.GradientTransformation
  latent_dim: int
  reconstruction_loss: str  # 'l1' or 'l2'
  mask_penalty: float  # weight of mean|m| for a two-stream decoder


@dataclasses.dataclass(frozen=True)
class Classifier:
  """The code that gives a `ClassifierTrainState` meaning. `linear`: only the head trains (the
  trunk's parameters get zero updates and its BatchNorm uses its running averages)."""
  model: models.ActionClassifier
  optimizer: optax.GradientTransformation
  linear: bool


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


def build_autoencoder(config: ml_collections.ConfigDict) -> AutoencoderNetworks:
  """Encoder (D's trunk + a 100-d code), decoder (`config.model.generator`), the paper's Adam;
  raises ValueError for a config that cannot build one."""
  configs.validate(config)
  if config.model.generator_input != 'noise':
    raise ValueError(f'config.model.generator_input={config.model.generator_input!r}: the '
                     "autoencoder's decoder is the generator from a code; use 'noise'.")
  return AutoencoderNetworks(model=models.build_autoencoder(config.model),
                             optimizer=adam(config.optimizer),
                             latent_dim=config.model.latent_dim,
                             reconstruction_loss=config.reconstruction_loss,
                             mask_penalty=config.mask_penalty)


def build_classifier(config: ml_collections.ConfigDict, num_classes: int,
                     mode: str = 'finetune') -> Classifier:
  """The classifier of a config's model sizes with `num_classes` outputs, trained with Adam
  (`config.classifier`) on every layer ('finetune') or on its head alone ('linear')."""
  configs.validate(config)
  if mode not in configs.CLASSIFIER_MODES:
    raise ValueError(f'mode must be one of {", ".join(configs.CLASSIFIER_MODES)}; got {mode!r}.')
  if num_classes < 2:
    raise ValueError(f'A classifier needs at least 2 classes; got {num_classes}.')
  model = models.build_classifier(config.model, num_classes, config.classifier.dropout)
  optimizer = optax.adam(config.classifier.learning_rate)
  if mode == 'linear':
    optimizer = optax.multi_transform(
        {'train': optimizer, 'freeze': optax.set_to_zero()},
        lambda params: {name: 'freeze' if name == 'trunk' else 'train' for name in params})
  return Classifier(model, optimizer, linear=mode == 'linear')


def generator_input_shape(gan: GAN, config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """The shape of one generator input: [latent_dim], or [S, S, C] for an image."""
  if gan.conditional:
    return video_shape(config)[1:]
  return (gan.latent_dim,)


def video_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int, int]:
  """[T, H, W, C] of one clip under this config."""
  model = config.model
  return (model.frames, model.size, model.size, model.channels)


def _create_gan_state(gan: GAN, config, rng) -> GANTrainState:
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


def _create_single_model_state(state_class, networks, config, rng):
  """The state of one model (autoencoder or classifier) and its optimizer."""
  init_key, rng = jax.random.split(rng)
  variables = networks.model.init(init_key, jnp.zeros((1,) + video_shape(config), jnp.float32),
                                  train=False)
  params, batch_stats = dict(variables['params']), dict(variables['batch_stats'])
  return state_class(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                     opt_state=networks.optimizer.init(params), rng=rng)


def create_train_state(networks: GAN | AutoencoderNetworks | Classifier,
                       config: ml_collections.ConfigDict, rng: jax.Array) -> PyTree:
  """Freshly initialised state (the paper's initialisation) of `networks` for a raw PRNG key."""
  if isinstance(networks, GAN):
    return _create_gan_state(networks, config, rng)
  if isinstance(networks, AutoencoderNetworks):
    return _create_single_model_state(AutoencoderTrainState, networks, config, rng)
  if isinstance(networks, Classifier):
    return _create_single_model_state(ClassifierTrainState, networks, config, rng)
  raise TypeError(f'create_train_state: unknown networks {type(networks).__name__}.')


def init_train_state(networks, config: ml_collections.ConfigDict, rng: jax.Array,
                     sharding: jax.sharding.Sharding | None = None) -> PyTree:
  """`create_train_state` compiled (much faster to start on a CPU than op by op), its arrays
  placed with `sharding` (e.g. replicated on a mesh)."""
  return jax.jit(functools.partial(create_train_state, networks, config),
                 out_shardings=sharding)(rng)


def abstract_train_state(networks, config: ml_collections.ConfigDict,
                         sharding: jax.sharding.Sharding | None = None) -> PyTree:
  """The shapes and dtypes of `networks`' state (nothing computed), placed with `sharding`
  (default: the first device): the target for restoring a checkpoint."""
  sharding = sharding or jax.sharding.SingleDeviceSharding(jax.devices()[0])
  shapes = jax.eval_shape(functools.partial(create_train_state, networks, config),
                          jax.random.PRNGKey(0))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def with_pretrained_trunk(state: ClassifierTrainState,
                          trunk: tuple[PyTree, PyTree]) -> ClassifierTrainState:
  """`state` with (params, batch_stats) of a GAN's discriminator trunk in place of its random
  trunk (same placement); ValueError when the shapes differ (other model sizes)."""
  params, batch_stats = dict(state.params), dict(state.batch_stats)
  if jax.tree.map(jnp.shape, trunk[0]) != jax.tree.map(jnp.shape, params['trunk']):
    raise ValueError('The discriminator trunk does not fit this classifier (other model sizes).')
  # Copied: the training step donates its state, and the caller's trunk must survive it.
  place = lambda new, old: jax.device_put(jnp.copy(new), old.sharding)
  params['trunk'] = jax.tree.map(place, trunk[0], params['trunk'])
  batch_stats['trunk'] = jax.tree.map(place, trunk[1], batch_stats['trunk'])
  return state.replace(params=params, batch_stats=batch_stats)
