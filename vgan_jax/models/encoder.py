"""The image encoder of future prediction (Section 3.4): a still image -> the generator's code.

A DCGAN-style 2-D convolutional net (4x4 kernels, stride 2, LeakyReLU 0.2, BatchNorm on all but
the first layer, as in the discriminator) followed by a linear map to the latent code, so the
whole two-stream generator is reused unchanged behind it: G(E(x0)).
"""

import flax.linen as nn
import jax

from vgan_jax import conv
from vgan_jax.models import layers
from vgan_jax.models.generator import GeneratorOutput


class ImageEncoder(nn.Module):
  """image [B, S, S, C] in [-1, 1] -> code [B, latent_dim].

  Layer i has width * 2**i channels and halves the size: depth 5 takes 64x64 to 2x2.
  """
  depth: int = 5
  width: int = 64
  latent_dim: int = 100
  conv_init_stddev: float = 0.01
  batchnorm_scale_stddev: float = 0.02

  @nn.compact
  def __call__(self, image: jax.Array, train: bool = True,
               output_layer: int | None = None) -> jax.Array:
    """The code [B, latent_dim]; or, with `output_layer` = i, conv layer i's activations after its
    BatchNorm and LeakyReLU, [B, S / 2**(i+1), S / 2**(i+1), width * 2**i] (Figure 6's units)."""
    if image.ndim != 4:
      raise ValueError(f'The image encoder takes images [B, H, W, C]; got {list(image.shape)}.')
    if output_layer is not None and not 0 <= output_layer < self.depth:
      raise ValueError(f'output_layer={output_layer}: the encoder has conv layers 0 to '
                       f'{self.depth - 1}.')
    x = image
    for i in range(self.depth):
      x = nn.Conv(self.width * 2 ** i, (conv.KERNEL, conv.KERNEL), strides=(conv.STRIDE,) * 2,
                  padding=((conv.DOWN_PADDING,) * 2,) * 2, use_bias=i == 0,
                  kernel_init=layers.conv_init(self.conv_init_stddev), name=f'conv{i}')(x)
      if i:  # no BatchNorm on the first layer (DCGAN)
        x = layers.batch_norm(train, self.batchnorm_scale_stddev, name=f'norm{i}')(x)
      x = layers.leaky_relu(x)
      if i == output_layer:
        return x
    return nn.Dense(self.latent_dim, kernel_init=layers.conv_init(self.conv_init_stddev),
                    name='code')(x.reshape(x.shape[0], -1))


def receptive_field(layer: int, position: tuple[int, int]) -> tuple[int, int, int]:
  """(top, left, size) in input pixels of what `ImageEncoder` layer `layer` sees at `position`
  (row, column). Top and left may be negative, and top + size may pass the image: the padding."""
  size, jump, start = 1, 1, 0  # the input pixels themselves
  for _ in range(layer + 1):
    # Each 4x4 stride-2 convolution widens the field by 3 of the previous layer's steps, its
    # padding of 1 moves the first field back by one step, and its stride doubles the step.
    size += (conv.KERNEL - 1) * jump
    start -= conv.DOWN_PADDING * jump
    jump *= conv.STRIDE
  row, column = position
  return start + row * jump, start + column * jump, size


class FuturePredictor(nn.Module):
  """G(E(x0)): image [B, S, S, C] in [-1, 1] -> GeneratorOutput, video [B, T, S, S, C]."""
  encoder: ImageEncoder
  generator: nn.Module

  def __call__(self, image: jax.Array, train: bool = True) -> GeneratorOutput:
    return self.generator(self.encoder(image, train), train)
