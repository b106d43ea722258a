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

from data_pipeline import tfds_ucf101, ucf101
from experiments import tasks, training
from vgan_io import files
from vgan_jax import checkpoint, configs, train_state, train_step

INITS = configs.CLASSIFIER_INITS
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
  logging.info('The discriminator trunk of step %d of %s initialises the classifier.',
               int(state.step), path)
  return state.discriminator_params['trunk'], state.discriminator_batch_stats['trunk']


def _cache_path(cache_dir: str, data_dir: str, split: int, subset: str,
                videos: list[ucf101.Video], size: int, stabilized: bool) -> str:
  """The decoded-video cache of a split's subset, named by what it is made from: the data
  folder, the listed videos with their labels, sizes and modification times, the frame size and
  stabilization (a changed dataset gets a new cache, not the old one and its skipped list)."""
  suffix = '_stabilized' if stabilized else ''
  return os.path.join(cache_dir, f'split{split}_{subset}_{size}px{suffix}_'
                                 f'{ucf101.videos_key(data_dir, videos, size, stabilized)}.tfrecord')


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Fraction of rows whose label is among the k most probable classes."""
  top = np.argsort(-probabilities, axis=1)[:, :k]
  return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))


def test_accuracy(classifier, state, cache_path: str, frames: int, windows: int) -> dict:
  """Top-1 / top-5 of the test videos, each predicted as the mean over `windows` windows."""
  predict = jax.jit(lambda s, v: train_step.classify(classifier, s, v))
  probabilities, labels = [], []
  for video_windows, label in ucf101.test_windows(cache_path, frames, windows):
    probabilities.append(np.asarray(predict(state, video_windows)).mean(axis=0))
    labels.append(label)
  probabilities, labels = np.stack(probabilities), np.array(labels)
  classes = probabilities.shape[1]
  return {'top1': top_k_accuracy(probabilities, labels, 1),
          'top5': top_k_accuracy(probabilities, labels, min(5, classes)),
          'test_videos': len(labels)}


def evaluate_split(config: ml_collections.ConfigDict, data_dir: str, split: int, init: str,
                   mode: str, trunk, label_fraction: float, seed: int, output_dir: str,
                   stabilized: bool = False, progress: bool = True,
                   cache_dir: str | None = None,
                   tfds_data_dir: str | None = None) -> tuple[dict, object]:
  """Trains and tests on one split; returns its figures and the trained state.

  The split is read from the UCF101 folder `data_dir` or, given `tfds_data_dir`, from the
  UCF101 that TensorFlow Datasets prepared there (data_pipeline/tfds_ucf101.py; `data_dir` is
  then unused): the same splits, label fractions, caches and windows.

  Training is the one loop's (`experiments/training.py`): checkpoints in
  OUTPUT_DIR/splitS_INIT_MODE_fractionF/checkpoints, so an interrupted run resumes there (a
  finished one is only tested again), and TensorBoard curves beside them. Decoded videos are
  cached in `cache_dir` (default OUTPUT_DIR/cache) and reused by later runs.
  """
  cache_dir = cache_dir or os.path.join(output_dir, 'cache')
  size, frames = config.model.size, config.model.frames
  if tfds_data_dir:
    classes, train_videos, test_videos, train_cache, test_cache, skipped = (
        tfds_ucf101.cached_split(tfds_data_dir, split, cache_dir, size, stabilized))
  else:
    classes = ucf101.read_class_index(data_dir)
    train_videos = ucf101.read_split(data_dir, split, 'train')
    test_videos = ucf101.read_split(data_dir, split, 'test')
    train_cache = _cache_path(cache_dir, data_dir, split, 'train', train_videos, size, stabilized)
    test_cache = _cache_path(cache_dir, data_dir, split, 'test', test_videos, size, stabilized)
    skipped = {
        **ucf101.cache_split(data_dir, train_videos, train_cache, size, stabilized)['skipped'],
        **ucf101.cache_split(data_dir, test_videos, test_cache, size, stabilized)['skipped']}
  # The label fraction is drawn from the videos that could be read, and every class must keep
  # some: a class left with none would make the accuracy that of another task.
  readable_train = [video for video in train_videos if video.path not in skipped]
  readable_test = [video for video in test_videos if video.path not in skipped]
  for subset_name, readable in (('training', readable_train), ('test', readable_test)):
    missing = sorted(set(range(len(classes))) - {video.label for video in readable})
    if missing:
      raise ValueError(f'Split {split}: no readable {subset_name} videos of class '
                       f'{", ".join(classes[label] for label in missing)} ({len(skipped)} videos '
                       f'could not be read; see {train_cache}.json and {test_cache}.json).')
  subset = ucf101.label_fraction(readable_train, label_fraction, seed)

  # This run's settings, saved with its checkpoints.
  run_config = config.copy_and_resolve_references()
  with run_config.unlocked():
    run_config.seed = seed
    run_config.classifier.update(init=init, mode=mode, label_fraction=label_fraction,
                                 splits=str(split), stabilize=stabilized)
  classifier = train_state.build_classifier(run_config, len(classes), mode)
  batch_size = config.classifier.batch_size
  steps = config.classifier.num_epochs * math.ceil(len(subset) / batch_size)
  sources = [video.path for video in subset]

  def batches_from(start_step: int, local_batch_size: int):
    # A resumed run reads on from where it stopped: the same batches as an uninterrupted one.
    return ucf101.train_dataset(train_cache, frames, local_batch_size, seed, sources,
                                jax.process_index(), jax.process_count(),
                                start_batch=start_step).as_numpy_iterator()

  run_dir = os.path.join(output_dir, f'split{split}_{init}_{mode}_fraction{label_fraction:g}')
  description = (f'Split {split}, {init} init, {mode}: {len(subset)} of {len(readable_train)} '
                 f'readable training videos ({len(train_videos)} listed), {len(classes)} classes')
  task = tasks.classifier_task(run_config, classifier, batches_from, steps,
                               trunk if init == 'gan' else None, description)
  state = training.train(task, run_config, run_dir, progress)
  training.check_finished(state, steps, run_dir)  # never test (or go on from) half a run
  result = test_accuracy(classifier, state, test_cache, frames, config.classifier.test_windows)
  if jax.process_index() == 0:
    writer = tensorboard.SummaryWriter(run_dir)
    for name in ('top1', 'top5'):
      writer.scalar(f'test/{name}', result[name], int(state.step))
    writer.flush()
  result.update(train_videos=len(subset), steps=steps, skipped_videos=skipped)
  return result, state


def evaluate(config: ml_collections.ConfigDict, output_dir: str, progress: bool = True,
             cache_dir: str | None = None) -> dict:
  """The runs `config` describes (config.data.data_dir: the UCF101 folder, or
  config.data.tfds_data_dir: a TFDS data_dir with ucf101 prepared; config.classifier:
  init, gan_checkpoint, mode, splits, label_fraction, stabilize; config.seed); writes
  OUTPUT_DIR/results.json and returns it:
  {'split1': {'top1', 'top5', ...}, ..., 'mean': {'top1', 'top5'}, 'settings': {...}}."""
  settings = config.classifier
  data_dir, tfds_data_dir = config.data.data_dir, config.data.get('tfds_data_dir')
  if data_dir and tfds_data_dir:
    raise ValueError(f'Two UCF101 sources: --data_dir={data_dir} and --tfds_data_dir='
                     f'{tfds_data_dir}; give one.')
  if not data_dir and not tfds_data_dir:
    raise ValueError('No UCF101 folder: give --data_dir (or --config.data.data_dir), the folder '
                     'holding UCF-101/ and ucfTrainTestlist/, or --tfds_data_dir, a TensorFlow '
                     'Datasets data_dir where ucf101 is prepared.')
  if settings.init == 'gan' and not settings.gan_checkpoint:
    raise ValueError('config.classifier.init=gan needs the GAN: --checkpoint=WORKDIR (or '
                     '--config.classifier.gan_checkpoint=WORKDIR), a GAN work directory or its '
                     'checkpoints/ folder.')
  splits = configs.number_list('classifier.splits', settings.splits, int)
  trunk = load_gan_trunk(settings.gan_checkpoint, config) if settings.init == 'gan' else None
  results = {}
  for split in splits:
    results[f'split{split}'], _ = evaluate_split(
        config, data_dir, split, settings.init, settings.mode, trunk, settings.label_fraction,
        config.seed, output_dir, settings.stabilize, progress, cache_dir, tfds_data_dir)
    logging.info('Split %d: top-1 %.3f, top-5 %.3f.', split, results[f'split{split}']['top1'],
                 results[f'split{split}']['top5'])
  results['mean'] = {name: float(np.mean([results[f'split{s}'][name] for s in splits]))
                     for name in ('top1', 'top5')}
  results['settings'] = dict(seed=config.seed, classifier=settings.to_dict())
  files.write_json(os.path.join(output_dir, 'results.json'), results)
  return results


def sweep(config: ml_collections.ConfigDict, output_dir: str, progress: bool = True) -> dict:
  """Accuracy against labeled fraction (config.classifier.sweep_fractions) for GAN and random
  init (Figure 4b) and the GAN's relative gain (4c): writes sweep.json, figure4b.png and
  figure4c.png to `output_dir`."""
  fractions = configs.number_list('classifier.sweep_fractions', config.classifier.sweep_fractions)
  table = {init: {} for init in INITS}
  for init in INITS:
    for fraction in fractions:
      run_config = config.copy_and_resolve_references()
      with run_config.unlocked():
        run_config.classifier.update(init=init, label_fraction=fraction)
      result = evaluate(run_config, os.path.join(output_dir, f'{init}_fraction{fraction:g}'),
                        progress, os.path.join(output_dir, 'cache'))
      table[init][f'{fraction:g}'] = result['mean']
  files.write_json(os.path.join(output_dir, 'sweep.json'), table)
  plot_sweep(table, fractions, output_dir)
  return table


def plot_sweep(table: dict, fractions, output_dir: str) -> list[str]:
  """Figure 4b (top-1 against labeled fraction, both inits) and 4c (relative gain) as PNG.

  Drawn on matplotlib Figures of their own, not pyplot's: a notebook's inline backend stays."""
  from matplotlib import figure as matplotlib_figure  # pylint: disable=g-import-not-at-top
  keys = [f'{fraction:g}' for fraction in fractions]
  accuracy = {init: np.array([table[init][key]['top1'] for key in keys]) for init in INITS}
  paths = [os.path.join(output_dir, 'figure4b.png'), os.path.join(output_dir, 'figure4c.png')]
  gain = 100 * (accuracy['gan'] - accuracy['random']) / np.maximum(accuracy['random'], 1e-9)
  curves = {paths[0]: ([('VGAN init', 100 * accuracy['gan']),
                        ('random init', 100 * accuracy['random'])], 'top-1 accuracy (%)'),
            paths[1]: ([(None, gain)], 'relative gain of VGAN init (%)')}
  for path, (lines, ylabel) in curves.items():
    figure = matplotlib_figure.Figure(figsize=(5, 3.5))
    axes = figure.subplots()
    for label, values in lines:
      axes.plot(fractions, values, marker='o', label=label)
    axes.set(xscale='log', xlabel='fraction of labeled training videos', ylabel=ylabel)
    # Ticks at the fractions run, labelled plainly (log axes label 2x10^-1 and crowd).
    axes.set_xticks(list(fractions), labels=keys)
    axes.minorticks_off()
    if lines[0][0]:
      axes.legend()
    else:
      axes.axhline(0, color='grey', linewidth=0.5)
    figure.tight_layout()
    _save_figure(figure, path)
  return paths


def _save_figure(figure, path: str) -> None:
  with files.atomic_path(path) as temporary:
    figure.savefig(temporary, dpi=120)
