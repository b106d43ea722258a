"""The GAN losses and the mask prior against values computed by hand."""

import math

import jax.numpy as jnp
import numpy as np

from vgan_jax import losses


def test_discriminator_loss_by_hand():
  real, fake = jnp.array([2.0, 0.0]), jnp.array([-1.0, 3.0])
  # -log sigmoid(x) = log(1 + e^-x); -log(1 - sigmoid(x)) = log(1 + e^x)
  want = (math.log1p(math.exp(-2.0)) + math.log(2.0)) / 2 + (
      math.log1p(math.exp(-1.0)) + math.log1p(math.exp(3.0))) / 2
  np.testing.assert_allclose(losses.discriminator_loss(real, fake), want, rtol=1e-6)


def test_generator_loss_is_non_saturating():
  fake = jnp.array([0.5, -0.5])
  want = (math.log1p(math.exp(-0.5)) + math.log1p(math.exp(0.5))) / 2  # fakes labelled real
  np.testing.assert_allclose(losses.generator_loss(fake), want, rtol=1e-6)
  # A confident D (fake logit -20) still gives G a large loss, hence a useful gradient.
  assert float(losses.generator_loss(jnp.array([-20.0]))) > 19.0


def test_losses_are_stable_on_extreme_logits():
  big = jnp.array([1e4, -1e4])
  assert np.isfinite(float(losses.discriminator_loss(big, -big)))
  np.testing.assert_allclose(losses.discriminator_loss(jnp.array([1e4]), jnp.array([-1e4])), 0.0,
                             atol=1e-6)
  np.testing.assert_allclose(losses.generator_loss(jnp.array([-1e4])), 1e4, rtol=1e-6)


def test_mask_penalty_is_lambda_times_mean_absolute_value():
  mask = jnp.array([[0.0, 0.5], [1.0, 0.25]])
  np.testing.assert_allclose(losses.mask_penalty(mask, 0.1), 0.1 * 1.75 / 4, rtol=1e-6)
