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
# # vgan_jax representation learning: action recognition from a video GAN (Section 3.3)
#
# *Generating Videos with Scene Dynamics* (Vondrick, Pirsiavash, Torralba, NIPS 2016) in JAX and
# Flax. The paper's third use of its GAN: a discriminator that has learnt to tell real video from
# generated video, without labels, is a good start for an action classifier. This notebook
# 1. takes UCF101 from Google Drive when you have it there, otherwise writes a small synthetic
#    action dataset in UCF101's layout (a square moving left, right, up, down, or growing, over a
#    textured background);
# 2. trains the two-stream GAN on the training videos of split 1, **without their labels**;
# 3. trains action classifiers on split 1 with a fraction of the labels, four ways: the GAN's
#    discriminator fine-tuned (`gan_finetune`), the same net from random init
#    (`random_finetune`), a linear classifier on the GAN's frozen features (`gan_linear`) and on
#    random frozen features (`random_linear`, the floor), over label fractions and seeds;
# 4. shows a table of top-1 accuracies and the paper's Figures 4b (accuracy against the fraction
#    of labeled videos, VGAN init and random init) and 4c (the relative gain of VGAN init).
#
# **Time.** On the synthetic actions with the `actions` config (the `tiny` nets: 16 frames of
# 32x32, width 16; 600 GAN steps; classifiers for 40 epochs, 3 label fractions x 3 seeds x 4
# methods, as `python -m experiments.replicate_actions` runs it): about 12 minutes on a 2-core
# CPU (Colab's CPU runtime has 2), measured with an empty compilation cache: 3 minutes for the
# GAN, 8.5 for the 36 classifiers. On a GPU or TPU runtime: not measured yet. CI runs this
# notebook in a small mode (`VGAN_JAX_NOTEBOOK_SMALL=1`: the `test` config, 3 GAN steps, 2
# epochs, 2 fractions, 1 seed) in about 45 seconds (a minute with an empty compilation
# cache).
#
# **Real data.** In the *Settings* cell: `UCF101_DIR`, the folder on your Google Drive that holds
# `UCF-101/` (the videos) and `ucfTrainTestlist/` (the split lists), is used when it is there;
# `GAN_WORKDIR`, the work directory of a GAN you trained with the same `CONFIG` sizes, skips the
# GAN training here; `CONFIG = 'paper'` (the paper's 32x64x64 nets, for a GPU), more `GAN_STEPS`
# and the paper's label fractions (`FRACTIONS`) for the paper's numbers. UCF101 is decoded once
# (the GAN's clips and the classifiers' decoded videos are kept in the work directory, on Drive);
# how long that and the training take on UCF101 is not measured yet.

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
# The one cell to change. `SMALL` is CI's quick mode; leave it off. The defaults are those of the
# `actions` config and `experiments/replicate_actions.py`.

# %%
SMALL = os.environ.get('VGAN_JAX_NOTEBOOK_SMALL') == '1'  # CI: the smallest nets, a few steps

CONFIG = 'test' if SMALL else 'actions'  # 'paper' for the paper's model (a GPU)
# UCF101: the folder holding UCF-101/ and ucfTrainTestlist/, used when it is there (on Colab,
# on your Google Drive); otherwise the synthetic actions below.
UCF101_DIR = '/content/drive/MyDrive/UCF101'
GAN_WORKDIR = None  # a GAN work directory trained with CONFIG's sizes; None: train one here
GAN_STEPS = 3 if SMALL else 600  # unlabeled GAN training steps (one D, one G update each)
FRACTIONS = (0.5, 1.0) if SMALL else (0.125, 0.25, 1.0)  # of each class's labeled videos
SEEDS = (0,) if SMALL else (0, 1, 2)  # classifier seeds (and label draws) per fraction
EPOCHS = 2 if SMALL else 40  # classifier training epochs
CLASSIFIER_BATCH = 8 if SMALL else 16
# The synthetic actions (5 classes): videos per class, their length and size.
TRAIN_PER_CLASS, TEST_PER_CLASS = (4, 2) if SMALL else (24, 8)
SYNTHETIC_FRAMES, SYNTHETIC_SIZE = (24, 32) if SMALL else (48, 48)
PREPARE_WORKERS = os.cpu_count() or 1  # processes decoding UCF101 for the GAN (synthetic: 1)
MOUNT_DRIVE = IN_COLAB and not SMALL  # UCF101 and the work on Google Drive

# %%
if MOUNT_DRIVE:
  from google.colab import drive  # pylint: disable=g-import-not-at-top
  drive.mount('/content/drive')

import jax
import numpy as np
from IPython import display

from data_pipeline import clips, prepare, ucf101
from experiments import evaluation, notebook, tasks, training
from vgan_jax import configs, sampling

notebook.setup()
USE_UCF101 = all(os.path.isdir(os.path.join(UCF101_DIR, folder))
                 for folder in (ucf101.VIDEOS, ucf101.LISTS))
WORKDIR = notebook.work_directory(
    f'representation_learning_{CONFIG}_{"ucf101" if USE_UCF101 else "synthetic_actions"}')
config = configs.get_config(CONFIG)
config.num_steps = GAN_STEPS
config.classifier.num_epochs = EPOCHS
config.classifier.batch_size = CLASSIFIER_BATCH
print(f'JAX {jax.__version__} on {jax.device_count()} {jax.devices()[0].platform} device(s); '
      f'work directory {WORKDIR}')

# %% [markdown]
# ## Data
# UCF101 when `UCF101_DIR` holds it, else the synthetic actions, written once into the work
# directory in UCF101's layout (`UCF-101/<Class>/v_<Class>_gXX_cYY.avi` and the split lists in
# `ucfTrainTestlist/`; split 1 only). Below: one training video of each of the first classes.

# %%
if USE_UCF101:
  DATA_DIR = UCF101_DIR
else:
  DATA_DIR = os.path.join(WORKDIR, 'synthetic_ucf')
  if not os.path.exists(os.path.join(DATA_DIR, ucf101.LISTS, 'testlist01.txt')):
    ucf101.write_synthetic_ucf(DATA_DIR, train_per_class=TRAIN_PER_CLASS,
                               test_per_class=TEST_PER_CLASS, frames=SYNTHETIC_FRAMES,
                               size=SYNTHETIC_SIZE)
classes = ucf101.read_class_index(DATA_DIR)
train_videos = ucf101.read_split(DATA_DIR, 1, 'train')
test_videos = ucf101.read_split(DATA_DIR, 1, 'test')
print(f'{"UCF101" if USE_UCF101 else "Synthetic actions"} in {DATA_DIR}: {len(classes)} classes, '
      f'split 1: {len(train_videos)} training and {len(test_videos)} test videos.')

examples = {}
for video in train_videos:
  name = classes[video.label]
  if name not in examples and len(examples) < 5:
    examples[name] = ucf101.load_video(os.path.join(DATA_DIR, ucf101.VIDEOS, video.path),
                                       config.model.size, max_frames=48)
notebook.show_videos(examples, fps=12)

# %% [markdown]
# ## The GAN, trained without labels
# The training videos of split 1 (and only those: the test videos stay unseen) become clips of
# the model's length and size (`data_pipeline.prepare`, as `python -m experiments.prepare_data`
# does; not stabilized), and the two-stream GAN trains on them, labels unused. Skipped when
# `GAN_WORKDIR` names a GAN trained elsewhere; rerun after an interruption and it resumes.

# %%
if GAN_WORKDIR is None:
  clips_dir = os.path.join(WORKDIR, 'clips')
  scene = 'ucf101' if USE_UCF101 else 'actions'
  clip_options = clips.ClipOptions(frames=config.model.frames, size=config.model.size,
                                   stride=config.model.frames // 2, stabilize=False)
  summary = prepare.prepare_videos(
      [os.path.join(DATA_DIR, ucf101.VIDEOS, video.path) for video in train_videos], clips_dir,
      scene, clip_options, workers=PREPARE_WORKERS if USE_UCF101 else 1)
  print('\n'.join(summary.lines()))
  gan_config = config.copy_and_resolve_references()
  gan_config.data.scene, gan_config.data.data_dir = scene, clips_dir
  gan_dir = os.path.join(WORKDIR, 'gan')
  state = tasks.train_gan(gan_config, gan_dir)
  training.check_finished(state, gan_config.num_steps, gan_dir)
  print(f'Trained to step {int(state.step)}.')
else:
  gan_dir = GAN_WORKDIR
trunk = evaluation.load_gan_trunk(gan_dir, config)

# %% [markdown]
# Eight of its samples: what the discriminator learnt to tell from the real videos.

# %%
trained_config, gan, gan_state = sampling.load_model(gan_dir, step=None, conditional=False)
_, raw = sampling.generated_samples(gan, gan_state, trained_config, num_samples=8, seed=0,
                                    batch_size=8)
notebook.show_videos({f'sample {i}': video
                      for i, video in enumerate(sampling.as_uint8_streams(raw)['video'])},
                     columns=8, pixels=96)

# %% [markdown]
# ## Action classifiers
# The discriminator without its last layer (the *trunk*) with a K-way softmax on top and dropout
# on the penultimate layer, trained on random windows of a seeded fraction of each class's
# labeled training videos and tested on split 1's test videos (each predicted as the mean over
# `config.classifier.test_windows` evenly spaced windows):
# - `gan_finetune`: the GAN's trunk, every layer trained;
# - `random_finetune`: the same net from random init;
# - `gan_linear`: a linear classifier on the GAN's frozen features;
# - `random_linear`: a linear classifier on frozen random features.
#
# Each run keeps its checkpoints under `WORKDIR/classifiers` (a rerun tests the finished ones
# again instead of training them again); the decoded videos are cached in `WORKDIR/cache`.

# %%
METHODS = [(init, mode) for mode in configs.CLASSIFIER_MODES for init in configs.CLASSIFIER_INITS]
results = {}  # {(init, mode): {fraction: [top-1 per seed]}}
for init, mode in METHODS:
  for fraction in FRACTIONS:
    for seed in SEEDS:
      result, _ = evaluation.evaluate_split(
          config, DATA_DIR, 1, init, mode, trunk if init == 'gan' else None, fraction, seed,
          os.path.join(WORKDIR, 'classifiers', f'seed{seed}'), progress=False,
          cache_dir=os.path.join(WORKDIR, 'cache'))
      results.setdefault((init, mode), {}).setdefault(fraction, []).append(result['top1'])
      print(f'{init}_{mode}, {fraction:g} of the labels ({result["train_videos"]} videos, '
            f'{result["steps"]} steps), seed {seed}: top-1 {100 * result["top1"]:.1f}% of '
            f'{result["test_videos"]} test videos')

# %% [markdown]
# ## Results
# Top-1 accuracy on split 1's test videos, the mean (± the standard deviation) over the seeds;
# chance is one over the number of classes.

# %%
header = ('| method | ' + ' | '.join(f'{fraction:g} of labels' for fraction in FRACTIONS) + ' |\n'
          + '|---' * (len(FRACTIONS) + 1) + '|\n')
rows = ''.join(
    f'| {init}_{mode} | ' + ' | '.join(
        f'{100 * np.mean(runs):.1f} ± {100 * np.std(runs):.1f}'
        for runs in results[init, mode].values()) + ' |\n'
    for init, mode in METHODS)
display.display(display.Markdown(header + rows + f'\nChance: {100 / len(classes):.1f}%.'))

# %% [markdown]
# ## Figures 4b and 4c
# Figure 4b: top-1 accuracy against the fraction of labeled training videos, VGAN init and
# random init; Figure 4c: the relative gain of VGAN init, `(VGAN - random) / random`
# (`evaluation.plot_sweep`, the figures `python -m experiments.evaluate --sweep` writes). The
# paper's figures fine-tune; the second pair is the same for the linear classifiers.

# %%
figure_paths = {}
for mode in configs.CLASSIFIER_MODES:
  table = {init: {f'{fraction:g}': {'top1': float(np.mean(runs))}
                  for fraction, runs in results[init, mode].items()}
           for init in configs.CLASSIFIER_INITS}
  figure_paths[mode] = evaluation.plot_sweep(table, list(FRACTIONS),
                                             os.path.join(WORKDIR, 'figures', mode))
for mode, caption in (('finetune', "Fine-tuned (the paper's Figures 4b and 4c)"),
                      ('linear', 'Linear classifiers on frozen features')):
  print(f'{caption}: {", ".join(figure_paths[mode])}')
  display.display(*[display.Image(filename=path, width=400) for path in figure_paths[mode]])
