"""The model vocabulary: VGAN's architecture constants, the authors' initialisers, BatchNorm, the
up- and down-convolution modules and `SizedModule`, the base of every VGAN network.

How a convolution is computed lives behind `vgan_jax.conv`; here a layer only names which
formulation (`conv_impl`) it wants. Layouts are channels-last (`[B, T, H, W, C]` for video,
`[B, H, W, C]` for images).
"""

import functools
import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from vgan_jax import conv
from vgan_jax.memory import recomputed_in_backward

# --- Architecture constants (Vondrick et al. 2016, Section 2; ../shared/DESIGN.md).

# The widths of the generator's and the discriminator's hidden layers are multiples of
# `width` (64 in the paper): 8w, 4w, 2w, w from the code outwards.
WIDTH_MULTIPLIERS = (8, 4, 2, 1)
# Four stride-2 layers after the first: frames and size must be multiples of 2**4.
SPATIOTEMPORAL_STRIDE = conv.STRIDE ** 4
# DCGAN's LeakyReLU slope, in the discriminator and the image encoder.
LEAKY_SLOPE = 0.2
# The model fields of a config that every network shares (`SizedModule`'s fields).
SIZE_FIELDS = ('frames', 'size', 'channels', 'width', 'conv_init_stddev', 'batchnorm_scale_stddev',
               'conv_impl', 'compute_dtype')


# --- Initialisers (the authors' Torch code: conv weights N(0, 0.01), BatchNorm scales N(1, 0.02)).


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


# --- Activations and BatchNorm.


@jax.custom_vjp
def leaky_relu(x: jax.Array) -> jax.Array:
  """LeakyReLU with slope 0.2 (DCGAN's), whose backward pass keeps its output rather than its input
  (the sign is the same): the output is kept anyway, as the next layer's input."""
  return jnp.where(x >= 0, x, LEAKY_SLOPE * x)


leaky_relu.defvjp(
    lambda x: (leaky_relu(x),) * 2,
    lambda y, grad: (jnp.where(y >= 0, grad, LEAKY_SLOPE * grad),))


def _identity(x: jax.Array) -> jax.Array:
  return x


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


class BatchNorm(nn.Module):
  """BatchNorm then an activation: [..., C] -> [..., C], with Torch's defaults (momentum 0.1 there
  is 0.9 here, eps 1e-5).

  The parameters (`scale`, `bias`) and statistics (`mean`, `var`: running averages of the batch's
  mean and biased variance) are `nn.BatchNorm`'s, under the same auto-generated names
  (`BatchNorm_0`, ...), so checkpoints load either way. In training its backward pass recomputes it
  from its input (`memory.recomputed_in_backward`): one buffer of the layer's size is held for the
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
    layer to recompute y in its own backward pass rather than keep it (the fused heads of
    `TwoStreamGenerator`)."""
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


# --- Convolution modules.


class _StridedConv(nn.Module):
  """Kernel 4, stride 2 (transposed) convolution with a bias; params as `nn.Conv` names them."""
  features: int
  stddev: float
  impl: str = 'auto'
  use_bias: bool = True
  dtype: jnp.dtype = jnp.float32  # of the computation; parameters stay float32
  budgets: conv.CpuBudgets = conv.DEFAULT_BUDGETS

  def kernel_and_bias(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The layer's parameters for input `x`, in the compute dtype (a zero bias without one)."""
    ndim = x.ndim - 2
    kernel = self.param('kernel', conv_init(self.stddev),
                        (conv.KERNEL,) * ndim + (x.shape[-1], self.features))
    kernel = kernel.astype(self.dtype)
    if not self.use_bias:
      return kernel, jnp.zeros((), self.dtype)
    return kernel, self.param('bias', nn.initializers.zeros_init(),
                              (self.features,)).astype(self.dtype)


class UpConv(_StridedConv):
  """[B, (T,) H, W, C] -> [B, (2T,) 2H, 2W, features]; Torch's ConvTranspose(4, 2, padding=1)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel, bias = self.kernel_and_bias(x)
    return conv.up_conv(x.astype(self.dtype), kernel, self.impl, self.budgets) + bias


class DownConv(_StridedConv):
  """[B, (T,) H, W, C] -> [B, (T/2,) H/2, W/2, features]; Torch's Conv(4, 2, padding=1)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel, bias = self.kernel_and_bias(x)
    return conv.down_conv(x.astype(self.dtype), kernel, self.impl, self.budgets) + bias


class UpConvParams(_StridedConv):
  """An `UpConv`'s parameters without the convolution: (kernel, bias) in the compute dtype, under
  the same names, for running several heads as one layer."""

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.kernel_and_bias(x)


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


# --- The base of every VGAN network.


class SizedModule(nn.Module):
  """The size fields every VGAN network shares (a config's `SIZE_FIELDS`), and its layers.

  `conv_budgets` tunes the CPU convolutions (`vgan_jax.conv.CpuBudgets`); it changes how the
  layers are computed, never their parameters.
  """
  frames: int = 32
  size: int = 64
  channels: int = 3
  width: int = 64
  conv_init_stddev: float = 0.01
  batchnorm_scale_stddev: float = 0.02
  conv_impl: str = 'auto'
  compute_dtype: str = 'float32'  # or 'bfloat16': activations and matmuls; params stay float32
  conv_budgets: conv.CpuBudgets = conv.DEFAULT_BUDGETS

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
    return {name: getattr(self, name) for name in SIZE_FIELDS + ('conv_budgets',)}

  # Layers that BatchNorm follows have no bias: BatchNorm subtracts it again, so its gradient is
  # zero up to rounding, which Adam would blow up into full-size random steps.
  def up_conv(self, features: int, name: str | None = None, use_bias: bool = True) -> UpConv:
    return UpConv(features, self.conv_init_stddev, self.conv_impl, use_bias, self.dtype,
                  self.conv_budgets, name=name)

  def down_conv(self, features: int, name: str | None = None, use_bias: bool = True) -> DownConv:
    return DownConv(features, self.conv_init_stddev, self.conv_impl, use_bias, self.dtype,
                    self.conv_budgets, name=name)

  def bn_relu(self, x: jax.Array, train: bool) -> jax.Array:
    """BatchNorm then ReLU: what follows every hidden generator layer."""
    return self.batch_norm(train, nn.relu)(x)

  def batch_norm(self, train: bool, activation=_identity) -> BatchNorm:
    return batch_norm(train, self.batchnorm_scale_stddev, dtype=self.dtype, activation=activation)

  def project_conv(self, features: int, window: Sequence[int]) -> nn.ConvTranspose:
    return project_conv(features, window, self.conv_init_stddev, dtype=self.dtype)

  def collapse_conv(self, features: int, name: str | None = None) -> nn.Conv:
    return collapse_conv(features, self.video_window, self.conv_init_stddev, name, self.dtype)
