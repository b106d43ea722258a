"""Prepares training data: videos (or the authors' released JPEG strips) -> stabilized clip shards.

  python -m experiments.prepare_data                                   # built-in demo videos
  python -m experiments.prepare_data --input=~/videos/beach --scene=beach --output=data
  python -m experiments.prepare_data --input='clips/*.mp4' --scene=golf --workers=8
  python -m experiments.prepare_data --from_list=golf.txt --root=frames-stable-many --scene=golf
  python -m experiments.prepare_data --input=clips --scene=golf --num_shards=16 --shard_index=3
  python -m experiments.prepare_data --merge --scene=golf         # when all 16 parts are done
  python -m experiments.prepare_data --input=clips --scene=golf \
      --scene_filter=my_places:classify --scene_categories=golf_course --scene_threshold=0.5
  python -m experiments.prepare_data --input=clips --scene=golf --runner=DirectRunner --workers=8
  python -m experiments.prepare_data --input=/mnt/videos --output=/mnt/data --scene=golf \
      --runner=DataflowRunner --pipeline_options="--project=P --region=R --temp_location=gs://B/t"

then `python -m experiments.train --data_dir=data --scene=beach`. With no --input it renders the
built-in scene (--scene, default beach) as shaky videos in OUTPUT/demo_videos/SCENE and prepares
those. Rerunning the same command skips the videos already done; an input that cannot be used is
skipped with one line naming it and the reason, and listed in OUTPUT/SCENE/manifest.json.
Split across machines, each of --num_shards processes (--shard_index 0 to K-1) takes its own
share of the inputs and writes its own part manifest; --merge combines them (data_pipeline/
prepare.py `Part`). With --runner, an Apache Beam runner does the per-input work instead of this
machine's process pool, with the same shards and manifest (data_pipeline/beam_prepare.py; needs
`pip install 'vgan_jax[beam]'`).
"""

import importlib

import os

from absl import flags, logging

from data_pipeline import clips, prepare, scene_filter, stabilize
from experiments import common

_INPUT = flags.DEFINE_multi_string('input', [], 'Video files, folders (searched recursively) or '
                                   'globs; repeat the flag for several.')
_FROM_LIST = flags.DEFINE_string('from_list', None, "The authors' released list file (one "
                                 '`path [label]` per line) of JPEG strips under --root.')
_ROOT = flags.DEFINE_string('root', None, 'Folder the --from_list paths are relative to '
                            "(default: the list file's folder).")
_OUTPUT = flags.DEFINE_string('output', 'data', 'Output folder; shards go to OUTPUT/SCENE/.')
_SCENE = flags.DEFINE_string('scene', None, 'Name of this data (the folder under --output that '
                             '`train --scene` reads); with no --input, the built-in scene to '
                             'render (default beach).')
_WORKERS = flags.DEFINE_integer('workers', os.cpu_count() or 1, 'Processes, one video each.')
_FRAMES = flags.DEFINE_integer('frames', 32, 'Frames per clip.')
_SIZE = flags.DEFINE_integer('size', 128, 'Stored clip side, px (training scales to its config).')
_FPS = flags.DEFINE_float('fps', 25.0, 'Frame rate clips are resampled to.')
_STRIDE = flags.DEFINE_integer('stride', 32, 'Frames between the starts of consecutive clips.')
_MAX_CLIPS = flags.DEFINE_integer('max_clips', 0, 'Clips per video at most (0: all).')
_STABILIZE = flags.DEFINE_bool('stabilize', True, 'Remove camera motion (the paper does).')
_FEATURES = flags.DEFINE_enum('features', 'sift', stabilize.FEATURES,
                              "sift (the authors') or flow (Lucas-Kanade: several times faster).")
_MOTION = flags.DEFINE_enum('motion', 'similarity', stabilize.MOTIONS, 'Camera motion model.')
_MAX_ERROR = flags.DEFINE_float('max_reprojection_error', 1.5, 'Mean inlier reprojection error '
                                '(px at --size) above which a video is cut into segments there.')
_MIN_BRIGHTNESS = flags.DEFINE_float('min_brightness', 0.0, 'Drop clips darker than this mean '
                                     'pixel value, 0-255 (0: keep all).')
_MIN_CONTRAST = flags.DEFINE_float('min_contrast', 0.0, 'Drop clips whose pixel standard '
                                   'deviation is below this (0: keep all).')
_MIN_MOTION = flags.DEFINE_float('min_motion', 0.0, 'Drop clips whose mean absolute frame '
                                 'difference is below this, 0-255 (0: keep all).')
_SCENE_FILTER = flags.DEFINE_string(
    'scene_filter', None, 'Keep only clips of the wanted scene, by your classifier: '
    'module:function, called with uint8 RGB frames [N, H, W, 3] and returning N {category: '
    'probability} maps (data_pipeline/scene_filter.py); e.g. wrapping a Places365 model.')
_SCENE_CATEGORIES = flags.DEFINE_list('scene_categories', [], 'With --scene_filter: the wanted '
                                      'categories, comma-separated, as the classifier names them.')
_SCENE_THRESHOLD = flags.DEFINE_float('scene_threshold', 0.5, 'With --scene_filter: keep clips '
                                      'whose mean (over sampled frames) summed probability of '
                                      'the wanted categories is at least this, in (0, 1].')
_QUALITY = flags.DEFINE_integer('quality', 95, 'JPEG quality of the stored strips.')
_CLIPS_PER_SHARD = flags.DEFINE_integer('clips_per_shard', prepare.CLIPS_PER_RELEASED_SHARD,
                                        'Released strips per shard (with --from_list).')
_DEMO_VIDEOS = flags.DEFINE_integer('demo_videos', 4, 'Videos to render with no --input.')
_PROGRESS = flags.DEFINE_bool('progress', True, 'Show a progress bar.')
_NUM_SHARDS = flags.DEFINE_integer('num_shards', 1, 'Split the inputs into this many parts, one '
                                   'per machine or array task (parts, not output shard files: '
                                   'each video still makes one shard); then --merge.')
_SHARD_INDEX = flags.DEFINE_integer('shard_index', 0, 'The part this process takes, 0 to '
                                    '--num_shards - 1 (e.g. $SLURM_ARRAY_TASK_ID).')
_RUNNER = flags.DEFINE_string('runner', None, 'Do the per-input work on this Apache Beam runner '
                             '(DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...) '
                             "instead of this machine's process pool; needs vgan_jax[beam].")
_PIPELINE_OPTIONS = flags.DEFINE_string('pipeline_options', '', 'With --runner: its pipeline '
                                        'options, passed to Beam as they are (e.g. "--project=P '
                                        '--region=R --temp_location=gs://B/tmp").')
_MERGE = flags.DEFINE_bool('merge', False, 'Combine the finished parts of a split run in '
                           'OUTPUT/SCENE into its manifest.json (an unsplit run there does too).')


def clip_options() -> clips.ClipOptions:
  """The flags as ClipOptions (ValueError names a bad value)."""
  return clips.ClipOptions(
      frames=_FRAMES.value, size=_SIZE.value, fps=_FPS.value, stride=_STRIDE.value,
      max_clips=_MAX_CLIPS.value, stabilize=_STABILIZE.value,
      stabilize_options=stabilize.StabilizeOptions(
          features=_FEATURES.value, motion=_MOTION.value,
          max_reprojection_error=_MAX_ERROR.value),
      min_brightness=_MIN_BRIGHTNESS.value, min_contrast=_MIN_CONTRAST.value,
      min_motion=_MIN_MOTION.value, scene_filter=_scene_filter())


def _scene_filter() -> scene_filter.SceneFilter | None:
  """--scene_filter and its companions (ValueError for a bad value or one given without it)."""
  if not _SCENE_FILTER.value:
    given = [f'--{name}' for name in ('scene_categories', 'scene_threshold')
             if flags.FLAGS[name].present]
    if given:
      verb = 'need' if len(given) > 1 else 'needs'
      raise ValueError(f'{" and ".join(given)} {verb} --scene_filter=module:function (the scene '
                       'classifier).')
    return None
  return scene_filter.SceneFilter(_SCENE_FILTER.value, tuple(_SCENE_CATEGORIES.value),
                                  _SCENE_THRESHOLD.value)


def executor() -> prepare.Executor:
  """The process pool, or with --runner a Beam pipeline (ValueError without Apache Beam)."""
  if not _RUNNER.value:
    if _PIPELINE_OPTIONS.value:
      raise ValueError('--pipeline_options are for a Beam runner: give --runner too.')
    return prepare.run_in_processes
  try:
    beam_prepare = importlib.import_module('data_pipeline.beam_prepare')
  except ImportError as error:
    raise ValueError(f'--runner={_RUNNER.value} needs Apache Beam ({error}): pip install '
                     "'vgan_jax[beam]' (or make install EXTRAS=beam).") from None
  return beam_prepare.BeamExecutor(_RUNNER.value, _PIPELINE_OPTIONS.value)


def run() -> prepare.Summary:
  """Does what the flags say; errors that stop the whole run are ValueError or OSError."""
  if _INPUT.value and _FROM_LIST.value:
    raise ValueError('Give --input (videos) or --from_list (released strips), not both.')
  if not 1 <= _QUALITY.value <= 100 or _WORKERS.value < 1 or _CLIPS_PER_SHARD.value < 1:
    raise ValueError('--quality must be 1-100, --workers and --clips_per_shard at least 1.')
  if _MERGE.value:
    given = [f'--{name}' for name in ('input', 'from_list', 'num_shards', 'shard_index', 'runner')
             if flags.FLAGS[name].present]
    if given:
      raise ValueError(f'--merge combines the parts already in OUTPUT/SCENE: give it --output and '
                       f'--scene only, not {", ".join(given)}.')
    return prepare.merge_parts(_OUTPUT.value, _SCENE.value or 'beach')
  part = prepare.Part(_SHARD_INDEX.value, _NUM_SHARDS.value)  # ValueError for bad values
  work = executor()
  if (_INPUT.value or _FROM_LIST.value) and not _SCENE.value:
    raise ValueError('--scene is required with --input or --from_list: it names the data (the '
                     'folder under --output that `train --scene` reads).')
  if _FROM_LIST.value:
    if _SCENE_FILTER.value:
      raise ValueError('--scene_filter judges clips cut from videos (--input); the released strips '
                       '(--from_list) were filtered by their authors already.')
    root = _ROOT.value or os.path.dirname(os.path.abspath(_FROM_LIST.value))
    return prepare.prepare_released(_FROM_LIST.value, root, _OUTPUT.value, _SCENE.value,
                                     workers=_WORKERS.value, clips_per_shard=_CLIPS_PER_SHARD.value,
                                     progress=_PROGRESS.value, part=part, executor=work)
  options = clip_options()
  inputs = _INPUT.value
  if not inputs:
    scene = _SCENE.value or 'beach'
    demo_folder = os.path.join(_OUTPUT.value, 'demo_videos', scene)
    logging.info('No --input: rendering %d shaky %s videos into %s.', _DEMO_VIDEOS.value, scene,
                 demo_folder)
    inputs = prepare.render_demo_videos(demo_folder, scene, count=_DEMO_VIDEOS.value)
  return prepare.prepare_videos(inputs, _OUTPUT.value, _SCENE.value or 'beach', options,
                                workers=_WORKERS.value, quality=_QUALITY.value,
                                progress=_PROGRESS.value, part=part, executor=work)


def main():
  for line in run().lines():
    logging.info('%s', line)
    print(line)


if __name__ == '__main__':
  common.run(main, 'prepare_data', jax_runtime=False)
