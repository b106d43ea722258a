# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # vgan_jax quickstart: train a video GAN and watch its videos
#
# *Generating Videos with Scene Dynamics* (Vondrick, Pirsiavash, Torralba, NIPS 2016) in JAX and
# Flax. This notebook installs the project, trains the two-stream generator of the paper's Eq. 2
# (a moving foreground `f(z)`, a mask `m(z)` and a static background `b(z)`:
# `G(z) = m f + (1 - m) b`) on a built-in procedural beach scene, and shows what it learnt: samples
# playing inline, the streams side by side as in the paper's Figure 3, a walk through the latent
# space, the training curves and TensorBoard. Run it again after a restart and it resumes.
#
# **Time.** The `tiny` config (16 frames of 32x32, width 16, batch 16) for 1,000 steps: about 9
# minutes on a 2-core CPU (Colab's CPU runtime has 2). GPU and TPU runtimes: not measured yet.
# CI runs this notebook in a small mode (`VGAN_JAX_NOTEBOOK_SMALL=1`: the `test` config, a few
# steps) in about a minute.
#
# **Your own settings** are in the *Settings* cell: the scene, the number of steps, the config
# (`paper` is the paper's 32x64x64 model, for a GPU), and `DATA_DIR` for clips prepared from your
# videos (see `your_videos.ipynb`).

# %% [markdown]
# ## Install
# On Colab this installs the project from its repository, with the JAX build for the runtime's
# accelerator (GPU: CUDA 12, TPU: libtpu, else CPU). Elsewhere it uses the checkout this notebook
# lies in (installing it into this kernel's Python if it is not importable yet). If pip replaced
# a package Colab had already loaded, Colab offers to restart the session: accept, and run the
# notebook again from the top.

# %%
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

REPOSITORY = 'https://github.com/vgan-jax/vgan_jax'
IN_COLAB = 'google.colab' in sys.modules


def pip_install(*requirements):
  subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', *requirements], check=True)


if IN_COLAB:
  if any(os.environ.get(name) for name in ('TPU_ACCELERATOR_TYPE', 'COLAB_TPU_ADDR')) or (
      os.path.exists('/dev/accel0')):
    jax_build = 'jax[tpu]'
  elif shutil.which('nvidia-smi'):
    jax_build = 'jax[cuda12]'
  else:
    jax_build = 'jax'
  pip_install(f'vgan_jax[notebook] @ git+{REPOSITORY}', jax_build)
elif importlib.util.find_spec('vgan_jax') is None:
  checkout = next(folder for folder in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents]
                  if (folder / 'setup.cfg').exists())
  pip_install('-e', f'{checkout}[notebook]')

# %% [markdown]
# ## Settings
# The one cell to change. `SMALL` is CI's quick mode; leave it off.

# %%
SMALL = os.environ.get('VGAN_JAX_NOTEBOOK_SMALL') == '1'  # CI: the smallest nets, a few steps

CONFIG = 'test' if SMALL else 'tiny'  # 'paper' for the paper's model (a GPU)
SCENE = 'beach'  # built-in: beach, golf, train_station, babies; or a prepared folder's name
DATA_DIR = None  # a folder of prepared shards (prepare_data); None: the built-in scene
STEPS = 4 if SMALL else 1000
MORE_STEPS = 2 if SMALL else 200  # the resumed run's extra steps
MOUNT_DRIVE = IN_COLAB and not SMALL  # keep the work on Google Drive: it outlives the runtime

# %%
if MOUNT_DRIVE:
  from google.colab import drive  # pylint: disable=g-import-not-at-top
  drive.mount('/content/drive')

import jax
import numpy as np

from experiments import notebook, tasks
from vgan_jax import configs, sampling, train_step, video_io

notebook.setup()
WORKDIR = notebook.work_directory(f'quickstart_{CONFIG}_{SCENE}')
print(f'JAX {jax.__version__} on {jax.device_count()} {jax.devices()[0].platform} device(s); '
      f'work directory {WORKDIR}')

# %% [markdown]
# ## Train
# One D update, then one G update per step (Adam, lr 2e-4, beta1 0.5), data-parallel over every
# device. The progress bar shows both losses; checkpoints go to `WORKDIR/checkpoints` every
# `checkpoint_every` steps, and sample grids to `WORKDIR/samples`. Interrupt the kernel and it
# stops after the next step with a checkpoint; rerun the cell and it goes on.

# %%
config = configs.get_config(CONFIG)
config.data.scene, config.data.data_dir = SCENE, DATA_DIR
config.num_steps = STEPS
state = tasks.train_gan(config, WORKDIR)
print(f'Trained to step {int(state.step)}.')

# %% [markdown]
# ## Samples
# Sixteen latent codes `z ~ N(0, I)` decoded by the trained generator (the same seed gives the
# same codes, and so the same videos).

# %%
trained_config, gan, state = sampling.load_model(WORKDIR, step=None, conditional=False)
latents, raw = sampling.generated_samples(gan, state, trained_config, num_samples=8, seed=0)
streams = sampling.as_uint8_streams(raw)
notebook.show_videos({f'sample {i}': video for i, video in enumerate(streams['video'])},
                     columns=4)

# %% [markdown]
# ## The two streams (Figure 3)
# Left to right: the background `b(z)` (one image for the whole clip), the foreground `f(z)`, the
# mask `m(z)` (white: the foreground shows) and the video `m f + (1 - m) b`.

# %%
notebook.show_videos({f'sample {i}: background, foreground, mask, video':
                      video_io.streams_side_by_side(streams, i) for i in range(3)},
                     pixels=512, columns=1)

# %% [markdown]
# ## A walk through the latent space
# Eight codes on the great circle between two random codes (`sampling.interpolate_latents`):
# the videos change smoothly when the generator has learnt a smooth map.

# %%
ends = train_step.sample_latents(jax.random.PRNGKey(1), 2, trained_config.model.latent_dim)
walk = sampling.interpolate_latents(ends[0], ends[1], 8)
walk_videos = sampling.as_uint8_streams(
    sampling.generate_streams(train_step.generate, gan, state, walk, batch_size=8))['video']
notebook.show_videos({f'{i}/7': video for i, video in enumerate(walk_videos)}, columns=8,
                     pixels=96)

# %% [markdown]
# ## Training curves
# The losses from the run's TensorBoard summaries; below, TensorBoard itself (not in CI's small
# mode: it starts a server, on localhost).

# %%
figure = notebook.plot_scalars(WORKDIR, ['train/discriminator_loss', 'train/generator_loss',
                                         'train/mask_mean'])

# %%
if not SMALL:
  get_ipython().run_line_magic('load_ext', 'tensorboard')
  get_ipython().run_line_magic('tensorboard', f'--logdir {WORKDIR}')

# %% [markdown]
# ## Resume
# Training always starts from the newest checkpoint in the work directory. After a runtime
# restart, run the cells again: with Google Drive mounted the work directory is still there and
# nothing is trained twice. Here the same run goes on for `MORE_STEPS` more steps.

# %%
config.num_steps = STEPS + MORE_STEPS
state = tasks.train_gan(config, WORKDIR)
print(f'Resumed from step {STEPS} to step {int(state.step)}.')
