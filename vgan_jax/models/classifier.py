"""The action classifier of Section 3.3: the discriminator's trunk with a K-way head.

The trunk is `DiscriminatorTrunk` under the same name ('trunk') as in `Discriminator`, so a GAN's
discriminator parameters and BatchNorm statistics load into it as they are. The head replaces
D's last layer (one real/fake logit) by K class logits, with dropout 0.5 on the penultimate
layer's features, as the paper does.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from vgan_jax.models import layers
from vgan_jax.models.discriminator import DiscriminatorTrunk


class ActionClassifier(layers.SizedModule):
  """video [B, T, S, S, C] in [-1, 1] -> class logits [B, num_classes].

  `train_trunk=False` runs the trunk in inference mode (BatchNorm running averages, statistics
  left alone), for a linear classifier on frozen features.
  """
  num_classes: int = 101
  dropout_rate: float = 0.5

  @nn.compact
  def __call__(self, video: jax.Array, train: bool = True,
               train_trunk: bool = True) -> jax.Array:
    features = DiscriminatorTrunk(**self.sizes(), name='trunk')(video, train and train_trunk)
    features = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    logits = self.collapse_conv(self.num_classes, 'head')(features)
    return logits.reshape(logits.shape[0], self.num_classes).astype(jnp.float32)
