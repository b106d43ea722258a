"""The convolutions behind `vgan_jax.conv`: every formulation against XLA's, in values and both
gradients; the tuning budgets passed in as a value (small ones reach the chunked paths)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgan_jax import conv
from vgan_jax.conv import cpu, im2col, phases

# Slices of 2 clips, however small (batches of 5 and 6: several slices); plain 'auto' takes the
# sub-pixel phases' kernel gradient at every size.
SLICED = dataclasses.replace(conv.DEFAULT_BUDGETS, kernel_gradient_slice_bytes=0,
                             strided_kernel_gradient_positions=2 ** 30)
# im2col / col2im temporaries built one clip at a time (a loop over clips), as a large batch does,
# and kernel-gradient slices ordered one after the other.
CHUNKED = dataclasses.replace(SLICED, chunk_bytes=1, unchunked_bytes=0,
                              kernel_gradient_ordered_bytes=0)
# Every transposed convolution's kernel gradient through the strided one's.
STRIDED = dataclasses.replace(SLICED, strided_kernel_gradient_positions=0)
VARIANTS = {'': SLICED, 'chunked': CHUNKED, 'strided': STRIDED}


@pytest.mark.parametrize('impl', ['decomposed', 'matmul', 'auto', 'auto-chunked', 'matmul-chunked',
                                  'auto-strided'])
@pytest.mark.parametrize('shape', [(2, 4, 8, 8, 5), (1, 6, 6, 10, 3), (5, 2, 4, 4, 8),
                                   (6, 2, 4, 6, 3)])
def test_cpu_convolutions_match_xla(shape, impl):
  """Values and gradients (input and kernel) of the CPU formulations equal XLA's convolutions."""
  impl, variant = (impl.split('-') + [''])[:2]
  budgets = VARIANTS[variant]
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  x = jax.random.normal(keys[0], shape)
  channels = shape[-1]
  # `auto` takes its wide path (sub-pixel phases) and its thin one (matmul) for up-convolutions.
  for apply, out_channels in ((conv.up_conv, budgets.thin_channels + 1),
                              (conv.up_conv, 2),
                              (conv.down_conv, 6)):
    kernel = jax.random.normal(keys[1], (4, 4, 4, channels, out_channels))
    for inputs, weights in ((x, kernel), (x[:, 0], kernel[0])):  # 3-D and 2-D
      reference = apply(inputs, weights, 'xla')
      got = apply(inputs, weights, impl, budgets)
      np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-4)
      cotangent = jax.random.normal(keys[2], reference.shape)
      loss = lambda impl: lambda a, w: jnp.vdot(apply(a, w, impl, budgets), cotangent)
      grads_reference = jax.grad(loss('xla'), argnums=(0, 1))(inputs, weights)
      grads = jax.jit(jax.grad(loss(impl), argnums=(0, 1)))(inputs, weights)
      for got, want in zip(grads, grads_reference):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_kernel_gradient_slices_fit_the_partial_gradient_and_slice_budgets():
  kernel = lambda c, o: jax.ShapeDtypeStruct((4, 4, 4, c, o), jnp.float32)
  mib = 2 ** 20
  clips = lambda batch, k, per_clip: cpu.kernel_gradient_clips(batch, k, per_clip,
                                                               conv.DEFAULT_BUDGETS)
  # D's second layer at batch 64: a 2 MiB kernel, 4 MiB of input per clip: 32 slices of 2 clips
  # (64 MiB of partials).
  assert clips(64, kernel(64, 128), 4 * mib) == 2
  # Its fourth: 32 MiB, so at most 2 slices (64 MiB): 32 clips each.
  assert clips(64, kernel(256, 512), mib // 4) == 32
  # Batch 8, third layer (8 MiB): 4 slices of 2 clips fit. Batch 6: a divisor of 6.
  assert clips(8, kernel(128, 256), mib) == 2
  assert clips(6, kernel(256, 512), mib) == 2
  assert clips(1, kernel(3, 64), 4 * mib) == 1
  # The background's 8x8 -> 16x16 layer (128 KiB of gradient per clip): slices grow to 2 MiB.
  background_kernel = jax.ShapeDtypeStruct((4, 4, 256, 128), jnp.float32)
  assert clips(64, background_kernel, mib // 8) == 16
  # Small clips: one slice of the whole batch, odd ones too.
  assert clips(5, kernel(8, 8), 1024) == 5
  # The budgets are a value: a smaller partial budget gives bigger, fewer slices.
  tight = dataclasses.replace(conv.DEFAULT_BUDGETS, kernel_gradient_partial_bytes=8 * mib)
  assert cpu.kernel_gradient_clips(64, kernel(64, 128), 4 * mib, tight) == 16


def test_space_to_depth_round_trips_and_patches_are_adjoint_to_overlap_add():
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  x = jax.random.normal(keys[0], (2, 4, 6, 8, 3))
  assert phases.space_to_depth(x).shape == (2, 2, 3, 4, 24)
  np.testing.assert_array_equal(phases.depth_to_space(phases.space_to_depth(x)), x)
  # <patches(x), c> = <x, overlap_add(c)>: the pair is a linear map and its transpose.
  columns = jax.random.normal(keys[1], (2, 2, 3, 4, 64 * 3))
  assert im2col.strided_patches(x).shape == columns.shape
  np.testing.assert_allclose(jnp.vdot(im2col.strided_patches(x), columns),
                             jnp.vdot(x, im2col.overlap_add(columns)), rtol=1e-5)


def test_up_and_down_convolutions_double_and_halve():
  x = jnp.ones((1, 4, 6, 8, 2))
  kernel = jnp.ones((4, 4, 4, 2, 3))
  assert conv.up_conv(x, kernel, 'xla').shape == (1, 8, 12, 16, 3)
  assert conv.down_conv(x, kernel, 'xla').shape == (1, 2, 3, 4, 3)
  with pytest.raises(ValueError, match='conv_impl'):
    conv.up_conv(x, kernel, 'cudnn')
