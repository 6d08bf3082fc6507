// REST client: same-origin fetch with the session cookie. Errors become ApiError
// ({status, code, message}); status 0 means the server could not be reached.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** Calls the API. Returns {status, data} for 2xx (data null when there is no body). */
export async function request(method, path, { json, body, headers = {}, quiet401 = false } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers } };
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', String(e && e.message ? e.message : e));
  }
  let data = null;
  const text = res.status === 204 ? '' : await res.text().catch(() => '');
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (res.ok) return { status: res.status, data };
  const code = (data && data.error) || `http_${res.status}`;
  const message = (data && data.message) || res.statusText;
  const ra = res.headers.get('Retry-After');
  const err = new ApiError(res.status, code, message, ra ? Number(ra) : null);
  if (res.status === 401 && !quiet401) onUnauthorized(err);
  throw err;
}

export const api = {
  login: (login, password) => request('POST', '/api/v1/auth/login', { json: { login, password }, quiet401: true }),
  logout: () => request('POST', '/api/v1/auth/logout', { quiet401: true }),
  me: () => request('GET', '/api/v1/me', { quiet401: true }),
  presence: (status, pauseReasonId) =>
    request('PUT', '/api/v1/me/presence', {
      json: pauseReasonId ? { status, pause_reason_id: pauseReasonId } : { status },
    }),
  summary: () => request('GET', '/api/v1/me/summary'),
  queues: () => request('GET', '/api/v1/queues'),
  queueItems: (channel, params) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
    const qs = q.toString();
    return request('GET', `/api/v1/queues/${encodeURIComponent(channel)}/items${qs ? `?${qs}` : ''}`);
  },
  pullNext: (channel) => request('POST', `/api/v1/queues/${encodeURIComponent(channel)}/pull`),
  pullChosen: (id) => request('POST', `/api/v1/conversations/${encodeURIComponent(id)}/pull`),
  conversation: (id) => request('GET', `/api/v1/conversations/${encodeURIComponent(id)}`),
  send: (id, payload, key) =>
    request('POST', `/api/v1/conversations/${encodeURIComponent(id)}/messages`, {
      json: payload,
      headers: { 'Idempotency-Key': key },
    }),
  upload: (file, name) => {
    const fd = new FormData();
    fd.append('file', file, name || file.name || 'file');
    return request('POST', '/api/v1/attachments', { body: fd });
  },
  transfer: (id, target) => request('POST', `/api/v1/conversations/${encodeURIComponent(id)}/transfer`, { json: target }),
  // C8: call the customer of a chat through a voice service with a phone system.
  call: (id) => request('POST', `/api/v1/conversations/${encodeURIComponent(id)}/call`, { json: {} }),
  // D6: an email or an SMS to the customer, in a new outbound conversation of mine.
  contact: (id) => request('GET', `/api/v1/conversations/${encodeURIComponent(id)}/contact`),
  emailTemplates: () => request('GET', '/api/v1/email-templates'),
  sendEmail: (id, payload, key) =>
    request('POST', `/api/v1/conversations/${encodeURIComponent(id)}/email`, { json: payload, headers: { 'Idempotency-Key': key } }),
  sendSms: (id, payload, key) =>
    request('POST', `/api/v1/conversations/${encodeURIComponent(id)}/sms`, { json: payload, headers: { 'Idempotency-Key': key } }),
  returnToQueue: (id) => request('POST', `/api/v1/conversations/${encodeURIComponent(id)}/return`),
  conclude: (id, classificationId) =>
    request('POST', `/api/v1/conversations/${encodeURIComponent(id)}/conclude`, {
      json: classificationId ? { classification_id: classificationId } : {},
    }),
  cancel: (id) => request('POST', `/api/v1/conversations/${encodeURIComponent(id)}/cancel`),
  classify: (id, classificationId) =>
    request('PUT', `/api/v1/conversations/${encodeURIComponent(id)}/classification`, {
      json: { classification_id: classificationId },
    }),
  dueDate: (id, dueAt) =>
    request('PUT', `/api/v1/conversations/${encodeURIComponent(id)}/due-date`, { json: { due_at: dueAt } }),
  colleagues: () => request('GET', '/api/v1/agents'),
  services: () => request('GET', '/api/v1/services'),
  createContact: (contact) => request('POST', '/api/v1/contacts', { json: contact }),
  pauseReasons: () => request('GET', '/api/v1/pause-reasons'),
  classifications: () => request('GET', '/api/v1/classifications'),
  canned: () => request('GET', '/api/v1/canned-messages'),
  adminServices: () => request('GET', '/api/v1/admin/services', { quiet401: true }),
};

export function attachmentUrl(id) {
  return `/api/v1/attachments/${encodeURIComponent(id)}`;
}
