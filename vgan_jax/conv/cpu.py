"""The `auto` formulation on CPU: for each piece of each layer (forward, input gradient, kernel
gradient), the fastest measured of the others, with kernel gradients summed over slices of clips.

  strided conv:      forward as time taps (`phases`; im2col in chunks for a large input), input
                     gradient as matmul + col2im, kernel gradient as time taps in slices of clips.
  transposed conv:   sub-pixel phases; kernel gradient through the strided convolution's for
                     large outputs; thin outputs (<= `thin_channels`) as matmul + col2im.
"""

import functools
import math

import jax
import jax.numpy as jnp

from vgan_jax.conv import im2col, phases
from vgan_jax.conv.budgets import CpuBudgets
from vgan_jax.memory import computed_after


def kernel_gradient_clips(batch: int, kernel: jax.Array, bytes_per_clip: int,
                          budgets: CpuBudgets) -> int:
  """Clips per kernel-gradient slice: `kernel_gradient_clips`, doubled until the slices fit
  `kernel_gradient_max_slices` and `kernel_gradient_partial_bytes`, and further while the slice's
  input or gradient (the larger, `bytes_per_clip` each clip) fits `kernel_gradient_slice_bytes`;
  a divisor of `batch`."""
  max_slices = max(1, min(budgets.kernel_gradient_max_slices,
                          budgets.kernel_gradient_partial_bytes // im2col.nbytes(kernel)))
  clips = budgets.kernel_gradient_clips
  while clips < batch and (batch > clips * max_slices
                           or 2 * clips * bytes_per_clip <= budgets.kernel_gradient_slice_bytes):
    clips *= 2
  return batch if clips >= batch else math.gcd(batch, clips)


def kernel_gradient(conv, x: jax.Array, kernel: jax.Array, grad: jax.Array,
                    budgets: CpuBudgets) -> jax.Array:
  """d<conv(x, kernel), grad>/dkernel, summed over slices of clips (`kernel_gradient_clips`)."""
  clips = kernel_gradient_clips(x.shape[0], kernel,
                                max(im2col.nbytes(x), im2col.nbytes(grad)) // x.shape[0], budgets)
  ordered = im2col.nbytes(x) >= budgets.kernel_gradient_ordered_bytes
  partials = []
  for start in range(0, x.shape[0], clips):
    x_slice = x[start:start + clips]
    if partials and ordered:
      x_slice = computed_after(x_slice, partials[-1])
    partials.append(jax.vjp(lambda k, x_slice=x_slice: conv(x_slice, k), kernel)[1](
        grad[start:start + clips])[0])
  return sum(partials)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def down_conv(x: jax.Array, kernel: jax.Array, budgets: CpuBudgets) -> jax.Array:
  """A strided convolution from the fastest measured CPU pieces (see the module docstring)."""
  if 2 * im2col.nbytes(x) < budgets.chunk_bytes:  # the time taps' frames (2x the input) are small
    return phases.down_conv(x, kernel)
  return im2col.down_conv_chunked(x, kernel, budgets)


def _down_conv_backward(budgets, residuals, grad):
  x, kernel = residuals
  return (im2col.down_conv_input_gradient(grad, kernel, budgets),
          kernel_gradient(phases.down_conv, x, kernel, grad, budgets))


down_conv.defvjp(lambda x, kernel, budgets: (down_conv(x, kernel, budgets), (x, kernel)),
                 _down_conv_backward)


def as_strided_kernel(kernel: jax.Array) -> jax.Array:
  """[4]*n + [C, O] -> [4]*n + [O, C], flipped: the kernel of the strided convolution whose adjoint
  is the transposed convolution with `kernel` (and back: the map is its own inverse)."""
  n = kernel.ndim - 2
  return jnp.swapaxes(kernel[(slice(None, None, -1),) * n], -1, -2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _wide_up_conv(x: jax.Array, kernel: jax.Array, budgets: CpuBudgets) -> jax.Array:
  """A wide transposed convolution: sub-pixel phases, kernel gradient in slices of clips."""
  del budgets
  return phases.up_conv(x, kernel)


def _wide_up_conv_backward(budgets, residuals, grad):
  x, kernel = residuals
  (grad_x,) = jax.vjp(lambda a: phases.up_conv(a, kernel), x)[1](grad)
  if math.prod(grad.shape[1:-1]) < budgets.strided_kernel_gradient_positions:
    return grad_x, kernel_gradient(phases.up_conv, x, kernel, grad, budgets)
  # <up(x, K), g> = <x, down(g, K')> with K' = as_strided_kernel(K): K''s gradient is the strided
  # convolution's kernel gradient at input g and output gradient x.
  strided_kernel = as_strided_kernel(kernel)
  return grad_x, as_strided_kernel(
      kernel_gradient(phases.down_conv, grad, strided_kernel, x, budgets))


_wide_up_conv.defvjp(lambda x, kernel, budgets: (_wide_up_conv(x, kernel, budgets), (x, kernel)),
                     _wide_up_conv_backward)


def up_conv(x: jax.Array, kernel: jax.Array, budgets: CpuBudgets) -> jax.Array:
  """A transposed convolution: thin outputs as matmul + col2im, wide ones as sub-pixel phases."""
  if kernel.shape[-1] <= budgets.thin_channels:
    return im2col.up_conv(x, kernel, budgets)
  return _wide_up_conv(x, kernel, budgets)
