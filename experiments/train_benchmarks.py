"""Timing the GAN train step, without flags: experiments/benchmark.py's work (see there for what
each figure means)."""

import math
import os
import re
import resource
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from vgan_jax import configs, parallel, train_state, train_step

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
  step = parallel.jit_step(train_step.make_train_step(train_state.build_gan(reference)), mesh)
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
  step = parallel.jit_step(train_step.make_train_step(gan), mesh)

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


def run_train_benchmark(runs: list[tuple[str, int]], steps: int, conv_impl: str | None = None,
                        compute_dtype: str | None = None, torch_python: str | None = None,
                        torch_anchor: str | None = None) -> None:
  """Prints the figures of each (config name, batch) run, and the anchor's beside them."""
  device = jax.devices()[0]
  print(f'jax {jax.__version__} on {jax.device_count()} x {device.device_kind} ({device.platform})')
  peak = matmul_flops_per_second()
  print(f'fp32 matmul 2048^2: {peak / 1e9:.1f} GFLOP/s (practical peak)')
  for name, batch_size in runs:
    config = configs.get_config(name)
    config.batch_size = batch_size
    if conv_impl:
      config.model.conv_impl = conv_impl
    if compute_dtype:
      config.model.compute_dtype = compute_dtype
    configs.validate(config)
    r = time_train_step(config, steps)
    model = config.model
    print(f'{name} B={config.batch_size} {model.frames}x{model.size}x{model.size} '
          f'width={model.width} conv_impl={model.conv_impl} {model.compute_dtype}: '
          f'{r["iterations_per_second"]:.3f} it/s, {r["clips_per_second"]:.2f} clips/s, '
          f'{r["flops_per_iteration"] / 1e9:.1f} GFLOP/iter, '
          f'{r["flops_per_second"] / 1e9:.1f} GFLOP/s ({r["flops_per_second"] / peak:.0%} of '
          f'matmul), XLA memory estimate {r["peak_memory_gib"]:.2f} GiB, peak RSS '
          f'{r["step_rss_gib"]:.2f} GiB while training ({r["compile_rss_gib"]:.2f} GiB while '
          f'compiling), compile {r["compile_seconds"]:.1f} s', flush=True)
    if torch_python:
      anchor, anchor_rss = run_torch_anchor(torch_python, torch_anchor, config,
                                            r['steps'])
      print(f'  PyTorch anchor: {anchor:.2f} clips/s, peak RSS {anchor_rss:.2f} GiB; '
            f'JAX / PyTorch = {r["clips_per_second"] / anchor:.2f}x', flush=True)


def run_fvd_benchmark(clips: int = 16, frames: int = 16, size: int = 64,
                      batch_size: int = 8) -> dict[str, float]:
  """Prints I3D's clips/s on `clips` clips of `frames` frames of `size` pixels (the compile
  excluded) and the time FVD_2048 (2048 clips a side) would take at that rate."""
  from vgan_jax.metrics import fvd  # pylint: disable=g-import-not-at-top
  features = fvd.I3DFeatures(batch_size)
  videos = np.random.default_rng(0).integers(0, 256, (clips, frames, size, size, 3), np.uint8)
  start = time.perf_counter()
  features(videos[:batch_size])  # compiles
  compile_seconds = time.perf_counter() - start
  start = time.perf_counter()
  features(videos)
  clips_per_second = clips / (time.perf_counter() - start)
  devices = features.mesh.devices.size
  print(f'I3D features on {devices} {jax.devices()[0].platform} device(s): '
        f'{clips_per_second:.2f} clips/s ({frames} frames of {size}x{size}, batch '
        f'{features.batch_size}, compile {compile_seconds:.1f} s); FVD_2048 at '
        f'{frames} frames: {2 * 2048 / clips_per_second / 60:.1f} min', flush=True)
  return dict(clips_per_second=clips_per_second, compile_seconds=compile_seconds)

