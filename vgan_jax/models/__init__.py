"""Flax modules of VGAN, and the builders that make them from a config's `model` section.

Code outside `models/` builds networks through these builders (and the modules' documented
methods), never from the layers inside them.
"""

import ml_collections

from vgan_jax import conv
from vgan_jax.models.autoencoder import Autoencoder, VideoEncoder
from vgan_jax.models.classifier import ActionClassifier
from vgan_jax.models.discriminator import Discriminator, DiscriminatorTrunk
from vgan_jax.models.encoder import FuturePredictor, ImageEncoder, receptive_field
from vgan_jax.models.generator import (TWO_STREAM_IMPLS, GeneratorOutput, ImageGenerator,
                                       OneStreamGenerator, TwoStreamGenerator, VideoTrunk)
from vgan_jax.models.layers import SIZE_FIELDS, SPATIOTEMPORAL_STRIDE, WIDTH_MULTIPLIERS

GENERATORS = ('one_stream', 'two_stream')


def _sizes(model_config: ml_collections.ConfigDict, budgets: conv.CpuBudgets) -> dict:
  return dict({name: model_config[name] for name in SIZE_FIELDS}, conv_budgets=budgets)


def build_video_generator(model_config: ml_collections.ConfigDict,
                          budgets: conv.CpuBudgets = conv.DEFAULT_BUDGETS):
  """The generator from a code named by `model_config.generator` ('one_stream' or 'two_stream'):
  code [B, latent_dim] -> GeneratorOutput."""
  if model_config.generator == 'one_stream':
    return OneStreamGenerator(**_sizes(model_config, budgets))
  return TwoStreamGenerator(**_sizes(model_config, budgets),
                            impl=model_config.get('two_stream_impl', 'fused'))


def build_generator(model_config: ml_collections.ConfigDict,
                    budgets: conv.CpuBudgets = conv.DEFAULT_BUDGETS):
  """What the GAN trains as its generator: `build_video_generator`'s from a code; with
  `generator_input='image'`, behind an image encoder (FuturePredictor, Section 3.4)."""
  generator = build_video_generator(model_config, budgets)
  if model_config.get('generator_input', 'noise') == 'noise':
    return generator
  encoder = ImageEncoder(depth=model_config.encoder_depth, width=model_config.encoder_width,
                         latent_dim=model_config.latent_dim,
                         conv_init_stddev=model_config.conv_init_stddev,
                         batchnorm_scale_stddev=model_config.batchnorm_scale_stddev)
  return FuturePredictor(encoder, generator)


def build_discriminator(model_config: ml_collections.ConfigDict,
                        budgets: conv.CpuBudgets = conv.DEFAULT_BUDGETS) -> Discriminator:
  """video [B, T, S, S, C] -> logits [B]."""
  return Discriminator(**_sizes(model_config, budgets))


def build_autoencoder(model_config: ml_collections.ConfigDict,
                      budgets: conv.CpuBudgets = conv.DEFAULT_BUDGETS) -> Autoencoder:
  """The baseline's autoencoder: D's trunk with a `latent_dim` code, the generator as decoder."""
  return Autoencoder(encoder=VideoEncoder(**_sizes(model_config, budgets),
                                          latent_dim=model_config.latent_dim),
                     decoder=build_video_generator(model_config, budgets))


def build_classifier(model_config: ml_collections.ConfigDict, num_classes: int,
                     dropout_rate: float = 0.5,
                     budgets: conv.CpuBudgets = conv.DEFAULT_BUDGETS) -> ActionClassifier:
  """D's trunk with a `num_classes`-way head (Section 3.3)."""
  return ActionClassifier(**_sizes(model_config, budgets), num_classes=num_classes,
                          dropout_rate=dropout_rate)


__all__ = ['ActionClassifier', 'Autoencoder', 'Discriminator', 'DiscriminatorTrunk',
           'FuturePredictor', 'GENERATORS', 'GeneratorOutput', 'ImageEncoder', 'ImageGenerator',
           'OneStreamGenerator', 'SIZE_FIELDS', 'SPATIOTEMPORAL_STRIDE', 'TWO_STREAM_IMPLS',
           'TwoStreamGenerator', 'VideoEncoder', 'VideoTrunk', 'WIDTH_MULTIPLIERS',
           'build_autoencoder', 'build_classifier', 'build_discriminator', 'build_generator',
           'build_video_generator', 'receptive_field']
