"""Action recognition with the discriminator's trunk (Section 3.3): state, pure steps, metrics.

One pytree (`ClassifierTrainState`) holds the classifier's parameters, BatchNorm statistics, optax
state, step and PRNG key. `Classifier` bundles the module and optimizer. Modes:
  finetune  every layer trains (from the GAN's discriminator, or from random init);
  linear    only the head trains: the trunk's parameters get zero updates and its BatchNorm uses
            its running averages, so its features stay exactly those of the initialisation.
"""

import dataclasses
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vgan_jax import configs
from vgan_jax import models
from vgan_jax.models import ActionClassifier
from vgan_jax.train_step import normalize_video

PyTree = Any
MODES = ('finetune', 'linear')


@flax.struct.dataclass
class ClassifierTrainState:
  step: jax.Array
  params: PyTree  # {'trunk': D's trunk, 'head': the K-way layer}
  batch_stats: PyTree
  opt_state: optax.OptState
  rng: jax.Array  # where dropout masks come from


@dataclasses.dataclass(frozen=True)
class Classifier:
  model: ActionClassifier
  optimizer: optax.GradientTransformation
  linear: bool


def build_classifier(config: ml_collections.ConfigDict, num_classes: int,
                     mode: str = 'finetune') -> Classifier:
  """The classifier of a config's model sizes with `num_classes` outputs."""
  configs.validate(config)
  if mode not in MODES:
    raise ValueError(f'--mode must be one of {", ".join(MODES)}; got {mode!r}.')
  if num_classes < 2:
    raise ValueError(f'A classifier needs at least 2 classes; got {num_classes}.')
  model = models.build_classifier(config.model, num_classes, config.classifier.dropout)
  optimizer = optax.adam(config.classifier.learning_rate)
  if mode == 'linear':
    optimizer = optax.multi_transform(
        {'train': optimizer, 'freeze': optax.set_to_zero()},
        lambda params: {name: 'freeze' if name == 'trunk' else 'train' for name in params})
  return Classifier(model, optimizer, linear=mode == 'linear')


def create_train_state(classifier: Classifier, config: ml_collections.ConfigDict,
                       rng: jax.Array, trunk: tuple[PyTree, PyTree] | None = None
                       ) -> ClassifierTrainState:
  """Fresh state (the paper's initialisation); `trunk` = (params, batch_stats) of a GAN's
  discriminator trunk replaces the random trunk."""
  init_key, rng = jax.random.split(rng)
  model = config.model
  video = jnp.zeros((1, model.frames, model.size, model.size, model.channels))
  variables = classifier.model.init(init_key, video, train=False)
  params, batch_stats = dict(variables['params']), dict(variables['batch_stats'])
  if trunk is not None:
    shapes = jax.tree.map(jnp.shape, params['trunk'])
    if jax.tree.map(jnp.shape, trunk[0]) != shapes:
      raise ValueError('The discriminator trunk does not fit this classifier (other model sizes).')
    params['trunk'], batch_stats['trunk'] = trunk
  return ClassifierTrainState(step=jnp.zeros((), jnp.int32), params=params,
                              batch_stats=batch_stats,
                              opt_state=classifier.optimizer.init(params), rng=rng)


def train_step(classifier: Classifier, state: ClassifierTrainState,
               batch: dict[str, jax.Array]) -> tuple[ClassifierTrainState, dict]:
  """One Adam step on softmax cross entropy of batch {'video': uint8, 'label': int [B]}."""
  video = normalize_video(batch['video'])
  rng, dropout_key = jax.random.split(state.rng)

  def loss_fn(params):
    logits, updates = classifier.model.apply(
        {'params': params, 'batch_stats': state.batch_stats}, video, train=True,
        train_trunk=not classifier.linear, rngs={'dropout': dropout_key},
        mutable=['batch_stats'])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
    return loss, (updates['batch_stats'], logits)

  (loss, (batch_stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = classifier.optimizer.update(grads, state.opt_state, state.params)
  new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state, rng=rng)
  accuracy = (logits.argmax(-1) == batch['label']).mean()
  return new_state, {'loss': loss, 'accuracy': accuracy}


def make_train_step(classifier: Classifier):
  return functools.partial(train_step, classifier)


def predict(classifier: Classifier, state: ClassifierTrainState, videos: jax.Array) -> jax.Array:
  """Class probabilities [B, K] of uint8 (or [-1, 1]) videos, in inference mode."""
  logits = classifier.model.apply({'params': state.params, 'batch_stats': state.batch_stats},
                                  normalize_video(videos), train=False)
  return jax.nn.softmax(logits)


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Fraction of rows whose label is among the k most probable classes."""
  top = np.argsort(-probabilities, axis=1)[:, :k]
  return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))
