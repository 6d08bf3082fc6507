// The Omniroute customer chat widget (docs/protocol.md, "Webchat"). Plain ES module: a start
// form, then messages both ways over /ws/webchat, files over HTTP with the chat's token. The
// token and the messages not yet acknowledged live in localStorage, so a reload resumes the
// same conversation and re-sends (idempotently, by client_id) what had not been stored.

import { ERRORS } from './errors.js';

const TEXTS = {
  pt: {
    title: 'Fale conosco', intro: 'Para começar, diga seu nome e e-mail.', name: 'Nome', email: 'E-mail',
    start: 'Iniciar conversa', message: 'Mensagem', placeholder: 'Escreva sua mensagem…', send: 'Enviar',
    attach: 'Anexar arquivo', record: 'Gravar áudio', stop: 'Parar gravação', history: 'Mensagens',
    you: 'Você', agent: 'Atendente', connecting: 'Conectando…', reconnecting: 'Reconectando…',
    queued: 'Aguardando um atendente…', in_service: 'Você está falando com um atendente.',
    ended: 'Atendimento encerrado. Envie uma mensagem para começar outro.',
    name_required: 'Informe seu nome.', email_invalid: 'Informe um e-mail válido, como nome@exemplo.com.',
    sending: 'enviando…', sent: 'enviada', failed: 'não enviada', file: 'arquivo',
    upload_failed: 'Não foi possível enviar o arquivo', mic_denied: 'Não foi possível usar o microfone.',
    expired: 'Sua conversa anterior não pode ser retomada. Comece uma nova.',
    error: 'Não foi possível concluir. Tente novamente.',
  },
  en: {
    title: 'Chat with us', intro: 'To start, tell us your name and email.', name: 'Name', email: 'Email',
    start: 'Start chat', message: 'Message', placeholder: 'Type your message…', send: 'Send',
    attach: 'Attach a file', record: 'Record audio', stop: 'Stop recording', history: 'Messages',
    you: 'You', agent: 'Agent', connecting: 'Connecting…', reconnecting: 'Reconnecting…',
    queued: 'Waiting for an agent…', in_service: 'You are chatting with an agent.',
    ended: 'This chat has ended. Send a message to start another.',
    name_required: 'Please tell us your name.', email_invalid: 'Please type a valid email, like name@example.com.',
    sending: 'sending…', sent: 'sent', failed: 'not sent', file: 'file',
    upload_failed: 'The file could not be sent', mic_denied: 'The microphone could not be used.',
    expired: 'Your previous chat cannot be resumed. Please start a new one.',
    error: 'Something went wrong. Please try again.',
  },
};
// The visitor's preferred language first (what the browser asks sites for), then its UI language.
const lang = ((navigator.languages && navigator.languages[0]) || navigator.language || 'pt').toLowerCase().startsWith('pt')
  ? 'pt'
  : 'en';
const t = (key) => TEXTS[lang][key] ?? key;
// The customer's words for a server error code; the server's own message is for developers.
const errorText = (code) => ERRORS[lang][code] ?? t('error');
document.documentElement.lang = lang === 'pt' ? 'pt-BR' : 'en';

const $ = (id) => document.getElementById(id);
const serviceId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const KEY = `omniroute.webchat.${serviceId}`;
const RETRYABLE = new Set(['unavailable', 'too_many_in_flight', 'internal']);

const store = {
  get token() { return localStorage.getItem(`${KEY}.token`); },
  set token(v) { v ? localStorage.setItem(`${KEY}.token`, v) : localStorage.removeItem(`${KEY}.token`); },
  get outbox() { try { return JSON.parse(localStorage.getItem(`${KEY}.outbox`)) || []; } catch { return []; } },
  set outbox(v) { localStorage.setItem(`${KEY}.outbox`, JSON.stringify(v)); },
};

let ws = null;
let started = false;
let pendingStart = null;
let backoff = 1000;
let conversation = null;
const shown = new Map(); // message id or client id -> <li>
const unreadAgent = new Set();

function translate() {
  document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll('[data-i18n-label]').forEach((el) => {
    el.setAttribute('aria-label', t(el.dataset.i18nLabel));
    if (el.tagName === 'BUTTON') el.title = t(el.dataset.i18nLabel);
  });
  document.querySelectorAll('[data-i18n-placeholder]').forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  document.title = t('title');
}

function status(text) { $('status').textContent = text; }

function notice(text) {
  const n = $('notice');
  n.textContent = text || '';
  n.hidden = !text;
}

function showForm() {
  started = false;
  $('conversation').hidden = true;
  $('start').hidden = false;
  $('start-button').disabled = false;
  $('name').focus();
}

function showChat() {
  $('start').hidden = true;
  $('conversation').hidden = false;
}

function send(frame) {
  if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(frame)); return true; }
  return false;
}

function connect() {
  status(started ? t('reconnecting') : t('connecting'));
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  ws = new WebSocket(`${proto}//${location.host}/ws/webchat?service_id=${encodeURIComponent(serviceId)}`);
  ws.addEventListener('open', () => {
    backoff = 1000;
    if (store.token) send({ type: 'resume', token: store.token });
    else if (pendingStart) send({ type: 'start', ...pendingStart });
    else { status(''); showForm(); }
  });
  ws.addEventListener('message', (e) => {
    let frame;
    try { frame = JSON.parse(e.data); } catch { return; }
    handle(frame);
  });
  ws.addEventListener('close', () => {
    ws = null;
    if (store.token || pendingStart) {
      status(t('reconnecting'));
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    }
  });
}

function handle(f) {
  switch (f.type) {
    case 'started': {
      if (f.token) store.token = f.token;
      conversation = f.conversation_id;
      pendingStart = null;
      started = true;
      showChat();
      $('messages').replaceChildren();
      shown.clear();
      f.messages.forEach(render);
      stateChanged(f.state);
      // What was typed but not acknowledged before the reload goes again (stored once).
      store.outbox.forEach((m) => {
        renderPending(m);
        send({ type: 'message', client_id: m.client_id, text: m.text, attachment_ids: m.attachment_ids });
      });
      receipts();
      $('text').focus();
      break;
    }
    case 'ack': {
      store.outbox = store.outbox.filter((m) => m.client_id !== f.client_id);
      if (f.conversation_id !== conversation) { conversation = f.conversation_id; status(t('queued')); }
      const li = shown.get(f.client_id);
      if (li) {
        li.classList.remove('sending');
        li.dataset.id = f.message_id;
        shown.set(f.message_id, li);
        meta(li, `${time()} · ${t('sent')}`);
      }
      break;
    }
    case 'message': render(f.message); receipts(); break;
    case 'state': stateChanged(f.state); break;
    case 'ended': stateChanged('ended'); break;
    case 'error': failed(f); break;
    default: break;
  }
}

function stateChanged(state) {
  if (state === 'in_service') status(t('in_service'));
  else if (['concluded', 'cancelled', 'abandoned', 'rejected', 'ended'].includes(state)) {
    status(t('ended'));
    const li = document.createElement('li');
    li.className = 'system';
    li.textContent = t('ended');
    $('messages').append(li);
    scroll();
  } else status(t('queued'));
}

function failed(f) {
  if (f.error === 'invalid_token') {
    store.token = null;
    store.outbox = [];
    notice('');
    showForm();
    $('email-error').textContent = t('expired');
    return;
  }
  if (f.error === 'invalid_name') { fieldError('name', t('name_required')); $('start-button').disabled = false; return; }
  if (f.error === 'invalid_email') { fieldError('email', t('email_invalid')); $('start-button').disabled = false; return; }
  if (f.client_id && !RETRYABLE.has(f.error)) {
    store.outbox = store.outbox.filter((m) => m.client_id !== f.client_id);
    const li = shown.get(f.client_id);
    if (li) { li.classList.remove('sending'); li.classList.add('failed'); meta(li, `${t('failed')}: ${errorText(f.error)}`); }
    return;
  }
  notice(errorText(f.error));
}

function scroll() { const list = $('messages'); list.scrollTop = list.scrollHeight; }

function meta(li, text) {
  let m = li.querySelector('.meta');
  if (!m) { m = document.createElement('span'); m.className = 'meta'; li.append(m); }
  m.textContent = text;
}

function time(iso) {
  const d = iso ? new Date(iso) : new Date();
  return d.toLocaleTimeString(lang === 'pt' ? 'pt-BR' : 'en', { hour: '2-digit', minute: '2-digit' });
}

function bubble(from) {
  const li = document.createElement('li');
  li.className = `msg ${from}`;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = from === 'agent' ? t('agent') : t('you');
  li.append(who);
  return li;
}

// Text is always set as text: nothing a customer or agent types can run as code.
function render(m) {
  if (shown.has(m.id)) return;
  const mine = m.client_id && shown.get(m.client_id);
  const li = mine || bubble(m.from);
  if (!mine) {
    if (m.text) { const p = document.createElement('span'); p.className = 'text'; p.textContent = m.text; li.append(p); }
    m.attachments.forEach((a) => li.append(attachment(a)));
    $('messages').append(li);
  }
  li.classList.remove('sending');
  li.dataset.id = m.id;
  meta(li, time(m.created_at));
  shown.set(m.id, li);
  if (m.client_id) shown.set(m.client_id, li);
  if (m.from === 'agent') unreadAgent.add(m.id);
  scroll();
}

function renderPending(m) {
  if (shown.has(m.client_id)) return;
  const li = bubble('customer');
  li.classList.add('sending');
  if (m.text) { const p = document.createElement('span'); p.className = 'text'; p.textContent = m.text; li.append(p); }
  (m.files || []).forEach((a) => li.append(attachment({ ...a, url: fileUrl(a.id) })));
  meta(li, t('sending'));
  $('messages').append(li);
  shown.set(m.client_id, li);
  scroll();
}

function fileUrl(id) {
  return `/webchat/${encodeURIComponent(serviceId)}/attachments/${encodeURIComponent(id)}`;
}

async function fetchFile(a) {
  const res = await fetch(a.url, { headers: { Authorization: `Bearer ${store.token}` } });
  if (!res.ok) throw new Error(String(res.status));
  return URL.createObjectURL(await res.blob());
}

function attachment(a) {
  const box = document.createElement('span');
  if (a.content_type.startsWith('image/')) {
    const img = document.createElement('img');
    img.alt = a.name;
    fetchFile(a).then((u) => { img.src = u; }).catch(() => { img.alt = `${a.name} (${t('failed')})`; });
    box.append(img);
  } else if (a.content_type.startsWith('audio/')) {
    const audio = document.createElement('audio');
    audio.controls = true;
    audio.setAttribute('aria-label', a.name);
    fetchFile(a).then((u) => { audio.src = u; }).catch(() => {});
    box.append(audio);
  } else {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'file';
    b.textContent = `${t('file')}: ${a.name}`;
    b.addEventListener('click', async () => {
      const link = document.createElement('a');
      link.href = await fetchFile(a);
      link.download = a.name;
      link.click();
    });
    box.append(b);
  }
  return box;
}

function receipts() {
  if (!unreadAgent.size) return;
  const ids = [...unreadAgent].slice(0, 100);
  send({ type: 'receipt', status: 'delivered', message_ids: ids });
  if (document.visibilityState === 'visible') {
    send({ type: 'receipt', status: 'read', message_ids: ids });
    ids.forEach((id) => unreadAgent.delete(id));
  }
}
document.addEventListener('visibilitychange', receipts);

function clientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `c${Date.now().toString(36)}${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function post(message) {
  const m = { client_id: clientId(), ...message };
  store.outbox = [...store.outbox, m];
  renderPending(m);
  send({ type: 'message', client_id: m.client_id, text: m.text, attachment_ids: m.attachment_ids });
}

async function upload(file, name) {
  const form = new FormData();
  form.append('file', file, name || file.name);
  const res = await fetch(`/webchat/${encodeURIComponent(serviceId)}/attachments`, {
    method: 'POST', headers: { Authorization: `Bearer ${store.token}` }, body: form,
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.message || String(res.status)), { code: body.error });
  return body;
}

async function sendFiles(files, names) {
  for (const [i, file] of [...files].entries()) {
    const name = names?.[i] || file.name;
    try {
      const a = await upload(file, name);
      post({ attachment_ids: [a.id], files: [{ id: a.id, name: a.name, content_type: a.content_type, size: a.size }] });
    } catch (e) {
      notice(`${t('upload_failed')} (${name}): ${errorText(e.code)}`);
    }
  }
}

function fieldError(field, text) {
  $(field).setAttribute('aria-invalid', text ? 'true' : 'false');
  $(`${field}-error`).textContent = text || '';
}

$('start').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('name').value.trim();
  const email = $('email').value.trim();
  const emailOk = /^[^\s@<>",;]+@[^\s@<>",;]+\.[^\s@<>",;]+$/.test(email);
  fieldError('name', name ? '' : t('name_required'));
  fieldError('email', emailOk ? '' : t('email_invalid'));
  if (!name || !emailOk) { (name ? $('email') : $('name')).focus(); return; }
  $('start-button').disabled = true;
  pendingStart = { name, email };
  if (!send({ type: 'start', ...pendingStart }) && !ws) connect();
});

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('text').value.trim();
  if (!text) return;
  $('text').value = '';
  notice('');
  post({ text });
});

$('text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('composer').requestSubmit(); }
});

$('attach').addEventListener('click', () => $('file').click());
$('file').addEventListener('change', () => { sendFiles($('file').files); $('file').value = ''; });

let recorder = null;
$('record').addEventListener('click', async () => {
  const button = $('record');
  if (recorder) { recorder.stop(); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const type = ['audio/webm', 'audio/ogg'].find((m) => MediaRecorder.isTypeSupported(m)) || '';
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    const chunks = [];
    recorder.addEventListener('dataavailable', (e) => chunks.push(e.data));
    recorder.addEventListener('stop', () => {
      stream.getTracks().forEach((tr) => tr.stop());
      const mime = (recorder.mimeType || type || 'audio/webm').split(';')[0];
      const blob = new Blob(chunks, { type: mime });
      recorder = null;
      button.setAttribute('aria-pressed', 'false');
      button.setAttribute('aria-label', t('record'));
      if (blob.size) sendFiles([blob], [`audio-${Date.now()}.${mime.endsWith('ogg') ? 'ogg' : 'webm'}`]);
    });
    recorder.start();
    button.setAttribute('aria-pressed', 'true');
    button.setAttribute('aria-label', t('stop'));
  } catch {
    recorder = null;
    notice(t('mic_denied'));
  }
});

translate();
if (store.token) connect();
else showForm();
