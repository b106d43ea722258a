"""Building blocks shared by the generator and the discriminator, with the paper's initialisation.

Convolutions are channels-last (`[B, T, H, W, C]` for video, `[B, H, W, C]` for images), which is
what XLA lays out best on accelerators. Padding is written out so each layer has the shape of the
authors' Torch layer: a 4-wide stride-2 (transposed) convolution with Torch padding 1 exactly
halves (doubles) every dimension.
"""

import functools
import itertools
import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from vgan_jax.configs import CONV_IMPLS, SPATIOTEMPORAL_STRIDE, WIDTH_MULTIPLIERS

# A stride-2 convolution with kernel 4 and Torch padding 1 pads one element on each side; its
# transpose (`nn.ConvTranspose` pads the dilated input) pads kernel - 1 - 1 = 2 on each side.
KERNEL = 4
DOWN_PADDING = 1
UP_PADDING = KERNEL - 1 - DOWN_PADDING


def _flat_normal(key, shape, dtype) -> jax.Array:
  # Drawn flat and reshaped: XLA's CPU compiler takes seconds on a rank-5 random draw and a
  # fraction of a second on a rank-1 one, for the same numbers of values.
  return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def conv_init(stddev: float) -> nn.initializers.Initializer:
  """N(0, stddev) for convolution kernels (the authors' Torch code uses stddev 0.01)."""

  def init(key, shape, dtype=jnp.float32):
    return stddev * _flat_normal(key, shape, dtype)

  return init


def batchnorm_scale_init(stddev: float) -> nn.initializers.Initializer:
  """N(1, stddev) for BatchNorm scales, as in the authors' Torch code."""

  def init(key, shape, dtype=jnp.float32):
    return 1.0 + stddev * _flat_normal(key, shape, dtype)

  return init


def _batch_statistics(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean and (biased) variance of each channel over every other axis, in float32."""
  x = x.astype(jnp.float32)
  axes = tuple(range(x.ndim - 1))
  mean = x.mean(axes)
  return mean, jnp.square(x - mean).mean(axes)


def _normalize(x, mean, var, scale, bias, *, epsilon: float, activation, dtype) -> jax.Array:
  """activation((x - mean) / sqrt(var + epsilon) * scale + bias), computed in float32."""
  multiplier = scale * lax.rsqrt(var + epsilon)
  return activation((x.astype(jnp.float32) - mean) * multiplier + bias).astype(dtype)


def _normalize_batch(x, scale, bias, epsilon, activation):
  """Training-mode BatchNorm and an activation: x [..., C] -> (y [..., C] in x's dtype, the batch's
  mean [C] and variance [C])."""
  mean, var = _batch_statistics(x)
  return _normalize(x, mean, var, scale, bias, epsilon=epsilon, activation=activation,
                    dtype=x.dtype), mean, var


def recomputed_in_backward(fn):
  """`fn` (arrays -> a pytree of arrays), differentiable, whose backward pass recomputes it from its
  inputs once the outputs' gradient is known: only the inputs are kept from the forward pass.

  For cheap elementwise work (BatchNorm and its activation, the generator's composition) whose
  intermediates autodiff would keep from the forward to the backward pass: XLA's fusions read
  several of them (x and x - mean, say), each the size of the layer. `jax.checkpoint` cannot do
  this on CPU: XLA drops its optimization barrier there and merges the recomputation back into the
  forward pass. Here the recomputation depends on the gradient, so it cannot run earlier.
  """

  @jax.custom_vjp
  def wrapped(*args):
    return fn(*args)

  def backward(args, cotangents):
    gradient = jax.tree.leaves(cotangents)[0]
    return jax.vjp(fn, *[computed_after(a, gradient) for a in args])[1](cotangents)

  wrapped.defvjp(lambda *args: (fn(*args), args), backward)
  return wrapped


def _identity(x: jax.Array) -> jax.Array:
  return x


class BatchNorm(nn.Module):
  """BatchNorm then an activation: [..., C] -> [..., C], with Torch's defaults (momentum 0.1 there
  is 0.9 here, eps 1e-5).

  The parameters (`scale`, `bias`) and statistics (`mean`, `var`: running averages of the batch's
  mean and biased variance) are `nn.BatchNorm`'s, under the same auto-generated names
  (`BatchNorm_0`, ...), so checkpoints load either way. In training its backward pass recomputes it
  from its input (`recomputed_in_backward`): one buffer of the layer's size is held for the
  backward pass where `nn.BatchNorm` and the activation held three (768 MiB for the generator's
  last hidden layer at paper size, batch 64). The statistics are reduced, and kept, in float32
  whatever `dtype` is.

  In training the statistics are those of the whole (global) batch: under `jax.jit` with the
  batch sharded over devices XLA reduces across them, so N devices match one device.
  """
  use_running_average: bool
  scale_init: nn.initializers.Initializer
  activation: Callable[[jax.Array], jax.Array] = _identity
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: jnp.dtype = jnp.float32  # of the output

  @nn.compact
  def __call__(self, x: jax.Array, deferred: bool = False):
    """x [..., C] -> y [..., C]; or, `deferred`, (fn, params) with y = fn(x, *params): for the next
    layer to recompute y in its own backward pass rather than keep it (see `TwoStreamGenerator`)."""
    shape = (x.shape[-1],)
    scale = self.param('scale', self.scale_init, shape, jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), shape, jnp.float32)
    running_mean = self.variable('batch_stats', 'mean', jnp.zeros, shape, jnp.float32)
    running_var = self.variable('batch_stats', 'var', jnp.ones, shape, jnp.float32)
    x = x.astype(self.dtype)
    normalize = functools.partial(_normalize, epsilon=self.epsilon, activation=self.activation,
                                  dtype=self.dtype)
    if self.use_running_average:
      params = (running_mean.value, running_var.value, scale, bias)
      return (normalize, params) if deferred else normalize(x, *params)
    if deferred:
      mean, var = recomputed_in_backward(_batch_statistics)(x)
    else:
      y, mean, var = recomputed_in_backward(functools.partial(
          _normalize_batch, epsilon=self.epsilon, activation=self.activation))(x, scale, bias)
    if not self.is_initializing():
      for running, batch in ((running_mean, mean), (running_var, var)):
        running.value = (self.momentum * running.value
                         + (1 - self.momentum) * lax.stop_gradient(batch))
    return (normalize, (mean, var, scale, bias)) if deferred else y


def batch_norm(train: bool, scale_stddev: float, name: str | None = None,
               dtype: jnp.dtype = jnp.float32, activation=_identity) -> BatchNorm:
  """`BatchNorm` then `activation`, scales initialised N(1, scale_stddev): the batch's statistics
  in training, the running averages in inference."""
  return BatchNorm(not train, batchnorm_scale_init(scale_stddev), activation, dtype=dtype,
                   name=name)


# On CPU, `auto` computes a transposed convolution with at most this many output channels (the
# generator's last layers: 3 colours, 1 mask) as one matmul and an overlap-add; XLA's CPU
# convolutions are ~10x below matmul speed when one side has so few channels.
THIN_CHANNELS = 16


def _resolve(impl: str) -> str:
  """'auto' -> 'auto' on CPU (a per-layer choice, see below), XLA's own (cuDNN) elsewhere."""
  if impl not in CONV_IMPLS:
    raise ValueError(f'conv_impl={impl!r}: must be one of {", ".join(CONV_IMPLS)}.')
  if impl == 'auto' and jax.default_backend() != 'cpu':
    return 'xla'
  return impl


def _dimension_numbers(ndim: int) -> tuple[str, str, str]:
  spatial = 'DHW'[-ndim:]
  return (f'N{spatial}C', f'{spatial}IO', f'N{spatial}C')


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


def _up_conv_phases_2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """[N, H, W, C] -> [N, 2H, 2W, O]: the stride-2 transposed convolution as 4 stride-1 2x2 ones.

  Output row 2h + p only ever sees input rows h - 1 + p and h + p, through kernel taps p and
  p + 2 (`kernel[p::2]`): one small dense convolution per output phase, then depth-to-space.
  No dilated convolution is left, which XLA's CPU backend runs slowly (its backward above all).
  """
  phases = []
  for ph in (0, 1):
    for pw in (0, 1):
      padding = ((1 - ph, ph), (1 - pw, pw))
      phases.append(lax.conv_general_dilated(x, kernel[ph::2, pw::2], (1, 1), padding,
                                             dimension_numbers=_dimension_numbers(2)))
  return depth_to_space(jnp.concatenate(phases, axis=-1))  # phases (ph, pw) major, O minor


def _up_conv_decomposed_3d(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """[B, T, H, W, C] -> [B, 2T, 2H, 2W, O]; time phases stack their two taps on channels."""
  b, t, h, w, c = x.shape
  previous = jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0), (0, 0)))[:, :t]
  following = jnp.pad(x, ((0, 0), (0, 1), (0, 0), (0, 0), (0, 0)))[:, 1:]
  phases = []
  for pt, neighbours in ((0, (previous, x)), (1, (x, following))):
    frames = jnp.concatenate(neighbours, axis=-1).reshape(b * t, h, w, 2 * c)
    taps = kernel[pt::2].transpose(1, 2, 0, 3, 4).reshape(*kernel.shape[1:3], 2 * c, -1)
    phases.append(_up_conv_phases_2d(frames, taps).reshape(b, t, 2 * h, 2 * w, -1))
  return jnp.stack(phases, axis=2).reshape(b, 2 * t, 2 * h, 2 * w, -1)


def _down_conv_decomposed_3d(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """[B, T, H, W, C] -> [B, T/2, H/2, W/2, O]: the 4 temporal taps stacked on channels, then one
  strided 2-D convolution, whose forward and backward XLA's CPU backend runs well."""
  b, t, h, w, c = x.shape
  padded = jnp.pad(x, ((0, 0), (DOWN_PADDING, DOWN_PADDING), (0, 0), (0, 0), (0, 0)))
  steps = (t + 2 * DOWN_PADDING - KERNEL) // 2 + 1
  frames = jnp.concatenate([padded[:, k:k + 2 * steps - 1:2] for k in range(KERNEL)], axis=-1)
  taps = kernel.transpose(1, 2, 0, 3, 4).reshape(KERNEL, KERNEL, KERNEL * c, -1)
  y = lax.conv_general_dilated(frames.reshape(b * steps, h, w, KERNEL * c), taps, (2, 2),
                               ((DOWN_PADDING, DOWN_PADDING),) * 2,
                               dimension_numbers=_dimension_numbers(2))
  return y.reshape(b, steps, *y.shape[1:])


def _block_offsets(ndim: int) -> list[tuple[int, ...]]:
  return list(itertools.product((0, 1), repeat=ndim))


@jax.custom_vjp
def strided_patches(x: jax.Array) -> jax.Array:
  """[B, *D, C] -> [B, *D/2, 4**n * C]: the 4x..x4 window under each output of a stride-2 kernel-4
  convolution (padding 1), ordered as `_kernel_matrix` orders the kernel (im2col).

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


def _kernel_matrix(kernel: jax.Array) -> jax.Array:
  """[4]*n + [C, O] -> [4**n * C, O], rows in `strided_patches` order (tap k = 2 * offset + phase)."""
  n = kernel.ndim - 2
  c, o = kernel.shape[-2:]
  kernel = kernel.reshape(*(2,) * (2 * n), c, o)
  return kernel.transpose(*range(0, 2 * n, 2), *range(1, 2 * n, 2), 2 * n, 2 * n + 1).reshape(-1, o)


# The weight gradient of `rows @ weight` contracts over every row: a matmul with a small output and
# a long inner dimension, which XLA's CPU backend runs on one thread at ~10 GFLOP/s. Split into
# this many chunks, as a batched matmul and a sum, it runs at matmul speed.
_WEIGHT_GRADIENT_CHUNKS = 16


@jax.custom_vjp
def rows_matmul(rows: jax.Array, weight: jax.Array) -> jax.Array:
  """[..., K] @ [K, N] -> [..., N], with a weight gradient that XLA's CPU backend runs fast."""
  return rows @ weight


def _weight_gradient(rows: jax.Array, grad: jax.Array) -> jax.Array:
  """rows^T @ grad over every row ([..., K], [..., N] -> [K, N]) as a batched matmul and a sum."""
  k, n = rows.shape[-1], grad.shape[-1]
  flat_rows, flat_grad = rows.reshape(-1, k), grad.reshape(-1, n)
  chunks = math.gcd(_WEIGHT_GRADIENT_CHUNKS, flat_rows.shape[0])
  return jnp.einsum('rmk,rmn->rkn', flat_rows.reshape(chunks, -1, k),
                    flat_grad.reshape(chunks, -1, n)).sum(0)


def _rows_matmul_backward(residuals, grad):
  rows, weight = residuals
  return grad @ weight.T, _weight_gradient(rows, grad).astype(weight.dtype)


rows_matmul.defvjp(lambda rows, weight: (rows @ weight, (rows, weight)), _rows_matmul_backward)


def _down_conv_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return rows_matmul(strided_patches(x), _kernel_matrix(kernel))


# im2col / col2im temporaries are 4**n / 2**n = 8x the size of the layer's input (or output
# gradient): 2 GiB for D's second layer at batch 64. Over this many bytes they are built a few clips
# at a time inside a loop, which bounds memory and also runs faster (the chunks stay in cache).
# (XLA's CPU backend runs matmuls in a loop at full speed, not convolutions: those stay unrolled.)
CHUNK_BYTES = 128 * 2 ** 20
# Up to this many bytes in all, the temporaries are built in one go: at paper size, batch 8, the
# loop cost ~5% of the step and saved little.
UNCHUNKED_BYTES = 256 * 2 ** 20


def _clips_per_chunk(batch: int, bytes_per_clip: int) -> int:
  """The whole batch if its temporaries fit in `UNCHUNKED_BYTES`; else the largest divisor of
  `batch` whose temporaries fit in `CHUNK_BYTES` (at least 1 clip)."""
  if batch * bytes_per_clip <= UNCHUNKED_BYTES:
    return batch
  fit = max(1, CHUNK_BYTES // max(1, bytes_per_clip))
  return max(d for d in range(1, min(fit, batch) + 1) if batch % d == 0)


def map_clip_chunks(fn, arrays: Sequence[jax.Array], bytes_per_clip: int,
                    closed_over: Sequence[jax.Array] = ()):
  """`fn(*arrays)` computed on chunks of clips (the leading axis) and stacked: each output gets a
  leading chunk axis, [chunks, ...] (one chunk, unlooped, when the whole batch fits).

  `closed_over`: the other arrays `fn` uses (weights), see below.
  """
  batch = arrays[0].shape[0]
  clips = _clips_per_chunk(batch, bytes_per_clip)
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


def _unchunk(y: jax.Array) -> jax.Array:
  """[chunks, clips, ...] -> [chunks * clips, ...]."""
  return y.reshape(-1, *y.shape[2:])


def _nbytes(x: jax.Array) -> int:
  return x.size * x.dtype.itemsize


def _im2col_bytes(x: jax.Array, columns: int) -> int:
  """Bytes per clip of a [positions, columns] im2col matrix over `x`'s positions."""
  return math.prod(x.shape[1:-1]) * columns * x.dtype.itemsize


def _down_conv_chunked_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """`_down_conv_matmul`'s forward a few clips at a time (for `_down_conv_cpu`: no gradient)."""
  rows = _kernel_matrix(kernel)  # [4**n * C, O]
  output_positions = math.prod(d // 2 for d in x.shape[1:-1])
  return _unchunk(map_clip_chunks(lambda clips: strided_patches(clips) @ rows, [x],
                                  output_positions * rows.shape[0] * x.dtype.itemsize, [rows]))


def _up_columns(kernel: jax.Array) -> jax.Array:
  """[4]*n + [C, O] -> [C, 4**n * O]: each input channel's contribution to its 4x..x4 output window,
  in `overlap_add` order. (XLA's transposed convolution is the adjoint of the strided one with the
  kernel flipped.)"""
  n = kernel.ndim - 2
  flipped = kernel[(slice(None, None, -1),) * n]
  c, o = kernel.shape[-2:]
  return _kernel_matrix(flipped).reshape(-1, c, o).transpose(1, 0, 2).reshape(c, -1)


@jax.custom_vjp
def _up_conv_rows(x: jax.Array, columns: jax.Array) -> jax.Array:
  """overlap_add(x @ columns), in chunks of clips."""
  return _unchunk(map_clip_chunks(lambda clips: overlap_add(clips @ columns), [x],
                                  _im2col_bytes(x, columns.shape[1]), [columns]))


def _up_conv_rows_backward(residuals, grad):
  x, columns = residuals

  def chunk_gradients(clips, clips_grad):
    patches = strided_patches(clips_grad)
    return patches @ columns.T, _weight_gradient(clips, patches)

  grad_x, grad_columns = map_clip_chunks(chunk_gradients, [x, grad],
                                         _im2col_bytes(x, columns.shape[1]), [columns])
  return _unchunk(grad_x), grad_columns.sum(0).astype(columns.dtype)


_up_conv_rows.defvjp(lambda x, columns: (_up_conv_rows(x, columns), (x, columns)),
                     _up_conv_rows_backward)


def _up_conv_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Each input position's contribution to its 4x..x4 output window in one matmul, then
  `overlap_add`; a few clips at a time when the batch is large."""
  return _up_conv_rows(x, _up_columns(kernel))


def _down_conv_decomposed(x: jax.Array, kernel: jax.Array) -> jax.Array:
  if x.ndim == 4:
    return lax.conv_general_dilated(x, kernel, (2, 2), ((DOWN_PADDING, DOWN_PADDING),) * 2,
                                    dimension_numbers=_dimension_numbers(2))
  return _down_conv_decomposed_3d(x, kernel)


# XLA's CPU backend computes a convolution's kernel gradient as one convolution whose window spans
# the whole batch; its speed falls with the batch (measured for D's second layer: ~70 GFLOP/s at
# 8 clips, ~22 at 32). Summed over slices of this many clips it stays at ~90-146 GFLOP/s.
# (Unrolled: inside a `lax.scan` loop the same convolution ran 100x slower.)
KERNEL_GRADIENT_CLIPS = 2
# At most this many slices: each is unrolled into the program, and compile time grows.
KERNEL_GRADIENT_MAX_SLICES = 32
# XLA fuses the sum of the slices' gradients into the optimizer update, so every partial gradient is
# held until then, the real pass's through the fake pass too: at most this many bytes of them per
# layer. (D's fourth layer at batch 64 in slices of 2 clips held 1 GiB and ran at 51 GFLOP/s; in 4
# slices of 16, 128 MiB at 129 GFLOP/s; now 2 slices of 32: its ~4 GFLOP are 0.2% of the step.)
KERNEL_GRADIENT_PARTIAL_BYTES = 64 * 2 ** 20
# From an input of this size the slices run one after the other (`computed_after`): XLA would
# otherwise prepare every slice's inputs up front (0.7 GiB at batch 64). Smaller inputs run faster
# side by side.
KERNEL_GRADIENT_ORDERED_BYTES = 64 * 2 ** 20
# Where a clip's input and gradient are small, slices grow until either reaches this many bytes:
# there the convolutions run faster on more clips (at batch 64, GFLOP/s in slices of 2 clips -> of
# this size: the background's 4x4 -> 8x8 layer 23 -> 186, 8x8 -> 16x16 70 -> 151, 16x16 -> 32x32
# 106 -> 126), and fewer slices make a smaller program.
KERNEL_GRADIENT_SLICE_BYTES = 2 * 2 ** 20


def _kernel_gradient_clips(batch: int, kernel: jax.Array, bytes_per_clip: int) -> int:
  """Clips per kernel-gradient slice: `KERNEL_GRADIENT_CLIPS`, doubled until the slices fit
  `KERNEL_GRADIENT_MAX_SLICES` and `KERNEL_GRADIENT_PARTIAL_BYTES`, and further while the slice's
  input or gradient (the larger, `bytes_per_clip` each clip) fits `KERNEL_GRADIENT_SLICE_BYTES`;
  a divisor of `batch`."""
  max_slices = max(1, min(KERNEL_GRADIENT_MAX_SLICES,
                          KERNEL_GRADIENT_PARTIAL_BYTES // _nbytes(kernel)))
  clips = KERNEL_GRADIENT_CLIPS
  while clips < batch and (batch > clips * max_slices
                           or 2 * clips * bytes_per_clip <= KERNEL_GRADIENT_SLICE_BYTES):
    clips *= 2
  return batch if clips >= batch else math.gcd(batch, clips)


def _kernel_gradient(conv, x: jax.Array, kernel: jax.Array, grad: jax.Array) -> jax.Array:
  """d<conv(x, kernel), grad>/dkernel, summed over slices of clips (`_kernel_gradient_clips`)."""
  clips = _kernel_gradient_clips(x.shape[0], kernel,
                                 max(_nbytes(x), _nbytes(grad)) // x.shape[0])
  ordered = _nbytes(x) >= KERNEL_GRADIENT_ORDERED_BYTES
  partials = []
  for start in range(0, x.shape[0], clips):
    x_slice = x[start:start + clips]
    if partials and ordered:
      x_slice = computed_after(x_slice, partials[-1])
    partials.append(jax.vjp(lambda k, x_slice=x_slice: conv(x_slice, k), kernel)[1](
        grad[start:start + clips])[0])
  return sum(partials)


def computed_after(x: jax.Array, previous) -> jax.Array:
  """x, but usable only once every array of `previous` (a pytree) is computed: orders work that
  XLA's scheduler would otherwise run early, holding its memory.

  `lax.optimization_barrier` is dropped before scheduling on CPU, so the order is a data
  dependency: x + 0 * one element of each array of `previous`. (A NaN there would turn x to NaN;
  where it is used, `previous` is part of the same loss's gradient.)
  """
  zero = sum(0 * p.reshape(-1)[0].astype(jnp.float32) for p in jax.tree.leaves(previous))
  return x + zero.astype(x.dtype)


def _up_conv_decomposed(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _up_conv_decomposed_3d(x, kernel) if x.ndim == 5 else _up_conv_phases_2d(x, kernel)


@jax.custom_vjp
def _down_conv_cpu(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The fastest measured CPU pieces of a strided convolution: forward as 2-D convolutions over
  time taps (for a large input: im2col and a matmul, a few clips at a time), input gradient as a
  matmul and `overlap_add` (a few clips at a time), kernel gradient as 2-D convolutions over time
  taps, in slices of clips."""
  if 2 * _nbytes(x) < CHUNK_BYTES:  # the time taps' frames (2x the input) are small
    return _down_conv_decomposed(x, kernel)
  return _down_conv_chunked_matmul(x, kernel)


def _down_conv_cpu_backward(residuals, grad):
  x, kernel = residuals
  rows = _kernel_matrix(kernel).T.astype(grad.dtype)  # [O, 4**n * C]
  grad_x = _unchunk(map_clip_chunks(lambda clips: overlap_add(clips @ rows), [grad],
                                    _im2col_bytes(grad, rows.shape[1]), [rows]))
  return grad_x, _kernel_gradient(_down_conv_decomposed, x, kernel, grad)


_down_conv_cpu.defvjp(lambda x, kernel: (_down_conv_cpu(x, kernel), (x, kernel)),
                      _down_conv_cpu_backward)


@jax.custom_vjp
def _up_conv_cpu(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A wide transposed convolution on CPU: sub-pixel phases, kernel gradient in slices of clips."""
  return _up_conv_decomposed(x, kernel)


# From this many output positions per clip, a transposed convolution's kernel gradient is computed
# as the strided convolution's (`_as_strided_kernel`): one 2-D convolution per slice of clips instead
# of 8 (3-D) or 4 (2-D) sub-pixel phases. Measured at paper size, batch 64 (GFLOP/s, phases ->
# strided): G's fourth layer (16x32x32 outputs) 66 -> 119, its third (8x16x16) 146 -> 167, the
# background's last (32x32) 88 -> 116; smaller outputs ran slower that way (16x16: 66 -> 35).
STRIDED_KERNEL_GRADIENT_POSITIONS = 1024


def _as_strided_kernel(kernel: jax.Array) -> jax.Array:
  """[4]*n + [C, O] -> [4]*n + [O, C], flipped: the kernel of the strided convolution whose adjoint
  is the transposed convolution with `kernel` (and back: the map is its own inverse)."""
  n = kernel.ndim - 2
  return jnp.swapaxes(kernel[(slice(None, None, -1),) * n], -1, -2)


def _up_conv_cpu_backward(residuals, grad):
  x, kernel = residuals
  (grad_x,) = jax.vjp(lambda a: _up_conv_decomposed(a, kernel), x)[1](grad)
  if math.prod(grad.shape[1:-1]) < STRIDED_KERNEL_GRADIENT_POSITIONS:
    return grad_x, _kernel_gradient(_up_conv_decomposed, x, kernel, grad)
  # <up(x, K), g> = <x, down(g, K')> with K' = _as_strided_kernel(K): K''s gradient is the strided
  # convolution's kernel gradient at input g and output gradient x.
  strided_kernel = _as_strided_kernel(kernel)
  return grad_x, _as_strided_kernel(_kernel_gradient(_down_conv_decomposed, grad, strided_kernel, x))


_up_conv_cpu.defvjp(lambda x, kernel: (_up_conv_cpu(x, kernel), (x, kernel)),
                    _up_conv_cpu_backward)


def up_conv_apply(x: jax.Array, kernel: jax.Array, impl: str = 'auto') -> jax.Array:
  """Stride-2 kernel-4 transposed convolution (no bias) of 2-D or 3-D input; every dim doubles."""
  ndim = x.ndim - 2
  impl = _resolve(impl)
  if impl == 'auto':
    return (_up_conv_matmul(x, kernel) if kernel.shape[-1] <= THIN_CHANNELS
            else _up_conv_cpu(x, kernel))
  if impl == 'xla':
    return lax.conv_transpose(x, kernel, (2,) * ndim, ((UP_PADDING, UP_PADDING),) * ndim,
                              dimension_numbers=_dimension_numbers(ndim))
  if impl == 'matmul':
    return _up_conv_matmul(x, kernel)
  return _up_conv_decomposed(x, kernel)


def down_conv_apply(x: jax.Array, kernel: jax.Array, impl: str = 'auto') -> jax.Array:
  """Stride-2 kernel-4 convolution (no bias) of 2-D or 3-D input; every dim halves."""
  impl = _resolve(impl)
  if impl == 'xla':
    ndim = x.ndim - 2
    return lax.conv_general_dilated(x, kernel, (2,) * ndim, ((DOWN_PADDING, DOWN_PADDING),) * ndim,
                                    dimension_numbers=_dimension_numbers(ndim))
  if impl == 'matmul':
    return _down_conv_matmul(x, kernel)
  if impl == 'auto':
    return _down_conv_cpu(x, kernel)
  return _down_conv_decomposed(x, kernel)


class _StridedConv(nn.Module):
  """Kernel 4, stride 2 (transposed) convolution with a bias; params as `nn.Conv` names them."""
  features: int
  stddev: float
  impl: str = 'auto'
  use_bias: bool = True
  dtype: jnp.dtype = jnp.float32  # of the computation; parameters stay float32

  def _kernel_and_bias(self, x: jax.Array, kernel_in: int, kernel_out: int):
    ndim = x.ndim - 2
    kernel = self.param('kernel', conv_init(self.stddev),
                        (KERNEL,) * ndim + (kernel_in, kernel_out))
    kernel = kernel.astype(self.dtype)
    if not self.use_bias:
      return kernel, jnp.zeros((), self.dtype)
    return kernel, self.param('bias', nn.initializers.zeros_init(),
                              (self.features,)).astype(self.dtype)


class UpConv(_StridedConv):
  """[B, (T,) H, W, C] -> [B, (2T,) 2H, 2W, features]; Torch's ConvTranspose(4, 2, padding=1)."""

  @nn.compact
  def __call__(self, x: jax.Array, params_only: bool = False):
    """`params_only`: (kernel, bias) in the compute dtype, to run several heads as one layer."""
    kernel, bias = self._kernel_and_bias(x, x.shape[-1], self.features)
    if params_only:
      return kernel, bias
    return up_conv_apply(x.astype(self.dtype), kernel, self.impl) + bias


class DownConv(_StridedConv):
  """[B, (T,) H, W, C] -> [B, (T/2,) H/2, W/2, features]; Torch's Conv(4, 2, padding=1)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel, bias = self._kernel_and_bias(x, x.shape[-1], self.features)
    return down_conv_apply(x.astype(self.dtype), kernel, self.impl) + bias


def project_conv(features: int, window: Sequence[int], stddev: float,
                 name: str | None = None, dtype: jnp.dtype = jnp.float32) -> nn.ConvTranspose:
  """The first generator layer: a 1x..x1 code -> a `window`-sized block (a 'full' convolution).

  No bias: BatchNorm follows and would subtract it again.
  """
  return nn.ConvTranspose(features, tuple(window), padding='VALID', use_bias=False,
                          kernel_init=conv_init(stddev), dtype=dtype, name=name)


def collapse_conv(features: int, window: Sequence[int], stddev: float,
                  name: str | None = None, dtype: jnp.dtype = jnp.float32) -> nn.Conv:
  """The last discriminator layer: a `window`-sized block -> 1x..x1 (a 'valid' convolution)."""
  return nn.Conv(features, tuple(window), padding='VALID', kernel_init=conv_init(stddev),
                 dtype=dtype, name=name)


SIZE_FIELDS = ('frames', 'size', 'channels', 'width', 'conv_init_stddev', 'batchnorm_scale_stddev',
               'conv_impl', 'compute_dtype')


class SizedModule(nn.Module):
  """The size fields every VGAN network shares (see `vgan_jax.configs`)."""
  frames: int = 32
  size: int = 64
  channels: int = 3
  width: int = 64
  conv_init_stddev: float = 0.01
  batchnorm_scale_stddev: float = 0.02
  conv_impl: str = 'auto'
  compute_dtype: str = 'float32'  # or 'bfloat16': activations and matmuls; params stay float32

  @property
  def dtype(self) -> jnp.dtype:
    return jnp.dtype(self.compute_dtype)

  @property
  def hidden_widths(self) -> tuple[int, ...]:
    return tuple(self.width * m for m in WIDTH_MULTIPLIERS)

  @property
  def video_window(self) -> tuple[int, int, int]:
    """[T, H, W] of the smallest video block, next to the code (2x4x4 in the paper)."""
    return (self.frames // SPATIOTEMPORAL_STRIDE,) + (self.size // SPATIOTEMPORAL_STRIDE,) * 2

  def sizes(self) -> dict:
    """These fields as keyword arguments, to build a sub-network of the same size."""
    return {name: getattr(self, name) for name in SIZE_FIELDS}

  # Layers that BatchNorm follows have no bias: BatchNorm subtracts it again, so its gradient is
  # zero up to rounding, which Adam would blow up into full-size random steps.
  def up_conv(self, features: int, name: str | None = None, use_bias: bool = True) -> UpConv:
    return UpConv(features, self.conv_init_stddev, self.conv_impl, use_bias, self.dtype, name=name)

  def down_conv(self, features: int, name: str | None = None, use_bias: bool = True) -> DownConv:
    return DownConv(features, self.conv_init_stddev, self.conv_impl, use_bias, self.dtype,
                    name=name)

  def bn_relu(self, x: jax.Array, train: bool) -> jax.Array:
    """BatchNorm then ReLU: what follows every hidden generator layer."""
    return self.batch_norm(train, nn.relu)(x)

  def batch_norm(self, train: bool, activation=_identity) -> BatchNorm:
    return batch_norm(train, self.batchnorm_scale_stddev, dtype=self.dtype, activation=activation)

  def project_conv(self, features: int, window: Sequence[int]) -> nn.ConvTranspose:
    return project_conv(features, window, self.conv_init_stddev, dtype=self.dtype)

  def collapse_conv(self, features: int, name: str | None = None) -> nn.Conv:
    return collapse_conv(features, self.video_window, self.conv_init_stddev, name, self.dtype)


LEAKY_SLOPE = 0.2


@jax.custom_vjp
def leaky_relu(x: jax.Array) -> jax.Array:
  """LeakyReLU with slope 0.2 (DCGAN's), whose backward pass keeps its output rather than its input
  (the sign is the same): the output is kept anyway, as the next layer's input."""
  return jnp.where(x >= 0, x, LEAKY_SLOPE * x)


leaky_relu.defvjp(
    lambda x: (leaky_relu(x),) * 2,
    lambda y, grad: (jnp.where(y >= 0, grad, LEAKY_SLOPE * grad),))
