"""The `matmul` formulation: im2col (`strided_patches`) or col2im (`overlap_add`) around one
matmul, best where one side has few channels; built a few clips at a time for large batches
(`map_clip_chunks`), as the temporaries are 8x the size of what they come from.
"""

import functools
import itertools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from vgan_jax.conv.budgets import CpuBudgets
from vgan_jax.conv.phases import depth_to_space, space_to_depth
from vgan_jax.conv.xla import DOWN_PADDING


def _block_offsets(ndim: int) -> list[tuple[int, ...]]:
  return list(itertools.product((0, 1), repeat=ndim))


@jax.custom_vjp
def strided_patches(x: jax.Array) -> jax.Array:
  """[B, *D, C] -> [B, *D/2, 4**n * C]: the 4x..x4 window under each output of a stride-2 kernel-4
  convolution (padding 1), ordered as `kernel_matrix` orders the kernel (im2col).

  Built as space-to-depth then 2**n shifted slices, a few fused copies; its gradient is
  `overlap_add` (a custom VJP, as autodiff would write it as 2**n full-size pads and adds).
  """
  n = x.ndim - 2
  blocks = space_to_depth(jnp.pad(x, ((0, 0),) + ((DOWN_PADDING, DOWN_PADDING),) * n + ((0, 0),)))
  return jnp.concatenate([
      blocks[(slice(None),) + tuple(slice(a, a + d // 2) for a, d in zip(offsets, x.shape[1:-1]))]
      for offsets in _block_offsets(n)], axis=-1)


@jax.custom_vjp
def overlap_add(columns: jax.Array) -> jax.Array:
  """[B, *D, 4**n * C] -> [B, *2D, C]: the adjoint of `strided_patches` (col2im), each window
  added back where it came from."""
  b, *half, channels = columns.shape
  n = len(half)
  # [B, *D, 2, ..., 2, K]: the window offsets (one 2 per dim), then the blocks' 2**n * C channels.
  blocks = columns.reshape(b, *half, *(2,) * n, channels // 2 ** n)
  # One dim at a time, the two offsets' blocks are shifted into place and added: n steps that each
  # halve the data. Where both overlap they are added; the ends are one or the other, concatenated.
  # (XLA's CPU backend materialises each operand of a sum of padded copies: summing all 2**n at
  # once took 2.3x the columns' size.)
  for axis in range(1, n + 1):
    offset_0, offset_1 = (blocks[(slice(None),) * (n + 1) + (i,)] for i in (0, 1))
    size = offset_0.shape[axis]
    blocks = jnp.concatenate([
        lax.slice_in_dim(offset_0, 0, 1, axis=axis),
        lax.slice_in_dim(offset_0, 1, size, axis=axis)
        + lax.slice_in_dim(offset_1, 0, size - 1, axis=axis),
        lax.slice_in_dim(offset_1, size - 1, size, axis=axis)], axis=axis)
  return depth_to_space(blocks)[(slice(None),) + (slice(DOWN_PADDING, -DOWN_PADDING),) * n]


strided_patches.defvjp(lambda x: (strided_patches(x), None), lambda _, g: (overlap_add(g),))
overlap_add.defvjp(lambda c: (overlap_add(c), None), lambda _, g: (strided_patches(g),))


def kernel_matrix(kernel: jax.Array) -> jax.Array:
  """[4]*n + [C, O] -> [4**n * C, O], rows in `strided_patches` order (tap k = 2 * offset + phase)."""
  n = kernel.ndim - 2
  c, o = kernel.shape[-2:]
  kernel = kernel.reshape(*(2,) * (2 * n), c, o)
  return kernel.transpose(*range(0, 2 * n, 2), *range(1, 2 * n, 2), 2 * n, 2 * n + 1).reshape(-1, o)


def weight_gradient(rows: jax.Array, grad: jax.Array, budgets: CpuBudgets) -> jax.Array:
  """rows^T @ grad over every row ([..., K], [..., N] -> [K, N]) as a batched matmul and a sum
  (`budgets.weight_gradient_chunks` chunks)."""
  k, n = rows.shape[-1], grad.shape[-1]
  flat_rows, flat_grad = rows.reshape(-1, k), grad.reshape(-1, n)
  chunks = math.gcd(budgets.weight_gradient_chunks, flat_rows.shape[0])
  return jnp.einsum('rmk,rmn->rkn', flat_rows.reshape(chunks, -1, k),
                    flat_grad.reshape(chunks, -1, n)).sum(0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def rows_matmul(rows: jax.Array, weight: jax.Array, budgets: CpuBudgets) -> jax.Array:
  """[..., K] @ [K, N] -> [..., N], with a weight gradient that XLA's CPU backend runs fast."""
  del budgets
  return rows @ weight


def _rows_matmul_backward(budgets, residuals, grad):
  rows, weight = residuals
  return grad @ weight.T, weight_gradient(rows, grad, budgets).astype(weight.dtype)


rows_matmul.defvjp(lambda rows, weight, budgets: (rows @ weight, (rows, weight)),
                   _rows_matmul_backward)


def nbytes(x: jax.Array) -> int:
  return x.size * x.dtype.itemsize


def im2col_bytes(x: jax.Array, columns: int) -> int:
  """Bytes per clip of a [positions, columns] im2col matrix over `x`'s positions."""
  return math.prod(x.shape[1:-1]) * columns * x.dtype.itemsize


def _clips_per_chunk(batch: int, bytes_per_clip: int, budgets: CpuBudgets) -> int:
  """The whole batch if its temporaries fit in `unchunked_bytes`; else the largest divisor of
  `batch` whose temporaries fit in `chunk_bytes` (at least 1 clip)."""
  if batch * bytes_per_clip <= budgets.unchunked_bytes:
    return batch
  fit = max(1, budgets.chunk_bytes // max(1, bytes_per_clip))
  return max(d for d in range(1, min(fit, batch) + 1) if batch % d == 0)


def map_clip_chunks(fn, arrays: Sequence[jax.Array], bytes_per_clip: int, budgets: CpuBudgets,
                    closed_over: Sequence[jax.Array] = ()):
  """`fn(*arrays)` computed on chunks of clips (the leading axis) and stacked: each output gets a
  leading chunk axis, [chunks, ...] (one chunk, unlooped, when the whole batch fits).

  `closed_over`: the other arrays `fn` uses (weights), see below.
  """
  batch = arrays[0].shape[0]
  clips = _clips_per_chunk(batch, bytes_per_clip, budgets)
  if clips == batch:
    return jax.tree.map(lambda y: y[None], fn(*arrays))
  chunks = batch // clips
  chunked = [a.reshape(chunks, clips, *a.shape[1:]) for a in arrays]
  # The outputs are written into buffers whose initial value depends on every input: `lax.map`'s
  # zero buffers are one value that XLA shares between loops of the same shape and then copies for
  # each loop (2 extra GiB at paper size, batch 64). A buffer that depended on fewer inputs would be
  # shared by loops that differ only in their weights (D on the same fakes before and after its
  # update), or made long before its loop runs (a backward loop's, from a forward value).
  seed = sum(0 * a.reshape(-1)[0].astype(jnp.float32) for a in [*arrays, *closed_over])
  outputs = jax.tree.map(lambda out: jnp.full((chunks,) + out.shape, seed.astype(out.dtype)),
                         jax.eval_shape(fn, *[a[0] for a in chunked]))

  def body(i, outputs):
    results = fn(*[a[i] for a in chunked])
    return jax.tree.map(lambda out, result: out.at[i].set(result), outputs, results)

  return lax.fori_loop(0, chunks, body, outputs)


def unchunk(y: jax.Array) -> jax.Array:
  """[chunks, clips, ...] -> [chunks * clips, ...]."""
  return y.reshape(-1, *y.shape[2:])


def down_conv(x: jax.Array, kernel: jax.Array, budgets: CpuBudgets) -> jax.Array:
  """Strided convolution as im2col and one matmul (unchunked; differentiable)."""
  return rows_matmul(strided_patches(x), kernel_matrix(kernel), budgets)


def down_conv_chunked(x: jax.Array, kernel: jax.Array, budgets: CpuBudgets) -> jax.Array:
  """`down_conv`'s forward a few clips at a time (no gradient of its own: see `cpu.down_conv`)."""
  rows = kernel_matrix(kernel)  # [4**n * C, O]
  output_positions = math.prod(d // 2 for d in x.shape[1:-1])
  return unchunk(map_clip_chunks(lambda clips: strided_patches(clips) @ rows, [x],
                                 output_positions * rows.shape[0] * x.dtype.itemsize, budgets,
                                 [rows]))


def down_conv_input_gradient(grad: jax.Array, kernel: jax.Array,
                             budgets: CpuBudgets) -> jax.Array:
  """The strided convolution's input gradient: a matmul and `overlap_add` (col2im), a few clips
  at a time."""
  rows = kernel_matrix(kernel).T.astype(grad.dtype)  # [O, 4**n * C]
  return unchunk(map_clip_chunks(lambda clips: overlap_add(clips @ rows), [grad],
                                 im2col_bytes(grad, rows.shape[1]), budgets, [rows]))


def _up_columns(kernel: jax.Array) -> jax.Array:
  """[4]*n + [C, O] -> [C, 4**n * O]: each input channel's contribution to its 4x..x4 output window,
  in `overlap_add` order. (XLA's transposed convolution is the adjoint of the strided one with the
  kernel flipped.)"""
  n = kernel.ndim - 2
  flipped = kernel[(slice(None, None, -1),) * n]
  c, o = kernel.shape[-2:]
  return kernel_matrix(flipped).reshape(-1, c, o).transpose(1, 0, 2).reshape(c, -1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _up_conv_rows(x: jax.Array, columns: jax.Array, budgets: CpuBudgets) -> jax.Array:
  """overlap_add(x @ columns), in chunks of clips."""
  return unchunk(map_clip_chunks(lambda clips: overlap_add(clips @ columns), [x],
                                 im2col_bytes(x, columns.shape[1]), budgets, [columns]))


def _up_conv_rows_backward(budgets, residuals, grad):
  x, columns = residuals

  def chunk_gradients(clips, clips_grad):
    patches = strided_patches(clips_grad)
    return patches @ columns.T, weight_gradient(clips, patches, budgets)

  grad_x, grad_columns = map_clip_chunks(chunk_gradients, [x, grad],
                                         im2col_bytes(x, columns.shape[1]), budgets, [columns])
  return unchunk(grad_x), grad_columns.sum(0).astype(columns.dtype)


_up_conv_rows.defvjp(lambda x, columns, budgets: (_up_conv_rows(x, columns, budgets),
                                                  (x, columns)),
                     _up_conv_rows_backward)


def up_conv(x: jax.Array, kernel: jax.Array, budgets: CpuBudgets) -> jax.Array:
  """Each input position's contribution to its 4x..x4 output window in one matmul, then
  `overlap_add`; a few clips at a time when the batch is large."""
  return _up_conv_rows(x, _up_columns(kernel), budgets)
