"""The paper's human study (Table 1): "Which video is more realistic?", two videos at a time.

  python -m experiments.study build --source=two_stream@golf=runs/golf \\
      --source=autoencoder@golf=runs/golf_baseline --source=real@golf=data/golf \\
      --pairs=two_stream:autoencoder,two_stream:real --per_pair=100 --still --output=studies/golf
  python -m experiments.study serve --study=studies/golf     # then open http://127.0.0.1:8000
  python -m experiments.study export --study=studies/golf --format=mturk \\
      --base_url=https://my-bucket.s3.amazonaws.com/golf
  python -m experiments.study analyze --study=studies/golf --answers=studies/golf/answers.jsonl \\
      --answers=mturk_results.csv

build: each --source=NAME[@SCENE]=SOURCE is a system's videos of a scene (no @SCENE: the scene
'all'): a training work directory (samples of its generator, or of the autoencoder + GMM
baseline), a shard folder, a folder of video files, an .npz or a built-in scene
(experiments/video_sources.py). Each pair A:B of --pairs gets --per_pair trials in every scene
where both have a source; --still adds NAME_still (the first frame repeated) for every NAME;
--attention_checks per scene show a real clip (--attention_source, default the first source
named real...) against noise or a frozen frame. It writes the study folder --output: study.json
(the trials, left and right seeded) and videos/*.mp4 (H.264, enlarged --scale times).
experiments/human_study.py documents the folder and the answers files.

serve: the study's page for a lab session (experiments/study_server.py): a participant code, two
looping videos side by side, keys F/J (or arrows) or buttons, a progress count; each answer is
appended to --answers (default STUDY/answers.jsonl) and flushed to disk before the next trial.
It listens on --host (127.0.0.1: this computer only; 0.0.0.0 for other computers of the lab) and
--port, serves only the page and the study's videos, and checks every answer. --participants
(a file or a comma list) restricts the codes; --completion_code is shown at the end (Prolific).

export: --format=mturk writes a batch CSV and the task's HTML template (videos uploaded to
--base_url); --format=prolific the study link and completion code for Prolific, whose
participants use the served page (experiments/study_export.py). Into --output (default
STUDY/export/FORMAT).

simulate: answers of simulated raters to the study (--raters, --careless of them answering at
random, --prefer=A:B=P), to try the analysis before a real session: written to --output (default
STUDY/simulated_answers.jsonl).

analyze: Table 1 (rows "prefer A over B", a column per scene and their pooled mean, each cell's %
with n, Wilson 95% interval and two-sided binomial p), for the raters who passed the attention
checks and for all; a Bradley-Terry ranking with bootstrap intervals over raters. It prints them
and writes table1.md, table1.csv, table1.png and analysis.json to --output (default
STUDY/analysis); see experiments/study_analysis.py.

With no --source and no --pairs, build makes a demo study of the built-in beach and golf scenes'
clips against their still frames in runs/study.
"""

import functools
import json
import logging
import os
import sys

from absl import flags

from experiments import common

COMMANDS = ('build', 'serve', 'export', 'simulate', 'analyze')
DEMO_SOURCES = ['real@beach=beach', 'real@golf=golf']
DEMO_PAIRS = ['real:real_still']
DEFAULT_STUDY = os.path.join('runs', 'study')

_SOURCE = flags.DEFINE_multi_string('source', [], 'build: NAME[@SCENE]=SOURCE, repeated.')
_PAIRS = flags.DEFINE_list('pairs', [], 'build: A:B,A:C,...: who is compared with whom.')
_PER_PAIR = flags.DEFINE_integer('per_pair', 10, 'build: trials per pair and scene (and clips '
                                 'per system and scene).')
_OUTPUT = flags.DEFINE_string('output', None, f'build: the study folder (default '
                              f'{DEFAULT_STUDY}); export: the folder of its files (default '
                              'STUDY/export/FORMAT); simulate: the answers file; analyze: the '
                              'folder of the tables (default STUDY/analysis).')
_SEED = flags.DEFINE_integer('seed', 0, 'build: seed of model samples, sides, trial order and '
                             'noise; simulate: seed of the answers; analyze: seed of the '
                             'bootstrap.')
_FRAMES = flags.DEFINE_integer('frames', 32, 'build: frames a clip, from its start.')
_SIZE = flags.DEFINE_integer('size', 64, 'build: frame size of video files and built-in scenes; '
                             'every clip is shown at size * scale pixels.')
_SCALE = flags.DEFINE_integer('scale', 4, 'build: enlargement for viewing (nearest neighbour).')
_ATTENTION_CHECKS = flags.DEFINE_integer('attention_checks', 5, 'build: attention-check trials '
                                         'per scene (0: none).')
_ATTENTION_SOURCE = flags.DEFINE_string('attention_source', None, 'build: the system of the '
                                        'checks\' real clips (default: the first named real...).')
_ATTENTION_DISTRACTOR = flags.DEFINE_enum('attention_distractor', 'noise',
                                          ['noise', 'frozen', 'both'], 'build: what the real clip '
                                          'of a check is shown against.')
_STILL = flags.DEFINE_bool('still', False, 'build: add NAME_still (the first frame repeated) for '
                           'every NAME, usable in --pairs.')
_STUDY = flags.DEFINE_string('study', DEFAULT_STUDY, 'serve, export, analyze: the study folder.')
_ANSWERS = flags.DEFINE_multi_string('answers', [], 'serve: the results file to append to; '
                                     'analyze: a local results file (JSON lines) or an MTurk '
                                     'results CSV, repeated (default: STUDY/answers.jsonl).')
_HOST = flags.DEFINE_string('host', '127.0.0.1', 'serve: the address to listen on (127.0.0.1: '
                            'this computer only; 0.0.0.0: every network interface).')
_PORT = flags.DEFINE_integer('port', 8000, 'serve: the port (0: any free one).')
_PARTICIPANTS = flags.DEFINE_string('participants', None, 'serve: the participant codes allowed '
                                    '(a file, one a line, or a comma list; default: any code).')
_COMPLETION_CODE = flags.DEFINE_string('completion_code', None, 'serve: a code shown when a '
                                       'participant is done (Prolific); export prolific: the '
                                       'code (default: a new random one).')
_RATERS = flags.DEFINE_integer('raters', 20, 'simulate: simulated raters.')
_CARELESS = flags.DEFINE_float('careless', 0.2, 'simulate: the share of raters who answer at '
                               'random (and so fail attention checks).')
_PREFER = flags.DEFINE_multi_string('prefer', [], 'simulate: A:B=P, attentive raters prefer A '
                                    'over B with probability P (default 0.5), repeated.')
_FORMAT = flags.DEFINE_enum('format', None, ['mturk', 'prolific'], 'export: the platform.')
_BASE_URL = flags.DEFINE_string('base_url', None, 'export: the public address of the uploaded '
                                'study folder (mturk) or of the served page (prolific).')
_MIN_ACCURACY = flags.DEFINE_float('min_attention_accuracy', 1.0, 'analyze: raters who answered '
                                   'attention checks and passed a smaller share are excluded.')
_BOOTSTRAP = flags.DEFINE_integer('bootstrap', 1000, 'analyze: bootstrap samples of raters for '
                                  'the Bradley-Terry intervals.')

OPTIONS = {
    'build': ('source', 'pairs', 'per_pair', 'output', 'seed', 'frames', 'size', 'scale',
              'attention_checks', 'attention_source', 'attention_distractor', 'still'),
    'serve': ('study', 'answers', 'host', 'port', 'participants', 'completion_code'),
    'export': ('study', 'format', 'base_url', 'output', 'completion_code'),
    'simulate': ('study', 'raters', 'careless', 'prefer', 'output', 'seed'),
    'analyze': ('study', 'answers', 'output', 'seed', 'min_attention_accuracy', 'bootstrap'),
}


def check_options(command: str) -> None:
  """ValueError for a flag of this module that `command` does not take."""
  for name in sorted({name for names in OPTIONS.values() for name in names}):
    if flags.FLAGS[name].present and name not in OPTIONS[command]:
      raise ValueError(f'{command} takes no --{name} (it takes '
                       f'{", ".join("--" + option for option in OPTIONS[command])}).')


def build() -> None:
  from experiments import human_study  # pylint: disable=g-import-not-at-top
  sources, pairs, still = _SOURCE.value, _PAIRS.value, _STILL.value
  if not sources and not pairs:
    sources, pairs, still = DEMO_SOURCES, DEMO_PAIRS, True
    logging.info('No --source or --pairs: a demo study, %s against their still frames.',
                 ' and '.join(DEMO_SOURCES))
  elif not sources or not pairs:
    raise ValueError('give both --source and --pairs (or neither, for the demo study).')
  options = human_study.BuildOptions(
      per_pair=_PER_PAIR.value, seed=_SEED.value, frames=_FRAMES.value, size=_SIZE.value,
      scale=_SCALE.value, attention_checks=_ATTENTION_CHECKS.value,
      attention_source=_ATTENTION_SOURCE.value,
      attention_distractor=_ATTENTION_DISTRACTOR.value, still=still)
  output = _OUTPUT.value or DEFAULT_STUDY
  summary = human_study.build(sources, pairs, output, options)
  for key, description in summary['sources'].items():
    print(f'{key}: {description}')
  state = {'new': '', 'resume': ' (a build cut short, completed)',
           'same': ' (it held this study already; missing videos written)'}[summary['state']]
  print(f'{summary["trials"]} trials ({summary["attention_trials"]} attention checks), '
        f'{summary["videos"]} videos ({summary["written"]} written) in {output}{state}.')
  print(f'Study: {summary["study"]}')


def serve() -> None:
  from experiments import study_server  # pylint: disable=g-import-not-at-top
  from werkzeug import serving  # pylint: disable=g-import-not-at-top
  if len(_ANSWERS.value) > 1:
    raise ValueError('serve takes one --answers file (the one it appends to).')
  app = study_server.create_app(
      _STUDY.value, _ANSWERS.value[0] if _ANSWERS.value else None,
      study_server.read_participants(_PARTICIPANTS.value), _COMPLETION_CODE.value)
  if _HOST.value not in ('127.0.0.1', 'localhost', '::1'):
    logging.warning('--host=%s: the study is reachable from other computers.', _HOST.value)
  try:
    server = serving.make_server(_HOST.value, _PORT.value, app, threaded=True)
  except OSError as error:
    raise ValueError(f'--host={_HOST.value} --port={_PORT.value}: cannot listen ({error}).')
  host = f'[{_HOST.value}]' if ':' in _HOST.value else _HOST.value
  print(f'Study {_STUDY.value} at http://{host}:{server.server_port}/ (answers: '
        f'{app.answer_log.path}); Ctrl-C to stop.', flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()
    app.answer_log.close()


def export() -> None:
  from experiments import study_export  # pylint: disable=g-import-not-at-top
  if _FORMAT.value is None:
    raise ValueError('export needs --format=mturk or --format=prolific.')
  output = _OUTPUT.value or os.path.join(_STUDY.value, 'export', _FORMAT.value)
  if _FORMAT.value == 'mturk':
    if _COMPLETION_CODE.value is not None:
      raise ValueError('--completion_code is for --format=prolific (MTurk pays per HIT).')
    paths = study_export.export_mturk(_STUDY.value, _BASE_URL.value, output)
    print(f'Upload {_STUDY.value}/videos to {_BASE_URL.value}/videos, then create an MTurk '
          f'project with the template {paths[1]} and publish the batch {paths[0]}.')
  else:
    paths, code = study_export.export_prolific(_STUDY.value, _BASE_URL.value, output,
                                               _COMPLETION_CODE.value)
    print(f'Completion code {code}; the study link and serve command are in {paths[0]}.')


def parse_preference(text: str) -> tuple[tuple[str, str], float]:
  """--prefer=A:B=P -> ((A, B), P); ValueError unless P is a probability."""
  from experiments import human_study  # pylint: disable=g-import-not-at-top
  pair, _, value = text.rpartition('=')
  try:
    probability = float(value)
  except ValueError:
    probability = -1.0
  if not pair or not 0 <= probability <= 1:
    raise ValueError(f'--prefer={text}: give A:B=P with P in [0, 1].')
  return human_study.parse_pair(pair), probability


def simulate() -> None:
  from experiments import human_study  # pylint: disable=g-import-not-at-top
  from vgan_io import files  # pylint: disable=g-import-not-at-top
  study = human_study.load_study(_STUDY.value)
  preferences = dict(parse_preference(text) for text in _PREFER.value)
  systems = {name for pair in study['pairs'] for name in pair}
  for a, b in preferences:
    if a not in systems or b not in systems:
      raise ValueError(f'--prefer={a}:{b}: the study compares {", ".join(sorted(systems))}.')
  if _RATERS.value < 1 or not 0 <= _CARELESS.value <= 1:
    raise ValueError('--raters must be 1 or more and --careless in [0, 1].')
  records = human_study.simulated_answers(study, preferences, _RATERS.value, _CARELESS.value,
                                          _SEED.value)
  output = _OUTPUT.value or os.path.join(_STUDY.value, 'simulated_answers.jsonl')
  files.write_text(output, ''.join(json.dumps(record) + '\n' for record in records))
  print(f'{len(records)} answers of {_RATERS.value} simulated raters in {output}.')


def analyze() -> None:
  from experiments import study_analysis  # pylint: disable=g-import-not-at-top
  analysis, paths = study_analysis.run(_STUDY.value, _ANSWERS.value, _OUTPUT.value,
                                       _MIN_ACCURACY.value, _BOOTSTRAP.value, _SEED.value)
  print(study_analysis.markdown(analysis))
  print(f'Written to {", ".join(paths)}.')


def main(command: str) -> None:
  check_options(command)
  {'build': build, 'serve': serve, 'export': export, 'simulate': simulate,
   'analyze': analyze}[command]()


def split_command(argv: list[str]) -> tuple[str | None, list[str]]:
  """(the subcommand, argv without it); (None, argv) for a help flag. Exits with one line for a
  missing or unknown subcommand."""
  if len(argv) > 1 and argv[1] in ('-h', '--help', '--helpshort', '--helpfull'):
    return None, argv
  if len(argv) < 2 or argv[1] not in COMMANDS:
    given = ('no subcommand' if len(argv) < 2 or argv[1].startswith('-')
             else f'unknown subcommand {argv[1]!r}')
    sys.exit(f'study: {given}; use python -m experiments.study {"|".join(COMMANDS)} [--flags].')
  return argv[1], argv[:1] + argv[2:]


if __name__ == '__main__':
  _command, sys.argv = split_command(sys.argv)
  common.run(functools.partial(main, _command), 'study', jax_runtime=_command == 'build')
