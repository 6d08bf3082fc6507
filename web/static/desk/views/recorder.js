// Voice notes (D6, WhatsApp and webchat): the browser's microphone through MediaRecorder. Opus in
// Ogg where the browser can write it, else in WebM (Chromium), which the server moves into Ogg for
// WhatsApp. A note stops by itself at MAX_SECONDS.
import { h, replace, clock } from '../dom.js';
import { t } from '../i18n.js';

const MAX_SECONDS = 300;
const TYPES = ['audio/ogg;codecs=opus', 'audio/webm;codecs=opus'];

/** Whether this browser can record at all. */
export function canRecord() {
  return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
}

/**
 * The recording bar: `start()` asks for the microphone and records; "send" hands the note to
 * `onDone(file)`, "discard" drops it. `onError(text)` reports a refused microphone.
 */
export function recorder({ onDone, onError }) {
  const time = h('span', { class: 'rec-time', testid: 'record-time' }, '00:00');
  const send = h('button', { type: 'button', class: 'btn btn-small btn-primary', testid: 'record-send' }, t('record.send'));
  const discard = h('button', { type: 'button', class: 'btn btn-small btn-ghost', testid: 'record-discard' }, t('record.discard'));
  const bar = h('div', { class: 'rec-bar', testid: 'record-bar', role: 'status', hidden: true },
    h('span', { class: 'rec-dot', 'aria-hidden': 'true' }), h('span', {}, t('record.recording')), time, discard, send);
  let media = null;
  let stream = null;
  let chunks = [];
  let keep = false;
  let started = 0;
  let ticker = null;

  function stopAll() {
    clearInterval(ticker);
    if (stream) stream.getTracks().forEach((tr) => tr.stop());
    stream = null;
    bar.hidden = true;
  }

  async function start() {
    if (media) return;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      onError(t('record.denied'));
      return;
    }
    const type = TYPES.find((x) => MediaRecorder.isTypeSupported(x));
    media = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    chunks = [];
    keep = false;
    media.addEventListener('dataavailable', (e) => { if (e.data && e.data.size) chunks.push(e.data); });
    media.addEventListener('stop', () => {
      const mime = (media.mimeType || type || 'audio/webm').split(';')[0];
      media = null;
      stopAll();
      if (!keep || !chunks.length) return;
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      const ext = mime === 'audio/ogg' ? 'ogg' : 'webm';
      onDone(new File(chunks, `audio-${stamp}.${ext}`, { type: mime }));
    });
    media.start(1000);
    started = Date.now();
    replace(time, '00:00');
    ticker = setInterval(() => {
      const s = (Date.now() - started) / 1000;
      time.textContent = clock(s);
      if (s >= MAX_SECONDS) finish(true);
    }, 250);
    bar.hidden = false;
    send.focus();
  }

  function finish(send) {
    keep = send;
    if (media && media.state !== 'inactive') media.stop();
    else stopAll();
  }

  send.addEventListener('click', () => finish(true));
  discard.addEventListener('click', () => finish(false));
  bar.addEventListener('keydown', (e) => { if (e.key === 'Escape') finish(false); });
  return { bar, start, recording: () => !!media, cancel: () => finish(false) };
}
