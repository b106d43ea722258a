"""A prepared clip folder as a TensorFlow Datasets dataset: `vgan_clips/SCENE`.

prepare_data writes OUTPUT/SCENE/*.tfrecord and OUTPUT/SCENE/manifest.json (data_pipeline/
shards.py). This builder reads them from TFDS's manual_dir (= OUTPUT) and writes them as the
TFDS dataset `vgan_clips`, one config per scene, split 'train', so that pipelines built on TFDS
(`tfds.load`, `tfds.data_source`, grain, ...) read the project's clips:

  tfds build data_pipeline/tfds_clips.py --config=beach --manual_dir=OUTPUT --data_dir=TFDS_DIR
  tfds build --imports=data_pipeline.tfds_clips vgan_clips/beach --manual_dir=OUTPUT ...

  import tensorflow_datasets as tfds
  from data_pipeline import tfds_clips  # registers vgan_clips
  dataset = tfds.load('vgan_clips/beach', split='train', data_dir=TFDS_DIR,
                      download_and_prepare_kwargs={
                          'download_config': tfds.download.DownloadConfig(manual_dir=OUTPUT)})
  builder = tfds_clips.build(OUTPUT, 'beach', TFDS_DIR)  # the same, as a function

Once built, `tfds.load('vgan_clips/beach', data_dir=TFDS_DIR)` also works without importing this
module (TFDS reads the dataset_info.json it wrote).

Configs: any scene name is a config, made when first asked for (`VganClips.get_builder_config`):
the built-in scenes are listed (`BUILDER_CONFIGS`, which `tfds build` needs to accept
`--config`), the others are made on the fly. TFDS limits config names to letters, digits and
`_+-.`; a folder named otherwise has to be renamed to be built.

Features per clip: 'video' uint8 [T, S, S, 3] (tfds.features.Video, each frame stored as PNG:
lossless, so a clip reads back exactly as `shards.read_shard` decodes its JPEG strip; about
twice the strip's bytes), 'scene', 'source' (the input video), 'start_frame', 'fps', 'label'
(-1 when none). The stabilization figures of each clip stay in the shards. Keys are
'SHARD_FILE:INDEX', so a rebuild of the same folder writes the same dataset.

The builder refuses what training refuses: a folder with the part manifests of a split
prepare_data run not merged yet, and a folder without manifest.json (not finished, or not
written by prepare_data), each with one ValueError naming the folder.
"""

import json
import os
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from data_pipeline import shards

NAME = 'vgan_clips'
SCENES = ('beach', 'golf', 'train_station', 'babies')  # the paper's, and the built-in synthetic
VERSION = '1.0.0'
RELEASE_NOTES = {VERSION: 'The clips of a prepare_data folder (manifest version 1).'}


def scene_folder(output: str, scene: str) -> str:
  """OUTPUT/SCENE."""
  return os.path.join(os.fspath(output), scene)


def _scenes_in(output: str) -> list[str]:
  """The sub-folders of `output` that hold a manifest.json or part manifests."""
  if not os.path.isdir(output):
    return []
  return [name for name in sorted(os.listdir(output))
          if os.path.exists(os.path.join(output, name, shards.MANIFEST))
          or shards.part_manifests(os.path.join(output, name))]


def listed_shards(output: str, scene: str) -> list[str]:
  """The shard files of OUTPUT/SCENE that its manifest lists, sorted by name.

  Raises ValueError, naming the folder, when it does not exist, holds the part manifests of a
  split prepare_data run (its shards are only some of the data until merged: the same refusal as
  `input_pipeline.check_source` before training), has no manifest.json, lists shards that are
  not there, or holds no clips.
  """
  folder = scene_folder(output, scene)
  if not os.path.isdir(folder):
    found = _scenes_in(output)
    holds = (f'it holds {", ".join(found)}' if found else
             'it holds no prepared scene' if os.path.isdir(output) else 'it does not exist')
    raise ValueError(f'No prepared clip folder {folder}: manual_dir must be the --output folder '
                     f'of prepare_data, holding {scene}/manifest.json and {scene}/*.tfrecord '
                     f'({holds}).')
  parts = shards.part_manifests(folder)
  if parts:
    raise ValueError(
        f'{folder} holds the parts of a split prepare_data run, not merged yet ({len(parts)} '
        f'part manifests such as {next(iter(parts))}): when every part has finished, merge them '
        f'with `python -m experiments.prepare_data --merge --output={output} --scene={scene}`, '
        'then build.')
  path = os.path.join(folder, shards.MANIFEST)
  if not os.path.exists(path):
    raise ValueError(f'{folder} has no {shards.MANIFEST}: not a finished prepare_data folder '
                     '(prepare_data writes it last; rerun it to finish the folder).')
  try:
    with open(path) as file:
      listed = json.load(file)['shards']
    names = sorted(listed)
  except (ValueError, KeyError, TypeError) as error:
    raise ValueError(f'{path} is not a manifest prepare_data wrote ({error}).') from None
  missing = [name for name in names if not os.path.exists(os.path.join(folder, name))]
  if missing:
    raise ValueError(f'{path} lists {len(missing)} shards that are not in {folder}, such as '
                     f'{missing[0]}: the folder is incomplete; rerun prepare_data on it.')
  if not sum(listed.values()):
    raise ValueError(f'{folder} holds no clips ({path} lists none): nothing to build.')
  return names


def clip_examples(folder: str, names: list[str]) -> Iterator[tuple[str, dict]]:
  """(key 'SHARD:INDEX', features) of each clip of the shards `names` in `folder`, in order."""
  for name in names:
    for index, record in enumerate(shards.read_shard(os.path.join(folder, name))):
      yield f'{name}:{index}', {
          'video': record['video'], 'scene': record['scene'], 'source': record['source'],
          'start_frame': record['start_frame'], 'fps': np.float32(record['fps']),
          'label': record['label']}


class VganClipsConfig(tfds.core.BuilderConfig):
  """One scene: the clips of OUTPUT/<name>."""


def scene_config(scene: str) -> VganClipsConfig:
  return VganClipsConfig(name=scene, version=VERSION, release_notes=RELEASE_NOTES,
                         description=f'The clips prepare_data wrote to OUTPUT/{scene}.')


class VganClips(tfds.core.GeneratorBasedBuilder):
  """The clips of a prepare_data output folder, one config per scene."""

  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = RELEASE_NOTES
  BUILDER_CONFIGS = [scene_config(scene) for scene in SCENES]
  DEFAULT_BUILDER_CONFIG_NAME = SCENES[0]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'manual_dir is the --output folder of `python -m experiments.prepare_data`: the config '
      'SCENE reads OUTPUT/SCENE/manifest.json and the shards it lists. Nothing is downloaded.')

  @classmethod
  def get_builder_config(cls, name: str, version=None) -> VganClipsConfig:
    # Any scene is a config: TFDS would otherwise accept only the names in BUILDER_CONFIGS.
    return super().get_builder_config(name, version) or scene_config(name)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description='Clips of scene videos prepared (stabilized, cut, scaled) by this project\'s '
                    'prepare_data, as in Vondrick et al. 2016, Generating Videos with Scene '
                    'Dynamics.',
        features=tfds.features.FeaturesDict({
            'video': tfds.features.Video((None, None, None, 3), encoding_format='png'),
            'scene': tfds.features.Text(),
            'source': tfds.features.Text(),
            'start_frame': tfds.features.Scalar(np.int64),
            'fps': tfds.features.Scalar(np.float32),
            'label': tfds.features.Scalar(np.int64),
        }),
        homepage='https://github.com/cvondrick/videogan',
    )

  def _split_generators(self, dl_manager):
    try:
      output = os.fspath(dl_manager.manual_dir)
    except AssertionError as error:  # TFDS's "Manual directory D does not exist or is empty."
      detail = str(error).split('. ')[0]  # (then its instructions, which would repeat ours)
      raise ValueError(f'{NAME}/{self.builder_config.name}: {detail}: manual_dir must be the '
                       '--output folder of prepare_data (tfds build --manual_dir=OUTPUT, or '
                       'DownloadConfig(manual_dir=OUTPUT)).') from None
    names = listed_shards(output, self.builder_config.name)
    return {'train': self._generate_examples(scene_folder(output, self.builder_config.name),
                                             names)}

  def _generate_examples(self, folder: str, names: list[str]):
    yield from clip_examples(folder, names)


def build(output: str, scene: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """Builds `vgan_clips/SCENE` from the prepare_data folder OUTPUT into the TFDS `data_dir`
  (once: a built one is kept) and returns its builder (`.as_dataset(split='train')`, ...)."""
  builder = VganClips(config=scene, data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(output)))
  return builder
