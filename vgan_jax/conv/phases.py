"""The `decomposed` formulation: no dilated or 3-D convolution left, only dense 2-D ones, which
XLA's CPU backend runs well (its backward passes above all).

Strided 3-D convolutions stack their 4 temporal taps on channels and run one strided 2-D
convolution; transposed ones run one stride-1 2x2 convolution per sub-pixel phase, then
depth-to-space.
"""

import jax
import jax.numpy as jnp
from jax import lax

from vgan_jax.conv.xla import DOWN_PADDING, KERNEL, dimension_numbers


def space_to_depth(x: jax.Array) -> jax.Array:
  """[B, *D, C] (even D) -> [B, *D/2, 2**n * C]: each 2x..x2 block on channels (offsets major)."""
  b, *dims, c = x.shape
  n = len(dims)
  x = x.reshape(b, *[v for d in dims for v in (d // 2, 2)], c)
  x = x.transpose(0, *range(1, 2 * n, 2), *range(2, 2 * n + 1, 2), 2 * n + 1)
  return x.reshape(b, *[d // 2 for d in dims], 2 ** n * c)


def depth_to_space(x: jax.Array) -> jax.Array:
  """The inverse of `space_to_depth`: [B, *D, 2**n * C] -> [B, *2D, C]."""
  b, *dims, channels = x.shape
  n = len(dims)
  x = x.reshape(b, *dims, *(2,) * n, channels // 2 ** n)
  x = x.transpose(0, *[v for i in range(n) for v in (1 + i, 1 + n + i)], 2 * n + 1)
  return x.reshape(b, *[2 * d for d in dims], channels // 2 ** n)


def _up_conv_2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """[N, H, W, C] -> [N, 2H, 2W, O]: the stride-2 transposed convolution as 4 stride-1 2x2 ones.

  Output row 2h + p only ever sees input rows h - 1 + p and h + p, through kernel taps p and
  p + 2 (`kernel[p::2]`): one small dense convolution per output phase, then depth-to-space.
  """
  phases = []
  for ph in (0, 1):
    for pw in (0, 1):
      padding = ((1 - ph, ph), (1 - pw, pw))
      phases.append(lax.conv_general_dilated(x, kernel[ph::2, pw::2], (1, 1), padding,
                                             dimension_numbers=dimension_numbers(2)))
  return depth_to_space(jnp.concatenate(phases, axis=-1))  # phases (ph, pw) major, O minor


def _up_conv_3d(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """[B, T, H, W, C] -> [B, 2T, 2H, 2W, O]; time phases stack their two taps on channels."""
  b, t, h, w, c = x.shape
  previous = jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0), (0, 0)))[:, :t]
  following = jnp.pad(x, ((0, 0), (0, 1), (0, 0), (0, 0), (0, 0)))[:, 1:]
  phases = []
  for pt, neighbours in ((0, (previous, x)), (1, (x, following))):
    frames = jnp.concatenate(neighbours, axis=-1).reshape(b * t, h, w, 2 * c)
    taps = kernel[pt::2].transpose(1, 2, 0, 3, 4).reshape(*kernel.shape[1:3], 2 * c, -1)
    phases.append(_up_conv_2d(frames, taps).reshape(b, t, 2 * h, 2 * w, -1))
  return jnp.stack(phases, axis=2).reshape(b, 2 * t, 2 * h, 2 * w, -1)


def _down_conv_3d(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """[B, T, H, W, C] -> [B, T/2, H/2, W/2, O]: the 4 temporal taps stacked on channels, then one
  strided 2-D convolution, whose forward and backward XLA's CPU backend runs well."""
  b, t, h, w, c = x.shape
  padded = jnp.pad(x, ((0, 0), (DOWN_PADDING, DOWN_PADDING), (0, 0), (0, 0), (0, 0)))
  steps = (t + 2 * DOWN_PADDING - KERNEL) // 2 + 1
  frames = jnp.concatenate([padded[:, k:k + 2 * steps - 1:2] for k in range(KERNEL)], axis=-1)
  taps = kernel.transpose(1, 2, 0, 3, 4).reshape(KERNEL, KERNEL, KERNEL * c, -1)
  y = lax.conv_general_dilated(frames.reshape(b * steps, h, w, KERNEL * c), taps, (2, 2),
                               ((DOWN_PADDING, DOWN_PADDING),) * 2,
                               dimension_numbers=dimension_numbers(2))
  return y.reshape(b, steps, *y.shape[1:])


def down_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Strided convolution, 2-D (XLA's, already fast) or 3-D (time taps)."""
  if x.ndim == 4:
    return lax.conv_general_dilated(x, kernel, (2, 2), ((DOWN_PADDING, DOWN_PADDING),) * 2,
                                    dimension_numbers=dimension_numbers(2))
  return _down_conv_3d(x, kernel)


def up_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Transposed convolution as sub-pixel phases, 2-D or 3-D."""
  return _up_conv_3d(x, kernel) if x.ndim == 5 else _up_conv_2d(x, kernel)
