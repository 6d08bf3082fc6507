// Left column: channel buttons with waiting counts (D3) and the queue list with filters (D4, D5).
import { h, replace, debounce, clock } from '../dom.js';
import { t, fmtDateTime } from '../i18n.js';
import { api } from '../api.js';
import { state, on, emit, CHANNELS, waitingByChannel, serviceName } from '../state.js';
import { channelIcon, channelLabel, dateField, openDialog } from './common.js';

export function mountChannels(el, actions) {
  const counts = {};
  const buttons = CHANNELS.map((ch) => {
    counts[ch] = h('span', { class: 'count', testid: `channel-count-${ch}` }, '0');
    return h('button', {
      type: 'button', class: ['channel-btn', `ch-${ch}`], testid: `channel-${ch}`,
      on: { click: () => actions.pullNext(ch) },
    }, h('span', { class: 'ch-icon' }, channelIcon(ch)), h('span', { class: 'ch-name' }, channelLabel(ch)), counts[ch]);
  });
  replace(el, h('h2', { class: 'section-title' }, t('channels.title')), h('div', { class: 'channel-grid' }, buttons));
  const render = () => {
    const w = waitingByChannel();
    CHANNELS.forEach((ch, i) => {
      const n = w[ch] || 0;
      counts[ch].textContent = String(n);
      counts[ch].classList.toggle('count-hot', n > 0);
      buttons[i].title = t('channel.pullHint', { c: channelLabel(ch), n });
      buttons[i].setAttribute('aria-label', t('channel.pullHint', { c: channelLabel(ch), n }));
    });
  };
  on('queues', render);
  render();
}

export function mountQueue(el, actions) {
  const f = { limit: '25', order: 'oldest', service_id: '', subject: '', sender: '', content: '', phone: '', name: '', date: '' };
  const list = h('ol', { class: 'queue-list', testid: 'queue-list', 'aria-live': 'polite' });
  const channelSel = h('select', {
    id: 'queue-channel', testid: 'queue-channel',
    on: { change: (e) => { state.queueChannel = e.target.value; renderFilters(); refresh(); } },
  });
  // Live by default (the server pushes every change of the queues); an agent may turn it off to
  // read a long list without it moving, and the choice is kept.
  const auto = h('input', {
    type: 'checkbox', id: 'queue-auto-check', testid: 'queue-auto-check', checked: liveQueue(),
    on: { change: () => { keepLiveQueue(auto.checked); if (auto.checked) refresh(); } },
  });
  const filters = h('div', { class: 'filters' });
  const details = h('details', { class: 'filter-box' }, h('summary', {}, t('queue.filters')), filters);
  let seq = 0;

  function field(label, input) {
    const id = `qf-${label}`;
    input.id = id;
    return h('div', { class: 'field' }, h('label', { for: id }, t(label)), input);
  }
  function text(key) {
    return h('input', {
      type: 'search', value: f[key], testid: `queue-filter-${key}`,
      on: { input: debounce((e) => { f[key] = e.target.value; refresh(); }, 350) },
    });
  }
  function renderFilters() {
    const ch = state.queueChannel;
    const services = [...state.queues.values()].filter((q) => q.channel === ch).map((q) => q.service_id);
    if (f.service_id && !services.includes(f.service_id)) f.service_id = '';
    const rows = h('select', { testid: 'queue-filter-limit', on: { change: (e) => { f.limit = e.target.value; refresh(); } } },
      ['10', '25', '50', '100'].map((n) => h('option', { value: n, selected: f.limit === n }, n)));
    const order = h('select', { testid: 'queue-filter-order', on: { change: (e) => { f.order = e.target.value; refresh(); } } },
      h('option', { value: 'oldest', selected: f.order === 'oldest' }, t('queue.oldest')),
      h('option', { value: 'newest', selected: f.order === 'newest' }, t('queue.newest')));
    const service = h('select', { testid: 'queue-filter-service', on: { change: (e) => { f.service_id = e.target.value; refresh(); } } },
      h('option', { value: '' }, t('queue.allServices')),
      services.map((s) => h('option', { value: s, selected: f.service_id === s }, serviceName(s))));
    const parts = [field('queue.rows', rows), field('queue.order', order), field('queue.service', service)];
    if (ch === 'email') {
      parts.push(field('queue.subject', text('subject')), field('queue.sender', text('sender')), field('queue.content', text('content')));
    } else {
      const date = dateField({ value: f.date, testid: 'queue-filter-date', onChange: (v) => { f.date = v; refresh(); } });
      parts.push(field('queue.date', date), field('queue.phone', text('phone')), field('queue.name', text('name')));
    }
    replace(filters, parts);
  }

  function params() {
    const ch = state.queueChannel;
    const p = { limit: f.limit, order: f.order, service_id: f.service_id };
    if (ch === 'email') Object.assign(p, { subject: f.subject.trim(), sender: f.sender.trim(), content: f.content.trim() });
    else {
      Object.assign(p, { phone: f.phone.trim(), name: f.name.trim() });
      if (f.date) {
        const from = new Date(`${f.date}T00:00:00`);
        const to = new Date(from.getTime() + 86400000);
        p.from = from.toISOString();
        p.to = to.toISOString();
      }
    }
    return p;
  }

  async function refresh() {
    const my = ++seq;
    const ch = state.queueChannel;
    list.setAttribute('aria-busy', 'true');
    try {
      const { data } = await api.queueItems(ch, params());
      if (my !== seq) return;
      renderItems(ch, data || []);
    } catch (e) {
      if (my !== seq) return;
      replace(list, h('li', { class: 'queue-empty error' }, actions.errorText(e)));
    } finally {
      if (my === seq) list.removeAttribute('aria-busy');
    }
  }

  // Waits tick between pushes: each row's wait as the server counted it, plus the time since.
  let fetchedAt = Date.now();
  setInterval(() => {
    const gone = (Date.now() - fetchedAt) / 1000;
    for (const span of list.querySelectorAll('[data-wait]')) span.textContent = `${t('queue.wait')} ${clock(Number(span.dataset.wait) + gone)}`;
  }, 1000);

  function renderItems(ch, items) {
    fetchedAt = Date.now();
    if (!items.length) {
      replace(list, h('li', { class: 'queue-empty', testid: 'queue-empty' }, t('queue.emptyOf', { c: channelLabel(ch) })));
      return;
    }
    replace(list, items.map((it) => {
      const c = it.conversation || it; // the API flattens the conversation into the item
      const name = c.customer.name || c.customer.address || t('conv.unknownCustomer');
      const take = h('button', {
        type: 'button', class: 'btn btn-small btn-primary', testid: `queue-take-${c.id}`,
        'aria-label': `${t('queue.take')}: ${name}`,
        on: { click: (e) => { e.stopPropagation(); actions.pullChosen(c.id); } },
      }, t('queue.take'));
      const info = h('div', { class: 'q-main' },
        h('div', { class: 'q-line' }, h('span', { class: 'q-pos' }, `${it.position}`), h('strong', { class: 'q-name', title: name }, name)),
        c.customer.name ? h('div', { class: 'q-addr muted' }, c.customer.address) : null,
        ch === 'email' && c.subject ? h('div', { class: 'q-subject', title: c.subject }, c.subject) : null,
        h('div', { class: 'q-meta muted' },
          h('span', {}, serviceName(c.service_id)), ' · ',
          h('span', {}, fmtDateTime(c.enqueued_at || c.arrived_at)), ' · ',
          h('span', { title: t('queue.wait'), testid: `queue-wait-${c.id}`, 'data-wait': String(it.wait_s || 0) }, `${t('queue.wait')} ${clock(it.wait_s)}`)));
      const attrs = { class: ['queue-row', c.state === 'inactive_in_queue' ? 'q-inactive' : null], testid: `queue-row-${c.id}` };
      if (ch === 'email') {
        const preview = h('button', {
          type: 'button', class: 'btn btn-small btn-ghost', testid: `queue-preview-${c.id}`,
          on: { click: (e) => { e.stopPropagation(); openPreview(c.id, actions); } },
        }, t('queue.preview'));
        info.addEventListener('click', () => openPreview(c.id, actions));
        info.classList.add('clickable');
        return h('li', attrs, info, h('div', { class: 'q-actions' }, preview, take));
      }
      return h('li', attrs, info, h('div', { class: 'q-actions' }, take));
    }));
  }

  function renderChannelSel() {
    replace(channelSel, CHANNELS.map((ch) => h('option', { value: ch, selected: ch === state.queueChannel }, channelLabel(ch))));
  }

  replace(
    el,
    h('div', { class: 'queue-head' },
      h('h2', { class: 'section-title' }, h('label', { for: 'queue-channel' }, t('queue.title'))),
      channelSel,
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', testid: 'queue-refresh', on: { click: refresh }, title: t('queue.refresh'), 'aria-label': t('queue.refresh') }, '⟳')),
    h('div', { class: 'auto-check' }, auto, h('label', { for: 'queue-auto-check' }, t('queue.autoCheck'))),
    details,
    list,
  );
  renderChannelSel();
  renderFilters();
  refresh();
  const liveRefresh = debounce(refresh, 100);
  on('queues', (q) => {
    if (!q) {
      renderFilters();
      return;
    }
    if (auto.checked && q.channel === state.queueChannel) liveRefresh();
  });
  on('queueChannel', () => { renderChannelSel(); renderFilters(); refresh(); });
  on('queueRefresh', () => liveRefresh());
}

function liveQueue() {
  try {
    return localStorage.getItem('omniroute.queueLive') !== 'off';
  } catch {
    return true;
  }
}

function keepLiveQueue(on) {
  try {
    localStorage.setItem('omniroute.queueLive', on ? 'on' : 'off');
  } catch {
    /* a private window keeps it for this page only */
  }
}

/** Email preview before taking (D5). */
async function openPreview(id, actions) {
  const body = h('div', { class: 'email-preview', testid: 'email-preview' }, t('conv.loading'));
  const take = h('button', { type: 'button', class: 'btn btn-primary', testid: 'preview-take' }, t('queue.take'));
  const { close } = openDialog({ title: t('preview.title'), body, footer: take, testid: 'preview-dialog' });
  take.addEventListener('click', () => { close(); actions.pullChosen(id); });
  try {
    const { data } = await api.conversation(id);
    const msgs = data.messages || [];
    const first = msgs.find((m) => m.direction === 'in') || msgs[0];
    replace(body, emailHeaderBlock(data, first), h('pre', { class: 'email-body', testid: 'preview-body' }, (first && first.body) || ''));
  } catch (e) {
    replace(body, h('p', { class: 'error' }, actions.errorText(e)));
  }
}

export function emailHeaderBlock(conv, m) {
  const e = (m && m.email) || {};
  const row = (k, v, tid) => h('div', { class: 'eh-row' }, h('dt', {}, t(k)), h('dd', { testid: tid }, v || ''));
  return h('dl', { class: 'email-headers' },
    row('email.from', e.from || conv.customer.address, 'email-from'),
    row('email.to', (e.to || []).join(', '), 'email-to'),
    row('email.cc', (e.cc || []).join(', '), 'email-cc'),
    row('email.subject', e.subject || conv.subject, 'email-subject'),
    row('email.date', fmtDateTime(e.date || (m ? m.created_at : conv.arrived_at)), 'email-date'));
}

export { emit };
