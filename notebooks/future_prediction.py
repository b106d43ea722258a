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
# # Future prediction: the video that follows a photo
#
# Section 3.4 of the paper: an image encoder (5 stride-2 convolutions) maps a still image to the
# two-stream generator's code, so the generator makes the video that could follow it. The
# discriminator is the GAN's; the generator's loss adds 10 times the L1 distance between the
# first generated frame and the input (Eq. 3). This notebook trains such a model on a built-in
# scene (or loads one you trained), predicts the future of a photo (yours, uploaded, or one that
# ships with matplotlib), plays the prediction with its streams, and draws Figure 6: the image
# regions that most excite hidden units of the encoder.
#
# **Time.** The `tiny` config for 1,000 steps: about 9 minutes on a 2-core CPU like Colab's CPU
# runtime (2 steps/s measured); GPU and TPU runtimes: not measured yet. CI runs it in a small mode
# (`VGAN_JAX_NOTEBOOK_SMALL=1`: the `test` config, a few steps) in about a minute.
#
# **For your data** change the *Settings* cell: `PHOTOS` (files or a folder of your images) or
# `UPLOAD = True` on Colab; `FUTURE_WORKDIR` to use a model trained with
# `python -m experiments.future --mode=train`; `DATA_DIR`/`SCENE` to train on prepared clips.

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
SMALL = os.environ.get('VGAN_JAX_NOTEBOOK_SMALL') == '1'  # CI: the smallest nets, a few steps

CONFIG = 'test' if SMALL else 'tiny'
SCENE = 'beach'  # built-in scene, or the name of a prepared folder under DATA_DIR
DATA_DIR = None  # prepared clips (prepare_data); None: the built-in scene
STEPS = 4 if SMALL else 1000
FUTURE_WORKDIR = None  # a trained future-prediction work directory, to skip training
PHOTOS = []  # image files to predict from; [] for the ones below
UPLOAD = False  # on Colab: True asks for photos to upload
UNIT_IMAGES = 16 if SMALL else 256  # images the hidden units are looked for in (Figure 6)
MOUNT_DRIVE = IN_COLAB and not SMALL

# %%
if MOUNT_DRIVE:
  from google.colab import drive  # pylint: disable=g-import-not-at-top
  drive.mount('/content/drive')

import json

import numpy as np
from IPython import display
from matplotlib import cbook

from data_pipeline import synthetic
from experiments import notebook, tasks, unit_visualization
from vgan_io import media
from vgan_jax import configs, sampling, video_io

notebook.setup()
WORKDIR = FUTURE_WORKDIR or notebook.work_directory(f'future_{CONFIG}_{SCENE}')
print(f'Work directory {WORKDIR}')

# %% [markdown]
# ## Train (or load) a future predictor
# The GAN's training loop with `config.model.generator_input = 'image'`: each clip's first frame
# goes through the encoder. The same as
# `python -m experiments.future --mode=train --config=tiny --scene=beach`; rerun to resume.

# %%
if FUTURE_WORKDIR is None:
  config = configs.get_config(CONFIG)
  config.model.generator_input = 'image'
  config.data.scene, config.data.data_dir = SCENE, DATA_DIR
  config.num_steps = STEPS
  state = tasks.train_gan(config, WORKDIR)
  print(f'Trained to step {int(state.step)}.')

# %% [markdown]
# ## Photos
# Uploaded ones, `PHOTOS`, or else two that need no upload: a frame of a built-in scene clip the
# model never trained on, and the portrait of Grace Hopper that ships with matplotlib (not a
# scene it knows: expect little motion). Any size works: images are turned upright by their EXIF
# orientation, centre-cropped and scaled to the model's frames.

# %%
photo_folder = os.path.join(WORKDIR, 'photos')
os.makedirs(photo_folder, exist_ok=True)
if UPLOAD and IN_COLAB:
  from google.colab import files as colab_files  # pylint: disable=g-import-not-at-top
  for name, content in colab_files.upload().items():
    PHOTOS.append(os.path.join(photo_folder, os.path.basename(name)))
    with open(PHOTOS[-1], 'wb') as file:
      file.write(content)
if not PHOTOS:
  unseen = synthetic.render_clip('beach', index=10**6, frames=1, size=128)[0]
  unit_visualization.write_png(os.path.join(photo_folder, 'beach_frame.png'), unseen)
  PHOTOS = [os.path.join(photo_folder, 'beach_frame.png'),
            str(cbook.get_sample_data('grace_hopper.jpg', asfileobj=False))]
print(*PHOTOS, sep='\n')

# %% [markdown]
# ## Predict
# `sampling.predict_future` (the work of `python -m experiments.future --mode=predict`) writes
# `NAME.mp4/.gif`, `NAME_streams.mp4/.gif` and `predictions.npz` to `WORKDIR/predictions`; here
# they are played from the arrays: the input, then the predicted video and its streams
# (background, foreground, mask, video).

# %%
paths = sampling.predict_future(WORKDIR, PHOTOS)
with np.load(paths[-1]) as predictions:
  raw = {name: predictions[name] for name in ('video', 'foreground', 'background', 'mask')}
  inputs = predictions['images']
streams = sampling.as_uint8_streams(raw)
for index, photo in enumerate(PHOTOS):
  name = os.path.basename(photo)
  frames = len(streams['video'][index])
  notebook.show_videos({f'{name}: input': np.repeat(inputs[index][None], frames, axis=0),
                        'predicted video': streams['video'][index]})
  notebook.show_videos({'background, foreground, mask, video':
                        video_io.streams_side_by_side(streams, index)}, pixels=512)

# %% [markdown]
# ## What hidden units respond to (Figure 6)
# For units of the encoder's last layer, the image regions (their receptive fields) that excite
# each most over a set of images: here frames of built-in scene clips, or your `PHOTOS` folder.
# The same as `python -m experiments.visualize_units --workdir=WORKDIR --images=FOLDER`.

# %%
unit_folder = os.path.join(WORKDIR, 'unit_images')
os.makedirs(unit_folder, exist_ok=True)
for index in range(UNIT_IMAGES):
  scene = synthetic.SCENES[index % len(synthetic.SCENES)]
  frame = synthetic.render_clip(scene, index=10**6 + index, frames=1, size=128)[0]
  unit_visualization.write_png(os.path.join(unit_folder, f'{scene}_{index:04d}.png'), frame)
written = unit_visualization.visualize_units(WORKDIR, unit_folder, num_units=8, top_k=6)
with open(written[-1]) as file:
  units = json.load(file)
print(f'Layer {units["layer"]} (receptive field {units["receptive_field"]} px of '
      f'{units["image_size"]}), {units["num_images"]} images; strongest first.')
for unit, png in zip(units['units'], written[:-1]):
  print(f'unit {unit["unit"]}')
  display.display(display.Image(filename=png))
