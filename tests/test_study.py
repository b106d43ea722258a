"""The human study (Table 1): building a study folder, reading answers, the statistics, the CLI."""

import csv
import json
import math
import os
import statistics
import subprocess
import sys

import av
import numpy as np
import pytest

from experiments import human_study, study_analysis

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fake_npz(path, clips=5, frames=10, size=16, seed=0):
  videos = np.random.default_rng(seed).integers(0, 256, (clips, frames, size, size, 3), np.uint8)
  np.savez(path, video=videos)
  return str(path)


def _options(**changes):
  values = dict(per_pair=3, frames=10, size=16, scale=2, attention_checks=2,
                attention_distractor='both', still=True)
  values.update(changes)
  return human_study.BuildOptions(**values)


def _build(tmp_path, output='study', pairs=('fake:real', 'real:real_still'), **changes):
  sources = [f'fake@golf={_fake_npz(tmp_path / "fake.npz")}', 'real@golf=golf']
  folder = str(tmp_path / output)
  return human_study.build(sources, list(pairs), folder, _options(**changes)), folder


def _frames(path):
  with av.open(path) as container:
    assert container.streams.video[0].codec_context.name == 'h264'
    return np.stack([frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)])


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp('study')
  summary, folder = _build(tmp_path)
  return tmp_path, summary, folder, human_study.load_study(folder)


def test_build_writes_the_trials_and_videos_that_decode(built):
  _, summary, folder, study = built
  pairs = [trial for trial in study['trials'] if trial['kind'] == 'pair']
  checks = [trial for trial in study['trials'] if trial['kind'] == 'attention']
  assert study['question'] == 'Which video is more realistic?' and study['version'] == 1
  assert study['pairs'] == [['fake', 'real'], ['real', 'real_still']]
  assert [sum(trial['pair'] == pair for trial in pairs) for pair in study['pairs']] == [3, 3]
  assert len(checks) == 2 and summary['trials'] == 8 and summary['attention_trials'] == 2
  assert len({trial['id'] for trial in study['trials']}) == 8
  for trial in pairs:
    assert {trial['left']['system'], trial['right']['system']} == set(trial['pair'])
    assert trial['expected'] is None and trial['scene'] == 'golf'
  for trial in checks:  # the expected side shows the real clip, the other a distractor
    other = 'right' if trial['expected'] == 'left' else 'left'
    assert trial[trial['expected']]['system'] == 'real'
    assert trial[other]['system'] in human_study.DISTRACTORS and trial['pair'] is None
  assert {trial['left']['system'] for trial in checks} | {
      trial['right']['system'] for trial in checks} == {'real', 'noise', 'frozen'}  # 'both'
  assert set(study['systems']) == {'fake@golf', 'real@golf', 'real_still@golf', 'noise@golf',
                                   'frozen@golf'}
  assert study['systems']['real_still@golf']['source'] == 'golf'
  videos = {side['video'] for trial in study['trials'] for side in (trial['left'],
                                                                    trial['right'])}
  assert sorted(os.listdir(os.path.join(folder, 'videos'))) == sorted(
      os.path.basename(video) for video in videos)
  for video in videos:
    frames = _frames(os.path.join(folder, video))
    assert frames.shape == (10, 32, 32, 3)  # 10 frames, 16x16 enlarged twice
  for video in videos:  # a video's address tells a rater nothing of its system
    assert not any(system in video for system in ('fake', 'real', 'noise', 'frozen', 'golf'))
  still = _frames(os.path.join(folder, human_study.video_path(0, 'golf', 'real_still', 0)))
  moving = _frames(os.path.join(folder, human_study.video_path(0, 'golf', 'real', 0)))
  still, moving = still.astype(int), moving.astype(int)
  assert np.abs(still - still[:1]).max() <= 8 < np.abs(moving - moving[:1]).max()
  np.testing.assert_allclose(still[0], moving[0], atol=24)  # the same first frame, lossy
  assert (moving[:, ::2, ::2] - moving[:, 1::2, 1::2]).std() < 6  # nearest-neighbour blocks


def test_build_is_seeded_and_a_rebuild_of_the_same_study_is_allowed(built):
  tmp_path, _, folder, _ = built
  with open(os.path.join(folder, 'study.json'), 'rb') as file:
    first = file.read()
  summary, again = _build(tmp_path, 'again')
  with open(os.path.join(again, 'study.json'), 'rb') as file:
    assert file.read() == first
  with open(os.path.join(_build(tmp_path, 'seed1', seed=1)[1], 'study.json'), 'rb') as file:
    other = json.loads(file.read())
  assert other['seed'] == 1 and other['trials'] != json.loads(first)['trials']
  os.remove(os.path.join(again, human_study.video_path(0, 'golf', 'fake', 1)))
  summary, _ = _build(tmp_path, 'again')  # the same study: only the missing video is written
  assert summary['state'] == 'same' and summary['written'] == 1
  with pytest.raises(ValueError, match='holds another study .*differs in: seed, trials'):
    _build(tmp_path, 'again', seed=2)


@pytest.mark.parametrize('change, message', [
    (dict(pairs=('fake:ghost',)), r"names 'ghost', which no --source gives"),
    (dict(per_pair=0), r'--per_pair=0: must be 1 or more'),
    (dict(pairs=('fake:real', 'real:fake')), r'given twice'),
    (dict(pairs=('fake:real_still',), attention_checks=0, still=False), r'real_still'),
    (dict(pairs=('fake:fake_still',), attention_checks=0), r'real@golf is in no pair'),
    (dict(attention_source='fake', scale=3, size=10), r'clips of 16x16 cannot be shown at 30x30'),
    (dict(per_pair=6), r'fake@golf: .*fake.npz: 5 clips; 6 were asked for'),
])
def test_build_refuses_bad_inputs_with_one_line(tmp_path, change, message):
  with pytest.raises(ValueError, match=message) as error:
    _build(tmp_path, **change)
  assert '\n' not in str(error.value)


@pytest.mark.parametrize('texts, pairs, message', [
    (['fake@golf=f', 'real@golf=r', 'fake@beach=f'], ['fake:real'],
     r'--source=fake@beach: no trial shows it: none of the systems it is paired with \(real\) '
     r'has a source in beach\.'),
    (['fake@golf=f', 'real@golf=r', 'other@beach=o', 'real@beach=r'], ['fake:other'],
     r'has no scene where both have a source'),
    (['fake=f', 'real=r', 'a=a', 'b=b'], ['fake:real'], r'--source: a@all, b@all are in no pair'),
])
def test_a_source_no_trial_would_show_is_refused(texts, pairs, message):
  sources = [human_study.parse_source(text) for text in texts]
  with pytest.raises(ValueError, match=message):
    human_study.manifest(sources, {source.key: '' for source in sources},
                         [human_study.parse_pair(pair) for pair in pairs],
                         _options(attention_checks=0, still=False))


def test_build_refuses_a_source_that_fails_and_a_folder_that_is_not_a_study(tmp_path):
  options = _options(attention_checks=0)
  with pytest.raises(ValueError, match=r'--source=a@all: .*nothing.npz: not a readable .npz'):
    human_study.build([f'a={tmp_path}/nothing.npz', 'b=golf'], ['a:b'], str(tmp_path / 's'),
                      options)
  with pytest.raises(ValueError, match='attention checks need real clips'):
    human_study.build(['a=golf', 'b=beach'], ['a:b'], str(tmp_path / 's'), _options())
  with pytest.raises(ValueError, match=r'--source=a@x@y=golf: the scene'):
    human_study.parse_source('a@x@y=golf')
  (tmp_path / 'other').mkdir()
  (tmp_path / 'other' / 'notes.txt').write_text('mine')
  with pytest.raises(ValueError, match='not empty and holds no study .*notes.txt'):
    human_study.build(['a=golf', 'b=beach'], ['a:b'], str(tmp_path / 'other'), options)


# A study written by hand: one pair A:B in two scenes, one attention check.
HAND_STUDY = dict(
    version=1, question=human_study.QUESTION, scenes=['golf', 'beach'], pairs=[['A', 'B']],
    trials=[
        dict(id='t1', kind='pair', scene='golf', left=dict(system='A', video='a'),
             right=dict(system='B', video='b'), pair=['A', 'B'], expected=None),
        dict(id='t2', kind='pair', scene='golf', left=dict(system='B', video='c'),
             right=dict(system='A', video='d'), pair=['A', 'B'], expected=None),
        dict(id='t3', kind='pair', scene='beach', left=dict(system='A', video='e'),
             right=dict(system='B', video='f'), pair=['A', 'B'], expected=None),
        dict(id='t4', kind='attention', scene='golf', left=dict(system='real', video='g'),
             right=dict(system='noise', video='h'), pair=None, expected='left')])
# participant: answers to t1 (A left), t2 (A right), t3 (A left), t4 (correct: left)
HAND_ANSWERS = {
    'p1': ('left', 'right', 'left', 'left'),     # A A A, passes
    'p2': ('left', 'right', 'right', 'left'),    # A A B, passes
    'p3': ('left', 'left', 'left', 'left'),      # A B A, passes
    'p4': ('right', 'right', 'left', 'left'),    # B A A, passes
    'p5': ('left', 'right', 'left', None),       # A A A, answered no check: kept
    'p6': ('right', 'left', 'right', 'right'),   # B B B, fails its check: excluded
}
Z = statistics.NormalDist().inv_cdf(0.975)


def _write_hand_answers(path):
  lines = []
  for participant, choices in HAND_ANSWERS.items():
    for trial, choice in zip(('t1', 't2', 't3', 't4'), choices):
      if choice:
        lines.append(dict(participant=participant, trial=trial, choice=choice,
                          submission=f'{participant}-{trial}', time='2016-12-05T10:00:00Z',
                          response_ms=1500))
  lines.insert(3, dict(lines[0]))  # the same submission again: recorded once
  lines.append(dict(lines[1], submission='p1-t2-again', choice='left'))  # a second answer
  path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
  return str(path)


def _wilson(k, n):
  """The Wilson score interval in closed form (Wilson 1927), in %."""
  p = k / n
  centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
  half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
  return 100 * (centre - half), 100 * (centre + half)


def _two_sided(k, n):
  """The exact two-sided binomial p against 1/2: by symmetry twice the larger tail."""
  return min(1.0, 2 * sum(math.comb(n, i) for i in range(max(k, n - k), n + 1)) / 2**n)


def test_analysis_of_a_hand_written_answers_file_gives_the_hand_computed_table(tmp_path):
  answers, notes = human_study.load_answers(HAND_STUDY, [_write_hand_answers(tmp_path / 'a.jsonl')])
  assert len(answers) == 23 and notes == [
      '1 repeated submissions left out', '1 second answers of a participant to a trial left out']
  analysis = study_analysis.analyze(HAND_STUDY, answers, bootstrap=0, notes=tuple(notes))
  assert analysis['raters']['excluded'] == ['p6'] and analysis['raters']['count'] == 6
  assert analysis['raters']['without_checks'] == 1 and analysis['columns'] == [
      'golf', 'beach', 'mean']
  # Attentive raters p1-p5: golf 8 of 10 prefer A, beach 4 of 5, pooled 12 of 15.
  # With p6: golf 8 of 12, beach 4 of 6, pooled 12 of 18.
  expected = {'attentive': {'golf': (8, 10), 'beach': (4, 5), 'mean': (12, 15)},
              'all': {'golf': (8, 12), 'beach': (4, 6), 'mean': (12, 18)}}
  for raters, cells in expected.items():
    row, = analysis['tables'][raters]
    assert row['label'] == 'prefer A over B'
    for column, (k, n) in cells.items():
      cell = row['cells'][column]
      assert (cell['preferred'], cell['n']) == (k, n)
      assert cell['percent'] == pytest.approx(100 * k / n)
      assert (cell['ci_low'], cell['ci_high']) == pytest.approx(_wilson(k, n), abs=1e-9)
      assert cell['p_value'] == pytest.approx(_two_sided(k, n), abs=1e-12)
  golf = analysis['tables']['attentive'][0]['cells']['golf']
  assert golf['p_value'] == pytest.approx(2 * (45 + 10 + 1) / 1024)  # 2 P(X >= 8), X ~ B(10, .5)
  assert (golf['ci_low'], golf['ci_high']) == pytest.approx((49.016, 94.331), abs=1e-3)
  assert analysis['tables']['all'][0]['cells']['beach']['p_value'] == pytest.approx(44 / 64)
  text = study_analysis.markdown(analysis)
  assert '| prefer A over B | 80.0% (n=10) [49.0, 94.3] p=0.11 |' in text
  assert '66.7% (n=12)' in text and '6 raters; 1 excluded' in text
  rows = list(csv.DictReader(study_analysis.csv_text(analysis).splitlines()))
  assert len(rows) == 6 and rows[0]['raters'] == 'attentive' and rows[0]['n'] == '10'
  paths = study_analysis.write_outputs(analysis, str(tmp_path / 'analysis'))
  assert all(os.path.getsize(path) for path in paths)
  with pytest.raises(ValueError, match='no answers'):
    study_analysis.analyze(HAND_STUDY, [])


def test_careless_raters_are_excluded_and_the_interval_covers_the_true_preference():
  sources = [human_study.Source(name, 'all', name) for name in ('real', 'A', 'B')]
  options = human_study.BuildOptions(per_pair=50, attention_checks=10)
  study, _ = human_study.manifest(sources, {source.key: '' for source in sources},
                                  [('A', 'B'), ('A', 'real')], options)
  records = human_study.simulated_answers(study, {('A', 'B'): 0.7, ('A', 'real'): 0.2},
                                          raters=40, careless=0.2, seed=3)
  answers = [human_study.Answer(r['participant'], r['trial'], r['choice'], '') for r in records]
  analysis = study_analysis.analyze(study, answers, bootstrap=0)
  assert analysis['raters']['excluded'] == sorted(f'careless-{i}' for i in range(1, 9))
  cell = analysis['tables']['attentive'][0]['cells']['all']
  assert cell['n'] == 32 * 50 and cell['ci_low'] < 70 < cell['ci_high']
  everyone = analysis['tables']['all'][0]['cells']['all']
  assert everyone['n'] == 40 * 50 and everyone['percent'] < cell['percent']
  assert not everyone['ci_low'] < 70 < everyone['ci_high']  # the careless pull it towards 50%
  assert [row['system'] for row in analysis['ranking']['attentive']] == ['real', 'A', 'B']


def test_bradley_terry_recovers_known_strengths():
  wins = np.array([[0, 30], [10, 0]])  # closed form: s_0 - s_1 = log(30 / 10)
  scores = study_analysis.bradley_terry(wins, prior_sd=1e4)
  assert scores[0] - scores[1] == pytest.approx(math.log(3), abs=1e-5) and abs(scores.sum()) < 1e-9
  strengths = {'w': 1.2, 'x': 0.4, 'y': -0.3, 'z': -1.3}
  rng = np.random.default_rng(0)
  found = []
  for rater in range(30):
    for a in strengths:
      for b in strengths:
        if a < b:
          for _ in range(8):
            first = rng.random() < 1 / (1 + math.exp(strengths[b] - strengths[a]))
            found.append(study_analysis.Judgement(f'r{rater}', 'all', (a, b), first))
  ranked = study_analysis.ranking(found, list(strengths), bootstrap=100, seed=0)
  assert [row['system'] for row in ranked] == ['w', 'x', 'y', 'z']
  for row in ranked:
    assert row['ci_low'] < row['score'] < row['ci_high']
    assert row['ci_low'] - 0.1 < strengths[row['system']] < row['ci_high'] + 0.1
    assert row['judgements'] == 30 * 8 * 3


def test_loader_refuses_bad_lines_naming_file_and_line(tmp_path):
  trials = {'t1', 't2'}
  good = dict(participant='p', trial='t1', choice='left', submission='s1')
  for bad, message in ((dict(good, trial='t9'), "unknown trial 't9'"),
                       (dict(good, choice='up'), "choice 'up' is not left or right"),
                       (dict(good, participant=''), 'no participant'),
                       (dict(good, submission=None), 'no submission id')):
    path = tmp_path / 'bad.jsonl'
    path.write_text(json.dumps(good) + '\n\n' + json.dumps(bad) + '\n')
    with pytest.raises(ValueError, match=f'bad.jsonl:3: {message}'):
      human_study.read_jsonl(str(path), trials)
  path.write_text(json.dumps(good) + '\n{"participant": "p", "tri\n')
  with pytest.raises(ValueError, match='bad.jsonl:2: not a JSON object'):
    human_study.read_jsonl(str(path), trials)
  study = dict(trials=[dict(id='t1'), dict(id='t2')])
  with pytest.raises(ValueError, match='missing.jsonl: no such file'):
    human_study.load_answers(study, [str(tmp_path / 'missing.jsonl')])


def test_loader_reads_mturk_results_and_records_a_repeated_submission_once(tmp_path):
  path = tmp_path / 'Batch_1_batch_results.csv'
  path.write_text('"HITId","AssignmentId","WorkerId","AssignmentStatus","Input.trial_id",'
                  '"Answer.choice"\n'
                  'H1,A1,W1,Approved,t1,left\nH2,A2,W1,Submitted,t2,Right\n'
                  'H1,A3,W2,Rejected,t1,right\nH1,A1,W1,Approved,t1,left\n')
  study = dict(trials=[dict(id='t1'), dict(id='t2')])
  local = tmp_path / 'answers.jsonl'
  local.write_text(json.dumps(dict(participant='p1', trial='t2', choice='left',
                                   submission='x')) + '\n')
  answers, notes = human_study.load_answers(study, [str(path), str(local), str(local)])
  assert [(a.participant, a.trial, a.choice) for a in answers] == [
      ('W1', 't1', 'left'), ('W1', 't2', 'right'), ('p1', 't2', 'left')]
  assert notes == ['2 repeated submissions left out', '1 rejected MTurk assignments left out']
  path.write_text('WorkerId,Input.trial_id,Answer.choice\nW1,t1,left\nW1,t3,left\n')
  with pytest.raises(ValueError, match=r'batch_results.csv:3: unknown trial'):
    human_study.load_answers(study, [str(path)])
  path.write_text('WorkerId,Answer.choice\nW1,left\n')
  with pytest.raises(ValueError, match='not an MTurk results CSV .no column Input.trial_id'):
    human_study.load_answers(study, [str(path)])


def _study_cli(*args, cwd):
  return subprocess.run([sys.executable, '-m', 'experiments.study', *args], cwd=cwd,
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='3'))


def test_cli_builds_and_analyzes_a_study(tmp_path):
  npz = _fake_npz(tmp_path / 'fake.npz')
  built = _study_cli('build', f'--source=fake@golf={npz}', '--source=real@golf=golf',
                     '--pairs=fake:real', '--per_pair=2', '--frames=9', '--size=16', '--scale=2',
                     '--attention_checks=1', f'--output={tmp_path}/study', cwd=REPO)
  assert built.returncode == 0, built.stderr[-2000:]
  assert '3 trials (1 attention checks), 5 videos (5 written)' in built.stdout
  simulated = _study_cli('simulate', f'--study={tmp_path}/study', '--raters=4', '--careless=0',
                         '--prefer=fake:real=0.3', f'--output={tmp_path}/study/answers.jsonl',
                         cwd=REPO)
  assert simulated.returncode == 0, simulated.stderr[-2000:]
  assert simulated.stdout.startswith('12 answers of 4 simulated raters')
  study = human_study.load_study(str(tmp_path / 'study'))
  with open(tmp_path / 'study' / 'answers.jsonl', encoding='utf-8') as file:
    assert [json.loads(line) for line in file] == human_study.simulated_answers(
        study, {('fake', 'real'): 0.3}, raters=4)
  analyzed = _study_cli('analyze', f'--study={tmp_path}/study', '--bootstrap=20', cwd=REPO)
  assert analyzed.returncode == 0, analyzed.stderr[-2000:]
  assert '| prefer fake over real |' in analyzed.stdout and 'n=8' in analyzed.stdout
  refused = _study_cli('simulate', f'--study={tmp_path}/study', '--prefer=fake:ghost=0.5',
                       cwd=REPO)
  assert refused.stderr.strip() == 'study: --prefer=fake:ghost: the study compares fake, real.'
  assert os.path.isfile(tmp_path / 'study' / 'analysis' / 'table1.png')


@pytest.mark.parametrize('args, message', [
    (('serve2',), "study: unknown subcommand 'serve2'; use python -m experiments.study "
                  'build|serve|export|simulate|analyze [--flags].'),
    ((), 'study: no subcommand; use'),
    (('analyze', '--source=a=b'), 'study: analyze takes no --source'),
])
def test_cli_refuses_a_bad_subcommand_with_one_line(tmp_path, args, message):
  result = _study_cli(*args, cwd=REPO)
  assert result.returncode == 1 and result.stderr.strip().startswith(message)
  assert len(result.stderr.strip().splitlines()) == 1
