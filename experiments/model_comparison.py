"""The paper's comparison of generators, measured with FVD: one-stream, two-stream and the
autoencoder + GMM baseline, trained with one budget on the same scenes and seeds (issue 16).

The paper ranked them with people (Table 1: two-stream >~ one-stream > autoencoder); here each
(scene, model, seed) run trains in OUTPUT/SCENE/MODEL_seedS (resuming when interrupted), then
`config.fvd_clips` of its samples are compared with as many clips of the scene (the same real
clips for every model and seed, cached as the training hook caches them). Besides FVD and KVD,
each run reports how its videos move:
  temporal_variance    mean over pixels of the variance over time of the generated video
                       (values in [-1, 1]; 0 is a still picture).
  mask_mean            for a two-stream decoder, the mean of m(z) over pixels and frames: the share
                       of the video drawn by the moving foreground stream.
  background_variance  for a two-stream decoder, temporal_variance weighted by 1 - m(z) averaged
                       over time: how much the part the mask gives to the background moves.
The real clips' temporal_variance is reported too (model 'real'), as the scale to read them by.
Results go to OUTPUT/results.json after every run (a rerun skips what is there), the summary
(mean and standard deviation over seeds) to OUTPUT/summary.json and OUTPUT/summary.md.
"""

import copy
import dataclasses
import json
import logging
import os

import ml_collections
import numpy as np

from experiments import autoencoder_baseline, tasks, training, video_sources
from vgan_io import files, media
from vgan_jax import configs
from vgan_jax.metrics import fvd

MODELS = ('two_stream', 'one_stream', 'autoencoder')
MEASURES = ('fvd', 'kvd', 'temporal_variance', 'mask_mean', 'background_variance')
RESULTS_FILE, SUMMARY_FILE, TABLE_FILE = 'results.json', 'summary.json', 'summary.md'


@dataclasses.dataclass(frozen=True)
class Run:
  """One cell of the comparison: a model trained on a scene from a seed."""
  scene: str
  model: str
  seed: int

  @property
  def name(self) -> str:
    return f'{self.scene}/{self.model}_seed{self.seed}'


def run_config(base: ml_collections.ConfigDict, run: Run) -> ml_collections.ConfigDict:
  """`base` with the run's scene, seed and generator (the baseline decodes with two-stream, as
  the paper's). ValueError for an unknown model."""
  if run.model not in MODELS:
    raise ValueError(f'model {run.model!r}: must be one of {", ".join(MODELS)}.')
  config = copy.deepcopy(base)
  config.data.scene, config.seed = run.scene, run.seed
  config.model.generator = 'two_stream' if run.model == 'autoencoder' else run.model
  config.fvd_every = 0  # measured once, after training, below
  return config


def quick_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The `test` config's nets with `config`'s data, 2 steps, 4 clips a side of 9 frames and a
  2-component mixture on 8 clips: a check that the comparison runs (minutes on 2 cores)."""
  quick = configs.test()
  quick.data = copy.deepcopy(config.data)
  quick.num_steps = 2
  quick.fvd_clips, quick.fvd_frames = 4, 9
  quick.baseline.gmm_clips, quick.baseline.gmm_components = 8, 2
  return quick


def train(config: ml_collections.ConfigDict, model: str, workdir: str) -> None:
  """Trains `model` to config.num_steps in `workdir` (resuming); the baseline also fits its
  mixture. common.Stopped when training stopped early (Ctrl-C): rerun to go on."""
  if model == 'autoencoder':
    state = autoencoder_baseline.train_autoencoder(config, workdir)
    if int(state.step) >= config.num_steps and not autoencoder_baseline.fit_is_done(
        workdir, config):
      autoencoder_baseline.fit_mixture(workdir, config)
  else:
    state = tasks.train_gan(config, workdir)
  training.check_finished(state, config.num_steps, workdir)


def motion_statistics(raw: dict[str, np.ndarray]) -> dict[str, float | None]:
  """How generated videos move. `raw`: a generator's outputs (video [N, T, S, S, C] in [-1, 1];
  mask [N, T, S, S, 1] in [0, 1] or None). See the module docstring; the mask's entries are None
  for a one-stream generator."""
  video = np.asarray(raw['video'], np.float64)
  variance = video.var(axis=1).mean(axis=-1)  # [N, S, S]: over time, then over channels
  result = dict(temporal_variance=float(variance.mean()), mask_mean=None,
                background_variance=None)
  if raw.get('mask') is not None:
    mask = np.asarray(raw['mask'], np.float64)
    background = 1.0 - mask.mean(axis=1)[..., 0]  # [N, S, S]
    result['mask_mean'] = float(mask.mean())
    result['background_variance'] = float((background * variance).sum() /
                                          max(background.sum(), 1e-12))
  return result


def real_features(base: ml_collections.ConfigDict, scene: str,
                  features: fvd.I3DFeatures) -> np.ndarray:
  """I3D features of the scene's first config.fvd_clips training clips (seed 0 for every run, so
  all models are compared with the same clips), from the cache when there."""
  config = copy.deepcopy(base)
  config.data.scene, config.seed = scene, 0
  return tasks.real_fvd_features(config, features)


def measure(config: ml_collections.ConfigDict, model: str, workdir: str, real: np.ndarray,
            features: fvd.I3DFeatures) -> dict[str, float | None]:
  """FVD, KVD and motion statistics of config.fvd_clips samples of the model in `workdir` (seed
  config.seed + 2, as the training hook draws them) against the `real` features."""
  raw, _ = video_sources.generator_samples(workdir, config.fvd_clips, config.seed + 2)
  fake = features(media.to_uint8(raw['video'][:, :config.fvd_frames]))
  return {**fvd.distances(real, fake), **motion_statistics(raw)}


def real_motion(base: ml_collections.ConfigDict, scene: str) -> dict[str, float | None]:
  """motion_statistics of the scene's clips (as many as a side of FVD), mapped to [-1, 1]."""
  source = os.path.join(base.data.data_dir, scene) if base.data.data_dir else scene
  videos, _ = video_sources.load_videos(source, base.fvd_clips, base.model.frames, 0,
                                        base.model.size)
  return motion_statistics(dict(video=videos.astype(np.float64) / 127.5 - 1.0))


def _load_results(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def compare(base: ml_collections.ConfigDict, scenes: list[str], models: list[str],
            seeds: list[int], output: str, batch_size: int = 8) -> dict:
  """Trains and measures every (scene, model, seed) not in OUTPUT/results.json yet, saving that
  file after each; returns the summary (`summarize`), also written to summary.json/.md.
  `base.fvd_clips` clips a side, their first `base.fvd_frames` frames. Built-in scenes read their
  synthetic clips; with base.data.data_dir set, prepared data. ValueError for a bad list."""
  if not scenes or not models or not seeds:
    raise ValueError('Give at least one scene, model and seed.')
  for model in models:
    run_config(base, Run(scenes[0], model, seeds[0]))  # validates the model's name
  if base.fvd_frames > base.model.frames:
    raise ValueError(f'fvd_frames={base.fvd_frames}: the clips have {base.model.frames} frames.')
  path = os.path.join(output, RESULTS_FILE)
  results = _load_results(path)
  protocol = dict(clips_per_side=base.fvd_clips, frames=base.fvd_frames,
                  frame_size=base.model.size, num_steps=base.num_steps,
                  batch_size=base.batch_size, width=base.model.width,
                  data_dir=base.data.data_dir, features=fvd.FEATURES)
  if results.get('protocol', protocol) != protocol:
    changed = ', '.join(f'{key} {results["protocol"].get(key)!r} -> {value!r}'
                        for key, value in protocol.items()
                        if results['protocol'].get(key) != value)
    raise ValueError(f'{path} holds runs of another protocol ({changed}): numbers of two '
                     'protocols do not compare; give another output folder.')
  results['protocol'] = protocol
  runs = results.setdefault('runs', {})
  features = fvd.I3DFeatures(batch_size)
  for scene in scenes:
    real = None
    if f'{scene}/real' not in runs:
      runs[f'{scene}/real'] = dict(scene=scene, model='real', **real_motion(base, scene))
    for model in models:
      for seed in seeds:
        run = Run(scene, model, seed)
        if run.name in runs:
          continue
        config = run_config(base, run)
        workdir = os.path.join(output, run.name)
        train(config, model, workdir)
        if real is None:
          real = real_features(base, scene, features)
        runs[run.name] = dict(scene=scene, model=model, seed=seed,
                              **measure(config, model, workdir, real, features))
        files.write_json(path, results)
        logging.info('%s: FVD %.1f, KVD %.4f.', run.name, runs[run.name]['fvd'],
                     runs[run.name]['kvd'])
  files.write_json(path, results)
  summary = summarize(results, scenes, models)
  files.write_json(os.path.join(output, SUMMARY_FILE), summary)
  files.write_text(os.path.join(output, TABLE_FILE), markdown_table(summary))
  return summary


def summarize(results: dict, scenes: list[str], models: list[str]) -> dict:
  """{'protocol': ..., 'rows': [{scene, model, runs, MEASURE: [mean, std] or None}]}: mean and
  standard deviation (ddof=1; 0 for one run) over the seeds, per scene and model (and 'real')."""
  rows = []
  for scene in scenes:
    for model in ('real', *models):
      values = [run for run in results['runs'].values()
                if run['scene'] == scene and run['model'] == model]
      if not values:
        continue
      row = dict(scene=scene, model=model, runs=len(values))
      for name in MEASURES:
        numbers = [run[name] for run in values if run.get(name) is not None]
        row[name] = ([float(np.mean(numbers)),
                      float(np.std(numbers, ddof=1)) if len(numbers) > 1 else 0.0]
                     if numbers else None)
      rows.append(row)
  return dict(protocol=results['protocol'], rows=rows)


def markdown_table(summary: dict) -> str:
  """The summary as a Markdown table, mean ± std over seeds, with its protocol line."""
  formats = dict(fvd='{:.0f} ± {:.0f}', kvd='{:.3f} ± {:.3f}', temporal_variance='{:.4f}',
                 mask_mean='{:.2f}', background_variance='{:.4f}')
  lines = ['| scene | model | seeds | FVD | KVD | temporal variance | mask mean | '
           'background variance |', '|---|---|---|---|---|---|---|---|']
  for row in summary['rows']:
    cells = []
    for name in MEASURES:
      value = row[name]
      cells.append('' if value is None else formats[name].format(*value))
    lines.append(f'| {row["scene"]} | {row["model"]} | {row["runs"]} | ' + ' | '.join(cells)
                 + ' |')
  protocol = summary['protocol']
  lines.append('')
  lines.append(f'FVD and KVD: {protocol["clips_per_side"]} clips a side, their first '
               f'{protocol["frames"]} frames at {protocol["frame_size"]}x'
               f'{protocol["frame_size"]}; {protocol["num_steps"]} steps at batch '
               f'{protocol["batch_size"]}, width {protocol["width"]}. Variances: of pixel values '
               'in [-1, 1] over time; mean (not ± std) over seeds.')
  return '\n'.join(lines) + '\n'
