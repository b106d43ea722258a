"""The VGAN discriminator: the generator's video stream run backwards, to one real/fake logit.

3 -> 64 -> 128 -> 256 -> 512 channels by strided 3-D convolutions (kernel 4, stride 2), LeakyReLU
0.2, BatchNorm on all but the first; a last 'valid' convolution collapses the 2x4x4 block to one
logit. The trunk is its own module so the action classifier can reuse it with another head.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from vgan_jax.models import layers


class DiscriminatorTrunk(layers.SizedModule):
  """video [B, T, S, S, C] in [-1, 1] -> features [B, T/16, S/16, S/16, 8 * width]."""

  @nn.compact
  def __call__(self, video: jax.Array, train: bool = True) -> jax.Array:
    expected = (self.frames, self.size, self.size, self.channels)
    if tuple(video.shape[1:]) != expected:
      shape = ', '.join(map(str, expected))
      raise ValueError(f'The discriminator takes videos of shape [B, {shape}]'
                       f' (frames, height, width, channels); got {list(video.shape)}.')
    x = video
    for i, features in enumerate(reversed(self.hidden_widths)):
      if i == 0:  # no BatchNorm on the first layer (DCGAN)
        x = layers.leaky_relu(self.down_conv(features)(x))
      else:
        x = self.down_conv(features, use_bias=False)(x)
        x = self.batch_norm(train, layers.leaky_relu)(x)
    return x


class Discriminator(layers.SizedModule):
  """video [B, T, S, S, C] in [-1, 1] -> logits [B] (> 0: judged real)."""

  @nn.compact
  def __call__(self, video: jax.Array, train: bool = True) -> jax.Array:
    features = DiscriminatorTrunk(**self.sizes(), name='trunk')(video, train)
    logits = self.collapse_conv(1, 'logit')(features)
    return logits.reshape(logits.shape[0]).astype(jnp.float32)
