"""The paper's human study (Table 1) without flags: a two-alternative forced-choice study folder
built from video sources, and the answers people gave to it. experiments/study.py's work.

People see two videos side by side and answer "Which video is more realistic?" (Vondrick et al.
2016, Section 3.2 and Table 1: 13,000 opinions of 150 workers on Amazon Mechanical Turk, after
checking that removing careless workers does not change the ranking).

The study folder (format `VERSION`), self-contained, read by `serve`, `export` and `analyze`:

  STUDY/study.json     the manifest (written last: a folder without it is a build cut short)
    version            1
    question           "Which video is more realistic?"
    seed               the seed of the samples, of left/right, of the trial order and the noise
    video              {frames, fps, size, scale, codec}: every clip shown at size*scale pixels
    scenes             the scenes, in the order of the first --source naming each
    pairs              [[A, B], ...]: the comparisons as given ("prefer A over B")
    attention          {system, distractor, per_scene}: the checks (system null when none)
    systems            {SYSTEM@SCENE: {scene, system, source, description}}: every system a
                       trial shows, the still-frame variants and attention distractors included
                       (source null for the distractors)
    trials             [{id, kind, scene, left: {system, video}, right: {system, video}, pair,
                       expected}]: kind 'pair' (pair [A, B] as in `pairs`, expected null) or
                       'attention' (pair null, expected 'left' or 'right': the real clip's side);
                       `video` a path relative to STUDY; in a seeded random order, ids t001, ...
  STUDY/videos/HASH.mp4   H.264, yuv420p, 25 fps, nearest-neighbour enlarged; the page loops
                       them. HASH is a hash of the seed, scene, system and clip number: a rater
                       who sees a video's address learns nothing of its system (unless they know
                       the seed: give a crowdsourced study a --seed of its own)
  STUDY/answers.jsonl  the local results file (appended by `serve`), one JSON object a line:
                       {participant, trial, choice: 'left'|'right', submission (unique id),
                       time (ISO 8601), response_ms}

Answers also come as MTurk results CSVs: columns WorkerId, Input.trial_id, Answer.choice (one
trial per HIT row), AssignmentId (the submission id, when present) and AssignmentStatus (rows
'Rejected' are left out). `load_answers` reads both into `Answer` records.
"""

import csv
import dataclasses
import hashlib
import json
import logging
import os
import re
import zlib

import numpy as np
import tqdm

from vgan_io import files, media

VERSION = 1
QUESTION = 'Which video is more realistic?'
STUDY_FILE, VIDEO_DIR, ANSWERS_FILE = 'study.json', 'videos', 'answers.jsonl'
FPS = 25  # the paper's clips (and the authors' released ones) are 25 fps
ALL_SCENES = 'all'  # the scene of a --source given without @SCENE
STILL = '_still'  # NAME_still: the first frame of NAME's clips, repeated (--still)
DISTRACTORS = ('noise', 'frozen')  # attention checks: a real clip against one of these
CHOICES = ('left', 'right')
MTURK_COLUMNS = ('WorkerId', 'Input.trial_id', 'Answer.choice')
_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_-]*\Z')


@dataclasses.dataclass(frozen=True)
class Source:
  """`--source=SYSTEM[@SCENE]=SOURCE`: where a system's videos of a scene come from (any source
  of experiments/video_sources.py)."""
  system: str
  scene: str
  source: str

  @property
  def key(self) -> str:
    return f'{self.system}@{self.scene}'


@dataclasses.dataclass(frozen=True)
class BuildOptions:
  """What a study shows: `per_pair` trials per pair and scene (each system's first `per_pair`
  clips, drawn with `seed` from a model), clips of `frames` frames at `size` (video folders and
  built-in scenes are read at that size) shown at size*`scale` pixels; `attention_checks` per
  scene, `attention_source` (a system name; None: the first whose name starts with 'real'),
  `attention_distractor` 'noise', 'frozen' or 'both' (alternating); `still`: a NAME_still system
  for every NAME."""
  per_pair: int
  seed: int = 0
  frames: int = 32
  size: int = 64
  scale: int = 4
  attention_checks: int = 5
  attention_source: str | None = None
  attention_distractor: str = 'noise'
  still: bool = False


@dataclasses.dataclass(frozen=True)
class VideoJob:
  """One video file to write, number `index` of its system: clip `clip` of the system `base` in
  `scene`, as it is ('clip'), its first frame repeated ('still', 'frozen') or noise of its size
  ('noise')."""
  path: str
  index: int
  base: str
  scene: str
  clip: int
  kind: str


@dataclasses.dataclass(frozen=True)
class Answer:
  """One judgement: `participant` chose side `choice` of trial `trial`; `where` is FILE:LINE."""
  participant: str
  trial: str
  choice: str
  where: str


def _check_name(name: str, what: str, text: str) -> str:
  if not _NAME.match(name):
    raise ValueError(f'{text}: the {what} {name!r} must be letters, digits, _ and - (starting '
                     'with a letter or digit).')
  return name


def parse_source(text: str) -> Source:
  """'SYSTEM[@SCENE]=SOURCE' -> Source (scene `ALL_SCENES` without @SCENE). ValueError for a
  malformed text, a name with other characters than letters, digits, _ and -, or a name reserved
  for the attention checks (`DISTRACTORS`)."""
  name, separator, source = text.partition('=')
  if not separator or not name or not source:
    raise ValueError(f'--source={text}: give NAME=SOURCE or NAME@SCENE=SOURCE.')
  system, _, scene = name.partition('@')
  _check_name(system, 'name', f'--source={text}')
  if system in DISTRACTORS:
    raise ValueError(f'--source={text}: {system!r} names the attention checks\' distractor; '
                     'call the system something else.')
  return Source(system, _check_name(scene or ALL_SCENES, 'scene', f'--source={text}'), source)


def parse_pair(text: str) -> tuple[str, str]:
  """'A:B' -> (A, B). ValueError unless two different names."""
  names = text.split(':')
  if len(names) != 2 or not all(names) or names[0] == names[1]:
    raise ValueError(f'--pairs: {text!r} is not A:B with two different systems.')
  return names[0], names[1]


def check_pairs(pairs: list[tuple[str, str]], systems: dict[str, set[str]]) -> None:
  """ValueError for no pairs, a pair naming a system `systems` (name -> its scenes) lacks, a
  pair given twice (A:B and B:A are one comparison), or one whose systems share no scene."""
  if not pairs:
    raise ValueError('--pairs: give at least one pair A:B.')
  seen = set()
  for a, b in pairs:
    for name in (a, b):
      if name not in systems:
        hint = ' (--still adds NAME_still)' if name.endswith(STILL) else ''
        raise ValueError(f'--pairs: {a}:{b} names {name!r}, which no --source gives (systems: '
                         f'{", ".join(sorted(systems))}){hint}.')
    if frozenset((a, b)) in seen:
      raise ValueError(f'--pairs: {a}:{b} is given twice (A:B and B:A are one comparison).')
    seen.add(frozenset((a, b)))
    if not systems[a] & systems[b]:
      raise ValueError(f'--pairs: {a}:{b} has no scene where both have a source ({a}: '
                       f'{", ".join(sorted(systems[a]))}; {b}: {", ".join(sorted(systems[b]))}).')


def available_systems(sources: list[Source], still: bool) -> dict[str, set[str]]:
  """System name -> the scenes it has clips of, with the NAME_still variants when `still`.
  ValueError for a system given twice for a scene, or a still variant that clashes with a name."""
  systems: dict[str, set[str]] = {}
  for source in sources:
    if source.scene in systems.get(source.system, set()):
      raise ValueError(f'--source: {source.key} is given twice.')
    systems.setdefault(source.system, set()).add(source.scene)
  if still:
    for name in list(systems):
      if name + STILL in systems:
        raise ValueError(f'--still: {name + STILL} would be both a source and the still frames of '
                         f'{name}; rename the source.')
      systems[name + STILL] = set(systems[name])
  return systems


def attention_system(sources: list[Source], name: str | None, checks: int) -> str | None:
  """The system whose clips are the attention checks' real side: `name`, or the first source's
  whose name starts with 'real'; None without checks. ValueError when checks are asked for and
  there is no such source."""
  if checks < 0:
    raise ValueError(f'--attention_checks={checks}: must be 0 or more.')
  if not checks:
    return None
  names = [source.system for source in sources]
  if name is None:
    name = next((system for system in names if system.startswith('real')), None)
    if name is None:
      raise ValueError('attention checks need real clips: give a source named real... or '
                       '--attention_source=NAME (or --attention_checks=0 for none).')
  elif name not in names:
    raise ValueError(f'--attention_source={name}: no --source has that name.')
  return name


def base_system(name: str, names: set[str]) -> tuple[str, str]:
  """(the source system whose clips `name` shows, 'clip' or 'still'), for a name in `names` or a
  NAME_still variant of one."""
  if name not in names and name.endswith(STILL) and name[:-len(STILL)] in names:
    return name[:-len(STILL)], 'still'
  return name, 'clip'


def video_path(seed: int, scene: str, system: str, index: int) -> str:
  """The video's path relative to the study folder: videos/HASH.mp4, HASH 20 hex digits of the
  SHA-256 of the seed, scene, system and index (names that tell raters nothing)."""
  digest = hashlib.sha256(f'{seed}/{scene}/{system}/{index}'.encode()).hexdigest()[:20]
  return f'{VIDEO_DIR}/{digest}.mp4'


def plan_trials(scenes: list[str], pairs: list[tuple[str, str]],
                systems: dict[str, set[str]], sources: set[str], options: BuildOptions,
                attention: str | None) -> tuple[list[dict], dict[str, VideoJob]]:
  """The trials (in study.json's form) and the videos they show, from the seed alone.

  For each scene and each pair A:B with clips there, `per_pair` trials: A's clips and B's in two
  seeded random orders matched up, left and right drawn at random. Then, in each scene where the
  `attention` system has clips, `attention_checks` trials of its clip k (mod per_pair) against a
  distractor ('noise' or 'frozen': its first frame). All trials are then shuffled and numbered.
  `systems`: name -> scenes (available_systems); `sources`: the names given by --source.
  """
  rng = np.random.default_rng(options.seed)
  trials, jobs = [], {}

  def side(scene, system, index, base, kind, clip):
    path = video_path(options.seed, scene, system, index)
    jobs[path] = VideoJob(path, index, base, scene, clip, kind)
    return {'system': system, 'video': path}

  for scene in scenes:
    for pair in pairs:
      if not all(scene in systems[name] for name in pair):
        continue
      orders = [rng.permutation(options.per_pair) for _ in pair]
      for indices in zip(*orders):
        sides = [side(scene, name, int(index), *base_system(name, sources), int(index))
                 for name, index in zip(pair, indices)]
        if rng.integers(2):
          sides.reverse()
        trials.append(dict(kind='pair', scene=scene, left=sides[0], right=sides[1],
                           pair=list(pair), expected=None))
    if attention is None or scene not in systems[attention]:
      continue
    for k in range(options.attention_checks):
      distractor = ('frozen' if options.attention_distractor == 'frozen' or (
          options.attention_distractor == 'both' and k % 2) else 'noise')
      clip = k % options.per_pair
      sides = [side(scene, attention, clip, attention, 'clip', clip),
               side(scene, distractor, k, attention, distractor, clip)]
      real = int(rng.integers(2))
      if real:
        sides.reverse()
      trials.append(dict(kind='attention', scene=scene, left=sides[0], right=sides[1],
                         pair=None, expected=CHOICES[real]))
  order = rng.permutation(len(trials))
  width = max(3, len(str(len(trials))))
  return [dict(id=f't{i + 1:0{width}d}', **trials[j]) for i, j in enumerate(order)], jobs


def system_entries(trials: list[dict], sources: dict[str, Source], descriptions: dict[str, str],
                   frames: int) -> dict[str, dict]:
  """study.json's `systems`: SYSTEM@SCENE -> {scene, system, source, description} for every
  system a trial shows. `sources`/`descriptions`: by Source.key."""
  entries = {}
  for trial in trials:
    for side in (trial['left'], trial['right']):
      system, scene = side['system'], trial['scene']
      key = f'{system}@{scene}'
      if key in entries:
        continue
      base, kind = base_system(system, {source.system for source in sources.values()})
      if key in sources:
        source, description = sources[key].source, descriptions[key]
      elif kind == 'still':
        source = sources[f'{base}@{scene}'].source
        description = (f'the first frame of each clip, repeated {frames} times, of: '
                       f'{descriptions[f"{base}@{scene}"]}')
      elif system == 'noise':
        source, description = None, ('attention check: uniform random pixels, new each frame, '
                                     'at the size of the real clips')
      else:
        source, description = None, ('attention check: the first frame of the real clip it is '
                                     f'shown against, repeated {frames} times')
      entries[key] = dict(scene=scene, system=system, source=source, description=description)
  return entries


def manifest(sources: list[Source], descriptions: dict[str, str],
             pairs: list[tuple[str, str]], options: BuildOptions) -> tuple[dict, dict]:
  """(study.json's content, the video jobs) of a build; the same for the same arguments.
  `descriptions`: where each source's clips come from, by Source.key. ValueError for bad pairs,
  options or attention sources."""
  if options.per_pair < 1:
    raise ValueError(f'--per_pair={options.per_pair}: must be 1 or more.')
  if options.frames < 1 or options.size < 1 or options.scale < 1:
    raise ValueError('--frames, --size and --scale must be 1 or more.')
  if options.attention_distractor not in ('noise', 'frozen', 'both'):
    raise ValueError(f'--attention_distractor={options.attention_distractor}: noise, frozen or '
                     'both.')
  systems = available_systems(sources, options.still)
  check_pairs(pairs, systems)
  attention = attention_system(sources, options.attention_source, options.attention_checks)
  used = {name for pair in pairs for name in pair} | {attention}
  unused = [source.key for source in sources if source.system not in used and not (
      options.still and source.system + STILL in used)]
  if unused:
    raise ValueError(f'--source: {", ".join(unused)} {"are" if len(unused) > 1 else "is"} in no '
                     'pair of --pairs and not the attention checks\' source.')
  scenes = list(dict.fromkeys(source.scene for source in sources))
  names = {source.system for source in sources}
  trials, jobs = plan_trials(scenes, pairs, systems, names, options, attention)
  shown = {f'{job.base}@{job.scene}' for job in jobs.values()}
  for source in sources:
    if source.key not in shown:  # its pairs' other systems have no clips of its scene
      partners = sorted({other for pair in pairs for name, other in (pair, pair[::-1])
                         if base_system(name, names)[0] == source.system})
      raise ValueError(f'--source={source.key}: no trial shows it: none of the systems it is '
                       f'paired with ({", ".join(partners)}) has a source in {source.scene}.')
  by_key = {source.key: source for source in sources}
  study = dict(
      version=VERSION, question=QUESTION, seed=options.seed,
      video=dict(frames=options.frames, fps=FPS, size=options.size, scale=options.scale,
                 codec='h264'),
      scenes=[scene for scene in scenes if any(trial['scene'] == scene for trial in trials)],
      pairs=[list(pair) for pair in pairs],
      attention=dict(system=attention, distractor=options.attention_distractor,
                     per_scene=options.attention_checks if attention else 0),
      systems=system_entries(trials, by_key, descriptions, options.frames), trials=trials)
  return study, jobs


def study_text(study: dict) -> str:
  """study.json's bytes, as files.write_json writes them (so two builds compare as text)."""
  return json.dumps(study, indent=1, sort_keys=True) + '\n'


def _differences(old: dict, new: dict) -> str:
  keys = sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
  return ', '.join(keys) or 'formatting'


def check_output(folder: str, study: dict, jobs: dict[str, VideoJob]) -> str:
  """What `folder` holds: 'new' (nothing), 'same' (this very study: its videos are completed),
  'resume' (only videos of this study: a build cut short). ValueError for anything else: another
  study (naming what differs), or other files."""
  if not os.path.isdir(folder):
    if os.path.exists(folder):
      raise ValueError(f'--output={folder}: a file, not a folder.')
    return 'new'
  names = os.listdir(folder)
  if not names:
    return 'new'
  path = os.path.join(folder, STUDY_FILE)
  if os.path.isfile(path):
    with open(path, encoding='utf-8') as file:
      text = file.read()
    if text == study_text(study):
      return 'same'
    try:
      old = json.loads(text)
    except ValueError:
      old = {}
    raise ValueError(f'{folder} holds another study (its {STUDY_FILE} differs in: '
                     f'{_differences(old if isinstance(old, dict) else {}, study)}); give another '
                     '--output, or remove the folder to rebuild the study there.')
  videos = os.path.join(folder, VIDEO_DIR)
  expected = {os.path.basename(path) for path in jobs}
  if names == [VIDEO_DIR] and os.path.isdir(videos) and all(
      name in expected or files.PARTIAL in name for name in os.listdir(videos)):
    return 'resume'
  raise ValueError(f'--output={folder}: not empty and holds no study (it has '
                   f'{", ".join(sorted(names)[:3])}{", ..." if len(names) > 3 else ""}); give an '
                   'empty or new folder.')


def display_clip(clip: np.ndarray, pixels: int, where: str) -> np.ndarray:
  """uint8 [T, S, S, 3] -> [T, pixels, pixels, 3], enlarged by nearest neighbour (an integer
  factor). ValueError (naming `where`) for a clip that is not square or whose size does not
  divide `pixels`."""
  height, width = clip.shape[1:3]
  if height != width or pixels % height:
    raise ValueError(f'{where}: clips of {height}x{width} cannot be shown at {pixels}x{pixels} '
                     '(--size x --scale) by a whole factor.')
  return media.upscale(clip, pixels // height)


def still_clip(clip: np.ndarray) -> np.ndarray:
  """[T, H, W, C] -> the first frame repeated T times."""
  return np.repeat(clip[:1], len(clip), axis=0)


def noise_clip(shape: tuple[int, ...], seed: int, scene: str, index: int) -> np.ndarray:
  """uint8 uniform random pixels of `shape`, the same for the same seed, scene and index."""
  rng = np.random.default_rng([seed, zlib.crc32(scene.encode()), index])
  return rng.integers(0, 256, shape, dtype=np.uint8)


def render(job: VideoJob, clip: np.ndarray, seed: int) -> np.ndarray:
  """The frames of `job` from its base clip (uint8 [T, H, W, 3], before enlarging)."""
  if job.kind == 'noise':
    return noise_clip(clip.shape, seed, job.scene, job.index)
  if job.kind in ('still', 'frozen'):
    return still_clip(clip)
  return clip


def _open_source(source: Source, options: BuildOptions, count: int):
  """experiments/video_sources.VideoSource of `source`, imported here: it loads JAX and
  TensorFlow, which reading answers does not need."""
  from experiments import video_sources  # pylint: disable=g-import-not-at-top
  try:
    return video_sources.VideoSource(source.source, count, options.frames, options.seed,
                                     options.size)
  except (ValueError, OSError) as error:
    raise ValueError(f'--source={source.key}: {error}') from None


def build(source_texts: list[str], pair_texts: list[str], output: str,
          options: BuildOptions) -> dict:
  """Builds the study folder `output` (see the module docstring) from `--source` and `--pairs`
  texts; returns a summary {study (its study.json), trials, attention_trials, videos, written,
  state (`check_output`'s), sources (SYSTEM@SCENE -> where its clips came from)}.

  Sources are opened first (a model is loaded, files are listed), then the folder is checked
  (`check_output`), then each source's clips are read a batch at a time and written as videos,
  and study.json last. ValueError names the --source, pair, option or folder at fault.
  """
  sources = [parse_source(text) for text in source_texts]
  if not sources:
    raise ValueError('--source: give at least one NAME[@SCENE]=SOURCE.')
  pairs = [parse_pair(text) for text in pair_texts]
  # Planned once before any source is opened (bad pairs fail fast), again with their descriptions.
  _, jobs = manifest(sources, {source.key: '' for source in sources}, pairs, options)
  by_base: dict[str, list[VideoJob]] = {}
  for job in jobs.values():
    by_base.setdefault(f'{job.base}@{job.scene}', []).append(job)
  opened = {source.key: _open_source(source, options, 1 + max(
      job.clip for job in by_base[source.key])) for source in sources if source.key in by_base}
  descriptions = {key: videos.description for key, videos in opened.items()}
  study, jobs = manifest(sources, descriptions, pairs, options)
  state = check_output(output, study, jobs)
  pixels = options.size * options.scale
  written = 0
  with tqdm.tqdm(total=len(jobs), desc='videos', unit='video') as progress:
    for key, videos in opened.items():
      todo = [job for job in by_base[key]
              if state == 'new' or not os.path.isfile(os.path.join(output, job.path))]
      progress.update(len(by_base[key]) - len(todo))
      for index, clip in _clips(videos, key) if todo else ():
        for job in (job for job in todo if job.clip == index):
          frames = display_clip(render(job, clip, options.seed), pixels, f'--source={key}')
          media.write_h264(os.path.join(output, job.path), frames, FPS)
          written += 1
          progress.update()
  files.write_text(os.path.join(output, STUDY_FILE), study_text(study))
  return dict(study=os.path.join(output, STUDY_FILE), trials=len(study['trials']),
              attention_trials=sum(trial['kind'] == 'attention' for trial in study['trials']),
              videos=len(jobs), written=written, state=state,
              sources={key: videos.description for key, videos in opened.items()})


def _clips(videos, key: str):
  """(index, uint8 clip [T, H, W, 3]) of a VideoSource, a batch at a time; errors name `key`."""
  index = 0
  try:
    for batch in videos.batches():
      for clip in batch:
        yield index, clip
        index += 1
  except (ValueError, OSError) as error:
    raise ValueError(f'--source={key}: {error}') from None


def load_study(folder: str) -> dict:
  """STUDY/study.json as a dict. ValueError when it is missing, not JSON, or another version."""
  path = os.path.join(folder, STUDY_FILE)
  try:
    with open(path, encoding='utf-8') as file:
      study = json.load(file)
  except FileNotFoundError:
    raise ValueError(f'{path}: no such file; build the study first (study build).') from None
  except ValueError as error:
    raise ValueError(f'{path}: not JSON ({error}).') from None
  if not isinstance(study, dict) or study.get('version') != VERSION:
    raise ValueError(f'{path}: not a study of version {VERSION}.')
  return study


def _answer(fields: dict, trials: set[str], where: str) -> Answer:
  """An Answer from a record's participant, trial and choice; ValueError naming `where`."""
  participant, trial, choice = (fields.get(name) for name in ('participant', 'trial', 'choice'))
  if not isinstance(participant, str) or not participant.strip():
    raise ValueError(f'{where}: no participant.')
  if trial not in trials:
    raise ValueError(f'{where}: unknown trial {trial!r} (not in the study).')
  if choice not in CHOICES:
    raise ValueError(f'{where}: choice {choice!r} is not left or right.')
  return Answer(participant.strip(), trial, choice, where)


def read_jsonl(path: str, trials: set[str]) -> list[tuple[str, Answer]]:
  """(submission id, Answer) of each line of a local results file (blank lines skipped).
  ValueError naming FILE:LINE for a line that is not a JSON object with a participant, a trial of
  `trials`, a choice 'left' or 'right' and a submission id."""
  answers = []
  with open(path, encoding='utf-8') as file:
    for number, line in enumerate(file, 1):
      where = f'{path}:{number}'
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except ValueError as error:
        raise ValueError(f'{where}: not a JSON object ({error}).') from None
      if not isinstance(record, dict):
        raise ValueError(f'{where}: not a JSON object.')
      submission = record.get('submission')
      if not isinstance(submission, str) or not submission:
        raise ValueError(f'{where}: no submission id.')
      answers.append((submission, _answer(record, trials, where)))
  return answers


def read_mturk_csv(path: str, trials: set[str]) -> tuple[list[tuple[str, Answer]], int]:
  """((submission id, Answer) of each row, rows rejected) of an MTurk batch results CSV
  (`MTURK_COLUMNS`; the submission id is AssignmentId, or FILE:LINE without that column; rows
  whose AssignmentStatus is 'Rejected' are left out). ValueError naming the file for a missing
  column, or FILE:LINE for an unknown trial or a bad choice."""
  answers, rejected = [], 0
  with open(path, encoding='utf-8-sig', newline='') as file:
    reader = csv.DictReader(file)
    missing = [name for name in MTURK_COLUMNS if name not in (reader.fieldnames or [])]
    if missing:
      raise ValueError(f'{path}: not an MTurk results CSV (no column {", ".join(missing)}).')
    for row in reader:
      where = f'{path}:{reader.line_num}'
      if row.get('AssignmentStatus') == 'Rejected':
        rejected += 1
        continue
      fields = dict(participant=row['WorkerId'], trial=row['Input.trial_id'],
                    choice=(row['Answer.choice'] or '').strip().lower())
      answers.append((row.get('AssignmentId') or where, _answer(fields, trials, where)))
  return answers, rejected


def load_answers(study: dict, paths: list[str]) -> tuple[list[Answer], list[str]]:
  """(the judgements in `paths`, notes on what was left out). A .csv is an MTurk results CSV,
  anything else a local results file (JSON lines). A submission id seen before is recorded once;
  a participant's second answer to a trial (another submission) is left out too. Errors of
  `read_jsonl` and `read_mturk_csv`; ValueError for a file that does not exist."""
  trials = {trial['id'] for trial in study['trials']}
  seen_submissions, seen_judgements = set(), set()
  answers, repeated, again, rejected = [], 0, 0, 0
  for path in paths:
    if not os.path.isfile(path):
      raise ValueError(f'{path}: no such file.')
    if path.lower().endswith('.csv'):
      read, left_out = read_mturk_csv(path, trials)
      rejected += left_out
    else:
      read = read_jsonl(path, trials)
    for submission, answer in read:
      if submission in seen_submissions:
        repeated += 1
        continue
      seen_submissions.add(submission)
      if (answer.participant, answer.trial) in seen_judgements:
        again += 1
        continue
      seen_judgements.add((answer.participant, answer.trial))
      answers.append(answer)
  notes = [f'{count} {what} left out' for count, what in (
      (repeated, 'repeated submissions'), (again, 'second answers of a participant to a trial'),
      (rejected, 'rejected MTurk assignments')) if count]
  if notes:
    logging.info('answers: %s', '; '.join(notes))
  return answers, notes


def simulated_answers(study: dict, preferences: dict[tuple[str, str], float], raters: int,
                      careless: float = 0.0, seed: int = 0) -> list[dict]:
  """Answers (answers.jsonl records) of `raters` simulated raters to every trial, for tests and
  demos: the attentive ones pass every attention check and prefer A of a pair (A, B) with
  probability preferences[(A, B)] (1 - preferences[(B, A)]; else 0.5), independently; the
  round(careless * raters) careless ones (named careless-N, the others rater-N) answer every trial
  at random."""
  rng = np.random.default_rng(seed)
  count = int(round(careless * raters))
  names = [f'careless-{i + 1}' for i in range(count)] + [
      f'rater-{i + 1}' for i in range(raters - count)]
  records = []
  for number, name in enumerate(names):
    for trial in study['trials']:
      pair = tuple(trial['pair'] or ())
      if name.startswith('careless'):
        choice = CHOICES[int(rng.integers(2))]
      elif trial['kind'] == 'attention':
        choice = trial['expected']
      else:
        first = preferences.get(pair, 1 - preferences.get(pair[::-1], 0.5))
        wanted = pair[0] if rng.random() < first else pair[1]
        choice = 'left' if trial['left']['system'] == wanted else 'right'
      seconds = len(records)
      records.append(dict(participant=name, trial=trial['id'], choice=choice,
                          submission=f'sim-{seed}-{number}-{trial["id"]}',
                          time=f'2016-12-05T{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:'
                          f'{seconds % 60:02d}Z', response_ms=int(rng.integers(800, 4000))))
  return records
