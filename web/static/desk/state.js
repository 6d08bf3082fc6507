// The desk's state and the small event bus the views listen on.

export const CHANNELS = ['email', 'webchat', 'whatsapp', 'messenger', 'instagram', 'telegram', 'sms'];
export const FINAL_STATES = ['concluded', 'cancelled', 'abandoned', 'rejected'];

export const state = {
  me: null, // {id, login, name, role}
  services: [], // my service ids (GET /me)
  directory: new Map(), // service id -> {id, name, channel, mine}: the active services (GET /services)
  serviceNames: {}, // id -> name, when known
  presence: null, // {status, pause_reason_id, since}
  queues: new Map(), // "channel|service_id" -> QueueDto
  convs: new Map(), // my open conversations: id -> conversation (REST shape + routing facts)
  lastSeq: {}, // id -> last event seq seen
  messages: new Map(), // id -> [message] (loaded conversations)
  loaded: new Map(), // id -> full conversation (GET /conversations/{id}) for views not in convs
  selectedId: null,
  unread: new Map(), // id -> new customer messages not seen
  handed: new Set(), // conversations handed to me by someone else, not yet opened
  handovers: new Map(), // id -> [event]: who handled the conversation before (GET /conversations/{id})
  agentNames: {}, // agent id -> name, as the conversations read name them
  offers: new Map(), // id -> offer
  alerts: new Map(), // id -> alert kind
  pauseReasons: [],
  classifications: [],
  canned: [],
  wsStatus: 'connecting',
  tab: 'active',
  queueChannel: 'whatsapp',
  summary: null,
  summaryMode: 'started',
};

const listeners = new Map();
export function on(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic).delete(fn);
}
export function emit(topic, data) {
  for (const fn of [...(listeners.get(topic) || [])]) {
    try {
      fn(data);
    } catch (e) {
      console.error('desk: listener', topic, e);
    }
  }
}
export function clearListeners() {
  listeners.clear();
}

const CH_NAMES = {
  email: 'E-mail', webchat: 'WebChat', whatsapp: 'WhatsApp', messenger: 'Messenger', instagram: 'Instagram',
  telegram: 'Telegram', sms: 'SMS', voice: 'Telefonia',
};
/** A service's name (GET /services); until that answers, its channel's name. */
export function serviceName(id) {
  if (!id) return '';
  const known = state.directory.get(id);
  if (known) return known.name;
  const ch = channelOfService(id);
  return ch ? CH_NAMES[ch] : '';
}

export function channelOfService(id) {
  const known = state.directory.get(id);
  if (known) return known.channel;
  for (const q of state.queues.values()) if (q.service_id === id) return q.channel;
  return null;
}

/** Waiting customers per channel (sum over services). */
export function waitingByChannel() {
  const out = {};
  for (const q of state.queues.values()) out[q.channel] = (out[q.channel] || 0) + (q.waiting || 0);
  return out;
}

export function isActive(c) {
  return c.state === 'in_service' && c.sub_state !== 'inactive_at_agent';
}
export function isInactive(c) {
  return c.state === 'in_service' && c.sub_state === 'inactive_at_agent';
}

// --- per-tab persistence (sessionStorage): drafts and the last seq seen (D11) ---
const SEQ_KEY = 'omniroute.seq';
export function loadSeqs() {
  try {
    return JSON.parse(sessionStorage.getItem(SEQ_KEY) || '{}') || {};
  } catch {
    return {};
  }
}
export function saveSeqs() {
  try {
    sessionStorage.setItem(SEQ_KEY, JSON.stringify(state.lastSeq));
  } catch {
    /* full */
  }
}
export function noteSeq(id, seq) {
  if (typeof seq !== 'number') return;
  if (!(id in state.lastSeq) || seq > state.lastSeq[id]) {
    state.lastSeq[id] = seq;
    saveSeqs();
  }
}

const draftKey = (id) => `omniroute.draft.${id}`;
/** {text, key (idempotency key of a send in flight / failed), attachments: [{id,name,size}]} */
export function loadDraft(id) {
  try {
    const d = JSON.parse(sessionStorage.getItem(draftKey(id)) || 'null');
    if (d && typeof d === 'object') return { text: d.text || '', key: d.key || null, attachments: d.attachments || [] };
  } catch {
    /* ignore */
  }
  return { text: '', key: null, attachments: [] };
}
export function saveDraft(id, d) {
  try {
    if (!d.text && !d.key && !(d.attachments && d.attachments.length)) sessionStorage.removeItem(draftKey(id));
    else sessionStorage.setItem(draftKey(id), JSON.stringify(d));
  } catch {
    /* full */
  }
}
