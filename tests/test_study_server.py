"""The human study's page and exports: what the server serves and refuses, answers under
concurrency and kills, MTurk and Prolific files, and a real browser answering a study."""

import concurrent.futures
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from werkzeug import serving

from experiments import human_study, study_analysis, study_export, study_server

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = ('fake', 'real', 'noise', 'frozen')


@pytest.fixture(scope='module')
def study_folder(tmp_path_factory):
  """A built study (3 fake:real trials, 2 attention checks) to copy: tests append answers."""
  tmp_path = tmp_path_factory.mktemp('served')
  for name, seed in (('fake', 0), ('real', 1)):
    videos = np.random.default_rng(seed).integers(0, 256, (3, 4, 8, 8, 3), np.uint8)
    np.savez(tmp_path / f'{name}.npz', video=videos)
  folder = str(tmp_path / 'study')
  options = human_study.BuildOptions(per_pair=3, frames=4, size=8, scale=2, attention_checks=2)
  human_study.build([f'fake={tmp_path}/fake.npz', f'real={tmp_path}/real.npz'], ['fake:real'],
                    folder, options)
  return folder


@pytest.fixture
def study(study_folder, tmp_path):
  folder = str(tmp_path / 'study')
  shutil.copytree(study_folder, folder)
  return folder


def _answers(folder):
  path = os.path.join(folder, 'answers.jsonl')
  with open(path, encoding='utf-8') as file:
    return [json.loads(line) for line in file]


def _answer(participant, trial, choice='left', submission=None, response_ms=1000):
  return dict(participant=participant, trial=trial, choice=choice,
              submission=submission or f'sub-{participant}-{trial}', response_ms=response_ms)


def test_the_page_and_only_the_study_videos_are_served(study):
  manifest = human_study.load_study(study)
  app = study_server.create_app(study)
  client = app.test_client()
  page = client.get('/')
  assert page.status_code == 200 and b'Which video is more realistic?' in page.data
  assert "default-src 'self'" in page.headers['Content-Security-Policy']
  assert client.get('/static/study.js').status_code == 200
  video = manifest['trials'][0]['left']['video']
  response = client.get('/' + video, headers={'Range': 'bytes=0-99'})
  assert response.status_code == 206 and response.mimetype == 'video/mp4'
  with open(os.path.join(study, video), 'rb') as file:
    assert response.data == file.read(100)
  with open(os.path.join(study, 'videos', 'extra.mp4'), 'wb') as file:
    file.write(b'not of the study')
  for url in ('/videos/extra.mp4', '/videos/../study.json', '/videos/%2e%2e%2fstudy.json',
              '/videos/..%2fstudy.json', '/study.json', '/answers.jsonl', '/static/index.html',
              '/static/../study_server.py', '/static/mturk.html', '/../../etc/passwd',
              '/videos/%2fetc%2fpasswd', '/videos/'):
    assert client.get(url).status_code == 404, url
  assert client.post('/').status_code == 405
  app.answer_log.close()


def test_start_gives_each_participant_an_order_and_reveals_no_system(study):
  manifest = human_study.load_study(study)
  app = study_server.create_app(study)
  client = app.test_client()
  first = client.post('/api/start', json={'participant': ' ana '}).get_json()
  again = client.post('/api/start', json={'participant': 'ana'}).get_json()
  other = client.post('/api/start', json={'participant': 'ben'}).get_json()
  ids = [trial['id'] for trial in manifest['trials']]
  assert first['participant'] == 'ana' and first['answered'] == []
  assert sorted(trial['id'] for trial in first['trials']) == sorted(ids)
  assert first['trials'] == again['trials'] and first['trials'] != other['trials']
  by_id = {trial['id']: trial for trial in manifest['trials']}
  for trial in first['trials']:
    assert set(trial) == {'id', 'left', 'right'}
    assert trial['left'] == '/' + by_id[trial['id']]['left']['video']
  text = json.dumps(dict(first, question=''))  # 'more realistic' holds 'real'
  assert not any(word in text for word in SYSTEMS + ('expected', 'pair', 'attention', 'kind'))
  app.answer_log.close()


@pytest.mark.parametrize('body, status, message', [
    (_answer('ghost', 't001'), 400, 'unknown participant'),
    (_answer('ana', 't999'), 400, "unknown trial 't999'"),
    (_answer('ana', 't001', choice='middle'), 400, 'choice must be'),
    (_answer('ana', 't001', submission='x'), 400, 'submission must be'),
    (_answer('ana', 't001', response_ms=-5), 400, 'response_ms must be'),
    (_answer('ana', 't001', response_ms=True), 400, 'response_ms must be'),
    (_answer('ana', 't001', response_ms=1.5), 400, 'response_ms must be'),
    (dict(_answer('ana', 't001'), expected='left'), 400, "unexpected field 'expected'"),
    ([1, 2], 400, 'not a JSON object'),
    (dict(_answer('ana', 't001'), submission='a' * 5000), 413, 'Request Entity Too Large'),
])
def test_a_bad_answer_is_refused_with_one_line_and_nothing_written(study, body, status, message):
  app = study_server.create_app(study)
  client = app.test_client()
  assert client.post('/api/start', json={'participant': 'ana'}).status_code == 200
  response = client.post('/api/answer', json=body)
  assert response.status_code == status and message in response.get_json()['error']
  assert client.post('/api/answer', data='choice=left').status_code == 400  # not JSON
  assert _answers(study) == []
  app.answer_log.close()


def test_participant_codes_are_checked_and_an_allowed_list_is_kept(study):
  app = study_server.create_app(study, participants={'p01', 'p02'})
  client = app.test_client()
  assert client.post('/api/start', json={'participant': 'p01'}).status_code == 200
  refused = client.post('/api/start', json={'participant': 'p03'})
  assert refused.status_code == 403 and 'not a participant' in refused.get_json()['error']
  for code in ('../x', '', 'a b', 'x' * 65, 7):
    assert client.post('/api/start', json={'participant': code}).status_code == 400, code
  app.answer_log.close()
  assert study_server.read_participants('p1, p2,') == {'p1', 'p2'}
  with pytest.raises(ValueError, match="'a/b' must be"):
    study_server.read_participants('a/b')


def test_a_repeated_submission_and_a_second_answer_are_recorded_once(study):
  app = study_server.create_app(study)
  client = app.test_client()
  client.post('/api/start', json={'participant': 'ana'})
  replies = [client.post('/api/answer', json=body).get_json() for body in (
      _answer('ana', 't001', submission='first-try'), _answer('ana', 't001', submission='first-try'),
      _answer('ana', 't001', 'right', submission='second-try'), _answer('ana', 't002'))]
  assert [reply['recorded'] for reply in replies] == [True, False, False, True]
  assert replies[-1]['answered'] == 2 and replies[-1]['total'] == 5
  records = _answers(study)
  assert [(r['trial'], r['choice'], r['submission']) for r in records] == [
      ('t001', 'left', 'first-try'), ('t002', 'left', 'sub-ana-t002')]
  assert records[0]['time'].endswith('Z') and records[0]['response_ms'] == 1000
  assert client.post('/api/start', json={'participant': 'ana'}).get_json()['answered'] == [
      't001', 't002']
  app.answer_log.close()


def _post(url, body):
  request = urllib.request.Request(url, json.dumps(body).encode(),
                                   {'Content-Type': 'application/json'})
  try:
    with urllib.request.urlopen(request, timeout=30) as response:
      return response.status, json.loads(response.read())
  except urllib.error.HTTPError as error:
    return error.code, json.loads(error.read())


def _choice(participant, trial):
  return human_study.CHOICES[(int(participant[1:]) + int(trial[1:])) % 2]


def test_concurrent_participants_lose_no_answer(study):
  app = study_server.create_app(study)
  server = serving.make_server('127.0.0.1', 0, app, threaded=True)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  url = f'http://127.0.0.1:{server.server_port}'
  trials = [trial['id'] for trial in human_study.load_study(study)['trials']]
  participants = [f'p{i}' for i in range(8)]

  def session(participant):
    assert _post(f'{url}/api/start', {'participant': participant})[0] == 200
    statuses = []
    for trial in trials:  # every answer sent twice, as a page retrying after a lost reply would
      body = _answer(participant, trial, choice=_choice(participant, trial))
      statuses += [_post(f'{url}/api/answer', body)[0] for _ in range(2)]
    return statuses

  try:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
      statuses = [status for result in pool.map(session, participants) for status in result]
  finally:
    server.shutdown()
    app.answer_log.close()
  assert set(statuses) == {200}
  records = _answers(study)
  assert len(records) == len(participants) * len(trials)
  assert {(r['participant'], r['trial'], r['choice']) for r in records} == {
      (p, t, _choice(p, t)) for p in participants for t in trials}
  answers, notes = human_study.load_answers(human_study.load_study(study),
                                            [os.path.join(study, 'answers.jsonl')])
  assert len(answers) == 40 and notes == []


def _serve(study, *flags):
  process = subprocess.Popen(
      [sys.executable, '-m', 'experiments.study', 'serve', f'--study={study}', '--port=0', *flags],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=dict(os.environ, PYTHONPATH=REPO))
  line = process.stdout.readline()
  assert line.startswith('Study '), (line, process.stderr.read() if process.poll() else '')
  return process, line.split(' at ')[1].split('/ ')[0]


def test_a_killed_server_keeps_every_recorded_answer(study):
  process, url = _serve(study)
  assert url.startswith('http://127.0.0.1:')  # localhost unless told otherwise
  try:
    assert _post(f'{url}/api/start', {'participant': 'ana'})[0] == 200
    for trial in ('t001', 't002', 't003'):
      assert _post(f'{url}/api/answer', _answer('ana', trial))[1]['recorded']
  finally:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
  with open(os.path.join(study, 'answers.jsonl'), 'a', encoding='utf-8') as file:
    file.write('{"participant": "ana", "trial": "t00')  # a kill in the middle of a write
  process, url = _serve(study)
  try:
    reply = _post(f'{url}/api/start', {'participant': 'ana'})[1]
    assert reply['answered'] == ['t001', 't002', 't003']
    assert not _post(f'{url}/api/answer', _answer('ana', 't002'))[1]['recorded']
    assert _post(f'{url}/api/answer', _answer('ana', 't004'))[1] == dict(
        recorded=True, answered=4, total=5)
  finally:
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
  assert [record['trial'] for record in _answers(study)] == ['t001', 't002', 't003', 't004']


def test_serve_refuses_a_bad_results_file_and_a_bad_completion_code(study):
  with open(os.path.join(study, 'answers.jsonl'), 'w', encoding='utf-8') as file:
    file.write('{"participant": "ana", "trial": "t009", "choice": "left", "submission": "s1"}\n')
  with pytest.raises(ValueError, match=r"answers.jsonl:1: unknown trial 't009'"):
    study_server.create_app(study)
  os.remove(os.path.join(study, 'answers.jsonl'))
  with pytest.raises(ValueError, match='--completion_code=no way: letters and digits'):
    study_server.create_app(study, completion_code='no way')


def test_mturk_export_round_trips_through_a_results_csv(study, tmp_path):
  paths = study_export.export_mturk(study, 'https://bucket.example.org/golf/', str(tmp_path))
  manifest = human_study.load_study(study)
  with open(paths[0], encoding='utf-8', newline='') as file:
    rows = list(csv.DictReader(file))
  assert [row['trial_id'] for row in rows] == [trial['id'] for trial in manifest['trials']]
  assert rows[0]['left_url'] == ('https://bucket.example.org/golf/' +
                                 manifest['trials'][0]['left']['video'])
  with open(paths[1], encoding='utf-8') as file:
    template = file.read()
  for field in ('${trial_id}', '${left_url}', '${right_url}', manifest['question'],
                'name="choice" value="left"', 'name="choice" value="right"'):
    assert field in template
  shown = template.replace(manifest['question'], '').replace('realistic', '') + json.dumps(rows)
  assert not any(system in shown for system in SYSTEMS)
  # MTurk's results: one row a HIT, the batch's columns as Input.*, the form's as Answer.*.
  records = human_study.simulated_answers(manifest, {('fake', 'real'): 0.8}, raters=6, seed=3)
  by_trial = {row['trial_id']: row for row in rows}
  results = tmp_path / 'Batch_results.csv'
  with open(results, 'w', encoding='utf-8', newline='') as file:
    writer = csv.writer(file)
    writer.writerow(['AssignmentId', 'WorkerId', 'AssignmentStatus', 'Input.trial_id',
                     'Input.left_url', 'Input.right_url', 'Answer.choice'])
    for record in records:
      row = by_trial[record['trial']]
      writer.writerow([record['submission'], record['participant'], 'Submitted', row['trial_id'],
                       row['left_url'], row['right_url'], record['choice']])
  local = tmp_path / 'answers.jsonl'
  local.write_text(''.join(json.dumps(record) + '\n' for record in records))
  tables = [study_analysis.run(study, [str(path)], str(tmp_path / name), 1.0, 10, 0)[0]['tables']
            for path, name in ((results, 'from_csv'), (local, 'from_jsonl'))]
  cell = tables[0][study_analysis.ATTENTIVE][0]['cells']['all']
  assert tables[0] == tables[1] and cell['n'] == 18  # 6 raters x 3 trials


@pytest.mark.parametrize('base_url, message', [
    (None, '--base_url: give the public address'),
    ('ftp://x.org', 'not an http'),
    ('http://x.org', 'give an https:// address'),
])
def test_mturk_export_refuses_an_address_browsers_would_block(study, tmp_path, base_url, message):
  with pytest.raises(ValueError, match=message):
    study_export.export_mturk(study, base_url, str(tmp_path))


def test_prolific_export_and_the_cli(study, tmp_path):
  paths, code = study_export.export_prolific(study, 'https://study.example.org', str(tmp_path),
                                             'C0DE42')
  with open(paths[0], encoding='utf-8') as file:
    notes = file.read()
  assert code == 'C0DE42' and f'--completion_code={code}' in notes
  assert 'https://study.example.org/?PROLIFIC_PID={{%PROLIFIC_PID%}}' in notes
  assert 'https://app.prolific.com/submissions/complete?cc=C0DE42' in notes
  assert study_export.export_prolific(study, 'https://x.org', str(tmp_path))[1].isalnum()
  env = dict(os.environ, PYTHONPATH=REPO)
  command = [sys.executable, '-m', 'experiments.study', 'export', f'--study={study}']
  done = subprocess.run(command + ['--format=mturk', '--base_url=https://b.example.org/s'],
                        cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
  assert done.returncode == 0, done.stderr
  assert os.path.isfile(os.path.join(study, 'export', 'mturk', 'mturk_batch.csv'))
  refused = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
  assert refused.returncode == 1 and refused.stderr.strip() == (
      'study: export needs --format=mturk or --format=prolific.')
