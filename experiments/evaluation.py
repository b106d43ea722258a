"""UCF101 evaluation (Section 3.3, Table 1, Figure 4), without flags: experiments/evaluate.py's
work. `evaluate(...)` fine-tunes (or trains a linear head on) the discriminator trunk from a GAN
checkpoint or from random init on the split(s), and returns and writes top-1 / top-5 accuracy;
`sweep(...)` does it over label fractions for both inits and plots Figures 4b and 4c.
"""

import math
import os

import jax
import ml_collections
import numpy as np
from absl import logging
from flax.metrics import tensorboard
from tqdm import tqdm

from data_pipeline import ucf101
from vgan_io import files
from vgan_jax import action_recognition, checkpoint

INITS = ('gan', 'random')
SWEEP_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
# The model fields a discriminator trunk's shapes depend on.
TRUNK_FIELDS = ('frames', 'size', 'channels', 'width')


def load_gan_trunk(path: str, config: ml_collections.ConfigDict):
  """(params, batch_stats) of the discriminator trunk of the GAN checkpoint at `path` (a work
  directory or its checkpoints/ folder); ValueError when it was trained with other sizes."""
  saved, _, state = checkpoint.restore_for_inference(path)
  differences = [f'model.{name}: checkpoint {saved.model[name]}, --config {config.model[name]}'
                 for name in TRUNK_FIELDS if saved.model[name] != config.model[name]]
  if differences:
    raise checkpoint.CheckpointMismatchError(
        f'The checkpoint in {path} is of another model than --config ({"; ".join(differences)}):'
        ' pass the --config it was trained with.')
  return state.discriminator_params['trunk'], state.discriminator_batch_stats['trunk']


def _cache_path(cache_dir: str, split: int, subset: str, size: int, stabilized: bool) -> str:
  suffix = '_stabilized' if stabilized else ''
  return os.path.join(cache_dir, f'split{split}_{subset}_{size}px{suffix}.tfrecord')


def test_accuracy(classifier, state, cache_path: str, frames: int, windows: int) -> dict:
  """Top-1 / top-5 of the test videos, each predicted as the mean over `windows` windows."""
  predict = jax.jit(lambda s, v: action_recognition.predict(classifier, s, v))
  probabilities, labels = [], []
  for video_windows, label in ucf101.test_windows(cache_path, frames, windows):
    probabilities.append(np.asarray(predict(state, video_windows)).mean(axis=0))
    labels.append(label)
  probabilities, labels = np.stack(probabilities), np.array(labels)
  classes = probabilities.shape[1]
  return {'top1': action_recognition.top_k_accuracy(probabilities, labels, 1),
          'top5': action_recognition.top_k_accuracy(probabilities, labels, min(5, classes)),
          'test_videos': len(labels)}


def evaluate_split(config: ml_collections.ConfigDict, data_dir: str, split: int, init: str,
                   mode: str, trunk, label_fraction: float, seed: int, output_dir: str,
                   stabilized: bool = False, progress: bool = True,
                   cache_dir: str | None = None) -> tuple[dict, object]:
  """Trains and tests on one split; returns its figures and the trained state. Decoded videos
  are cached in `cache_dir` (default OUTPUT_DIR/cache) and reused by later runs."""
  cache_dir = cache_dir or os.path.join(output_dir, 'cache')
  classes = ucf101.read_class_index(data_dir)
  train_videos = ucf101.read_split(data_dir, split, 'train')
  test_videos = ucf101.read_split(data_dir, split, 'test')
  subset = ucf101.label_fraction(train_videos, label_fraction, seed)
  size, frames = config.model.size, config.model.frames
  train_cache = _cache_path(cache_dir, split, 'train', size, stabilized)
  test_cache = _cache_path(cache_dir, split, 'test', size, stabilized)
  skipped = {**ucf101.cache_split(data_dir, train_videos, train_cache, size, stabilized)['skipped'],
             **ucf101.cache_split(data_dir, test_videos, test_cache, size, stabilized)['skipped']}

  classifier = action_recognition.build_classifier(config, len(classes), mode)
  state = action_recognition.create_train_state(
      classifier, config, jax.random.PRNGKey(seed), trunk if init == 'gan' else None)
  step_fn = jax.jit(action_recognition.make_train_step(classifier))
  batch_size = config.classifier.batch_size
  steps = config.classifier.num_epochs * math.ceil(len(subset) / batch_size)
  batches = ucf101.train_dataset(train_cache, frames, batch_size, seed,
                                 [video.path for video in subset]).as_numpy_iterator()
  run_dir = os.path.join(output_dir, f'split{split}_{init}_{mode}_fraction{label_fraction:g}')
  writer = tensorboard.SummaryWriter(run_dir)
  logging.info('Split %d, %s init, %s: %d of %d training videos, %d classes, %d steps.', split,
               init, mode, len(subset), len(train_videos), len(classes), steps)
  for step in tqdm(range(1, steps + 1), disable=not progress, unit='step', leave=False):
    state, metrics = step_fn(state, next(batches))
    if step % max(1, steps // 50) == 0 or step == steps:
      for name, value in jax.device_get(metrics).items():
        writer.scalar(f'train/{name}', float(value), step)
  result = test_accuracy(classifier, state, test_cache, frames, config.classifier.test_windows)
  for name in ('top1', 'top5'):
    writer.scalar(f'test/{name}', result[name], steps)
  writer.flush()
  result.update(train_videos=len(subset), steps=steps, skipped_videos=skipped)
  return result, state


def evaluate(config: ml_collections.ConfigDict, data_dir: str, init: str, mode: str,
             gan_checkpoint: str | None, splits: tuple[int, ...], label_fraction: float,
             seed: int, output_dir: str, stabilized: bool = False,
             progress: bool = True, cache_dir: str | None = None) -> dict:
  """Every split in `splits`; writes OUTPUT_DIR/results.json and returns it:
  {'split1': {'top1', 'top5', ...}, ..., 'mean': {'top1', 'top5'}, 'settings': {...}}."""
  if init not in INITS:
    raise ValueError(f'--init must be one of {", ".join(INITS)}; got {init!r}.')
  if init == 'gan' and not gan_checkpoint:
    raise ValueError('--init=gan needs --checkpoint (a GAN work directory or its checkpoints/).')
  trunk = load_gan_trunk(gan_checkpoint, config) if init == 'gan' else None
  results = {}
  for split in splits:
    results[f'split{split}'], _ = evaluate_split(config, data_dir, split, init, mode, trunk,
                                                 label_fraction, seed, output_dir, stabilized,
                                                 progress, cache_dir)
    logging.info('Split %d: top-1 %.3f, top-5 %.3f.', split, results[f'split{split}']['top1'],
                 results[f'split{split}']['top5'])
  results['mean'] = {name: float(np.mean([results[f'split{s}'][name] for s in splits]))
                     for name in ('top1', 'top5')}
  results['settings'] = dict(init=init, mode=mode, checkpoint=gan_checkpoint, splits=list(splits),
                             label_fraction=label_fraction, seed=seed, stabilized=stabilized,
                             classifier=config.classifier.to_dict())
  files.write_json(os.path.join(output_dir, 'results.json'), results)
  return results


def sweep(config: ml_collections.ConfigDict, data_dir: str, mode: str, gan_checkpoint: str,
          splits: tuple[int, ...], seed: int, output_dir: str,
          fractions: tuple[float, ...] = SWEEP_FRACTIONS, stabilized: bool = False,
          progress: bool = True) -> dict:
  """Accuracy against labeled fraction for GAN and random init (Figure 4b) and the GAN's relative
  gain (4c): writes sweep.json, figure4b.png and figure4c.png to `output_dir`."""
  table = {init: {} for init in INITS}
  for init in INITS:
    for fraction in fractions:
      run_dir = os.path.join(output_dir, f'{init}_fraction{fraction:g}')
      result = evaluate(config, data_dir, init, mode, gan_checkpoint, splits, fraction, seed,
                        run_dir, stabilized, progress, os.path.join(output_dir, 'cache'))
      table[init][f'{fraction:g}'] = result['mean']
  files.write_json(os.path.join(output_dir, 'sweep.json'), table)
  plot_sweep(table, fractions, output_dir)
  return table


def plot_sweep(table: dict, fractions, output_dir: str) -> list[str]:
  """Figure 4b (top-1 against labeled fraction, both inits) and 4c (relative gain) as PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top (only the sweep draws)
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  keys = [f'{fraction:g}' for fraction in fractions]
  accuracy = {init: np.array([table[init][key]['top1'] for key in keys]) for init in INITS}
  paths = [os.path.join(output_dir, 'figure4b.png'), os.path.join(output_dir, 'figure4c.png')]
  figure, axes = pyplot.subplots(figsize=(5, 3.5))
  for init, label in (('gan', 'VGAN init'), ('random', 'random init')):
    axes.plot(fractions, 100 * accuracy[init], marker='o', label=label)
  axes.set(xscale='log', xlabel='fraction of labeled training videos', ylabel='top-1 accuracy (%)')
  axes.legend()
  figure.tight_layout()
  _save_figure(figure, paths[0])
  figure, axes = pyplot.subplots(figsize=(5, 3.5))
  gain = 100 * (accuracy['gan'] - accuracy['random']) / np.maximum(accuracy['random'], 1e-9)
  axes.plot(fractions, gain, marker='o')
  axes.axhline(0, color='grey', linewidth=0.5)
  axes.set(xscale='log', xlabel='fraction of labeled training videos',
           ylabel='relative gain of VGAN init (%)')
  figure.tight_layout()
  _save_figure(figure, paths[1])
  pyplot.close('all')
  return paths


def _save_figure(figure, path: str) -> None:
  with files.atomic_path(path) as temporary:
    figure.savefig(temporary, dpi=120)
