"""The layering of ../shared/DESIGN.md, checked in a fresh interpreter per module:

  experiments -> (vgan_jax, data_pipeline) -> vgan_io
  vgan_jax never loads TensorFlow or data_pipeline; data_pipeline never loads Flax or vgan_jax;
  vgan_io (the file and video helpers both use) loads none of JAX, Flax, TensorFlow or the two.

(TensorFlow's own import pulls in jax when jax is installed: that is not ours, so the data side is
held to "no flax", not "no jax".)
"""

import os
import pkgutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORBIDDEN = {
    'vgan_io': ('jax', 'flax', 'tensorflow', 'vgan_jax', 'data_pipeline', 'experiments'),
    'vgan_jax': ('tensorflow', 'data_pipeline', 'experiments'),
    'data_pipeline': ('flax', 'vgan_jax', 'experiments'),
}


def _modules(package: str) -> list[str]:
  path = os.path.join(REPO, package)
  return [package] + [info.name for info in pkgutil.walk_packages([path], package + '.')]


@pytest.mark.parametrize('module', [m for package in FORBIDDEN for m in _modules(package)])
def test_module_loads_nothing_its_layer_may_not_use(module):
  forbidden = FORBIDDEN[module.split('.')[0]]
  script = (f'import sys, {module}\n'
            f'loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({forbidden!r}))\n'
            'print(",".join(loaded))')
  result = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='3'))
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == '', f'importing {module} loads {result.stdout.strip()}'


def test_every_package_is_checked():
  assert len(_modules('vgan_jax')) > 15 and len(_modules("data_pipeline")) >= 8
