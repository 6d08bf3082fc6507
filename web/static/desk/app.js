// Omniroute agent desk: entry point. Sign-in, the desk shell, the WebSocket and the actions.
import { api, ApiError, setUnauthorizedHandler } from './api.js';
import { DeskSocket } from './ws.js';
import { h, replace, debounce, uuid } from './dom.js';
import { t, setLang, getLang } from './i18n.js';
import { beep, unlockAudio } from './sound.js';
import {
  state, emit, on, clearListeners, noteSeq, loadSeqs, saveSeqs, FINAL_STATES,
} from './state.js';
import { renderLogin } from './views/login.js';
import { mountTopbar } from './views/topbar.js';
import { mountChannels, mountQueue } from './views/channels.js';
import { mountConvList } from './views/convlist.js';
import { mountMain } from './views/main.js';

const root = document.getElementById('app');
let socket = null;
let signedIn = false;

// ---------- messages to the agent ----------
export function toast(text, kind = 'info') {
  emit('toast', { text, kind });
}

/** The agent's words for a server error code; the server's (English) message only for a code
 *  this desk has no text for. */
function codeText(code, message) {
  const k = `err.${code}`;
  const tr = t(k);
  return tr !== k ? tr : t('err.generic', { m: message || code });
}

export function errorText(e) {
  if (e instanceof ApiError) {
    if (e.status === 0) return t('err.network');
    return codeText(e.code, e.message);
  }
  return t('err.generic', { m: String(e && e.message ? e.message : e) });
}

// ---------- title alert (D7) ----------
function updateTitle() {
  let n = state.handed.size;
  for (const v of state.unread.values()) n += v;
  document.title = n > 0 ? `(${n}) ${t('app.title')}` : t('app.title');
}
function isFocused(id) {
  return state.selectedId === id && document.visibilityState === 'visible' && document.hasFocus();
}
function clearUnread(id) {
  const handed = state.handed.delete(id);
  if (state.unread.delete(id) || handed) {
    updateTitle();
    emit('convs');
  }
}
window.addEventListener('focus', () => state.selectedId && clearUnread(state.selectedId));
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && document.hasFocus() && state.selectedId) clearUnread(state.selectedId);
});

// ---------- conversations ----------
const fetching = new Map();
/** Loads a conversation with its messages (REST) into state; returns it. */
export function loadConversation(id) {
  if (fetching.has(id)) return fetching.get(id);
  const p = api
    .conversation(id)
    .then(({ data }) => {
      const { messages, handovers, agents, ...conv } = data;
      state.loaded.set(id, conv);
      state.handovers.set(id, handovers || []);
      Object.assign(state.agentNames, agents || {});
      if (state.convs.has(id)) Object.assign(state.convs.get(id), conv);
      const live = state.messages.get(id) || [];
      // Keep live messages that arrived while fetching (newer status wins by id).
      const byId = new Map((messages || []).map((m) => [m.id, m]));
      for (const m of live) {
        const old = byId.get(m.id);
        if (!old || rank(m.status) >= rank(old.status)) byId.set(m.id, { ...old, ...m });
      }
      state.messages.set(id, sortMessages([...byId.values()]));
      emit('messages', id);
      emit('conversation', id);
      return conv;
    })
    .finally(() => fetching.delete(id));
  fetching.set(id, p);
  return p;
}
// As advance_message_status: sent < delivered < read; failed is final.
const RANK = { received: 0, pending: 1, sent: 2, delivered: 3, read: 4, failed: 9 };
function rank(s) {
  return RANK[s] ?? 0;
}
function sortMessages(list) {
  return list.sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
}
export function upsertMessage(m) {
  const id = m.conversation_id;
  if (!state.messages.has(id)) return false;
  const list = state.messages.get(id);
  const i = list.findIndex((x) => x.id === m.id);
  if (i >= 0) {
    const had = list[i];
    if (m.status && had.status && rank(m.status) <= rank(had.status)) {
      // A status moves forward only, as on the server: the send's own answer ("pending") or a
      // late "sent" can arrive after the pushed "delivered" or "failed", and must not move the
      // ticks back or clear the provider's error.
      list[i] = { ...had, ...m, status: had.status, error_code: had.error_code, error_message: had.error_message };
    } else list[i] = { ...had, ...m };
  } else {
    list.push(m);
    sortMessages(list);
  }
  emit('messages', id);
  return true;
}

export function select(id) {
  state.selectedId = id;
  try {
    if (id) sessionStorage.setItem('omniroute.selected', id);
    else sessionStorage.removeItem('omniroute.selected');
  } catch {
    /* ignore */
  }
  if (id) {
    clearUnread(id);
    if (!state.messages.has(id)) loadConversation(id).catch((e) => toast(errorText(e), 'error'));
  }
  emit('selected', id);
}

function addMine(conv) {
  const existing = state.convs.get(conv.id);
  if (existing) Object.assign(existing, conv);
  else state.convs.set(conv.id, { ...conv });
  if (typeof conv.last_seq === 'number') noteSeq(conv.id, conv.last_seq);
  emit('convs');
}

function removeMine(id) {
  if (state.convs.delete(id)) emit('convs');
  state.unread.delete(id);
  state.alerts.delete(id);
  updateTitle();
}

// ---------- actions ----------
export async function pullNext(channel) {
  unlockAudio();
  state.queueChannel = channel;
  emit('queueChannel');
  try {
    const res = await api.pullNext(channel);
    if (res.status === 204 || !res.data) {
      toast(t('pull.none'));
      return;
    }
    addMine(res.data);
    select(res.data.id);
    refreshSummarySoon();
    emit('queueRefresh');
  } catch (e) {
    toast(errorText(e), 'error');
  }
}

export async function pullChosen(id) {
  try {
    const res = await api.pullChosen(id);
    if (res.data) addMine(res.data);
    select(id);
    refreshSummarySoon();
    emit('queueRefresh');
  } catch (e) {
    if (e instanceof ApiError && e.code === 'already_taken' && state.convs.has(id)) select(id);
    else toast(errorText(e), 'error');
    emit('queueRefresh');
  }
}

export async function setPresence(status, reasonId) {
  try {
    const { data } = await api.presence(status, reasonId);
    state.presence = data;
    emit('presence');
  } catch (e) {
    toast(errorText(e), 'error');
  }
}

export async function refreshSummary() {
  try {
    const { data } = await api.summary();
    state.summary = data;
    emit('summary');
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) console.warn('summary', e);
  }
}
const refreshSummarySoon = debounce(refreshSummary, 400);

export async function logout() {
  try {
    await api.logout();
  } catch {
    /* signed out anyway */
  }
  endDesk();
  showLogin();
}

export function changeLang(l) {
  setLang(l);
  updateTitle();
  if (signedIn) buildDesk();
  else showLogin();
}

/** After a conversation action (transfer/return/conclude/cancel) that takes it away from me. */
export function afterLeaving(id) {
  removeMine(id);
  if (state.selectedId === id) select(null);
  refreshSummarySoon();
}

export function answerOffer(id, accept) {
  const sent = socket && socket.send({ type: accept ? 'accept' : 'decline', conversation_id: id, ref: uuid() });
  if (!sent) {
    toast(t('err.network'), 'error');
    return;
  }
  state.offers.delete(id);
  emit('offers');
  if (accept) select(id);
}

export function dropConnection() {
  if (socket) socket.drop();
}

// ---------- WebSocket ----------
function onWs(msg) {
  switch (msg.type) {
    case 'snapshot':
      return onSnapshot(msg);
    case 'event':
      return onEvent(msg);
    case 'gap':
      return onGap(msg);
    case 'queue':
      state.queues.set(`${msg.channel}|${msg.service_id}`, msg);
      emit('queues', msg);
      return;
    case 'presence':
      state.presence = { status: msg.status, pause_reason_id: msg.pause_reason_id, since: msg.since };
      emit('presence');
      return;
    case 'message':
      return onMessage(msg.message);
    case 'alert':
      state.alerts.set(msg.conversation_id, msg.kind);
      emit('convs');
      return;
    case 'error':
      if (msg.error || msg.message) toast(codeText(msg.error, msg.message), 'error');
      return;
    default:
  }
}

function onSnapshot(msg) {
  // What this tab was showing, with the last seq seen: resume from there (D11).
  const shown = { ...loadSeqs(), ...state.lastSeq };
  const wanted = new Set([...state.convs.keys(), ...Object.keys(shown)]);
  if (state.selectedId) wanted.add(state.selectedId);
  const resume = {};
  for (const id of wanted) if (typeof shown[id] === 'number') resume[id] = shown[id];

  state.me = msg.agent;
  state.presence = msg.presence;
  state.queues = new Map((msg.queues || []).map((q) => [`${q.channel}|${q.service_id}`, q]));
  const before = new Set(state.convs.keys());
  state.convs = new Map();
  for (const c of msg.conversations || []) {
    state.convs.set(c.id, { ...c });
    noteSeq(c.id, c.last_seq);
  }
  state.offers = new Map((msg.offers || []).map((o) => [o.conversation_id, o]));
  // Forget seqs of conversations neither shown nor mine any more.
  for (const id of Object.keys(state.lastSeq)) {
    if (!state.convs.has(id) && !before.has(id) && id !== state.selectedId) delete state.lastSeq[id];
  }
  saveSeqs();
  if (Object.keys(resume).length && socket) socket.send({ type: 'resume', conversations: resume });
  emit('presence');
  emit('queues');
  emit('convs');
  emit('offers');
  emit('queueRefresh');
  // Messages are not events: reload the open conversations' histories from the server.
  for (const id of state.messages.keys()) {
    if (id === state.selectedId || state.convs.has(id)) loadConversation(id).catch(() => {});
    else state.messages.delete(id);
  }
  if (state.selectedId && !state.messages.has(state.selectedId)) loadConversation(state.selectedId).catch(() => {});
  emit('conversation', state.selectedId);
  refreshSummarySoon();
}

// The events that move a conversation between people and queues (the server's HANDOVERS).
const HANDOVERS = ['assigned', 'offer_accepted', 'transferred', 'transferred_to_service', 'transferred_out', 'returned', 'requeued'];

/** Someone else gave me a conversation (a transfer, automatic distribution, a colleague who
 * left): told like a customer's new message — sound, title count, highlight — and in words. */
function handedToMe(id, ev) {
  if (!ev || (ev.actor_agent_id && state.me && ev.actor_agent_id === state.me.id)) return;
  if (isFocused(id)) return;
  state.handed.add(id);
  updateTitle();
  beep();
  const by = ev.actor_agent_id && state.agentNames[ev.actor_agent_id];
  toast(ev.kind === 'transferred' ? t('handed.transferred', { a: by || t('conv.agent') }) : t('handed.assigned'), 'ok');
}

function applyFacts(id, facts, kind, ev) {
  const mine = state.me && facts.agent_id === state.me.id && facts.state === 'in_service';
  if (facts.offer && state.me && facts.offer.agent_id === state.me.id) {
    state.offers.set(id, {
      conversation_id: id, channel: facts.channel, service_id: facts.service_id, expires_at: facts.offer.expires_at,
    });
    emit('offers');
  } else if (state.offers.delete(id)) emit('offers');
  const { offer, ...rest } = facts;
  if (mine) {
    if (state.convs.has(id)) {
      Object.assign(state.convs.get(id), rest);
      emit('convs');
    } else {
      state.convs.set(id, { ...rest, customer: { name: null, address: '' } });
      handedToMe(id, ev);
      emit('convs');
      loadConversation(id).then((c) => addMine(c)).catch(() => {});
    }
  } else if (state.convs.has(id)) {
    removeMine(id);
  }
  if (state.loaded.has(id)) Object.assign(state.loaded.get(id), rest);
  if (id === state.selectedId) emit('conversation', id);
  if (['assigned', 'concluded', 'cancelled', 'abandoned', 'transferred', 'transferred_out',
    'transferred_to_service', 'returned', 'offer_accepted'].includes(kind)) refreshSummarySoon();
}

function onEvent(ev) {
  const id = ev.conversation_id;
  noteSeq(id, ev.seq);
  if (ev.conversation) applyFacts(id, ev.conversation, ev.kind, ev);
  else loadConversation(id).then((c) => applyFacts(id, c, ev.kind, ev)).catch(() => {});
  // A shown conversation's account of who handled it (with the names) is read again.
  if (HANDOVERS.includes(ev.kind) && state.messages.has(id)) loadConversation(id).catch(() => {});
}

function onGap(msg) {
  const id = msg.conversation_id;
  const events = msg.events || [];
  for (const ev of events) noteSeq(id, ev.seq);
  if (!events.length) return;
  // The snapshot already holds the server's state for my conversations; for one that left me
  // meanwhile, reload it so the view shows what happened.
  if (!state.convs.has(id) && (state.selectedId === id || state.loaded.has(id))) {
    loadConversation(id).catch(() => {});
  }
  if (events.some((e) => FINAL_STATES.includes(e.to_state) || e.kind === 'assigned')) refreshSummarySoon();
}

function onMessage(m) {
  if (!m || !m.conversation_id) return;
  const id = m.conversation_id;
  upsertMessage(m);
  if (m.direction === 'in' && !isFocused(id)) {
    state.unread.set(id, (state.unread.get(id) || 0) + 1);
    updateTitle();
    beep();
    emit('convs');
  }
  const c = state.convs.get(id);
  if (c && m.direction === 'in') {
    c.last_customer_message_at = m.created_at;
    emit('convs');
  }
}

// ---------- shell ----------
function showLogin() {
  signedIn = false;
  clearListeners();
  document.title = t('app.title');
  replace(root, renderLogin({ onSignedIn: startDesk, changeLang }));
}

function endDesk() {
  signedIn = false;
  if (socket) socket.stop();
  socket = null;
  clearInterval(clockTimer);
  state.convs.clear();
  state.messages.clear();
  state.loaded.clear();
  state.unread.clear();
  state.offers.clear();
  state.selectedId = null;
  state.summary = null;
  state.lastSeq = {};
  try {
    sessionStorage.removeItem('omniroute.seq');
  } catch {
    /* ignore */
  }
  updateTitle();
}

let clockTimer = null;
function buildDesk() {
  clearListeners();
  const toasts = h('div', { class: 'toasts', testid: 'toasts', role: 'status', 'aria-live': 'polite' });
  on('toast', ({ text, kind }) => {
    const el = h('div', { class: ['toast', `toast-${kind}`], testid: 'toast' }, text);
    toasts.appendChild(el);
    setTimeout(() => el.remove(), kind === 'error' ? 7000 : 4000);
  });
  const top = h('header', { class: 'topbar' });
  const bar = h('div', { class: 'desk-bar' });
  const left = h('aside', { class: 'col-left', 'aria-label': t('channels.title') });
  const channels = h('div', { class: 'channels' });
  const queue = h('div', { class: 'queue-panel' });
  left.append(channels, queue);
  const middle = h('section', { class: 'col-middle', 'aria-label': t('tabs.mine') });
  const main = h('section', { class: 'col-main' });
  replace(root, h('div', { class: 'desk', testid: 'desk' }, top, bar, left, middle, main, toasts));
  const actions = {
    select, pullNext, pullChosen, setPresence, logout, changeLang, toast, errorText, refreshSummary,
    loadConversation, afterLeaving, upsertMessage, addMine, answerOffer,
  };
  mountTopbar(top, actions, bar);
  mountChannels(channels, actions);
  mountQueue(queue, actions);
  mountConvList(middle, actions);
  mountMain(main, actions);
  clearInterval(clockTimer);
  clockTimer = setInterval(() => emit('tick'), 1000);
  emit('presence');
  emit('queues');
  emit('convs');
  emit('offers');
  emit('summary');
  emit('ws', state.wsStatus);
}

async function loadPickers() {
  const [pr, cl, cm] = await Promise.allSettled([api.pauseReasons(), api.classifications(), api.canned()]);
  if (pr.status === 'fulfilled') state.pauseReasons = pr.value.data || [];
  if (cl.status === 'fulfilled') state.classifications = cl.value.data || [];
  if (cm.status === 'fulfilled') state.canned = cm.value.data || [];
  emit('pickers');
  // Colleagues' names, for the notice of a transfer before its conversation is read.
  api.colleagues().then(({ data }) => {
    for (const x of data || []) state.agentNames[x.id] = x.name;
  }).catch(() => {});
  try {
    const { data } = await api.services();
    state.directory = new Map((data || []).map((x) => [x.id, x]));
    emit('queues');
    emit('convs');
    emit('selected', state.selectedId);
  } catch {
    /* the labels fall back to the channel's name */
  }
}

async function startDesk(me) {
  signedIn = true;
  state.me = me.agent;
  state.services = me.services || [];
  state.presence = me.presence || null;
  state.lastSeq = loadSeqs();
  try {
    state.selectedId = sessionStorage.getItem('omniroute.selected') || null;
  } catch {
    state.selectedId = null;
  }
  buildDesk();
  loadPickers();
  refreshSummary();
  socket = new DeskSocket({
    onMessage: onWs,
    onStatus: (s) => {
      state.wsStatus = s;
      if (s === 'online') state.wsWasOnline = true;
      emit('ws', s);
    },
    onClosed: async (ev) => {
      // The server closes with 4401 "session_revoked" when this session was signed out,
      // deactivated or its password changed (docs/protocol.md): back to the sign-in page.
      if (ev && ev.code === 4401) {
        sessionEnded();
        return false;
      }
      // Any other close may still mean the session ended: check before retrying.
      try {
        await api.me();
        return true;
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) {
          sessionEnded();
          return false;
        }
        return true;
      }
    },
  });
  socket.start();
  // Diagnostics for tests: the state, a way to drop the socket, and to feed it a server frame.
  window.__omniroute = { state, dropConnection, getLang, inject: onWs };
}

function sessionEnded() {
  if (!signedIn) return;
  endDesk();
  showLogin();
  toastOnLogin(t('err.session'));
}
function toastOnLogin(text) {
  const el = root.querySelector('[data-testid="login-error"]');
  if (el) {
    el.textContent = text;
    el.hidden = false;
  }
}
setUnauthorizedHandler(() => sessionEnded());

async function boot() {
  try {
    const { data } = await api.me();
    await startDesk(data);
  } catch {
    showLogin();
  }
}

// Fetch /me after login to get services and presence.
export async function afterLogin() {
  const { data } = await api.me();
  await startDesk(data);
}

boot();
