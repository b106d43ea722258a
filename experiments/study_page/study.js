// The human study's page (experiments/study_server.py): one trial at a time, each answer sent
// and acknowledged (written and flushed on the server) before the next trial is shown.
'use strict';

const state = {participant: null, trials: [], index: 0, shownAt: 0, busy: false,
               submission: null, completionCode: null, total: 0};

function $(id) { return document.getElementById(id); }

function show(screen) {
  for (const id of ['start-screen', 'trial-screen', 'done-screen']) $(id).hidden = id !== screen;
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

function submissionId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, '');
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function post(path, body) {
  const response = await fetch(path, {method: 'POST', body: JSON.stringify(body),
                                       headers: {'Content-Type': 'application/json'}});
  const reply = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) throw new Error(reply.error || response.statusText);
  return reply;
}

function setButtons(enabled) {
  $('choose-left').disabled = !enabled;
  $('choose-right').disabled = !enabled;
}

function showTrial() {
  if (state.index >= state.trials.length) return finish();
  const trial = state.trials[state.index];
  state.submission = submissionId();
  $('trial-screen').dataset.trial = trial.id;
  setButtons(false);
  const videos = [$('left-video'), $('right-video')];
  let ready = 0;
  for (const [video, src] of [[videos[0], trial.left], [videos[1], trial.right]]) {
    video.onloadeddata = () => {
      video.play().catch(() => {});
      if (++ready === 2) { setButtons(true); state.shownAt = performance.now(); }
    };
    video.onerror = () => showError('A video failed to load; reload the page to try again.');
    video.src = src;
  }
  $('progress').textContent =
      `Trial ${state.total - state.trials.length + state.index + 1} of ${state.total}`;
  show('trial-screen');
}

async function choose(choice) {
  if (state.busy || $('choose-left').disabled) return;
  state.busy = true;
  setButtons(false);
  const trial = state.trials[state.index];
  try {
    await post('/api/answer', {participant: state.participant, trial: trial.id, choice,
                               submission: state.submission,
                               response_ms: Math.round(performance.now() - state.shownAt)});
    showError('');
    state.index += 1;
    showTrial();
  } catch (error) {
    // The same submission id is sent again on retry, so the server records it once.
    showError(`Your answer was not saved (${error.message}); choose again.`);
    setButtons(true);
  } finally {
    state.busy = false;
  }
}

function finish() {
  for (const video of [$('left-video'), $('right-video')]) { video.pause(); video.removeAttribute('src'); }
  if (state.completionCode) {
    $('completion-code').textContent = state.completionCode;
    $('completion-link').href =
        'https://app.prolific.com/submissions/complete?cc=' + encodeURIComponent(state.completionCode);
    $('completion').hidden = false;
  }
  show('done-screen');
}

async function start(code) {
  try {
    const reply = await post('/api/start', {participant: code});
    const answered = new Set(reply.answered);
    state.participant = reply.participant;
    state.total = reply.trials.length;
    state.trials = reply.trials.filter((trial) => !answered.has(trial.id));
    state.completionCode = reply.completion_code;
    $('participant-label').textContent = `Participant ${reply.participant}`;
    $('question').textContent = reply.question;
    showError('');
    showTrial();
  } catch (error) {
    showError(error.message);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  const query = new URLSearchParams(window.location.search);
  const code = query.get('participant') || query.get('PROLIFIC_PID');
  $('start-form').addEventListener('submit', (event) => {
    event.preventDefault();
    start($('participant').value.trim());
  });
  $('choose-left').addEventListener('click', () => choose('left'));
  $('choose-right').addEventListener('click', () => choose('right'));
  document.addEventListener('keydown', (event) => {
    if ($('trial-screen').hidden || event.repeat) return;
    if (event.key === 'f' || event.key === 'F' || event.key === 'ArrowLeft') choose('left');
    if (event.key === 'j' || event.key === 'J' || event.key === 'ArrowRight') choose('right');
  });
  if (code) { $('participant').value = code; start(code); }
});
