"""Speed on this machine: the GAN train step (one D update + one G update), stabilization, the
input pipeline and FVD's I3D features.

  python -m experiments.benchmark             # tiny at batch 16, paper at 8 and 64 (~5 min, 2 cores)
  python -m experiments.benchmark --runs=paper:64 --steps=5 --only=train
  python -m experiments.benchmark --only=stabilize,pipeline
  python -m experiments.benchmark --only=fvd     # I3D clips/s, and FVD_2048 at 16 frames in time
  # Side by side with the PyTorch anchor, from an environment that has torch (not a dependency):
  python -m experiments.benchmark --only=train \
      --torch_python=/path/to/torch-venv/bin/python --torch_anchor=../shared/bench/torch_vgan_step.py

For each run it prints iterations/s, clips/s, the FLOPs of one iteration (the model's math: XLA's
cost analysis of the step written with XLA's convolutions), the FLOP/s achieved, XLA's memory
estimate and the process's peak resident memory while it trains and while it compiles (each
counted from its own start); and, once, an fp32 matmul's FLOP/s as the machine's practical peak.
With --torch_python the anchor script then runs the same sizes in a subprocess, and the ratio of
clips/s and the anchor's peak memory are printed.

Stabilization: frames/s on one core (what one prepare_data worker does per frame: features,
matching, RANSAC, warp) for each feature option, at 128x128 (as prepare_data runs it) and at a
source resolution, with the residual background motion against the known jitter of
`synthetic.jittered_scene`. Input pipeline: clips/s from shards of 128x128 strips scaled to the
tiny config's 64x64, on 1 and 2 tf.data threads, against bare JPEG decode + resize on one thread.
"""

import os

from absl import flags

from experiments import common, train_benchmarks
from vgan_jax import configs

BENCHMARKS = ('train', 'stabilize', 'pipeline', 'fvd')
_ONLY = flags.DEFINE_list('only', list(BENCHMARKS), f'Which of {", ".join(BENCHMARKS)} to run.')

_RUNS = flags.DEFINE_list('runs', ['tiny:16', 'paper:8', 'paper:64'],
                          'CONFIG:BATCH pairs to time, smallest first.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Timed iterations per run, at least (after one '
                             'warm-up; more if they take under 3 s). The anchor runs as many.')
_CONV_IMPL = flags.DEFINE_string('conv_impl', None, 'Override config.model.conv_impl.')
_TORCH_PYTHON = flags.DEFINE_string('torch_python', None, 'A Python with PyTorch: also time '
                                    '--torch_anchor at each size, side by side.')
_TORCH_ANCHOR = flags.DEFINE_string('torch_anchor', '../shared/bench/torch_vgan_step.py',
                                    'The PyTorch eager anchor (args: BATCH ITERS SIZE FRAMES WIDTH).')
_COMPUTE_DTYPE = flags.DEFINE_string('compute_dtype', None, 'Override config.model.compute_dtype '
                                     '(float32, bfloat16).')


def parse_runs(runs: list[str]) -> list[tuple[str, int]]:
  """['paper:8', ...] -> [('paper', 8), ...]; a malformed entry is a UsageError naming it."""
  parsed = []
  for run in runs:
    name, _, batch = run.partition(':')
    if name not in configs.CONFIGS or not batch.isdigit() or int(batch) < 1:
      raise ValueError(f'--runs entry {run!r}: expected CONFIG:BATCH with CONFIG one of '
                           f'{", ".join(configs.CONFIGS)} and BATCH a positive integer.')
    parsed.append((name, int(batch)))
  return parsed


def main():
  unknown = set(_ONLY.value) - set(BENCHMARKS)
  if unknown:
    raise ValueError(f'--only takes {", ".join(BENCHMARKS)}; got {", ".join(unknown)}.')
  runs = parse_runs(_RUNS.value)  # bad flags fail before anything is timed
  if _TORCH_PYTHON.value and not os.path.exists(_TORCH_ANCHOR.value):
    raise ValueError(f'--torch_anchor={_TORCH_ANCHOR.value}: no such file.')
  if {'stabilize', 'pipeline'} & set(_ONLY.value):
    # Imported here: TensorFlow would otherwise count in the train step's peak memory.
    from experiments import data_benchmarks  # pylint: disable=g-import-not-at-top
    if 'stabilize' in _ONLY.value:
      data_benchmarks.run_stabilization_benchmark()
    if 'pipeline' in _ONLY.value:
      data_benchmarks.run_pipeline_benchmark()
  if 'fvd' in _ONLY.value:
    train_benchmarks.run_fvd_benchmark()
  if 'train' in _ONLY.value:
    train_benchmarks.run_train_benchmark(runs, _STEPS.value, _CONV_IMPL.value,
                                         _COMPUTE_DTYPE.value, _TORCH_PYTHON.value,
                                         _TORCH_ANCHOR.value)


if __name__ == '__main__':
  # No persistent cache: compile time is one of the figures (and see `common.setup_runtime`).
  common.run(main, 'benchmark', persistent_cache=False)
