"""Speed of the GAN train step (one D update + one G update) on this machine.

  python -m experiments.benchmark                          # paper at batch 8, tiny at batch 16
  python -m experiments.benchmark --runs=paper:64 --steps=5

For each run it prints iterations/s, clips/s, the FLOPs of one iteration from XLA's cost analysis,
the FLOP/s achieved, and XLA's memory estimate; and, once, an fp32 matmul's FLOP/s as the
machine's practical peak. Compare with the PyTorch anchor on the same machine right after:
  python ../shared/bench/torch_vgan_step.py BATCH ITERS SIZE FRAMES WIDTH
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from experiments import common
from vgan_jax import configs, parallel, train_state, train_step

_RUNS = flags.DEFINE_list('runs', ['paper:8', 'tiny:16'], 'CONFIG:BATCH pairs to time.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Timed iterations per run (after one warm-up).')
_CONV_IMPL = flags.DEFINE_string('conv_impl', None, 'Override config.model.conv_impl.')


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

  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_seconds = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  memory = compiled.memory_analysis()

  state, metrics = compiled(state, batch)  # warm-up
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - start) / steps
  flops = float(cost.get('flops', 0.0)) if cost else 0.0
  peak_bytes = 0
  if memory is not None:
    peak_bytes = (memory.temp_size_in_bytes + memory.argument_size_in_bytes +
                  memory.output_size_in_bytes - memory.alias_size_in_bytes)
  return dict(compile_seconds=compile_seconds, seconds_per_iteration=seconds,
              iterations_per_second=1 / seconds, clips_per_second=config.batch_size / seconds,
              flops_per_iteration=flops, flops_per_second=flops / seconds,
              peak_memory_gib=peak_bytes / 2 ** 30)


def main(argv):
  del argv
  common.setup_runtime()
  device = jax.devices()[0]
  print(f'jax {jax.__version__} on {jax.device_count()} x {device.device_kind} ({device.platform})')
  peak = matmul_flops_per_second()
  print(f'fp32 matmul 2048^2: {peak / 1e9:.1f} GFLOP/s (practical peak)')
  for run in _RUNS.value:
    name, batch_size = run.split(':')
    config = configs.get_config(name)
    config.batch_size = int(batch_size)
    if _CONV_IMPL.value:
      config.model.conv_impl = _CONV_IMPL.value
    configs.validate(config)
    r = time_train_step(config, _STEPS.value)
    model = config.model
    print(f'{name} B={config.batch_size} {model.frames}x{model.size}x{model.size} '
          f'width={model.width} conv_impl={model.conv_impl}: '
          f'{r["iterations_per_second"]:.3f} it/s, {r["clips_per_second"]:.2f} clips/s, '
          f'{r["flops_per_iteration"] / 1e9:.1f} GFLOP/iter, '
          f'{r["flops_per_second"] / 1e9:.1f} GFLOP/s ({r["flops_per_second"] / peak:.0%} of '
          f'matmul), XLA memory estimate {r["peak_memory_gib"]:.2f} GiB, '
          f'compile {r["compile_seconds"]:.1f} s')


if __name__ == '__main__':
  app.run(main)
