"""The reference formulation, XLA's own convolutions (cuDNN on GPUs), and the geometry every
formulation shares: kernel 4, stride 2, Torch padding 1, channels last.

A stride-2 convolution with kernel 4 and Torch padding 1 pads one element on each side and exactly
halves every dimension; its transpose (`lax.conv_transpose` pads the dilated input) pads
kernel - 1 - 1 = 2 on each side and exactly doubles every dimension.
"""

import jax
from jax import lax

KERNEL = 4
STRIDE = 2
DOWN_PADDING = 1
UP_PADDING = KERNEL - 1 - DOWN_PADDING


def dimension_numbers(ndim: int) -> tuple[str, str, str]:
  """Channels-last layouts of an `ndim`-D convolution: ('NDHWC', 'DHWIO', 'NDHWC') for 3-D."""
  spatial = 'DHW'[-ndim:]
  return (f'N{spatial}C', f'{spatial}IO', f'N{spatial}C')


def down_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """[B, *D, C] x [4]*n + [C, O] -> [B, *D/2, O]."""
  ndim = x.ndim - 2
  return lax.conv_general_dilated(x, kernel, (STRIDE,) * ndim,
                                  ((DOWN_PADDING, DOWN_PADDING),) * ndim,
                                  dimension_numbers=dimension_numbers(ndim))


def up_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """[B, *D, C] x [4]*n + [C, O] -> [B, *2D, O]."""
  ndim = x.ndim - 2
  return lax.conv_transpose(x, kernel, (STRIDE,) * ndim, ((UP_PADDING, UP_PADDING),) * ndim,
                            dimension_numbers=dimension_numbers(ndim))
