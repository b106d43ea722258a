"""The two operations VGAN's networks are made of, behind one small interface:

  up_conv(x, kernel, impl)    stride-2 transposed convolution, kernel 4: every dim doubles
  down_conv(x, kernel, impl)  stride-2 convolution, kernel 4, padding 1: every dim halves

x is channels-last, [B, T, H, W, C] (3-D) or [B, H, W, C] (2-D); kernel is [4, 4, 4, C, O] or
[4, 4, C, O] (HWIO, as `nn.Conv` stores it); no bias. The layer shapes are the authors' Torch
layers (`VolumetricFullConvolution(4, 2, 1)` and `VolumetricConvolution(4, 2, 1)`).

`impl` chooses how they are computed; every choice gives the same values and gradients for the
same parameters (tests/test_conv.py checks them against XLA's):
  xla         XLA's own convolution (cuDNN on GPUs)                              `xla.py`
  decomposed  dense 2-D convolutions over time taps and sub-pixel phases         `phases.py`
  matmul      im2col / col2im around one matmul                                  `im2col.py`
  auto        XLA's off the CPU; on the CPU the fastest measured mix per layer   `cpu.py`
The CPU formulations' sizes (chunks, kernel-gradient slices) come from `budgets`, a frozen
`CpuBudgets` (`budgets.py`).
"""

import jax

from vgan_jax.conv import cpu, im2col, phases, xla
from vgan_jax.conv.budgets import DEFAULT_BUDGETS, CpuBudgets
from vgan_jax.conv.xla import DOWN_PADDING, KERNEL, STRIDE, UP_PADDING

IMPLS = ('auto', 'xla', 'decomposed', 'matmul')


def resolve(impl: str) -> str:
  """`impl` as it will run here: 'auto' is 'xla' off the CPU. ValueError for an unknown one."""
  if impl not in IMPLS:
    raise ValueError(f'conv_impl={impl!r}: must be one of {", ".join(IMPLS)}.')
  if impl == 'auto' and jax.default_backend() != 'cpu':
    return 'xla'
  return impl


def up_conv(x: jax.Array, kernel: jax.Array, impl: str = 'auto',
            budgets: CpuBudgets = DEFAULT_BUDGETS) -> jax.Array:
  """Stride-2 kernel-4 transposed convolution: [B, *D, C] -> [B, *2D, O] (D: 2 or 3 dims)."""
  impl = resolve(impl)
  if impl == 'xla':
    return xla.up_conv(x, kernel)
  if impl == 'matmul':
    return im2col.up_conv(x, kernel, budgets)
  if impl == 'auto':
    return cpu.up_conv(x, kernel, budgets)
  return phases.up_conv(x, kernel)


def down_conv(x: jax.Array, kernel: jax.Array, impl: str = 'auto',
              budgets: CpuBudgets = DEFAULT_BUDGETS) -> jax.Array:
  """Stride-2 kernel-4 convolution with padding 1: [B, *D, C] -> [B, *D/2, O] (D even)."""
  impl = resolve(impl)
  if impl == 'xla':
    return xla.down_conv(x, kernel)
  if impl == 'matmul':
    return im2col.down_conv(x, kernel, budgets)
  if impl == 'auto':
    return cpu.down_conv(x, kernel, budgets)
  return phases.down_conv(x, kernel)


__all__ = ['CpuBudgets', 'DEFAULT_BUDGETS', 'DOWN_PADDING', 'IMPLS', 'KERNEL', 'STRIDE',
           'UP_PADDING', 'down_conv', 'resolve', 'up_conv']
