"""The paper's human study (Table 1): "Which video is more realistic?", two videos at a time.

  python -m experiments.study build --source=two_stream@golf=runs/golf \\
      --source=autoencoder@golf=runs/golf_baseline --source=real@golf=data/golf \\
      --pairs=two_stream:autoencoder,two_stream:real --per_pair=100 --still --output=studies/golf
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

analyze: Table 1 (rows "prefer A over B", a column per scene and their pooled mean, each cell's %
with n, Wilson 95% interval and two-sided binomial p), for the raters who passed the attention
checks and for all; a Bradley-Terry ranking with bootstrap intervals over raters. It prints them
and writes table1.md, table1.csv, table1.png and analysis.json to --output (default
STUDY/analysis); see experiments/study_analysis.py.

With no --source and no --pairs, build makes a demo study of the built-in beach and golf scenes'
clips against their still frames in runs/study.
"""

import functools
import logging
import os
import sys

from absl import flags

from experiments import common

COMMANDS = ('build', 'analyze')
DEMO_SOURCES = ['real@beach=beach', 'real@golf=golf']
DEMO_PAIRS = ['real:real_still']
DEFAULT_STUDY = os.path.join('runs', 'study')

_SOURCE = flags.DEFINE_multi_string('source', [], 'build: NAME[@SCENE]=SOURCE, repeated.')
_PAIRS = flags.DEFINE_list('pairs', [], 'build: A:B,A:C,...: who is compared with whom.')
_PER_PAIR = flags.DEFINE_integer('per_pair', 10, 'build: trials per pair and scene (and clips '
                                 'per system and scene).')
_OUTPUT = flags.DEFINE_string('output', None, f'build: the study folder (default '
                              f'{DEFAULT_STUDY}); analyze: the folder of the tables (default '
                              'STUDY/analysis).')
_SEED = flags.DEFINE_integer('seed', 0, 'build: seed of model samples, sides, trial order and '
                             'noise; analyze: seed of the bootstrap.')
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
_STUDY = flags.DEFINE_string('study', DEFAULT_STUDY, 'analyze: the study folder.')
_ANSWERS = flags.DEFINE_multi_string('answers', [], 'analyze: a local results file (JSON lines) '
                                     'or an MTurk results CSV, repeated (default: '
                                     'STUDY/answers.jsonl).')
_MIN_ACCURACY = flags.DEFINE_float('min_attention_accuracy', 1.0, 'analyze: raters who answered '
                                   'attention checks and passed a smaller share are excluded.')
_BOOTSTRAP = flags.DEFINE_integer('bootstrap', 1000, 'analyze: bootstrap samples of raters for '
                                  'the Bradley-Terry intervals.')

OPTIONS = {
    'build': ('source', 'pairs', 'per_pair', 'output', 'seed', 'frames', 'size', 'scale',
              'attention_checks', 'attention_source', 'attention_distractor', 'still'),
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


def analyze() -> None:
  from experiments import study_analysis  # pylint: disable=g-import-not-at-top
  analysis, paths = study_analysis.run(_STUDY.value, _ANSWERS.value, _OUTPUT.value,
                                       _MIN_ACCURACY.value, _BOOTSTRAP.value, _SEED.value)
  print(study_analysis.markdown(analysis))
  print(f'Written to {", ".join(paths)}.')


def main(command: str) -> None:
  check_options(command)
  {'build': build, 'analyze': analyze}[command]()


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
