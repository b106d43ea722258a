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
    """`deferred`: (x, fn, params), the last BatchNorm and ReLU not applied:
    hidden = fn(x, *params) (see `layers.BatchNorm`)."""
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


class TwoStreamGenerator(OneStreamGenerator):
  """Eq. 2, G(z) = m * f + (1 - m) * b: z [B, D] -> GeneratorOutput (video, f, b, m).

  The mask head m is a second last layer on f's trunk (1 channel, sigmoid); b is broadcast over
  the T frames.
  """

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> GeneratorOutput:
    x, normalize, normalize_params = VideoTrunk(**self.sizes(), name='trunk')(
        z, train, deferred=True)
    # Both heads as one layer with channels + 1 outputs: the input's side of the work is shared.
    heads = [self.up_conv(self.channels, 'video')(x, params_only=True),
             self.up_conv(1, 'mask')(x, params_only=True)]
    kernel, bias = (jnp.concatenate(parts, axis=-1) for parts in zip(*heads))

    # The trunk's last BatchNorm + ReLU and the heads, as one step whose backward pass recomputes
    # the ReLU's output (the heads' input) from x, which BatchNorm keeps anyway: 256 MiB less held
    # at paper size, batch 64.
    def heads_layer(x, kernel, *normalize_params):
      return layers.up_conv_apply(normalize(x, *normalize_params), kernel, self.conv_impl)

    both = layers.recomputed_in_backward(heads_layer)(x, kernel, *normalize_params) + bias
    background = ImageGenerator(**self.sizes(), name='background')(z, train)
    # Recomputed in the backward pass from `both` and b: autodiff would hold ~4x their size.
    video, foreground, mask = layers.recomputed_in_backward(compose)(both, background)
    return GeneratorOutput(video=video, foreground=foreground,
                           background=background.astype(jnp.float32), mask=mask)


def compose(heads: jax.Array, background: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Eq. 2 from the heads' pre-activations [B, T, S, S, C + 1] (f's C colours, then m) and b
  [B, S, S, C]: (video, f, m), in float32 (as is everything after: losses, D's input)."""
  heads, background = heads.astype(jnp.float32), background.astype(jnp.float32)
  foreground, mask = jnp.tanh(heads[..., :-1]), nn.sigmoid(heads[..., -1:])
  video = mask * foreground + (1.0 - mask) * background[:, None]
  return video, foreground, mask
