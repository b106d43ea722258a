"""The human study's web page for a lab session (or a crowdsourcing platform), without flags:
`experiments/study.py serve`'s work.

A Flask application over a study folder (experiments/human_study.py): a participant enters a
code (or comes with ?participant=CODE, or Prolific's ?PROLIFIC_PID=...), sees the trials one at
a time (two looping videos side by side, "Which video is more realistic?", keys F/J or the arrow
keys, or the buttons; a progress count) in an order of their own, and each answer is appended to
the results file and flushed to disk (fsync) before the page moves on. A participant who comes
back continues where they left off; a submission repeated (the page's retry, a double click) is
recorded once, and so is a participant's second answer to a trial.

What the server sends and takes:
  GET  /                       the page (experiments/study_page/index.html)
  GET  /static/study.js, /static/study.css   its script and style; nothing else of the package
  GET  /videos/NAME.mp4        a video of the study's manifest (no other file, whatever the URL)
  POST /api/start              {participant} -> {participant, question, trials: [{id, left,
                               right}] (video URLs, in this participant's order), answered: [ids],
                               completion_code}
  POST /api/answer             {participant, trial, choice, submission, response_ms} ->
                               {recorded: bool, answered, total}
Neither the systems, nor the pairs, nor an attention check's expected side ever leave the server.
Every request body is at most `MAX_REQUEST_BYTES`; every answer is checked (a participant who
started, a trial of the study, a choice left or right, a submission id of `SUBMISSION` form, a
response time in [0, `MAX_RESPONSE_MS`]) and refused with 400 and one line otherwise (403 for a
code not in the allowed list, 413 for a body too large).
"""

import datetime
import json
import logging
import os
import re
import threading
import zlib

import flask
import numpy as np
from werkzeug import exceptions

from experiments import human_study

PAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'study_page')
STATIC_FILES = {'study.js': 'text/javascript', 'study.css': 'text/css'}
MAX_REQUEST_BYTES = 4096
MAX_RESPONSE_MS = 24 * 3600 * 1000
PARTICIPANT = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z')
SUBMISSION = re.compile(r'[A-Za-z0-9_-]{8,64}\Z')
# The page loads only its own script, style and videos: no inline code, nothing from elsewhere.
SECURITY_HEADERS = {
    'Content-Security-Policy': "default-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
}


def check_completion_code(code: str) -> str:
  """`code`; ValueError unless 1 to 32 letters and digits (Prolific's completion codes)."""
  if not re.fullmatch(r'[A-Za-z0-9]{1,32}', code):
    raise ValueError(f'--completion_code={code}: letters and digits, 1 to 32.')
  return code


def participant_order(trials: list[str], seed: int, participant: str) -> list[str]:
  """The trial ids in `participant`'s own order: a permutation seeded by the study's seed and
  the code, the same at every visit (order effects average out over participants)."""
  rng = np.random.default_rng([seed, zlib.crc32(participant.encode())])
  return [trials[i] for i in rng.permutation(len(trials))]


def repair_partial_line(path: str) -> int:
  """Cuts a last line without its newline off the results file (a server killed in the middle
  of a write: that answer was never acknowledged, so the page sends it again); the number of
  bytes cut."""
  if not os.path.isfile(path) or not os.path.getsize(path):
    return 0
  with open(path, 'rb+') as file:
    data = file.read()
    if data.endswith(b'\n'):
      return 0
    keep = data.rfind(b'\n') + 1
    file.truncate(keep)
    file.flush()
    os.fsync(file.fileno())
  return len(data) - keep


class AnswerLog:
  """The results file (answers.jsonl), appended under a lock, one fsync'd line per answer.

  `path`: the file (created with its folder when missing); `trials`: the study's trial ids. The
  answers already in the file are read first (ValueError, naming FILE:LINE, for a line that is
  not an answer; a last line cut short by a kill is removed, see `repair_partial_line`).
  """

  def __init__(self, path: str, trials: set[str]):
    self.path, self._trials = path, trials
    self._lock = threading.Lock()
    cut = repair_partial_line(path)
    if cut:
      logging.warning('%s: removed a last line cut short (%d bytes, never acknowledged).', path,
                      cut)
    existing = human_study.read_jsonl(path, trials) if os.path.isfile(path) else []
    self._submissions = {submission for submission, _ in existing}
    self._answered: dict[str, set[str]] = {}
    for _, answer in existing:
      self._answered.setdefault(answer.participant, set()).add(answer.trial)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

  def close(self) -> None:
    os.close(self._fd)

  def participants(self) -> set[str]:
    with self._lock:
      return set(self._answered)

  def answered(self, participant: str) -> set[str]:
    with self._lock:
      return set(self._answered.get(participant, ()))

  def record(self, record: dict) -> bool:
    """Appends `record` (a checked answer) and fsyncs it; False, writing nothing, for a
    submission id seen before or a participant's second answer to a trial."""
    line = (json.dumps(record, sort_keys=True) + '\n').encode()
    with self._lock:
      done = self._answered.setdefault(record['participant'], set())
      if record['submission'] in self._submissions or record['trial'] in done:
        return False
      written = os.write(self._fd, line)
      if written != len(line):  # a full disk: say so rather than leave half a line
        raise OSError(f'{self.path}: wrote {written} of {len(line)} bytes.')
      os.fsync(self._fd)
      self._submissions.add(record['submission'])
      done.add(record['trial'])
      return True


def _bad_request(message: str, code: int = 400):
  return flask.jsonify(error=message), code


def _json_object() -> dict:
  """The request's JSON object; BadRequest with one line for anything else."""
  if not flask.request.is_json:
    raise exceptions.BadRequest('send a JSON object (Content-Type: application/json).')
  body = flask.request.get_json(silent=True)
  if not isinstance(body, dict):
    raise exceptions.BadRequest('the body is not a JSON object.')
  return body


def check_answer(body: dict, trials: set[str], known: bool) -> dict:
  """The record to append for an /api/answer body (the server adds the time); BadRequest with
  one line for an unknown participant (`known` False) or trial, a bad choice, submission id or
  response time, or another field."""
  extra = set(body) - {'participant', 'trial', 'choice', 'submission', 'response_ms'}
  if extra:
    raise exceptions.BadRequest(f'unexpected field {sorted(extra)[0]!r}.')
  participant, trial, choice = body.get('participant'), body.get('trial'), body.get('choice')
  submission, response_ms = body.get('submission'), body.get('response_ms')
  if not isinstance(participant, str) or not known:
    raise exceptions.BadRequest('unknown participant: start first (POST /api/start).')
  if not isinstance(trial, str) or trial not in trials:
    raise exceptions.BadRequest(f'unknown trial {str(trial)[:20]!r}.')
  if choice not in human_study.CHOICES:
    raise exceptions.BadRequest('choice must be "left" or "right".')
  if not isinstance(submission, str) or not SUBMISSION.match(submission):
    raise exceptions.BadRequest('submission must be 8 to 64 letters, digits, _ or -.')
  if (not isinstance(response_ms, int) or isinstance(response_ms, bool) or
      not 0 <= response_ms <= MAX_RESPONSE_MS):
    raise exceptions.BadRequest(f'response_ms must be a whole number in [0, {MAX_RESPONSE_MS}].')
  time = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='milliseconds')
  return dict(participant=participant, trial=trial, choice=choice, submission=submission,
              time=time.replace('+00:00', 'Z'), response_ms=response_ms)


def create_app(folder: str, answers: str | None = None, participants: set[str] | None = None,
               completion_code: str | None = None) -> flask.Flask:
  """The study's web application (see the module docstring).

  folder: the study folder; answers: the results file (default STUDY/answers.jsonl);
  participants: the codes allowed to start (None: any code of `PARTICIPANT` form);
  completion_code: shown at the end (Prolific's; None: none). ValueError for a folder that holds
  no study, a results file with a bad line, or a bad completion code. Call `app.answer_log.close()`
  when done.
  """
  study = human_study.load_study(folder)
  if completion_code is not None:
    check_completion_code(completion_code)
  trial_ids = [trial['id'] for trial in study['trials']]
  sides = {trial['id']: (trial['left']['video'], trial['right']['video'])
           for trial in study['trials']}
  videos = {os.path.basename(video) for pair in sides.values() for video in pair}
  video_dir = os.path.join(os.path.abspath(folder), human_study.VIDEO_DIR)
  log = AnswerLog(answers or os.path.join(folder, human_study.ANSWERS_FILE), set(trial_ids))
  started: set[str] = set()
  lock = threading.Lock()

  app = flask.Flask(__name__, static_folder=None, template_folder=None)
  app.config['MAX_CONTENT_LENGTH'] = MAX_REQUEST_BYTES
  app.answer_log = log

  def known(participant) -> bool:
    with lock:
      return participant in started or participant in log.participants()

  @app.after_request
  def headers(response):
    response.headers.update(SECURITY_HEADERS)
    if flask.request.path.startswith('/api/'):
      response.headers['Cache-Control'] = 'no-store'
    return response

  @app.errorhandler(exceptions.HTTPException)
  def http_error(error):
    return _bad_request(error.description if error.code in (400, 403) else error.name,
                        error.code)

  @app.get('/')
  def page():
    return flask.send_file(os.path.join(PAGE_DIR, 'index.html'), mimetype='text/html',
                           max_age=0)

  @app.get('/static/<name>')
  def static_file(name):
    if name not in STATIC_FILES:
      flask.abort(404)
    return flask.send_file(os.path.join(PAGE_DIR, name), mimetype=STATIC_FILES[name], max_age=0)

  @app.get('/videos/<name>')
  def video(name):
    if name not in videos:  # only the manifest's videos, so no path can leave the folder
      flask.abort(404)
    return flask.send_file(os.path.join(video_dir, name), mimetype='video/mp4',
                           conditional=True, max_age=3600)

  @app.post('/api/start')
  def start():
    body = _json_object()
    participant = body.get('participant')
    if not isinstance(participant, str) or not PARTICIPANT.match(participant.strip()):
      raise exceptions.BadRequest('the participant code must be 1 to 64 letters, digits, '
                                  '_ . @ or - (starting with a letter or digit).')
    participant = participant.strip()
    if participants is not None and participant not in participants:
      raise exceptions.Forbidden(f'{participant} is not a participant of this study.')
    with lock:
      started.add(participant)
    return flask.jsonify(
        participant=participant, question=study['question'],
        trials=[dict(id=trial, left=f'/videos/{os.path.basename(sides[trial][0])}',
                     right=f'/videos/{os.path.basename(sides[trial][1])}')
                for trial in participant_order(trial_ids, study['seed'], participant)],
        answered=sorted(log.answered(participant)), completion_code=completion_code)

  @app.post('/api/answer')
  def answer():
    body = _json_object()
    record = check_answer(body, set(trial_ids), known(body.get('participant')))
    recorded = log.record(record)
    return flask.jsonify(recorded=recorded, answered=len(log.answered(record['participant'])),
                         total=len(trial_ids))

  return app


def read_participants(text: str | None) -> set[str] | None:
  """--participants: a file of codes (one a line) or a comma-separated list; None for None.
  ValueError for a code of another form, or no codes."""
  if text is None:
    return None
  if os.path.isfile(text):
    with open(text, encoding='utf-8') as file:
      codes = [line.strip() for line in file if line.strip()]
  else:
    codes = [code.strip() for code in text.split(',') if code.strip()]
  if not codes:
    raise ValueError(f'--participants={text}: no codes.')
  for code in codes:
    if not PARTICIPANT.match(code):
      raise ValueError(f'--participants: {code!r} must be 1 to 64 letters, digits, _ . @ or -.')
  return set(codes)
