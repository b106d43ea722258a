"""GAN losses as small pure functions of logits (Eq. 1 of the paper) and the mask prior.

Cross entropies are computed on logits with optax's numerically stable sigmoid cross entropy, so
a confident discriminator never takes the log of 0.
"""

import jax
import jax.numpy as jnp
import optax


def cross_entropy_to(logits: jax.Array, label: float) -> jax.Array:
  """Mean cross entropy of sigmoid(logits) against one label for the whole batch (1 real, 0 fake)."""
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """-log D(x) - log(1 - D(G(z))), each averaged over its batch: real labelled 1, fake 0."""
  return cross_entropy_to(real_logits, 1.0) + cross_entropy_to(fake_logits, 0.0)


def generator_loss(fake_logits: jax.Array) -> jax.Array:
  """The non-saturating generator loss -log D(G(z)) (fakes labelled real), as the authors' code."""
  return cross_entropy_to(fake_logits, 1.0)


def reconstruction_loss(predicted: jax.Array, target: jax.Array, kind: str = 'l1') -> jax.Array:
  """Mean |predicted - target| ('l1', the authors' choice for future prediction) or mean squared
  difference ('l2')."""
  difference = predicted - target
  if kind == 'l1':
    return jnp.abs(difference).mean()
  if kind == 'l2':
    return jnp.square(difference).mean()
  raise ValueError(f"reconstruction_loss kind must be 'l1' or 'l2'; got {kind!r}.")


def mask_penalty(mask: jax.Array, weight: float) -> jax.Array:
  """The mask sparsity prior weight * mean|m|: Torch's L1Penalty with size averaging."""
  return weight * jnp.abs(mask).mean()
