"""Memory plumbing for XLA's CPU scheduler: values recomputed in the backward pass, and work
ordered after other work. Used by the convolutions, BatchNorm and the GAN step; no model here.

XLA's CPU compiler holds more of the forward pass than the backward pass needs (its fusions read
both x and x - mean; it schedules work that needs only forward values as early as it can), and it
drops `lax.optimization_barrier` and `jax.checkpoint`'s barrier before scheduling. Both tools
below therefore work through data dependencies.
"""

import jax
import jax.numpy as jnp


def computed_after(x: jax.Array, previous) -> jax.Array:
  """x, but usable only once every array of `previous` (a pytree) is computed: orders work that
  XLA's scheduler would otherwise run early, holding its memory.

  `lax.optimization_barrier` is dropped before scheduling on CPU, so the order is a data
  dependency: x + 0 * one element of each array of `previous`. (A NaN there would turn x to NaN;
  where it is used, `previous` is part of the same loss's gradient.)
  """
  zero = sum(0 * p.reshape(-1)[0].astype(jnp.float32) for p in jax.tree.leaves(previous))
  return x + zero.astype(x.dtype)


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
