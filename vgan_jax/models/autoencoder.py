"""The paper's autoencoder baseline: a video encoder shaped like the discriminator with a
`latent_dim` (100) code instead of one logit, and the generator as the decoder.

  video [B, T, S, S, C] -> encoder -> code [B, 100] -> two-stream generator -> video

Sampling the baseline fits a Gaussian mixture on the codes and decodes draws from it (see
vgan_jax/gmm.py, experiments/autoencoder_baseline.py); the networks here know nothing of that.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from vgan_jax.models import layers
from vgan_jax.models.discriminator import DiscriminatorTrunk
from vgan_jax.models.generator import GeneratorOutput


class VideoEncoder(layers.SizedModule):
  """video [B, T, S, S, C] in [-1, 1] -> code [B, latent_dim].

  The discriminator's trunk (named 'trunk', as in `Discriminator`, so the two share parameter
  paths) to features [B, T/16, S/16, S/16, 8 * width], then a 'valid' convolution over that whole
  block (2x4x4 in the paper) to `latent_dim` channels: D with a 100-d output.
  """
  latent_dim: int = 100

  @nn.compact
  def __call__(self, video: jax.Array, train: bool = True) -> jax.Array:
    features = DiscriminatorTrunk(**self.sizes(), name='trunk')(video, train)
    code = layers.collapse_conv(self.latent_dim, self.video_window, self.conv_init_stddev,
                                'code')(features)
    # float32 whatever the trunk computed in: the codes feed the decoder and the mixture fit.
    return code.reshape(code.shape[0], self.latent_dim).astype(jnp.float32)


class Autoencoder(nn.Module):
  """video [B, T, S, S, C] in [-1, 1] -> (code [B, latent_dim], GeneratorOutput).

  The output's video is the reconstruction [B, T, S, S, C] in [-1, 1]; for a two-stream decoder
  it also holds foreground [B, T, S, S, C], background [B, S, S, C] and mask [B, T, S, S, 1].
  `encode` and `decode` run one half (use them as `apply(..., method=Autoencoder.decode)`).
  """
  encoder: VideoEncoder
  decoder: nn.Module  # a generator: code [B, latent_dim] -> GeneratorOutput

  def __call__(self, video: jax.Array, train: bool = True) -> tuple[jax.Array, GeneratorOutput]:
    code = self.encoder(video, train)
    return code, self.decoder(code, train)

  def encode(self, video: jax.Array, train: bool = False) -> jax.Array:
    """video [B, T, S, S, C] -> code [B, latent_dim]."""
    return self.encoder(video, train)

  def decode(self, code: jax.Array, train: bool = False) -> GeneratorOutput:
    """code [B, latent_dim] -> GeneratorOutput, video [B, T, S, S, C]."""
    return self.decoder(code, train)
