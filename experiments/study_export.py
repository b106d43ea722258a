"""What a crowdsourcing run of the human study needs, without flags: `experiments/study.py
export`'s work.

MTurk (`export_mturk`): the study's videos are uploaded to a public HTTPS address (`base_url`,
under which videos/NAME.mp4 is each video's URL); the batch CSV has one row a trial (trial_id,
left_url, right_url) and the task template (experiments/study_page/mturk.html) shows the two
videos and asks for `choice`. MTurk's results CSV then has WorkerId, Input.trial_id and
Answer.choice, which `human_study.load_answers` reads.

Prolific (`export_prolific`): participants open the study's own page (`serve`, reachable at
`base_url`) with Prolific's ?PROLIFIC_PID=... as their participant code, and the page ends on the
completion code, linked to Prolific's completion address.
"""

import csv
import io
import os
import secrets
import urllib.parse

from experiments import human_study, study_server
from vgan_io import files

FORMATS = ('mturk', 'prolific')
MTURK_BATCH, MTURK_TEMPLATE, PROLIFIC_NOTES = 'mturk_batch.csv', 'mturk_template.html', 'prolific.md'
MTURK_FIELDS = ('trial_id', 'left_url', 'right_url')
PROLIFIC_COMPLETE = 'https://app.prolific.com/submissions/complete?cc='
PROLIFIC_QUERY = 'PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}'


def check_base_url(base_url: str | None, what: str) -> str:
  """`base_url` without a trailing '/'; ValueError unless an http(s) address with a host (https
  for MTurk: its pages are HTTPS, and browsers block plain-HTTP videos in them)."""
  if not base_url:
    raise ValueError(f'--base_url: give the public address of {what}.')
  parts = urllib.parse.urlsplit(base_url)
  if parts.scheme not in ('http', 'https') or not parts.netloc or parts.query or parts.fragment:
    raise ValueError(f'--base_url={base_url}: not an http(s) address of {what}.')
  return base_url.rstrip('/')


def mturk_rows(study: dict, base_url: str) -> list[dict]:
  """The batch CSV's rows: {trial_id, left_url, right_url} a trial, in the study's order."""
  return [dict(trial_id=trial['id'], left_url=f'{base_url}/{trial["left"]["video"]}',
               right_url=f'{base_url}/{trial["right"]["video"]}') for trial in study['trials']]


def mturk_template(study: dict) -> str:
  """The task's HTML, MTurk's ${trial_id}, ${left_url}, ${right_url} left for MTurk to fill."""
  with open(os.path.join(study_server.PAGE_DIR, 'mturk.html'), encoding='utf-8') as file:
    return file.read().replace('__QUESTION__', study['question'])


def export_mturk(folder: str, base_url: str | None, output: str) -> list[str]:
  """Writes OUTPUT/mturk_batch.csv and OUTPUT/mturk_template.html for the study in `folder`;
  returns their paths. ValueError for no study or a base_url that is not https."""
  study = human_study.load_study(folder)
  base_url = check_base_url(base_url, 'the uploaded study folder (videos/ under it)')
  if not base_url.startswith('https://'):
    raise ValueError(f'--base_url={base_url}: MTurk shows HITs over HTTPS, where browsers block '
                     'videos from http:// addresses; give an https:// address.')
  text = io.StringIO()
  writer = csv.DictWriter(text, MTURK_FIELDS, lineterminator='\n')
  writer.writeheader()
  writer.writerows(mturk_rows(study, base_url))
  paths = [os.path.join(output, MTURK_BATCH), os.path.join(output, MTURK_TEMPLATE)]
  files.write_text(paths[0], text.getvalue())
  files.write_text(paths[1], mturk_template(study))
  return paths


def prolific_url(base_url: str) -> str:
  """The study URL to give Prolific: the page, with Prolific's participant placeholders."""
  return f'{base_url}/?{PROLIFIC_QUERY}'


def export_prolific(folder: str, base_url: str | None, output: str,
                    completion_code: str | None = None) -> tuple[list[str], str]:
  """Writes OUTPUT/prolific.md (the study URL for Prolific, the completion code and the serve
  command) for the study in `folder`; returns ([its path], the completion code: `completion_code`
  or a new random one). ValueError for no study, a bad base_url or completion code."""
  study = human_study.load_study(folder)
  base_url = check_base_url(base_url, 'the server running `study serve`')
  code = completion_code or secrets.token_hex(4).upper()
  study_server.check_completion_code(code)
  notes = f"""# Prolific: {study['question']}

{len(study['trials'])} trials a participant ({sum(t['kind'] == 'attention' for t in
study['trials'])} attention checks). The page records each answer as it is given.

1. Serve the study where Prolific's participants can reach it (behind your HTTPS proxy):

       python -m experiments.study serve --study={folder} --host=0.0.0.0 --port=8000 \\
           --completion_code={code}

2. In Prolific, "Study link" (URL parameters: recorded; the participant code is PROLIFIC_PID):

       {prolific_url(base_url)}

3. "Completion": the completion code is {code}; the page ends by showing it with a link to
   {PROLIFIC_COMPLETE}{code}

4. Analyze: python -m experiments.study analyze --study={folder}
"""
  path = os.path.join(output, PROLIFIC_NOTES)
  files.write_text(path, notes)
  return [path], code
