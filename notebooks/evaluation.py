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
# # vgan_jax evaluation: FVD, the model comparison and a human study
#
# How good are the videos of *Generating Videos with Scene Dynamics* (Vondrick, Pirsiavash,
# Torralba, NIPS 2016)? This notebook measures a generator three ways:
#
# 1. **FVD of a trained model against its data.** It trains a two-stream generator (or loads
#    yours) and computes the Fréchet Video Distance and the Kernel Video Distance of its samples
#    against the clips it was trained on, printed with their protocol (clips a side, frames,
#    frame size, where the real clips came from): FVD moves with all of them.
# 2. **The paper's comparison at a small budget**: two-stream, one-stream and the autoencoder +
#    Gaussian mixture baseline trained with one budget on one scene, each measured with FVD, KVD
#    and how its videos move, as a table.
# 3. **A human study from two models.** The paper's evidence is people choosing the more realistic
#    of two videos (Table 1). The notebook builds such a two-alternative forced-choice study from
#    the comparison's two-stream and one-stream runs and real clips (nothing trains twice), plays
#    a few of its trials, answers it with simulated raters to show the Table-1 analysis, and says
#    how to serve it to real people.
#
# **Time.** As set here (the `comparison` config's nets: 16 frames of 32x32, width 16, batch 16;
# 300 steps for each of the three models; FVD with 64 clips a side of 16 frames; a study of 20
# trials a pair): about 10 minutes on a 2-core CPU (Colab's CPU runtime has 2), measured: the
# two-stream training 2.5 minutes, its FVD 2, the comparison (one-stream and the baseline
# trained, three models measured) 5.5, the study a few seconds. On a GPU or TPU runtime: not
# measured yet. CI runs this notebook in a small mode (`VGAN_JAX_NOTEBOOK_SMALL=1`: the `test`
# config, 2 steps, 4 clips a side of 9 frames, a tiny study) in about a minute (65 s measured
# on 2 cores with empty caches, 42 s with the compilation cache warm).
#
# **Your own data and models** go in the *Settings* cell: `DATA_DIR` (a folder of prepared
# shards, `DATA_DIR/SCENE/*.tfrecord`, see `prepare_data`) with `SCENE` naming the scene folder,
# and `GAN_WORKDIR`, the work directory of a two-stream (or one-stream) model you trained, to
# measure in Section 1 instead of the one trained here (its real clips are those of its own
# config's data).

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

CONFIG = 'test' if SMALL else 'comparison'  # the nets and data sizes of every run
SCENE = 'golf'  # built-in: beach, golf, train_station, babies; or a prepared folder's name
DATA_DIR = None  # a folder of prepared shards (DATA_DIR/SCENE/*.tfrecord); None: the built-in scene
GAN_WORKDIR = None  # a trained model's work directory to measure in Section 1; None: train one
STEPS = 2 if SMALL else 300  # training steps of each model of the comparison
SEEDS = [0]  # training seeds of the comparison (more seeds: mean ± std, and more time)
FVD_CLIPS = 4 if SMALL else 64  # clips a side (the field reports 2048: ~1 hour of I3D on 2 cores)
FVD_FRAMES = 9 if SMALL else 16  # their first frames (I3D needs 9 or more)
I3D_BATCH = 4 if SMALL else 8  # clips I3D takes at once (one size throughout: one compile)
STUDY_PER_PAIR = 2 if SMALL else 20  # trials per pair (and clips per system)
STUDY_ATTENTION_CHECKS = 2 if SMALL else 5  # real clip against noise, per scene
SIMULATED_RATERS = 10 if SMALL else 30
BOOTSTRAP = 20 if SMALL else 1000  # bootstrap samples of the Bradley-Terry intervals
MOUNT_DRIVE = IN_COLAB and not SMALL  # keep the work on Google Drive: it outlives the runtime

# %%
if MOUNT_DRIVE:
  from google.colab import drive  # pylint: disable=g-import-not-at-top
  drive.mount('/content/drive')

import copy
import json

import jax
from IPython import display

from experiments import human_study, model_comparison, notebook, study_analysis, tasks
from experiments import video_sources
from vgan_io import files
from vgan_jax import configs, sampling
from vgan_jax.metrics import fvd

notebook.setup()
WORKDIR = notebook.work_directory(f'evaluation_{CONFIG}_{SCENE}_{STEPS}steps')
COMPARISON_DIR = os.path.join(WORKDIR, 'comparison')
STUDY_DIR = os.path.join(WORKDIR, 'study')

# The comparison's budget: CONFIG's nets and data, STEPS steps, FVD_CLIPS clips a side of
# FVD_FRAMES frames (in small mode model_comparison.quick_config: the test nets, a 2-component
# mixture on 8 clips for the baseline).
BASE = configs.get_config(CONFIG)
if SMALL:
  BASE = model_comparison.quick_config(BASE)
BASE.data.scene, BASE.data.data_dir = SCENE, DATA_DIR
BASE.num_steps, BASE.fvd_clips, BASE.fvd_frames = STEPS, FVD_CLIPS, FVD_FRAMES
configs.validate(BASE)
print(f'JAX {jax.__version__} on {jax.device_count()} {jax.devices()[0].platform} device(s); '
      f'work directory {WORKDIR}')

# %% [markdown]
# ## 1. FVD of a trained model against its data
# Without `GAN_WORKDIR`, a two-stream generator (Eq. 2: `G(z) = m f + (1 - m) b`) trains for
# `STEPS` steps in the work directory the comparison below uses for its two-stream run, so the
# comparison measures it rather than training it again. Rerun the cell and it resumes (or, when
# done, just loads the last checkpoint).

# %%
if GAN_WORKDIR is None:
  two_stream_run = model_comparison.Run(SCENE, 'two_stream', SEEDS[0])
  MODEL_DIR = os.path.join(COMPARISON_DIR, two_stream_run.name)
  state = tasks.train_gan(model_comparison.run_config(BASE, two_stream_run), MODEL_DIR)
  print(f'Trained to step {int(state.step)} in {MODEL_DIR}.')
else:
  MODEL_DIR = os.path.expanduser(GAN_WORKDIR)
model_config, _, state = sampling.load_model(MODEL_DIR, step=None, conditional=False)
print(f'{MODEL_DIR}: a {model_config.model.generator} generator at step {int(state.step)}, '
      f'{model_config.model.frames} frames of {model_config.model.size}x{model_config.model.size}, '
      f'trained on {model_config.data.scene!r}'
      f'{" in " + model_config.data.data_dir if model_config.data.data_dir else " (built in)"}.')

# %% [markdown]
# FVD as the reference computes it (`vgan_jax/metrics/fvd.py`): uint8 frames resized to 224x224,
# I3D's 400 Kinetics logits averaged over time, the Fréchet distance of the two Gaussians; KVD the
# kernel (MMD) distance of the same features. Lower is closer to the real clips. The real clips
# are the first `FVD_CLIPS` training clips of the data the model trained on (its saved config's
# scene and data folder, seed 0), as the training loop's FVD hook and the comparison below take
# them (their features are cached, so the comparison reuses these); the generated ones are
# `FVD_CLIPS` samples of seed `config.seed + 2`, as the comparison draws them, so for the model
# trained here this is the number of the comparison's two-stream row. Any source
# `experiments/video_sources.py` reads (a work directory, a shard folder, a folder of video
# files, an `.npz`, a built-in scene) can stand on either side with the command
# `python -m experiments.fvd --real=... --fake=... --num_videos=... --frames=...`.

# %%
FEATURES = fvd.I3DFeatures(I3D_BATCH)  # compiled once, for clips of FVD_FRAMES frames
measured = copy.deepcopy(model_config)
measured.seed, measured.fvd_clips, measured.fvd_frames = 0, FVD_CLIPS, FVD_FRAMES
real_features = tasks.real_fvd_features(measured, FEATURES)
fake_videos, fake_where = video_sources.load_videos(MODEL_DIR, FVD_CLIPS, FVD_FRAMES,
                                                    seed=model_config.seed + 2)
result = fvd.distances(real_features, FEATURES(fake_videos))
data = model_config.data
real_where = (f'the shards of {data.scene!r} in {data.data_dir}' if data.data_dir
              else f'the built-in synthetic {data.scene!r} scene (data_pipeline/synthetic.py)')
size = model_config.model.size
print(f'real: the first {FVD_CLIPS} training clips (seed 0) of {real_where}, frames '
      f'[{size}, {size}]')
print(f'fake: {fake_where}, frames {list(fake_videos.shape[2:4])}')
print(f'protocol: {FVD_CLIPS} clips a side, their first {FVD_FRAMES} frames; {fvd.FEATURES}')
print(f'KVD = {result["kvd"]:.4f}')
print(f'FVD = {result["fvd"]:.2f}')

# %% [markdown]
# Clips of the data (top) and the generated clips measured (bottom), as I3D gets them (before
# its resize).

# %%
REAL_SOURCE = os.path.join(data.data_dir, data.scene) if data.data_dir else data.scene
real_videos, _ = video_sources.load_videos(REAL_SOURCE, 4, FVD_FRAMES, seed=0, size=size)
notebook.show_videos({**{f'real {i}': video for i, video in enumerate(real_videos)},
                      **{f'generated {i}': video for i, video in enumerate(fake_videos[:4])}},
                     columns=4)

# %% [markdown]
# ## 2. One-stream, two-stream and the autoencoder baseline
# `model_comparison.compare` trains each model of `model_comparison.MODELS` on `SCENE` for every
# seed of `SEEDS` with the same budget (a run done is skipped: here the two-stream run of Section
# 1), then measures `FVD_CLIPS` samples of each against the same real clips. The autoencoder
# baseline decodes codes drawn from a Gaussian mixture fitted on its training clips' codes with
# the two-stream generator as its decoder. Besides FVD and KVD the table says how the videos move:
# the temporal variance of the pixels (0: a still picture; the `real` row is the scale), and for
# two-stream decoders the mask's mean and how much the background's part moves. The table is also
# written to `COMPARISON_DIR/summary.md`. The paper ranked them two-stream ≳ one-stream >
# autoencoder with people; at a small budget FVD need not agree (see the README).

# %%
summary = model_comparison.compare(BASE, [SCENE], list(model_comparison.MODELS), SEEDS,
                                   COMPARISON_DIR, batch_size=I3D_BATCH)
display.display(display.Markdown(model_comparison.markdown_table(summary)))

# %% [markdown]
# ## 3. A human study from two models
# A two-alternative forced-choice study ("Which video is more realistic?") of the comparison's
# two-stream and one-stream runs (seed `SEEDS[0]`) and the real clips, as
# `python -m experiments.study build` makes it: each pair gets `STUDY_PER_PAIR` trials, left and
# right drawn at random; `real_still` (each real clip's first frame, repeated) is the sanity row
# the paper had too; the attention checks show a real clip against noise. The folder holds
# `study.json` (every trial and where each system's clips came from) and `videos/*.mp4`, whose
# names tell raters nothing. Rebuilding the same study writes only what is missing.

# %%
run_dirs = {model: os.path.join(COMPARISON_DIR, model_comparison.Run(SCENE, model, SEEDS[0]).name)
            for model in ('two_stream', 'one_stream')}
study_sources = [f'{model}@{SCENE}={folder}' for model, folder in run_dirs.items()] + [
    f'real@{SCENE}={os.path.join(DATA_DIR, SCENE) if DATA_DIR else SCENE}']
study_pairs = ['two_stream:one_stream', 'two_stream:real', 'one_stream:real', 'real:real_still']
options = human_study.BuildOptions(
    per_pair=STUDY_PER_PAIR, seed=0, frames=BASE.model.frames, size=BASE.model.size, scale=4,
    attention_checks=STUDY_ATTENTION_CHECKS, still=True)
built = human_study.build(study_sources, study_pairs, STUDY_DIR, options)
for key, where in built['sources'].items():
  print(f'{key}: {where}')
print(f'{built["trials"]} trials ({built["attention_trials"]} attention checks), '
      f'{built["videos"]} videos ({built["written"]} written) in {STUDY_DIR}.')

# %% [markdown]
# Two of its trials as a rater sees them: the study's own video files, looping (here with the
# systems named; the page names none).

# %%
import mediapy  # pylint: disable=g-import-not-at-top (notebook extra)

study = human_study.load_study(STUDY_DIR)
pixels = study['video']['size'] * study['video']['scale']
for trial in [trial for trial in study['trials'] if trial['kind'] == 'pair'][:2]:
  print(f'{trial["id"]} ({trial["scene"]}): {study["question"]}')
  display.display(display.HTML('<div style="display:flex; gap:16px;">' + ''.join(
      mediapy.html_from_compressed_video(
          pathlib.Path(STUDY_DIR, trial[side]['video']).read_bytes(), pixels, pixels,
          title=f'{side}: {trial[side]["system"]}') for side in ('left', 'right')) + '</div>'))

# %% [markdown]
# ### Simulated raters and the Table-1 analysis
# Before real people answer, simulated raters try the analysis (`python -m experiments.study
# simulate`): the attentive ones pass every attention check and prefer the first system of a pair
# with the probability given below (made up for the demonstration: it says nothing about these
# models), a fifth answer at random and so fail checks. The analysis (`experiments.study analyze`)
# gives Table 1: per pair the % preferring the first system with its Wilson 95% interval and
# binomial p, for the raters who passed the attention checks and for all, and a Bradley-Terry
# ranking with bootstrap intervals. It also writes `table1.md`, `.csv`, `.png` and
# `analysis.json` to `STUDY_DIR/analysis`.

# %%
preferences = {('two_stream', 'one_stream'): 0.6, ('two_stream', 'real'): 0.2,
               ('one_stream', 'real'): 0.15, ('real', 'real_still'): 0.9}
records = human_study.simulated_answers(study, preferences, SIMULATED_RATERS, careless=0.2,
                                        seed=0)
answers_path = os.path.join(STUDY_DIR, 'simulated_answers.jsonl')
files.write_text(answers_path, ''.join(json.dumps(record) + '\n' for record in records))
print(f'{len(records)} answers of {SIMULATED_RATERS} simulated raters in {answers_path}.')
analysis, written = study_analysis.run(STUDY_DIR, [answers_path], None, bootstrap=BOOTSTRAP)
display.display(display.Markdown(study_analysis.markdown(analysis)))
display.display(display.Image(filename=os.path.join(STUDY_DIR, 'analysis', 'table1.png')))

# %% [markdown]
# ### Serving the study to real people
# The notebook starts no server. On a computer with a checkout of the project and the study
# folder (on Colab, download `STUDY_DIR` from Google Drive), serve its page with the commands the
# next cell prints. It listens on 127.0.0.1, so only that computer can reach it (`--host=0.0.0.0`
# opens it to the lab's network). Each participant enters a code, sees two looping videos side by
# side and answers with F/J (or the arrows or buttons); every answer is appended to
# `STUDY_DIR/answers.jsonl` before the next trial, and `analyze` reads that file by default. For
# crowdsourcing, `export --format=mturk --base_url=...` writes an MTurk batch and task template
# (or `--format=prolific`), and `analyze` reads MTurk's results CSV with `--answers=`. For a real
# study use more trials per pair (`STUDY_PER_PAIR`; the paper had 13,000 judgements from 150
# workers) and give it a seed of its own.

# %%
print(f"""python -m experiments.study serve --study={STUDY_DIR}    # then open http://127.0.0.1:8000
python -m experiments.study analyze --study={STUDY_DIR}  # its answers.jsonl""")
