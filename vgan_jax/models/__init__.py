"""Flax modules of VGAN, built from a config's `model` section."""

import ml_collections

from vgan_jax.models.discriminator import Discriminator, DiscriminatorTrunk
from vgan_jax.models.layers import SIZE_FIELDS
from vgan_jax.models.generator import (GeneratorOutput, ImageGenerator, OneStreamGenerator,
                                       TwoStreamGenerator, VideoTrunk)

_GENERATORS = {'one_stream': OneStreamGenerator, 'two_stream': TwoStreamGenerator}


def _size_kwargs(model_config: ml_collections.ConfigDict) -> dict:
  return {name: model_config[name] for name in SIZE_FIELDS}


def build_generator(model_config: ml_collections.ConfigDict) -> OneStreamGenerator:
  """The generator named by `model_config.generator` ('one_stream' or 'two_stream')."""
  return _GENERATORS[model_config.generator](**_size_kwargs(model_config))


def build_discriminator(model_config: ml_collections.ConfigDict) -> Discriminator:
  return Discriminator(**_size_kwargs(model_config))


__all__ = ['Discriminator', 'DiscriminatorTrunk', 'GeneratorOutput', 'ImageGenerator',
           'OneStreamGenerator', 'TwoStreamGenerator', 'VideoTrunk', 'build_discriminator',
           'build_generator']
