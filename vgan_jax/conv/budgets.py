"""The tuning budgets of the CPU convolutions, as one frozen (hashable) value.

Every figure here was measured on a 2-core CPU at the paper's size (see the README's Speed
section and the closing notes of issue 4). Tests pass a `CpuBudgets` with small numbers to reach
the chunked and sliced paths on tiny inputs; nothing reads a module global.
"""

import dataclasses

MIB = 2 ** 20


@dataclasses.dataclass(frozen=True)
class CpuBudgets:
  """Sizes at which the CPU formulations change strategy (bytes unless named otherwise)."""
  # A transposed convolution with at most this many output channels (the generator's last layers:
  # 3 colours, 1 mask) runs as one matmul and an overlap-add; XLA's CPU convolutions are ~10x
  # below matmul speed when one side has so few channels.
  thin_channels: int = 16
  # im2col / col2im temporaries are 4**n / 2**n = 8x the size of the layer's input (or output
  # gradient): 2 GiB for D's second layer at batch 64. Over this many bytes they are built a few
  # clips at a time inside a loop, which bounds memory and also runs faster (the chunks stay in
  # cache). (XLA's CPU backend runs matmuls in a loop at full speed, not convolutions.)
  chunk_bytes: int = 128 * MIB
  # Up to this many bytes in all, the temporaries are built in one go: at paper size, batch 8,
  # the loop cost ~5% of the step and saved little.
  unchunked_bytes: int = 256 * MIB
  # The weight gradient of `rows @ weight` contracts over every row: a matmul with a small output
  # and a long inner dimension, which XLA's CPU backend runs on one thread at ~10 GFLOP/s. Split
  # into this many chunks, as a batched matmul and a sum, it runs at matmul speed.
  weight_gradient_chunks: int = 16
  # XLA's CPU backend computes a convolution's kernel gradient as one convolution whose window
  # spans the whole batch; its speed falls with the batch (D's second layer: ~70 GFLOP/s at 8
  # clips, ~22 at 32). Summed over slices of this many clips it stays at ~90-146 GFLOP/s.
  # (Unrolled: inside a `lax.scan` loop the same convolution ran 100x slower.)
  kernel_gradient_clips: int = 2
  # At most this many slices: each is unrolled into the program, and compile time grows.
  kernel_gradient_max_slices: int = 32
  # XLA fuses the sum of the slices' gradients into the optimizer update, so every partial
  # gradient is held until then: at most this many bytes of them per layer. (D's fourth layer at
  # batch 64 in slices of 2 clips held 1 GiB and ran at 51 GFLOP/s; in 4 slices of 16, 128 MiB at
  # 129 GFLOP/s.)
  kernel_gradient_partial_bytes: int = 64 * MIB
  # From an input of this size the slices run one after the other (`computed_after`): XLA would
  # otherwise prepare every slice's inputs up front (0.7 GiB at batch 64).
  kernel_gradient_ordered_bytes: int = 64 * MIB
  # Where a clip's input and gradient are small, slices grow until either reaches this size:
  # there the convolutions run faster on more clips (at batch 64, GFLOP/s in slices of 2 clips ->
  # of this size: the background's 4x4 -> 8x8 layer 23 -> 186, 8x8 -> 16x16 70 -> 151, 16x16 ->
  # 32x32 106 -> 126), and fewer slices make a smaller program.
  kernel_gradient_slice_bytes: int = 2 * MIB
  # From this many output positions per clip, a transposed convolution's kernel gradient is
  # computed as the strided convolution's: one 2-D convolution per slice of clips instead of 8
  # (3-D) or 4 (2-D) sub-pixel phases. (GFLOP/s at batch 64, phases -> strided: G's fourth layer
  # 66 -> 119, its third 146 -> 167, the background's last 88 -> 116; 16x16 outputs: 66 -> 35.)
  strided_kernel_gradient_positions: int = 1024


DEFAULT_BUDGETS = CpuBudgets()
