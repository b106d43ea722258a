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
# # Your own videos: from video files to a trained model
#
# The paper trained on unlabeled video of one kind of scene (golf courses, beaches, train
# stations, babies) with the camera motion removed. This notebook does the same with your videos:
# upload them (or point at a Google Drive folder), turn them into stabilized clips with
# `prepare_data` (SIFT keypoints, a RANSAC fit of the camera motion between adjacent frames,
# frames warped to cancel it, segments whose motion cannot be followed cut out), look at a few
# stabilized clips next to their raw frames, train on them and generate.
#
# **Time.** With no videos of yours it renders 4 shaky videos of a built-in scene (100 frames of
# 160x160 each): preparing them took 20 s here, training the `tiny` config for 1,000 steps
# about 9 minutes on a 2-core CPU (Colab's CPU runtime). GPU and TPU runtimes: not measured yet.
# CI runs it in a small mode (`VGAN_JAX_NOTEBOOK_SMALL=1`: 2 short videos, the `test` config, a
# few steps) in about a minute.
#
# **For your data** change the *Settings* cell: `VIDEOS` (a folder, files or a glob, e.g. on
# Drive) or `UPLOAD = True` on Colab, `SCENE` (the name your data gets), the clip size, and the
# training config and steps.

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

# %%
SMALL = os.environ.get('VGAN_JAX_NOTEBOOK_SMALL') == '1'  # CI: two short videos, a few steps

VIDEOS = []  # your videos: files, folders (searched recursively) or globs; [] for the demo ones
UPLOAD = False  # on Colab: True asks for files to upload from this computer
DEMO_SCENE = 'golf'  # with no videos: the built-in scene rendered as shaky videos
SCENE = 'my_videos'  # the name of this data (DATA_DIR/SCENE holds its shards)
CLIP_FRAMES, CLIP_SIZE = (16, 32) if SMALL else (32, 64)  # stored clips; training scales them
DEMO_VIDEOS, DEMO_FRAMES = (2, 40) if SMALL else (4, 100)
CONFIG = 'test' if SMALL else 'tiny'  # 'paper' for the paper's model (a GPU; CLIP_SIZE 128)
STEPS = 4 if SMALL else 1000
MOUNT_DRIVE = IN_COLAB and not SMALL  # videos on Drive, and the work kept there

# %%
if MOUNT_DRIVE:
  from google.colab import drive  # pylint: disable=g-import-not-at-top
  drive.mount('/content/drive')

import itertools

import numpy as np

from data_pipeline import clips, prepare, shards
from experiments import notebook, tasks
from vgan_io import media
from vgan_jax import configs, sampling, video_io

notebook.setup()
WORKDIR = notebook.work_directory(f'your_videos_{SCENE}')
DATA_DIR = os.path.join(WORKDIR, 'data')
print(f'Work directory {WORKDIR}; clips go to {DATA_DIR}/{SCENE}')

# %% [markdown]
# ## The videos
# Uploaded files go to `WORKDIR/uploads`. Without videos of yours, a built-in scene is rendered
# with camera shake added, so that stabilization has something to remove.

# %%
if UPLOAD and IN_COLAB:
  from google.colab import files as colab_files  # pylint: disable=g-import-not-at-top
  upload_folder = os.path.join(WORKDIR, 'uploads')
  os.makedirs(upload_folder, exist_ok=True)
  for name, content in colab_files.upload().items():
    with open(os.path.join(upload_folder, os.path.basename(name)), 'wb') as file:
      file.write(content)
  VIDEOS = [*VIDEOS, upload_folder]
if not VIDEOS:
  VIDEOS = prepare.render_demo_videos(os.path.join(WORKDIR, 'demo_videos'), DEMO_SCENE,
                                      count=DEMO_VIDEOS, frames=DEMO_FRAMES)
videos, problems = prepare.find_videos(VIDEOS)
print(f'{len(videos)} videos:', *videos[:8], sep='\n  ')
for path, reason in problems:
  print(f'Not a video: {path} ({reason})')

# %% [markdown]
# ## Stabilized clips (`prepare_data`)
# Each video becomes a shard of clips in `DATA_DIR/SCENE`; `manifest.json` lists every video with
# what became of it. A video that cannot be used is skipped with its reason, and a rerun skips
# the videos already done. The same as
# `python -m experiments.prepare_data --input=... --scene=SCENE --output=DATA_DIR`.

# %%
options = clips.ClipOptions(frames=CLIP_FRAMES, size=CLIP_SIZE, stride=CLIP_FRAMES)
summary = prepare.prepare_videos(videos, DATA_DIR, SCENE, options, workers=os.cpu_count() or 1)
print(*summary.lines(), sep='\n')

# %% [markdown]
# ## Stabilized next to raw
# Left: the video's own frames over the same span (square-cropped at the same size); right: the
# clip as stored, with the camera motion removed. Pixels that came into view are filled from
# earlier frames.

# %%
def raw_frames(source, start, count):
  """The video's frames `start` .. `start + count` as prepare_data reads them, unstabilized."""
  info = clips.probe(source, options)
  frames = clips.read_frames(info, options, clips.VideoLog())
  return np.stack(list(itertools.islice(frames, start, start + count)))


shard_paths = sorted(os.path.join(DATA_DIR, SCENE, name)
                     for name in os.listdir(os.path.join(DATA_DIR, SCENE))
                     if name.endswith('.tfrecord'))
examples = [next(shards.read_shard(path)) for path in shard_paths[:3]]
notebook.show_videos({
    f'{os.path.basename(example["source"])} from frame {example["start_frame"]}: raw, stabilized':
    media.video_grid(np.stack([raw_frames(example['source'], example['start_frame'],
                                          CLIP_FRAMES), example['video']]), columns=2)
    for example in examples}, pixels=2 * 128, columns=1)

# %% [markdown]
# ## Train on them
# The prepared folder is the data (`config.data.data_dir`, `config.data.scene`); the rest is the
# quickstart's training. Rerun to resume.

# %%
config = configs.get_config(CONFIG)
config.data.scene, config.data.data_dir = SCENE, DATA_DIR
config.num_steps = STEPS
state = tasks.train_gan(config, os.path.join(WORKDIR, 'gan'))
print(f'Trained to step {int(state.step)} on {summary.total_clips} clips.')

# %% [markdown]
# ## Generate
# Eight samples, and their streams (background, foreground, mask, video) as in Figure 3. The
# files themselves: `python -m experiments.generate --workdir=WORKDIR/gan --streams`.

# %%
trained_config, gan, state = sampling.load_model(os.path.join(WORKDIR, 'gan'), step=None,
                                                 conditional=False)
_, raw = sampling.generated_samples(gan, state, trained_config, num_samples=8, seed=0)
streams = sampling.as_uint8_streams(raw)
notebook.show_videos({f'sample {i}': video for i, video in enumerate(streams['video'])},
                     columns=4)
notebook.show_videos({'background, foreground, mask, video':
                      video_io.streams_side_by_side(streams, 0)}, pixels=512)
