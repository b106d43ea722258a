"""Flax modules of VGAN, built from a config's `model` section."""

import ml_collections

from vgan_jax.models.classifier import ActionClassifier
from vgan_jax.models.discriminator import Discriminator, DiscriminatorTrunk
from vgan_jax.models.encoder import FuturePredictor, ImageEncoder
from vgan_jax.models.layers import SIZE_FIELDS
from vgan_jax.models.generator import (GeneratorOutput, ImageGenerator, OneStreamGenerator,
                                       TwoStreamGenerator, VideoTrunk)

_GENERATORS = {'one_stream': OneStreamGenerator, 'two_stream': TwoStreamGenerator}


def _size_kwargs(model_config: ml_collections.ConfigDict) -> dict:
  return {name: model_config[name] for name in SIZE_FIELDS}


def build_generator(model_config: ml_collections.ConfigDict):
  """The generator named by `model_config.generator` ('one_stream' or 'two_stream'): from a code
  [B, latent_dim]; with `generator_input='image'`, behind an image encoder (FuturePredictor)."""
  generator = _GENERATORS[model_config.generator](**_size_kwargs(model_config))
  if model_config.get('generator_input', 'noise') == 'noise':
    return generator
  encoder = ImageEncoder(depth=model_config.encoder_depth, width=model_config.encoder_width,
                         latent_dim=model_config.latent_dim,
                         conv_init_stddev=model_config.conv_init_stddev,
                         batchnorm_scale_stddev=model_config.batchnorm_scale_stddev)
  return FuturePredictor(encoder, generator)


def build_discriminator(model_config: ml_collections.ConfigDict) -> Discriminator:
  return Discriminator(**_size_kwargs(model_config))


__all__ = ['ActionClassifier', 'Discriminator', 'DiscriminatorTrunk', 'FuturePredictor', 'GeneratorOutput',
           'ImageEncoder', 'ImageGenerator',
           'OneStreamGenerator', 'TwoStreamGenerator', 'VideoTrunk', 'build_discriminator',
           'build_generator']
