"""The statistics of the paper's human study (Table 1) without flags: experiments/study.py analyze.

From a study (experiments/human_study.py) and its answers:
  - raters who fail attention checks are excluded: those who answered at least one check and got
    a smaller share of them right than `min_accuracy` (default 1: any failed check);
  - Table 1: for every pair A:B as the study gives it, the row "prefer A over B": in each scene
    and pooled over the scenes (the `mean` column, with more than one scene: every judgement
    weighs the same, so it is the scenes' mean when they have equal numbers of judgements, as a
    balanced study has), the % of judgements preferring A with its number of judgements n, a
    Wilson score 95% interval (Wilson 1927; scipy's `BinomTestResult.proportion_ci`) and the
    two-sided exact binomial test against 50% (scipy.stats.binomtest: the probability, under
    50%, of every count no more likely than the one seen); once for the attentive raters and
    once for all, as the paper checked that excluding raters does not change it;
  - a Bradley-Terry ranking of every system (Bradley & Terry 1952: P(i preferred to j) =
    sigmoid(s_i - s_j)) from all the judgements, pooled over scenes: the maximum a posteriori
    log-strengths under a weak Gaussian prior N(0, prior_sd^2) (a logistic regression on +1/-1
    indicator differences without intercept, with an L2 penalty; it keeps a system that wins
    every comparison finite and puts the scores' origin at their mean), with percentile bootstrap
    intervals from resampling raters (with all their judgements) with replacement.
Outputs: table1.md, table1.csv (one line per cell), table1.png and analysis.json.
"""

import csv
import dataclasses
import io
import os

import numpy as np
from scipy import optimize, special, stats

from experiments import human_study
from vgan_io import files

CONFIDENCE = 0.95
MEAN = 'mean'  # the column pooled over scenes
ATTENTIVE, ALL = 'attentive', 'all'  # the two sets of raters every table is shown for
OUTPUTS = ('table1.md', 'table1.csv', 'table1.png', 'analysis.json')


@dataclasses.dataclass(frozen=True)
class Judgement:
  """A rater's answer to a pair trial: `first_preferred` when they chose pair[0]."""
  participant: str
  scene: str
  pair: tuple[str, str]
  first_preferred: bool


def judgements(study: dict, answers: list[human_study.Answer]) -> list[Judgement]:
  """The answers to the study's pair trials (attention trials left out), as Judgements."""
  trials = {trial['id']: trial for trial in study['trials']}
  found = []
  for answer in answers:
    trial = trials[answer.trial]
    if trial['kind'] != 'pair':
      continue
    chosen = trial[answer.choice]['system']
    found.append(Judgement(answer.participant, trial['scene'], tuple(trial['pair']),
                           chosen == trial['pair'][0]))
  return found


def attention_results(study: dict, answers: list[human_study.Answer]) -> dict[str, list[int]]:
  """participant -> [attention checks passed, attention checks answered], for every participant
  of `answers` ([0, 0] for one who answered none)."""
  trials = {trial['id']: trial for trial in study['trials']}
  results = {}
  for answer in answers:
    counts = results.setdefault(answer.participant, [0, 0])
    trial = trials[answer.trial]
    if trial['kind'] == 'attention':
      counts[0] += answer.choice == trial['expected']
      counts[1] += 1
  return results


def excluded_raters(attention: dict[str, list[int]], min_accuracy: float) -> list[str]:
  """The raters who answered at least one attention check and passed a share of them below
  `min_accuracy` (in [0, 1]), sorted. ValueError for `min_accuracy` outside [0, 1]."""
  if not 0 <= min_accuracy <= 1:
    raise ValueError(f'--min_attention_accuracy={min_accuracy}: must be in [0, 1].')
  return sorted(rater for rater, (passed, checks) in attention.items()
                if checks and passed < min_accuracy * checks)


def preference(preferred: int, n: int, confidence: float = CONFIDENCE) -> dict:
  """One cell: `preferred` of `n` judgements chose the first system. {preferred, n, percent,
  ci_low, ci_high (the Wilson score interval, in %), p_value (two-sided exact binomial test
  against 50%)}; percent, interval and p None when n is 0."""
  if not n:
    return dict(preferred=0, n=0, percent=None, ci_low=None, ci_high=None, p_value=None)
  test = stats.binomtest(preferred, n, 0.5, alternative='two-sided')
  interval = test.proportion_ci(confidence, method='wilson')
  return dict(preferred=int(preferred), n=int(n), percent=100 * preferred / n,
              ci_low=100 * float(interval.low), ci_high=100 * float(interval.high),
              p_value=float(test.pvalue))


def columns(study: dict) -> list[str]:
  """The table's columns: the scenes, and `MEAN` when there is more than one."""
  return list(study['scenes']) + ([MEAN] if len(study['scenes']) > 1 else [])


def preference_table(study: dict, found: list[Judgement]) -> list[dict]:
  """Table 1: per pair of `study['pairs']` (in order) {pair, label: 'prefer A over B', cells:
  {column: `preference` cell, or None where the pair has no trials}}."""
  shown = {(tuple(trial['pair']), trial['scene']) for trial in study['trials']
           if trial['kind'] == 'pair'}
  rows = []
  for pair in map(tuple, study['pairs']):
    cells, pooled = {}, [0, 0]
    for scene in study['scenes']:
      if (pair, scene) not in shown:
        cells[scene] = None
        continue
      votes = [j.first_preferred for j in found if j.pair == pair and j.scene == scene]
      cells[scene] = preference(sum(votes), len(votes))
      pooled = [pooled[0] + sum(votes), pooled[1] + len(votes)]
    if MEAN in columns(study):
      cells[MEAN] = preference(*pooled)
    rows.append(dict(pair=list(pair), label=f'prefer {pair[0]} over {pair[1]}', cells=cells))
  return rows


def systems_of(study: dict) -> list[str]:
  """Every system of the study's pairs, in the order they first appear there."""
  return list(dict.fromkeys(name for pair in study['pairs'] for name in pair))


def win_counts(found: list[Judgement], systems: list[str]) -> np.ndarray:
  """[m, m] float: [i, j] = how often systems[i] was preferred to systems[j]."""
  index = {name: i for i, name in enumerate(systems)}
  wins = np.zeros((len(systems), len(systems)))
  for judgement in found:
    a, b = (index[name] for name in judgement.pair)
    wins[(a, b) if judgement.first_preferred else (b, a)] += 1
  return wins


def bradley_terry(wins: np.ndarray, prior_sd: float = 2.0) -> np.ndarray:
  """Bradley-Terry log-strengths s [m] (mean 0) from a win-count matrix [m, m] ([i, j]: i
  preferred to j): the maximum of sum_ij wins_ij log sigmoid(s_i - s_j) - |s|^2 / (2 prior_sd^2)
  (scipy's BFGS with the exact gradient). The likelihood is a logistic regression on
  indicator differences; the prior makes the maximum unique and finite."""
  wins = np.asarray(wins, np.float64)

  def loss_and_gradient(scores):
    difference = scores[:, None] - scores[None, :]
    loss = -np.sum(wins * special.log_expit(difference)) + scores @ scores / (2 * prior_sd**2)
    pull = wins * special.expit(-difference)  # d(-log sigmoid(s_i - s_j)) / d s_i = -pull_ij
    return loss, pull.sum(0) - pull.sum(1) + scores / prior_sd**2

  # BFGS: L-BFGS-B's BLAS calls slow it 100-fold when other processes hold the cores.
  result = optimize.minimize(loss_and_gradient, np.zeros(len(wins)), jac=True, method='BFGS',
                             options=dict(gtol=1e-6, maxiter=1000))
  return result.x - result.x.mean()


def ranking(found: list[Judgement], systems: list[str], bootstrap: int, seed: int,
            prior_sd: float = 2.0) -> list[dict]:
  """The systems by Bradley-Terry score, best first: [{system, score, ci_low, ci_high (the
  percentile interval of `bootstrap` refits on raters drawn with replacement, seeded by `seed`;
  None without bootstrap), judgements, wins}]; [] without judgements."""
  if not found:
    return []
  raters = sorted({judgement.participant for judgement in found})
  per_rater = np.stack([win_counts([j for j in found if j.participant == rater], systems)
                        for rater in raters])
  wins = per_rater.sum(0)
  scores = bradley_terry(wins, prior_sd)
  rng = np.random.default_rng(seed)
  samples = np.array([
      bradley_terry(np.tensordot(np.bincount(rng.integers(len(raters), size=len(raters)),
                                             minlength=len(raters)), per_rater, 1), prior_sd)
      for _ in range(bootstrap)])
  tail = 100 * (1 - CONFIDENCE) / 2
  bounds = np.percentile(samples, [tail, 100 - tail], axis=0) if bootstrap else None
  rows = [dict(system=name, score=float(scores[i]),
               ci_low=None if bounds is None else float(bounds[0, i]),
               ci_high=None if bounds is None else float(bounds[1, i]),
               judgements=int(wins[i].sum() + wins[:, i].sum()), wins=int(wins[i].sum()))
          for i, name in enumerate(systems)]
  return sorted(rows, key=lambda row: -row['score'])


def analyze(study: dict, answers: list[human_study.Answer], min_accuracy: float = 1.0,
            bootstrap: int = 1000, seed: int = 0, prior_sd: float = 2.0,
            notes: tuple[str, ...] = ()) -> dict:
  """analysis.json's content: {question, columns, raters: {count, excluded, without_checks,
  min_attention_accuracy, attention: {rater: [passed, answered]}}, judgements: {attentive, all},
  tables: {attentive, all} (`preference_table`), ranking: {attentive, all} (`ranking`),
  bootstrap, seed, prior_sd, notes}. ValueError without answers or for a bad `min_accuracy` or
  `bootstrap`."""
  if not answers:
    raise ValueError('no answers to analyze.')
  if bootstrap < 0:
    raise ValueError(f'--bootstrap={bootstrap}: must be 0 or more.')
  attention = attention_results(study, answers)
  excluded = excluded_raters(attention, min_accuracy)
  every = judgements(study, answers)
  kept = [judgement for judgement in every if judgement.participant not in set(excluded)]
  systems = systems_of(study)
  sets = {ATTENTIVE: kept, ALL: every}
  return dict(
      question=study['question'], columns=columns(study),
      raters=dict(count=len(attention), excluded=excluded, min_attention_accuracy=min_accuracy,
                  without_checks=sum(not checks for _, checks in attention.values()),
                  attention=attention),
      judgements={name: len(found) for name, found in sets.items()},
      tables={name: preference_table(study, found) for name, found in sets.items()},
      ranking={name: ranking(found, systems, bootstrap, seed, prior_sd)
               for name, found in sets.items()},
      bootstrap=bootstrap, seed=seed, prior_sd=prior_sd, notes=list(notes))


def cell_text(cell: dict | None) -> str:
  """'70.0% (n=10) [39.7, 89.2] p=0.34'; '-' where the pair has no trials, 'n=0' without
  judgements."""
  if cell is None:
    return '-'
  if not cell['n']:
    return 'n=0'
  return (f'{cell["percent"]:.1f}% (n={cell["n"]}) [{cell["ci_low"]:.1f}, {cell["ci_high"]:.1f}]'
          f' p={cell["p_value"]:.2g}')


def _raters_line(analysis: dict) -> str:
  raters = analysis['raters']
  threshold = raters['min_attention_accuracy']
  return (f'{raters["count"]} raters; {len(raters["excluded"])} excluded (attention-check '
          f'accuracy below {100 * threshold:g}% on at least one check); '
          f'{raters["without_checks"]} answered no check and are kept.')


def markdown(analysis: dict) -> str:
  """Table 1 for attentive raters and for all, and the rankings, as Markdown."""
  names = {ATTENTIVE: 'attentive raters', ALL: 'all raters (none excluded)'}
  lines = [f'## Table 1: "{analysis["question"]}"', '', _raters_line(analysis), '',
           'Cells: % of judgements preferring the first system (n judgements) [Wilson 95% '
           'interval] p of the two-sided exact binomial test against 50%.'
           + (f' `{MEAN}`: all scenes\' judgements pooled.' if MEAN in analysis['columns']
              else '')]
  for name, title in names.items():
    lines += ['', f'### {title[0].upper() + title[1:]}: {analysis["judgements"][name]} '
              'judgements', '', '| | ' + ' | '.join(analysis['columns']) + ' |',
              '|---|' + '---:|' * len(analysis['columns'])]
    lines += [f'| {row["label"]} | ' + ' | '.join(
        cell_text(row['cells'][column]) for column in analysis['columns']) + ' |'
              for row in analysis['tables'][name]]
  for name, title in names.items():
    lines += ['', f'### Bradley-Terry ranking, {title}; {analysis["bootstrap"]} bootstrap '
              'samples of raters', '', 'Score: log-strength, mean 0; P(i preferred to j) = '
              '1 / (1 + exp(s_j - s_i)).', '',
              '| rank | system | score | 95% interval | judgements | wins |',
              '|---:|---|---:|---|---:|---:|']
    for rank, row in enumerate(analysis['ranking'][name], 1):
      interval = ('-' if row['ci_low'] is None else
                  f'[{row["ci_low"]:.2f}, {row["ci_high"]:.2f}]')
      lines.append(f'| {rank} | {row["system"]} | {row["score"]:.2f} | {interval} | '
                   f'{row["judgements"]} | {row["wins"]} |')
  lines += [''] + [f'Note: {note}.' for note in analysis['notes']]
  return '\n'.join(lines).rstrip('\n') + '\n'


def csv_text(analysis: dict) -> str:
  """Table 1 as CSV, one line per (raters, pair, column): raters (attentive|all), first,
  second, column, preferred, n, percent, ci_low, ci_high, p_value (empty when undefined)."""
  fields = ('preferred', 'n', 'percent', 'ci_low', 'ci_high', 'p_value')
  output = io.StringIO()
  writer = csv.writer(output, lineterminator='\n')
  writer.writerow(('raters', 'first', 'second', 'column') + fields)
  for name in (ATTENTIVE, ALL):
    for row in analysis['tables'][name]:
      for column in analysis['columns']:
        cell = row['cells'][column]
        if cell is not None:
          writer.writerow([name, *row['pair'], column] +
                          ['' if cell[field] is None else cell[field] for field in fields])
  return output.getvalue()


def plot(analysis: dict, path: str) -> None:
  """table1.png: per set of raters, each row's % per column with its Wilson interval (50%
  dashed), and the Bradley-Terry scores with their bootstrap intervals."""
  # A Figure of its own, not pyplot's: no global backend switch (a notebook's inline one stays).
  from matplotlib import figure as matplotlib_figure  # pylint: disable=g-import-not-at-top
  rows = analysis['tables'][ATTENTIVE]
  figure = matplotlib_figure.Figure(figsize=(15, 1.5 + 0.6 * max(len(rows), 3)))
  axes = figure.subplots(1, 3)
  count = len(analysis['columns'])
  offsets = np.linspace(-0.25, 0.25, count) if count > 1 else [0.0]
  for axis, name in zip(axes[:2], (ATTENTIVE, ALL)):
    for offset, column in zip(offsets, analysis['columns']):
      points = [(i + offset, row['cells'][column]) for i, row in enumerate(analysis['tables'][name])
                if row['cells'][column] and row['cells'][column]['n']]
      if points:
        y, cells = zip(*points)
        x = np.array([cell['percent'] for cell in cells])
        error = np.array([[cell['percent'] - cell['ci_low'], cell['ci_high'] - cell['percent']]
                          for cell in cells]).T
        axis.errorbar(x, y, xerr=error, fmt='o', capsize=3, label=column)
    axis.axvline(50, color='grey', linestyle='--', linewidth=1)
    axis.set(xlim=(0, 100), ylim=(len(rows) - 0.5, -0.5), yticks=range(len(rows)),
             xlabel='% preferring the first system',
             title=f'{name} raters ({analysis["judgements"][name]} judgements)')
    axis.set_yticklabels([row['label'] for row in rows])
    axis.legend(fontsize='small')
  axes[1].set_yticklabels([])
  ranked = analysis['ranking'][ATTENTIVE]
  if ranked:
    scores = np.array([row['score'] for row in ranked])
    low = np.array([row['score'] if row['ci_low'] is None else row['ci_low'] for row in ranked])
    high = np.array([row['score'] if row['ci_high'] is None else row['ci_high']
                     for row in ranked])
    axes[2].errorbar(scores, range(len(ranked)), xerr=[scores - low, high - scores], fmt='o',
                     capsize=3)
    axes[2].set(yticks=range(len(ranked)), ylim=(len(ranked) - 0.5, -0.5),
                xlabel='Bradley-Terry log-strength',
                title=f'ranking, attentive raters ({analysis["bootstrap"]} bootstraps)')
    axes[2].set_yticklabels([row['system'] for row in ranked])
  figure.suptitle(analysis['question'])
  figure.tight_layout()
  with files.atomic_path(path) as temporary:
    figure.savefig(temporary, dpi=100)


def write_outputs(analysis: dict, folder: str) -> list[str]:
  """table1.md, table1.csv, table1.png and analysis.json in `folder`, each atomically; their
  paths."""
  paths = [os.path.join(folder, name) for name in OUTPUTS]
  files.write_text(paths[0], markdown(analysis))
  files.write_text(paths[1], csv_text(analysis))
  plot(analysis, paths[2])
  files.write_json(paths[3], analysis)
  return paths


def run(study_folder: str, answer_paths: list[str] | None, output: str | None,
        min_accuracy: float = 1.0, bootstrap: int = 1000, seed: int = 0) -> tuple[dict, list[str]]:
  """The analyze subcommand: loads the study and its answers (default: STUDY/answers.jsonl),
  analyzes them and writes the outputs to `output` (default STUDY/analysis); (analysis, paths).
  Errors of human_study.load_study/load_answers and `analyze`."""
  study = human_study.load_study(study_folder)
  answer_paths = answer_paths or [os.path.join(study_folder, human_study.ANSWERS_FILE)]
  answers, notes = human_study.load_answers(study, answer_paths)
  analysis = analyze(study, answers, min_accuracy, bootstrap, seed, notes=tuple(notes))
  analysis['answers'] = list(answer_paths)
  return analysis, write_outputs(analysis, output or os.path.join(study_folder, 'analysis'))
