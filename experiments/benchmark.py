"""Speed on this machine: the GAN train step (one D update + one G update), stabilization and the
input pipeline.

  python -m experiments.benchmark             # tiny at batch 16, paper at 8 and 64 (~5 min, 2 cores)
  python -m experiments.benchmark --runs=paper:64 --steps=5 --only=train
  python -m experiments.benchmark --only=stabilize,pipeline
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

import math
import os
import re
import resource
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from experiments import common
from vgan_jax import configs, parallel, train_state, train_step

BENCHMARKS = ('train', 'stabilize', 'pipeline')
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


MIN_TIMED_SECONDS = 3.0


def matmul_flops_per_second(size: int = 2048, repeats: int = 5) -> float:
  """FLOP/s of an fp32 [size, size] matmul: the machine's practical peak."""
  a = jnp.ones((size, size), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    out = matmul(a)
  out.block_until_ready()
  return 2 * size ** 3 * repeats / (time.perf_counter() - start)


def model_flops(config, state, batch, mesh) -> float:
  """FLOPs of one iteration as the model's math, from XLA's cost analysis of the step written
  with XLA's own convolutions (`conv_impl='xla'`, lowered, not compiled). The CPU formulations
  loop over chunks of clips, and a cost analysis counts a loop's body once."""
  reference = config.copy_and_resolve_references()
  reference.model.conv_impl = 'xla'
  step = parallel.jit_step(train_step.make_gan_train_step(train_state.build_gan(reference)), mesh)
  cost = step.lower(state, batch).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get('flops', 0.0)) if cost else 0.0


def reset_peak_rss() -> None:
  """Restarts the kernel's count of this process's peak resident memory (Linux; else a no-op),
  after handing the allocator's free pages back, as training does after compiling: what earlier
  runs and the compiler freed does not count in the next figure."""
  common.release_free_host_memory()
  try:
    with open('/proc/self/clear_refs', 'w') as f:
      f.write('5')
  except OSError:
    pass


def peak_rss_gib() -> float:
  """Peak resident memory of this process since the last `reset_peak_rss`, GiB (VmHWM; where
  /proc is missing, getrusage's peak over the whole process)."""
  try:
    with open('/proc/self/status') as f:
      return int(re.search(r'VmHWM:\s*(\d+)', f.read()).group(1)) / 2 ** 20
  except (OSError, AttributeError):
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def time_train_step(config, steps: int) -> dict[str, float]:
  """Compiles the step for `config` and times `steps` iterations on a random batch."""
  gan = train_state.build_gan(config)
  mesh = parallel.create_mesh()
  state = train_state.init_train_state(gan, config, jax.random.PRNGKey(0),
                                       parallel.replicated(mesh))
  video = np.random.default_rng(0).integers(
      0, 256, (config.batch_size,) + train_state.video_shape(config), np.uint8)
  batch = parallel.shard_batch({'video': video}, mesh)
  step = parallel.jit_step(train_step.make_gan_train_step(gan), mesh)

  reset_peak_rss()
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_seconds = time.perf_counter() - start
  compile_rss = peak_rss_gib()
  memory = compiled.memory_analysis()

  reset_peak_rss()
  start = time.perf_counter()
  state, metrics = compiled(state, batch)  # warm-up
  jax.block_until_ready(metrics)
  # At least ~3 s of timed steps, so that a fast (tiny) run is not one noisy sample.
  steps = max(steps, math.ceil(MIN_TIMED_SECONDS / (time.perf_counter() - start)))
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - start) / steps
  step_rss = peak_rss_gib()
  flops = model_flops(config, state, batch, mesh)
  peak_bytes = 0
  if memory is not None:
    peak_bytes = (memory.temp_size_in_bytes + memory.argument_size_in_bytes +
                  memory.output_size_in_bytes - memory.alias_size_in_bytes)
  return dict(steps=steps, compile_seconds=compile_seconds, seconds_per_iteration=seconds,
              iterations_per_second=1 / seconds, clips_per_second=config.batch_size / seconds,
              flops_per_iteration=flops, flops_per_second=flops / seconds,
              peak_memory_gib=peak_bytes / 2 ** 30, step_rss_gib=step_rss,
              compile_rss_gib=compile_rss)


# Runs the anchor script, then prints its peak memory: VmHWM, the high-water mark of its own address
# space. (Its rusage would also count the parent's pages from before the exec.)
_ANCHOR_WRAPPER = ('import re, runpy, sys; sys.argv = sys.argv[1:]; '
                   'runpy.run_path(sys.argv[0], run_name="__main__"); '
                   'print("peak_rss_kib", re.search(r"VmHWM:\\s*(\\d+)", '
                   'open("/proc/self/status").read()).group(1))')


def run_torch_anchor(python: str, script: str, config, iterations: int) -> tuple[float, float]:
  """(clips/s, peak RSS GiB) of the PyTorch anchor at `config`'s size, in a subprocess."""
  model = config.model
  command = [python, '-c', _ANCHOR_WRAPPER, script] + [
      str(v) for v in (config.batch_size, iterations, model.size, model.frames, model.width)]
  result = subprocess.run(command, capture_output=True, text=True,
                          env=dict(os.environ, THREADS=os.environ.get('THREADS', '2')))
  clips = re.search(r'([0-9.]+) clips/s', result.stdout)
  rss = re.search(r'peak_rss_kib (\d+)', result.stdout)
  if result.returncode or not clips or not rss:
    raise RuntimeError(f'The anchor {script} failed:\n{result.stdout}{result.stderr}')
  return float(clips.group(1)), int(rss.group(1)) / 2 ** 20


def parse_runs(runs: list[str]) -> list[tuple[str, int]]:
  """['paper:8', ...] -> [('paper', 8), ...]; a malformed entry is a UsageError naming it."""
  parsed = []
  for run in runs:
    name, _, batch = run.partition(':')
    if name not in configs.CONFIGS or not batch.isdigit() or int(batch) < 1:
      raise app.UsageError(f'--runs entry {run!r}: expected CONFIG:BATCH with CONFIG one of '
                           f'{", ".join(configs.CONFIGS)} and BATCH a positive integer.')
    parsed.append((name, int(batch)))
  return parsed


def run_train_benchmark() -> None:
  runs = parse_runs(_RUNS.value)  # bad flags fail before anything is timed
  if _TORCH_PYTHON.value and not os.path.exists(_TORCH_ANCHOR.value):
    raise app.UsageError(f'--torch_anchor={_TORCH_ANCHOR.value}: no such file.')
  # No persistent cache: compile time is one of the figures (and see `setup_runtime`).
  common.setup_runtime(persistent_cache=False)
  device = jax.devices()[0]
  print(f'jax {jax.__version__} on {jax.device_count()} x {device.device_kind} ({device.platform})')
  peak = matmul_flops_per_second()
  print(f'fp32 matmul 2048^2: {peak / 1e9:.1f} GFLOP/s (practical peak)')
  for name, batch_size in runs:
    config = configs.get_config(name)
    config.batch_size = batch_size
    if _CONV_IMPL.value:
      config.model.conv_impl = _CONV_IMPL.value
    if _COMPUTE_DTYPE.value:
      config.model.compute_dtype = _COMPUTE_DTYPE.value
    configs.validate(config)
    r = time_train_step(config, _STEPS.value)
    model = config.model
    print(f'{name} B={config.batch_size} {model.frames}x{model.size}x{model.size} '
          f'width={model.width} conv_impl={model.conv_impl} {model.compute_dtype}: '
          f'{r["iterations_per_second"]:.3f} it/s, {r["clips_per_second"]:.2f} clips/s, '
          f'{r["flops_per_iteration"] / 1e9:.1f} GFLOP/iter, '
          f'{r["flops_per_second"] / 1e9:.1f} GFLOP/s ({r["flops_per_second"] / peak:.0%} of '
          f'matmul), XLA memory estimate {r["peak_memory_gib"]:.2f} GiB, peak RSS '
          f'{r["step_rss_gib"]:.2f} GiB while training ({r["compile_rss_gib"]:.2f} GiB while '
          f'compiling), compile {r["compile_seconds"]:.1f} s', flush=True)
    if _TORCH_PYTHON.value:
      anchor, anchor_rss = run_torch_anchor(_TORCH_PYTHON.value, _TORCH_ANCHOR.value, config,
                                            r['steps'])
      print(f'  PyTorch anchor: {anchor:.2f} clips/s, peak RSS {anchor_rss:.2f} GiB; '
            f'JAX / PyTorch = {r["clips_per_second"] / anchor:.2f}x', flush=True)


def main(argv):
  del argv
  unknown = set(_ONLY.value) - set(BENCHMARKS)
  if unknown:
    raise app.UsageError(f'--only takes {", ".join(BENCHMARKS)}; got {", ".join(unknown)}.')
  if {'stabilize', 'pipeline'} & set(_ONLY.value):
    # Imported here: TensorFlow would otherwise count in the train step's peak memory.
    from experiments import data_benchmarks  # pylint: disable=g-import-not-at-top
    if 'stabilize' in _ONLY.value:
      data_benchmarks.run_stabilization_benchmark()
    if 'pipeline' in _ONLY.value:
      data_benchmarks.run_pipeline_benchmark()
  if 'train' in _ONLY.value:
    run_train_benchmark()


if __name__ == '__main__':
  app.run(main)
