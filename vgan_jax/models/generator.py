"""The VGAN generators: one stream (a 3-D up-convolution net) and two streams (Eq. 2).

  one stream:  G(z) = f(z)
  two streams: G(z) = m(z) * f(z) + (1 - m(z)) * b(z)

f is a stack of 3-D transposed convolutions from the latent code to a video; m shares f's trunk and
has its own last layer (1 channel, sigmoid); b is a DCGAN 2-D generator whose image is broadcast
over time. Widths and sizes come from the config, so the paper's net and a tiny CPU net share
this code.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vgan_jax import conv
from vgan_jax.memory import recomputed_in_backward
from vgan_jax.models import layers


class GeneratorOutput(NamedTuple):
  """What a generator returns; all values are float32.

  video:      [B, T, S, S, C] in [-1, 1], the generated clip.
  foreground: [B, T, S, S, C] in [-1, 1], f(z) (the video itself for one stream).
  background: [B, S, S, C] in [-1, 1], b(z), static over time; None for one stream.
  mask:       [B, T, S, S, 1] in [0, 1], m(z), 1 where the foreground shows; None for one stream.
  """
  video: jax.Array
  foreground: jax.Array
  background: jax.Array | None = None
  mask: jax.Array | None = None


class VideoTrunk(layers.SizedModule):
  """f without its last layer: z [B, D] -> hidden [B, T/2, S/2, S/2, width].

  100 -> 2x4x4x512 -> 4x8x8x256 -> 8x16x16x128 -> 16x32x32x64 at the paper's size; BatchNorm and
  ReLU after every layer.
  """

  @nn.compact
  def __call__(self, z: jax.Array, train: bool, deferred: bool = False):
    """hidden [B, T/2, S/2, S/2, width]; or, `deferred`, (x, fn, params) with the last BatchNorm
    and ReLU not applied, hidden = fn(x, *params), for `TwoStreamGenerator.fused_heads`."""
    first, *rest = self.hidden_widths
    x = z.reshape(z.shape[0], 1, 1, 1, z.shape[-1])
    x = self.bn_relu(self.project_conv(first, self.video_window)(x), train)
    for i, features in enumerate(rest):
      x = self.up_conv(features, use_bias=False)(x)
      if deferred and i == len(rest) - 1:
        return (x, *self.batch_norm(train, nn.relu)(x, deferred=True))
      x = self.bn_relu(x, train)
    return x


class ImageGenerator(layers.SizedModule):
  """b: the DCGAN background generator, z [B, D] -> image [B, S, S, C] in [-1, 1].

  100 -> 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3 at the paper's size.
  """

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    first, *rest = self.hidden_widths
    x = z.reshape(z.shape[0], 1, 1, z.shape[-1])
    x = self.bn_relu(self.project_conv(first, self.video_window[1:])(x), train)
    for features in rest:
      x = self.bn_relu(self.up_conv(features, use_bias=False)(x), train)
    return jnp.tanh(self.up_conv(self.channels)(x))


class OneStreamGenerator(layers.SizedModule):
  """G(z) = f(z): z [B, D] -> GeneratorOutput with video [B, T, S, S, C]."""

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> GeneratorOutput:
    hidden = VideoTrunk(**self.sizes(), name='trunk')(z, train)
    video = jnp.tanh(self.up_conv(self.channels, 'video')(hidden)).astype(jnp.float32)
    return GeneratorOutput(video=video, foreground=video)


TWO_STREAM_IMPLS = ('fused', 'plain')


class TwoStreamGenerator(OneStreamGenerator):
  """Eq. 2, G(z) = m(z) * f(z) + (1 - m(z)) * b(z): z [B, D] -> GeneratorOutput (video, f, b, m).

  f and m share the video trunk; each has its own last layer (f: C colours, tanh; m: 1 channel,
  sigmoid). b is the 2-D background generator, broadcast over the T frames.

  `impl` is how the heads are computed, not what they compute (the parameters, outputs and
  gradients are the same; it is not part of a checkpoint's identity):
    'fused'  both heads as one layer after the trunk's last BatchNorm + ReLU, recomputed in the
             backward pass, and Eq. 2 recomputed too (`fused_heads`): XLA's memory estimate of
             the CPU train step at paper size, batch 64, is 2.51 GiB against 3.11. The default.
    'plain'  the equation as written, differentiated by plain autodiff.
  """
  impl: str = 'fused'

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> GeneratorOutput:
    if self.impl not in TWO_STREAM_IMPLS:
      raise ValueError(f'TwoStreamGenerator.impl={self.impl!r}: must be one of '
                       f'{", ".join(TWO_STREAM_IMPLS)}.')
    trunk = VideoTrunk(**self.sizes(), name='trunk')  # shared by f and m
    if self.impl == 'plain':
      hidden = trunk(z, train)
      heads = jnp.concatenate([self.up_conv(self.channels, 'video')(hidden),  # f's last layer
                               self.up_conv(1, 'mask')(hidden)], axis=-1)  # m's last layer
    else:
      heads = self.fused_heads(trunk, z, train)
    background = ImageGenerator(**self.sizes(), name='background')(z, train)  # b(z)
    # Fused: Eq. 2 recomputed in the backward pass from the heads and b (autodiff would hold ~4x
    # their size).
    video, foreground, mask = (compose if self.impl == 'plain'
                               else recomputed_in_backward(compose))(heads, background)
    return GeneratorOutput(video=video, foreground=foreground,
                           background=background.astype(jnp.float32), mask=mask)

  def fused_heads(self, trunk: VideoTrunk, z: jax.Array, train: bool) -> jax.Array:
    """f's and m's last layers on the trunk, as one layer of C + 1 outputs (the input's side of
    the work shared), together with the trunk's last BatchNorm + ReLU, in one step whose backward
    pass recomputes the ReLU's output from its input, which BatchNorm keeps anyway (256 MiB less
    held at paper size, batch 64). Returns the heads' pre-activations [B, T, S, S, C + 1]."""
    x, normalize, normalize_params = trunk(z, train, deferred=True)
    video_kernel, video_bias = layers.UpConvParams(
        self.channels, self.conv_init_stddev, dtype=self.dtype, name='video')(x)
    mask_kernel, mask_bias = layers.UpConvParams(
        1, self.conv_init_stddev, dtype=self.dtype, name='mask')(x)

    def heads_layer(x, kernel, *normalize_params):
      return conv.up_conv(normalize(x, *normalize_params), kernel, self.conv_impl,
                          self.conv_budgets)

    kernel = jnp.concatenate([video_kernel, mask_kernel], axis=-1)
    bias = jnp.concatenate([video_bias, mask_bias], axis=-1)
    return recomputed_in_backward(heads_layer)(x, kernel, *normalize_params) + bias


def compose(heads: jax.Array, background: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Eq. 2 from the heads' pre-activations [B, T, S, S, C + 1] (f's C colours, then m) and b
  [B, S, S, C]: (video, f, m), in float32 (as is everything after: losses, D's input)."""
  heads, background = heads.astype(jnp.float32), background.astype(jnp.float32)
  foreground, mask = jnp.tanh(heads[..., :-1]), nn.sigmoid(heads[..., -1:])
  video = mask * foreground + (1.0 - mask) * background[:, None]
  return video, foreground, mask
