"""A real browser through the human study: headless Chromium (Debian's, driven by its
chromedriver through Selenium) loads the page, plays the videos, answers with keys and clicks,
comes back after a reload and reaches the end; the results file holds exactly its answers.

`make test` installs Chromium as root (CI); elsewhere, without it, this test says so and skips."""

import json
import os
import shutil
import threading

import numpy as np
import pytest
from werkzeug import serving

from experiments import human_study, study_server

CHROMIUM, CHROMEDRIVER = shutil.which('chromium'), shutil.which('chromedriver')
webdriver = pytest.importorskip('selenium.webdriver', reason='selenium is a test extra')
from selenium.webdriver.common import by, keys  # pylint: disable=g-import-not-at-top,wrong-import-position
from selenium.webdriver.support import ui  # pylint: disable=g-import-not-at-top,wrong-import-position

if not (CHROMIUM and CHROMEDRIVER):
  if os.environ.get('CI'):  # CI installs them (make test): a skip there would hide a failure
    raise RuntimeError('CI: chromium and chromedriver are not installed; see the Makefile.')
  pytest.skip('no chromium and chromedriver: apt-get install chromium chromium-driver (make test '
              'does as root)', allow_module_level=True)

# As root and on a closed network: no sandbox, no GPU, and none of Chromium's own connections.
CHROMIUM_FLAGS = ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                  '--disable-quic', '--no-first-run', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--mute-audio',
                  '--autoplay-policy=no-user-gesture-required', '--window-size=1280,900')


@pytest.fixture
def served(tmp_path):
  for name, seed in (('fake', 0), ('real', 1)):
    videos = np.random.default_rng(seed).integers(0, 256, (3, 8, 16, 16, 3), np.uint8)
    np.savez(tmp_path / f'{name}.npz', video=videos)
  folder = str(tmp_path / 'study')
  human_study.build([f'fake={tmp_path}/fake.npz', f'real={tmp_path}/real.npz'], ['fake:real'],
                    folder, human_study.BuildOptions(per_pair=3, frames=8, size=16, scale=8,
                                                     attention_checks=2))
  app = study_server.create_app(folder, completion_code='DONE42')
  server = serving.make_server('127.0.0.1', 0, app, threaded=True)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  yield folder, f'http://127.0.0.1:{server.server_port}'
  server.shutdown()
  app.answer_log.close()


@pytest.fixture
def browser(tmp_path):
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in CHROMIUM_FLAGS + (f'--user-data-dir={tmp_path / "chromium"}',):
    options.add_argument(flag)
  driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
  driver.set_page_load_timeout(60)
  yield driver
  driver.quit()


def _videos_playing(driver):
  return driver.execute_script(
      "return ['left-video', 'right-video'].every((id) => { const v = document.getElementById(id);"
      " return v.readyState >= 2 && !v.paused && v.currentTime > 0 && v.videoWidth === 128; });")


def _answer(driver, how):
  """Waits for the trial's videos to play and the buttons to wake, answers `how` (a key or a
  button), waits for the next trial or the end; (trial id, choice)."""
  wait = ui.WebDriverWait(driver, 60)
  wait.until(lambda d: d.find_element(by.By.ID, 'choose-left').is_enabled())
  wait.until(_videos_playing)
  trial = driver.find_element(by.By.ID, 'trial-screen').get_attribute('data-trial')
  if how.startswith('choose-'):
    driver.find_element(by.By.ID, how).click()
  else:
    driver.find_element(by.By.TAG_NAME, 'body').send_keys(how)
  wait.until(lambda d: d.find_element(by.By.ID, 'done-screen').is_displayed() or d.find_element(
      by.By.ID, 'trial-screen').get_attribute('data-trial') != trial)
  choice = 'left' if how in ('f', keys.Keys.ARROW_LEFT, 'choose-left') else 'right'
  return trial, choice


def test_a_participant_answers_a_study_in_chromium(served, browser, tmp_path):
  folder, url = served
  browser.get(url)
  assert browser.title == 'Which video is more realistic?'
  browser.find_element(by.By.ID, 'participant').send_keys('lab-01', keys.Keys.ENTER)
  given = [_answer(browser, 'f'), _answer(browser, 'choose-right')]
  browser.save_screenshot(str(tmp_path / 'trial.png'))
  browser.get(f'{url}/?participant=lab-01')  # a reload: the study goes on where it was
  ui.WebDriverWait(browser, 60).until(
      lambda d: d.find_element(by.By.ID, 'progress').text == 'Trial 3 of 5')
  for how in (keys.Keys.ARROW_RIGHT, 'choose-left', 'j'):
    given.append(_answer(browser, how))
  assert browser.find_element(by.By.ID, 'done-screen').is_displayed()
  assert browser.find_element(by.By.ID, 'completion-code').text == 'DONE42'
  assert browser.find_element(by.By.ID, 'completion-link').get_attribute('href').endswith(
      'complete?cc=DONE42')
  assert not browser.find_element(by.By.ID, 'error').is_displayed()
  with open(os.path.join(folder, 'answers.jsonl'), encoding='utf-8') as file:
    records = [json.loads(line) for line in file]
  assert [(record['trial'], record['choice']) for record in records] == given
  assert sorted(trial for trial, _ in given) == ['t001', 't002', 't003', 't004', 't005']
  assert {record['participant'] for record in records} == {'lab-01'}
  assert all(isinstance(record['response_ms'], int) and record['response_ms'] >= 0
             for record in records)
