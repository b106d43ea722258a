"""The benchmark command: it times a shrunk step, runs an anchor side by side, refuses bad runs.

Run by subprocess: the benchmark is an absl entry module with its own flags.
"""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stands in for ../shared/bench/torch_vgan_step.py: checks the arguments it gets, prints its line.
FAKE_ANCHOR = '''import sys
batch, iters, size, frames, width = map(int, sys.argv[1:])
assert (batch, size, frames, width) == (2, 32, 16, 4), sys.argv
print(f"torch fake threads=2 B={batch}: 0.100 s/iter, 20.00 clips/s")
'''


def _benchmark(tmp_path, *flags):
  return subprocess.run([sys.executable, '-m', 'experiments.benchmark', '--only=train', *flags],
                        cwd=REPO, capture_output=True, text=True, timeout=900,  # a hang fails
                        env=dict(os.environ, VGAN_JAX_CACHE=str(tmp_path / 'cache'),
                                 PYTHONPATH=REPO))


def test_benchmark_times_the_step_and_compares_with_the_anchor(tmp_path):
  anchor = tmp_path / 'anchor.py'
  anchor.write_text(FAKE_ANCHOR)
  result = _benchmark(tmp_path, '--runs=test:2', '--steps=1', f'--torch_python={sys.executable}',
                      f'--torch_anchor={anchor}')
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  assert re.search(r'fp32 matmul 2048\^2: [0-9.]+ GFLOP/s', out)
  line = re.search(r'test B=2 16x32x32 width=4 conv_impl=auto float32: ([0-9.]+) it/s, '
                   r'([0-9.]+) clips/s, ([0-9.]+) GFLOP/iter, ([0-9.]+) GFLOP/s .*'
                   r'peak RSS ([0-9.]+) GiB while training \(([0-9.]+) GiB while compiling\)', out)
  assert line, out
  iterations, clips, gflop, gflops, train_rss, compile_rss = map(float, line.groups())
  assert clips > 0 and gflop > 0 and gflops > 0
  assert 0 < train_rss < 8 and 0 < compile_rss < 8
  # FLOP/s = FLOPs per iteration x it/s, up to the printed rounding (0.1 GFLOP, 0.001 it/s).
  assert abs(gflops - gflop * iterations) <= 0.05 * iterations + 0.001 * gflop + 0.05
  assert abs(clips - 2 * iterations) <= 0.02 * clips + 0.01  # 2 clips per iteration
  anchor = re.search(r'PyTorch anchor: 20.00 clips/s, peak RSS ([0-9.]+) GiB; '
                     r'JAX / PyTorch = ([0-9.]+)x', out)
  assert anchor, out
  anchor_rss, ratio = map(float, anchor.groups())
  assert 0 < anchor_rss < 4  # the little fake's own peak, not this process's
  assert abs(ratio - clips / 20) <= 0.01


def test_benchmark_names_a_malformed_run_and_a_missing_anchor(tmp_path):
  result = _benchmark(tmp_path, '--runs=paper:eight')
  assert result.returncode != 0
  assert "--runs entry 'paper:eight': expected CONFIG:BATCH" in result.stderr
  result = _benchmark(tmp_path, '--runs=test:2', f'--torch_python={sys.executable}',
                      f'--torch_anchor={tmp_path}/missing.py')
  assert result.returncode != 0
  assert f'--torch_anchor={tmp_path}/missing.py: no such file.' in result.stderr
  assert 'clips/s' not in result.stdout  # refused before timing anything
