// The conversation view (D5, D6, D8, D9): header, actions, history, composer.
import { h, replace, uuid } from '../dom.js';
import { t, fmtDateTime, fmtTime } from '../i18n.js';
import { api, ApiError, attachmentUrl } from '../api.js';
import { state, on, loadDraft, saveDraft, serviceName, channelOfService } from '../state.js';
import { channelIcon, channelLabel, dateField, openDialog, toolIcon } from './common.js';
import { emailHeaderBlock } from './channels.js';
import { emojiPicker } from './emoji.js';
import { canRecord, recorder } from './recorder.js';


function fmtSize(n) {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function num(v) {
  const n = typeof v === 'string' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) ? n : null;
}

/** Latitude/longitude of a shared location, wherever the payload keeps them. */
function locationOf(m) {
  const p = m.payload || {};
  const l = p.location && typeof p.location === 'object' ? p.location : p;
  const lat = num(l.latitude ?? l.lat);
  const lon = num(l.longitude ?? l.lng ?? l.lon);
  if (lat === null || lon === null || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  return { lat, lon, name: typeof l.name === 'string' ? l.name : null, address: typeof l.address === 'string' ? l.address : null };
}

/** Shared contacts: [{name, phones: [..], emails: [..]}] from the payload. */
function contactsOf(m) {
  const p = m.payload || {};
  const list = Array.isArray(p.contacts) ? p.contacts : p.contact ? [p.contact] : [];
  return list.filter((c) => c && typeof c === 'object').map((c) => {
    let name = c.name;
    if (name && typeof name === 'object') name = name.formatted_name || [name.first_name, name.last_name].filter(Boolean).join(' ');
    const raw = Array.isArray(c.phones) ? c.phones : [];
    const phones = raw.map((x) => (typeof x === 'string' ? x : x && (x.phone || x.wa_id))).filter(Boolean);
    // WhatsApp says which of the numbers is on WhatsApp (wa_id): the one to register.
    const onWhatsapp = raw.find((x) => x && typeof x === 'object' && x.wa_id);
    const emails = (Array.isArray(c.emails) ? c.emails : []).map((x) => (typeof x === 'string' ? x : x && x.email)).filter(Boolean);
    return {
      name: typeof name === 'string' ? name : '', phones: phones.map(String), emails: emails.map(String),
      waId: onWhatsapp ? String(onWhatsapp.wa_id) : null,
    };
  });
}

const TICKS = { pending: null, sent: '✓', delivered: '✓✓', read: '✓✓', failed: '!' };

/** Why a message failed: our own codes in the agent's words; a provider's code (WhatsApp's 131047,
 *  an SMTP 550) with the provider's text, which only it can explain. */
function failure(m) {
  const k = `err.${m.error_code}`;
  if (m.error_code && t(k) !== k) return t(k);
  return [m.error_message, m.error_code].filter(Boolean).join(' — ') || t('tick.failed');
}

export class ConversationView {
  constructor(id, actions) {
    this.id = id;
    this.a = actions;
    this.offs = [];
    this.draft = loadDraft(id);
    this.sending = false;
    this.build();
    this.offs.push(on('messages', (cid) => cid === id && this.renderMessages()));
    this.offs.push(on('conversation', (cid) => cid === id && this.renderHeader()));
    this.offs.push(on('convs', () => this.renderHeader()));
    this.offs.push(on('pickers', () => { this.renderCanned(); this.renderHeader(); }));
    // While the connection is lost nothing is sent; the draft stays in the box.
    this.offs.push(on('ws', () => { this.sendBtn.disabled = !this.mayWrite(); }));
    this.renderHeader();
    this.renderMessages();
    this.renderCanned();
    this.renderChips();
  }

  destroy() {
    for (const off of this.offs) off();
    this.offs = [];
  }

  conv() {
    return state.convs.get(this.id) || state.loaded.get(this.id) || null;
  }

  mine() {
    const c = state.convs.get(this.id);
    return !!(c && state.me && c.agent_id === state.me.id && c.state === 'in_service');
  }

  focus() {
    if (state.messages.has(this.id)) {
      this.list.scrollTop = this.list.scrollHeight;
      this.scrolledOnce = true;
    }
    setTimeout(() => { if (this.input.isConnected && !this.input.disabled) this.input.focus(); }, 0);
  }

  // ---------- layout ----------
  build() {
    this.head = h('header', { class: 'conv-head', testid: 'conv-header' });
    this.notice = h('div', { class: 'conv-notice', testid: 'conv-notice', role: 'status', hidden: true });
    this.actionsBar = h('div', { class: 'conv-actions', role: 'toolbar', 'aria-label': t('action.transfer') });
    this.list = h('ol', { class: 'message-list', testid: 'message-list', 'aria-live': 'polite', tabindex: '0' });
    this.input = h('textarea', {
      id: `composer-${this.id}`, class: 'composer-input', testid: 'composer-input', rows: '3',
      placeholder: t('composer.placeholder'),
      on: {
        input: () => this.saveText(),
        keydown: (e) => {
          if (e.key !== 'Enter' || e.isComposing) return;
          // A chat line goes with Enter; an email is a letter: Enter makes a new line and
          // Ctrl+Enter (⌘+Enter) sends it.
          const email = this.isEmail();
          const sends = email ? e.ctrlKey || e.metaKey : !e.shiftKey;
          if (sends) {
            e.preventDefault();
            this.send();
          }
        },
        paste: (e) => this.onPaste(e),
      },
    });
    this.input.value = this.draft.text;
    this.chips = h('ul', { class: 'chips', testid: 'composer-attachments' });
    this.err = h('div', { class: 'composer-error', role: 'alert', testid: 'composer-error', hidden: true });
    this.sendBtn = h('button', { type: 'button', class: 'btn btn-primary', testid: 'composer-send', on: { click: () => this.send() } }, t('composer.send'));
    this.fileInput = h('input', {
      type: 'file', multiple: true, id: `attach-${this.id}`, class: 'file-input', testid: 'attach-input',
      on: { change: (e) => { this.uploadFiles([...e.target.files]); e.target.value = ''; } },
    });
    this.canned = h('select', {
      class: 'canned-picker', testid: 'canned-picker', 'aria-label': t('composer.canned'), title: t('composer.canned'),
      on: {
        change: (e) => {
          const m = state.canned.find((x) => x.id === e.target.value);
          if (m) this.insertText(m.text);
          e.target.value = '';
        },
      },
    });
    this.emoji = emojiPicker((em) => { this.insertText(em); this.emoji.close(); this.input.focus(); });
    this.emojiPanel = this.emoji.panel;
    this.emojiPanel.addEventListener('keydown', (e) => { if (e.key === 'Escape') { this.emoji.close(); this.emojiBtn.focus(); } });
    this.emojiBtn = h('button', {
      type: 'button', class: 'btn btn-tool', testid: 'emoji-picker', 'aria-label': t('composer.emoji'), title: t('composer.emoji'),
      'aria-haspopup': 'dialog',
      on: { click: () => (this.emojiPanel.hidden ? this.emoji.open() : this.emoji.close()) },
    }, toolIcon('smile'));
    this.attList = h('div', { class: 'att-panel', testid: 'attachments-panel', hidden: true });
    const attListBtn = h('button', {
      type: 'button', class: 'btn btn-tool', testid: 'attachments-list', title: t('composer.attachments'), 'aria-label': t('composer.attachments'),
      on: { click: () => { this.renderAttList(); this.attList.hidden = !this.attList.hidden; } },
    }, toolIcon('list'));
    const attachLabel = h('label', { for: `attach-${this.id}`, class: 'btn btn-tool', title: t('composer.attachHint'), testid: 'attach-button' },
      toolIcon('clip'), h('span', { class: 'sr-only' }, t('composer.attachHint')));
    const copyBtn = h('button', {
      type: 'button', class: 'btn btn-tool', testid: 'copy-conversation', title: t('copy'), 'aria-label': t('copy'),
      on: { click: () => this.copy() },
    }, toolIcon('copy'));
    // A voice note goes on its own, as soon as it is recorded; the typed draft stays.
    this.rec = recorder({ onDone: (file) => this.sendVoice(file), onError: (text) => this.showError(text) });
    this.recBtn = h('button', {
      type: 'button', class: 'btn btn-tool', testid: 'record-audio', title: t('record.start'), 'aria-label': t('record.start'),
      hidden: true, on: { click: () => this.rec.start() },
    }, toolIcon('mic'));
    this.composer = h('div', { class: 'composer' },
      this.rec.bar,
      this.chips,
      h('label', { for: `composer-${this.id}`, class: 'sr-only' }, t('composer.label')),
      this.input,
      this.err,
      h('div', { class: 'composer-bar' },
        h('div', { class: 'tools' }, attListBtn, attachLabel, this.fileInput, this.canned,
          h('div', { class: 'menu-wrap' }, this.emojiBtn, this.emojiPanel), this.recBtn, copyBtn, this.attList),
        this.sendBtn));
    this.el = h('section', { class: 'conv-view', testid: 'conv-view', 'data-conversation': this.id },
      this.head, this.actionsBar, this.notice, this.list, this.composer);
  }

  // ---------- header and actions ----------
  renderHeader() {
    const c = this.conv();
    const mine = this.mine();
    if (!c) {
      replace(this.head, h('div', { class: 'muted' }, t('conv.loading')));
      replace(this.actionsBar);
      return;
    }
    const cust = c.customer || {};
    const name = cust.name || cust.address || t('conv.unknownCustomer');
    replace(this.head,
      h('span', { class: ['ch-icon big', `ch-${c.channel}`], title: channelLabel(c.channel) }, channelIcon(c.channel)),
      h('div', { class: 'ch-title' },
        h('h2', { testid: 'conv-customer-name' }, name),
        h('div', { class: 'muted' },
          h('span', { testid: 'conv-customer-address' }, cust.address || ''), ' · ',
          h('span', { testid: 'conv-channel' }, channelLabel(c.channel)), ' · ',
          h('span', { testid: 'conv-service' }, `${t('conv.service')}: ${serviceName(c.service_id)}`),
          c.subject ? h('span', {}, ' · ', c.subject) : null)),
      h('span', { class: ['state-badge', `st-${c.sub_state || c.state}`], testid: 'conv-state' },
        t(`conv.state.${c.state === 'in_service' ? c.sub_state || 'active' : c.state}`)),
      h('button', { type: 'button', class: 'btn-icon', title: t('conv.close'), 'aria-label': t('conv.close'), testid: 'conv-close', on: { click: () => this.a.select(null) } }, '×'));

    if (!mine && state.convs.size >= 0 && (state.loaded.has(this.id) || state.convs.has(this.id))) {
      this.notice.hidden = false;
      this.notice.textContent = t('conv.notMine', { s: t(`conv.state.${c.state}`).toLowerCase() });
    } else this.notice.hidden = true;
    this.input.disabled = !mine;
    this.sendBtn.disabled = !this.mayWrite();
    this.recBtn.hidden = !(canRecord() && ['whatsapp', 'webchat'].includes(c.channel));
    this.recBtn.disabled = !mine;
    this.input.placeholder = t(this.isEmail() ? 'composer.emailPlaceholder' : 'composer.placeholder');
    this.fileInput.disabled = !mine;
    this.canned.disabled = !mine;
    this.emojiBtn.disabled = !mine;

    const classSel = h('select', {
      id: `class-${this.id}`, testid: 'classification-select', disabled: !mine,
      on: { change: (e) => this.act('classify', () => api.classify(this.id, e.target.value || null), false) },
    }, h('option', { value: '' }, t('conclude.none')),
    this.classifications(c).map((x) => h('option', { value: x.id, selected: x.id === c.classification_id }, x.name)));
    const dueVal = c.due_at ? toLocalInput(c.due_at) : '';
    const due = dateField({ value: dueVal, withTime: true, id: `due-${this.id}`, testid: 'due-date-input', disabled: !mine });
    const btn = (tid, label, fn, cls = 'btn-ghost') => h('button', { type: 'button', class: ['btn btn-small', cls], testid: tid, disabled: !mine, on: { click: fn } }, label);
    replace(this.actionsBar,
      btn('action-transfer', t('action.transfer'), () => this.transferDialog()),
      // C8: an identified customer of a chat can be called; the call opens as a new conversation.
      c.channel !== 'voice' && c.customer && c.customer.id
        ? btn('action-call', t('action.call'), () => this.act('call', () => api.call(this.id), false))
        : null,
      // D6: shown when I am in an email / SMS service that can carry it.
      this.hasChannel('email') ? btn('action-email', t('action.email'), () => this.outboundDialog('email')) : null,
      this.hasChannel('sms') ? btn('action-sms', t('action.sms'), () => this.outboundDialog('sms')) : null,
      btn('action-return', t('action.return'), async () => {
        if (await this.confirm(t('confirm.returnTitle'), t('confirm.returnText'), t('action.return'), 'confirm-return')) {
          this.act('return', () => api.returnToQueue(this.id), true);
        }
      }),
      btn('action-conclude', t('action.conclude'), () => this.concludeDialog(), 'btn-ok'),
      // Only where the service allows cancelling (the API refuses it elsewhere).
      this.allowsCancel(c)
        ? btn('action-cancel', t('action.cancel'), async () => {
          if (await this.confirm(t('confirm.cancelTitle'), t('confirm.cancelText'), t('action.cancel'), 'confirm-cancel')) {
            this.act('cancel', () => api.cancel(this.id), true);
          }
        }, 'btn-danger')
        : null,
      h('span', { class: 'sep' }),
      h('label', { for: `class-${this.id}`, class: 'inline-label' }, t('action.classify')), classSel,
      h('label', { for: `due-${this.id}`, class: 'inline-label' }, t('action.due')), due,
      btn('due-date-save', t('action.dueSave'), () => {
        if (due.getAttribute('aria-invalid') === 'true') return;
        const v = due.dateValue ? new Date(due.dateValue).toISOString() : null;
        this.act('due', () => api.dueDate(this.id, v), false);
      }));
  }

  hasChannel(channel) {
    return [...state.directory.values()].some((x) => x.channel === channel && x.mine);
  }

  /** "Enviar e-mail" / "Enviar SMS": to the customer's address, prefilled; email from a template. */
  outboundDialog(kind) {
    const email = kind === 'email';
    const id = (x) => `${kind}-${x}`;
    const to = h('input', { type: email ? 'email' : 'tel', id: id('to'), testid: id('to'), autocomplete: 'off' });
    const subject = email ? h('input', { type: 'text', id: 'email-subject', testid: 'email-subject', autocomplete: 'off' }) : null;
    const body = h('textarea', { id: id('body'), testid: id('body'), rows: 8, maxlength: email ? null : 1600 });
    const template = email
      ? h('select', { id: 'email-template', testid: 'email-template' }, h('option', { value: '' }, t('outbound.noTemplate')))
      : null;
    const err = h('p', { class: 'error', role: 'alert', hidden: true, testid: id('error') });
    const fail = (e) => {
      err.textContent = this.a.errorText(e);
      err.hidden = false;
    };
    const templates = new Map();
    api.contact(this.id).then(({ data }) => {
      if (!to.value) to.value = (email ? data.email : data.phone) || '';
    }).catch(fail);
    if (email) {
      api.emailTemplates().then(({ data }) => {
        for (const x of Array.isArray(data) ? data : []) {
          templates.set(x.id, x);
          template.append(h('option', { value: x.id }, x.name));
        }
      }).catch(fail);
      template.addEventListener('change', () => {
        const x = templates.get(template.value);
        if (!x) return;
        // The agent sees the letter as it will go: names filled in, the cursor where the
        // template's {{body}} was.
        const c = this.conv();
        const fill = (text) => text
          .replace(/\{\{customer_name\}\}/g, (c && c.customer && c.customer.name) || '')
          .replace(/\{\{agent_name\}\}/g, (state.me && state.me.name) || '');
        subject.value = fill(x.subject);
        const [before, after] = fill(x.body_text).split(/\{\{body\}\}/);
        body.value = `${before}${after !== undefined ? after : ''}`;
        body.focus();
        body.setSelectionRange(before.length, before.length);
      });
    }
    const confirm = h('button', { type: 'button', class: 'btn btn-primary', testid: id('send') }, t('outbound.send'));
    const field = (el, label) => h('div', { class: 'field' }, h('label', { for: el.id }, label), el);
    const { close } = openDialog({
      title: t(email ? 'outbound.emailTitle' : 'outbound.smsTitle'), testid: id('dialog'),
      body: [field(to, t(email ? 'outbound.toEmail' : 'outbound.toPhone')),
        email ? field(template, t('outbound.template')) : null,
        email ? field(subject, t('outbound.subject')) : null,
        field(body, t('outbound.text')), err],
      footer: confirm,
    });
    // One key per dialog: a retried click sends one message.
    const key = uuid();
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      err.hidden = true;
      const payload = { text: body.value };
      if (to.value.trim()) payload.to = to.value.trim();
      if (email) {
        payload.subject = subject.value;
        if (template.value) payload.template_id = template.value;
      }
      try {
        await (email ? api.sendEmail(this.id, payload, key) : api.sendSms(this.id, payload, key));
        close();
        this.a.toast(t(email ? 'outbound.emailSent' : 'outbound.smsSent'), 'ok');
      } catch (e) {
        fail(e);
        confirm.disabled = false;
      }
    });
  }

  allowsCancel(c) {
    const svc = state.directory.get(c.service_id);
    return !svc || svc.allow_cancel !== false;
  }

  classifications(c) {
    return state.classifications.filter((x) => x.active !== false && (!x.service_id || x.service_id === c.service_id));
  }

  async act(kind, fn, leaves) {
    try {
      const res = await fn();
      this.a.toast(t(`action.done.${kind}`), 'ok');
      if (res && res.data && res.data.id === this.id && !leaves) {
        const c = state.convs.get(this.id);
        if (c) Object.assign(c, res.data);
        this.renderHeader();
      }
      if (leaves) this.a.afterLeaving(this.id);
      return true;
    } catch (e) {
      this.a.toast(this.a.errorText(e), 'error');
      return false;
    }
  }

  transferDialog() {
    const c = this.conv();
    // A transfer to a queue stays on the channel (the API answers invalid_transfer otherwise):
    // every active service of it, by name, mine first.
    const targets = [...state.directory.values()]
      .filter((x) => c && x.id !== c.service_id && x.channel === c.channel)
      .sort((x, y) => Number(y.mine) - Number(x.mine) || x.name.localeCompare(y.name));
    const svc = h('select', { id: 'transfer-service', testid: 'transfer-service' },
      h('option', { value: '' }, '—'),
      targets.map((x) => h('option', { value: x.id, testid: `transfer-service-${x.id}` }, `${x.name} (${channelLabel(x.channel)})`)));
    // R11: a call can also leave to an external extension.
    const ext = c && c.channel === 'voice'
      ? h('input', { type: 'text', id: 'transfer-extension', testid: 'transfer-extension', autocomplete: 'off', inputmode: 'tel' })
      : null;
    const err = h('p', { class: 'error', role: 'alert', hidden: true, testid: 'transfer-error' });
    // Colleagues of this conversation's service, loaded when the dialog opens (with presence).
    const agent = h('select', { id: 'transfer-agent', testid: 'transfer-agent' }, h('option', { value: '' }, '—'));
    api.colleagues().then(({ data }) => {
      const here = (Array.isArray(data) ? data : []).filter((x) => !c || x.services.includes(c.service_id));
      here.sort((x, y) => (x.status === 'available' ? 0 : 1) - (y.status === 'available' ? 0 : 1) || x.name.localeCompare(y.name));
      for (const x of here) {
        agent.append(h('option', { value: x.id, testid: `transfer-agent-${x.login}`, 'data-name': x.name }, `${x.name} — ${t(`presence.${x.status}`)}`));
      }
    }).catch((e) => {
      err.textContent = this.a.errorText(e);
      err.hidden = false;
    });
    const confirm = h('button', { type: 'button', class: 'btn btn-primary', testid: 'transfer-confirm' }, t('transfer.confirm'));
    const { close } = openDialog({
      title: t('transfer.title'), testid: 'transfer-dialog',
      body: [h('div', { class: 'field' }, h('label', { for: 'transfer-service' }, t('transfer.toService')), svc),
        h('div', { class: 'field' }, h('label', { for: 'transfer-agent' }, t('transfer.toAgent')), agent),
        ext ? h('div', { class: 'field' }, h('label', { for: 'transfer-extension' }, t('transfer.toExtension')), ext) : null,
        err],
      footer: confirm,
    });
    confirm.addEventListener('click', async () => {
      const extension = ext ? ext.value.trim() : '';
      const target = agent.value ? { agent_id: agent.value }
        : extension ? { extension }
          : svc.value ? { service_id: svc.value } : null;
      if (!target) {
        err.textContent = t('transfer.choose');
        err.hidden = false;
        return;
      }
      confirm.disabled = true;
      try {
        await api.transfer(this.id, target);
        close();
        this.a.toast(t('action.done.transfer'), 'ok');
        this.a.afterLeaving(this.id);
      } catch (e) {
        // The same codes mean the colleague here, not me: "not available" is their presence.
        const name = agent.value ? (agent.selectedOptions[0] || {}).dataset?.name : null;
        const theirs = { not_available: 'transfer.offline', at_capacity: 'transfer.atCapacity', not_member: 'transfer.notMember' };
        err.textContent = name && e instanceof ApiError && theirs[e.code] ? t(theirs[e.code], { name }) : this.a.errorText(e);
        err.hidden = false;
        confirm.disabled = false;
      }
    });
  }

  concludeDialog() {
    const c = this.conv();
    const sel = h('select', { id: 'conclude-classification', testid: 'conclude-classification' },
      h('option', { value: '' }, t('conclude.none')),
      this.classifications(c).map((x) => h('option', { value: x.id, selected: x.id === c.classification_id }, x.name)));
    const err = h('p', { class: 'error', role: 'alert', hidden: true, testid: 'conclude-error' });
    const confirm = h('button', { type: 'button', class: 'btn btn-ok', testid: 'conclude-confirm' }, t('conclude.confirm'));
    const { close } = openDialog({
      title: t('conclude.title'), testid: 'conclude-dialog',
      body: [h('div', { class: 'field' }, h('label', { for: 'conclude-classification' }, t('conclude.classification')), sel), err],
      footer: confirm,
    });
    sel.focus();
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      try {
        await api.conclude(this.id, sel.value || null);
        close();
        this.a.toast(t('action.done.conclude'), 'ok');
        this.a.afterLeaving(this.id);
      } catch (e) {
        err.textContent = this.a.errorText(e);
        err.hidden = false;
        confirm.disabled = false;
      }
    });
  }

  // ---------- history ----------
  renderMessages() {
    const msgs = state.messages.get(this.id);
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    if (!msgs) {
      replace(this.list, h('li', { class: 'muted center' }, t('conv.loading')));
      return;
    }
    if (!msgs.length) {
      replace(this.list, h('li', { class: 'muted center' }, t('conv.noMessages')));
      return;
    }
    const c = this.conv();
    // Messages and handovers in the order they happened.
    const rows = [...msgs.map((m) => ({ at: m.created_at, m })), ...(state.handovers.get(this.id) || []).map((e) => ({ at: e.at, e }))];
    rows.sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));
    replace(this.list, rows.map((r) => (r.m ? this.bubble(r.m, c) : this.handover(r.e))));
    if (atBottom || !this.scrolledOnce) {
      this.list.scrollTop = this.list.scrollHeight;
      if (this.list.isConnected) this.scrolledOnce = true;
    }
  }

  who(m, c) {
    if (m.direction === 'in') return (c && c.customer && (c.customer.name || c.customer.address)) || t('conv.unknownCustomer');
    if (m.direction === 'internal' || m.kind === 'system') return t('conv.system');
    if (m.sender_agent_id && state.me && m.sender_agent_id === state.me.id) return t('conv.you');
    return (m.sender_agent_id && state.agentNames[m.sender_agent_id]) || t('conv.agent');
  }

  /** One line of the account of who handled the conversation: "Ana transferiu para Bruno". */
  handover(e, plain = false) {
    const me = (id) => id && state.me && id === state.me.id;
    const name = (id) => (me(id) ? (plain ? state.me.name : t('conv.you')) : (id && state.agentNames[id]) || null);
    const a = name(e.actor_agent_id) || t(e.actor === 'supervisor' ? 'hist.supervisor' : 'conv.system');
    const b = name(e.agent_id) || t('conv.agent');
    const auto = e.kind === 'assigned' && !e.actor_agent_id;
    const text = t(auto ? 'hist.auto' : `hist.${e.kind}`, { a, b });
    return h('li', { class: 'msg-handover muted', testid: `handover-${e.seq}` }, h('span', {}, text), ' · ',
      h('span', { class: 'msg-time', title: fmtDateTime(e.at) }, fmtTime(e.at)));
  }

  bubble(m, c) {
    const dir = m.direction === 'in' ? 'in' : m.direction === 'out' ? 'out' : 'internal';
    const parts = [];
    if (m.kind === 'email' || m.email) parts.push(emailHeaderBlock(c || { customer: {} }, m));
    if (m.body) parts.push(h('div', { class: 'msg-body' }, m.body));
    const loc = locationOf(m);
    if (loc || m.kind === 'location') {
      if (loc) {
        const url = `https://www.openstreetmap.org/?mlat=${encodeURIComponent(loc.lat)}&mlon=${encodeURIComponent(loc.lon)}#map=16/${loc.lat}/${loc.lon}`;
        parts.push(h('div', { class: 'msg-location', testid: `location-${m.id}` },
          toolIcon('pin'), ' ',
          h('strong', {}, t('msg.location')),
          loc.name ? h('div', {}, loc.name) : null,
          loc.address ? h('div', { class: 'muted' }, loc.address) : null,
          h('div', {}, h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', testid: `location-link-${m.id}` },
            `${t('msg.openMap')} (${loc.lat.toFixed(5)}, ${loc.lon.toFixed(5)})`))));
      }
    }
    const contacts = contactsOf(m);
    contacts.forEach((ct, i) => parts.push(h('div', { class: 'msg-contact', testid: `contact-${m.id}-${i}` },
      toolIcon('user'), ' ',
      h('strong', {}, t('msg.contact')), h('div', {}, ct.name || '—'),
      ct.phones.length ? h('div', { class: 'muted' }, ct.phones.join(', ')) : null,
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', testid: `contact-details-${m.id}-${i}`, on: { click: () => this.contactDialog(ct) } }, t('msg.details')))));
    const atts = Array.isArray(m.attachments) ? m.attachments : [];
    if (atts.length) {
      parts.push(h('ul', { class: 'msg-atts' }, atts.map((a) => h('li', {},
        a.content_type && a.content_type.startsWith('image/')
          ? h('a', { href: attachmentUrl(a.id), target: '_blank', rel: 'noopener' }, h('img', { src: attachmentUrl(a.id), alt: a.name || '', class: 'thumb', loading: 'lazy' }))
          : null,
        // Voice notes play in place.
        a.content_type && a.content_type.startsWith('audio/')
          ? h('audio', { controls: true, preload: 'none', src: attachmentUrl(a.id), class: 'msg-audio', testid: `audio-${a.id}`, 'aria-label': a.name || t('msg.attachment') })
          : null,
        h('a', { href: attachmentUrl(a.id), download: a.name || '', testid: `attachment-${a.id}` }, toolIcon('clip'), a.name || t('msg.attachment')),
        h('span', { class: 'muted' }, ` ${fmtSize(a.size)}`)))));
    }
    // A customer's file the server would not keep (too large, type not accepted) or could not fetch.
    const mediaError = m.payload && typeof m.payload.media_error === 'string' ? m.payload.media_error : '';
    if (mediaError) parts.push(h('div', { class: 'msg-body muted', testid: `media-error-${m.id}` }, `${t('msg.mediaRefused')}: ${mediaError}`));
    if (!parts.length) parts.push(h('div', { class: 'msg-body muted' }, `[${m.kind}]`));
    // What the provider said when it refused the message, in sight rather than in a tooltip.
    if (m.status === 'failed') {
      const why = [m.error_message, m.error_code && `(${m.error_code})`].filter(Boolean).join(' ');
      parts.push(h('div', { class: 'msg-error', testid: `message-error-${m.id}`, role: 'status' }, `${t('tick.failed')}${why ? `: ${why}` : ''}`));
    }
    const meta = [h('span', { class: 'msg-time', title: fmtDateTime(m.created_at) }, fmtTime(m.created_at))];
    if (dir === 'out') {
      const st = m.status || 'pending';
      const tick = h('span', {
        class: ['tick', `tick-${st}`], testid: `message-status-${m.id}`, 'data-status': st,
        'aria-label': t(`tick.${st}`),
        title: st === 'failed' ? failure(m) : t(`tick.${st}`),
      }, st === 'pending' ? toolIcon('clock') : (TICKS[st] || ''));
      meta.push(tick);
    }
    const li = h('li', {
      class: ['msg', `msg-${dir}`, m.status === 'failed' ? 'msg-failed' : null], testid: `message-${m.id}`, 'data-status': m.status,
    }, h('div', { class: 'msg-who' }, this.who(m, c)), parts, h('div', { class: 'msg-meta' }, meta));
    if (m.status === 'failed') li.title = failure(m);
    return li;
  }

  contactDialog(ct) {
    const row = (k, v) => h('div', { class: 'eh-row' }, h('dt', {}, t(k)), h('dd', {}, v));
    // A shared number becomes a contact the center can write to later (C7), without opt-in:
    // sharing a number is not agreeing to receive messages.
    const note = h('p', { class: 'muted', testid: 'contact-register-note', role: 'status' });
    const register = ct.phones.length ? h('button', {
      type: 'button', class: 'btn btn-primary', testid: 'contact-register',
      on: {
        click: async () => {
          register.disabled = true;
          try {
            await api.createContact({ phone: ct.waId ? `+${ct.waId}` : ct.phones[0], name: ct.name || null, wa_id: ct.waId });
            note.textContent = t('contact.registered');
          } catch (e) {
            note.textContent = this.a.errorText(e);
            // Already a contact: nothing more to do here; anything else may be tried again.
            register.disabled = e instanceof ApiError && e.code === 'contact_exists';
          }
        },
      },
    }, t('contact.register')) : null;
    openDialog({
      title: t('contact.title'), testid: 'contact-dialog',
      body: [h('dl', { class: 'email-headers' }, row('contact.name', ct.name || '—'), row('contact.phones', ct.phones.join(', ') || '—'),
        row('contact.emails', ct.emails.join(', ') || '—')), note],
      footer: register,
    });
  }

  renderAttList() {
    const all = [];
    for (const m of state.messages.get(this.id) || []) for (const a of m.attachments || []) all.push({ a, m });
    replace(this.attList,
      h('div', { class: 'menu-title' }, t('composer.attachments')),
      all.length
        ? h('ul', {}, all.map(({ a, m }) => h('li', {}, h('a', { href: attachmentUrl(a.id), download: a.name || '' }, `${m.direction === 'in' ? '⬇' : '⬆'} ${a.name}`), h('span', { class: 'muted' }, ` ${fmtSize(a.size)}`))))
        : h('p', { class: 'muted' }, t('composer.noAttachments')));
  }

  renderCanned() {
    replace(this.canned,
      h('option', { value: '' }, `${t('composer.canned')}…`),
      state.canned.length ? state.canned.map((m) => h('option', { value: m.id, testid: `canned-${m.id}` }, m.title)) : h('option', { value: '', disabled: true }, t('composer.cannedNone')));
  }

  // ---------- composer ----------
  saveText() {
    this.draft.text = this.input.value;
    saveDraft(this.id, this.draft);
  }

  insertText(text) {
    const el = this.input;
    const start = el.selectionStart ?? el.value.length;
    const end = el.selectionEnd ?? el.value.length;
    el.value = el.value.slice(0, start) + text + el.value.slice(end);
    el.selectionStart = el.selectionEnd = start + text.length;
    this.saveText();
  }

  renderChips() {
    replace(this.chips, this.draft.attachments.map((a) => h('li', { class: 'chip', testid: `pending-attachment-${a.id}` },
      toolIcon('clip'), `${a.name} `, h('span', { class: 'muted' }, fmtSize(a.size)),
      h('button', {
        type: 'button', class: 'chip-x', 'aria-label': t('composer.remove', { n: a.name }),
        on: { click: () => { this.draft.attachments = this.draft.attachments.filter((x) => x.id !== a.id); saveDraft(this.id, this.draft); this.renderChips(); } },
      }, '×'))));
  }

  showError(text) {
    this.err.textContent = text || '';
    this.err.hidden = !text;
  }

  async uploadFiles(files) {
    for (const f of files) {
      const chip = h('li', { class: 'chip uploading' }, t('composer.uploading', { n: f.name || 'file' }));
      this.chips.appendChild(chip);
      try {
        const { data } = await api.upload(f, f.name);
        this.draft.attachments.push({ id: data.id, name: data.name, size: data.size, content_type: data.content_type });
        saveDraft(this.id, this.draft);
      } catch (e) {
        this.showError(this.a.errorText(e));
      }
      chip.remove();
      this.renderChips();
    }
  }

  onPaste(e) {
    const items = e.clipboardData ? [...e.clipboardData.items] : [];
    const files = items.filter((i) => i.kind === 'file' && i.type.startsWith('image/')).map((i) => i.getAsFile()).filter(Boolean);
    if (!files.length) return;
    e.preventDefault();
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    this.uploadFiles(files.map((f, i) => new File([f], f.name && f.name !== 'image.png' ? f.name : `imagem-${stamp}${i ? `-${i}` : ''}.${(f.type.split('/')[1] || 'png').replace('jpeg', 'jpg')}`, { type: f.type })));
  }

  /** Uploads a recorded note and sends it as a message of its own. */
  async sendVoice(file) {
    if (!this.mayWrite()) {
      this.showError(t('record.notSent'));
      return;
    }
    this.showError('');
    try {
      const { data: up } = await api.upload(file, file.name);
      const { data } = await api.send(this.id, { attachment_ids: [up.id] }, uuid());
      if (data) this.a.upsertMessage(data);
    } catch (e) {
      this.showError(this.a.errorText(e));
    }
  }

  isEmail() {
    const c = this.conv();
    return !!c && c.channel === 'email';
  }

  /** Asks before an action that cannot be undone; resolves true when confirmed. */
  confirm(title, text, okLabel, testid) {
    return new Promise((resolve) => {
      let answered = false;
      const ok = h('button', { type: 'button', class: 'btn btn-danger', testid: `${testid}-confirm` }, okLabel);
      const no = h('button', { type: 'button', class: 'btn btn-ghost', testid: `${testid}-keep` }, t('confirm.keep'));
      const { close } = openDialog({
        title, testid, body: h('p', {}, text), footer: [no, ok],
        onClose: () => { if (!answered) resolve(false); },
      });
      ok.addEventListener('click', () => { answered = true; close(); resolve(true); });
      no.addEventListener('click', () => { answered = true; close(); resolve(false); });
      no.focus();
    });
  }

  mayWrite() {
    return this.mine() && !this.sending && state.wsStatus === 'online';
  }

  async send() {
    if (!this.mayWrite()) return;
    const text = this.input.value.trim();
    const atts = this.draft.attachments;
    if (!text && !atts.length) return;
    // One key per message, kept (sessionStorage) until the server has it: a retry reuses it.
    if (!this.draft.key) this.draft.key = uuid();
    this.draft.text = this.input.value;
    saveDraft(this.id, this.draft);
    this.sending = true;
    this.sendBtn.disabled = true;
    this.sendBtn.textContent = t('composer.sending');
    this.showError('');
    const payload = {};
    if (text) payload.text = text;
    if (atts.length) payload.attachment_ids = atts.map((a) => a.id);
    try {
      const { data } = await api.send(this.id, payload, this.draft.key);
      this.draft = { text: '', key: null, attachments: [] };
      saveDraft(this.id, this.draft);
      if (this.input.value.trim() === text) this.input.value = '';
      else this.saveText();
      this.renderChips();
      if (data) this.a.upsertMessage(data);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 0 || e.status >= 500)) this.showError(t('composer.retry'));
      else {
        // Refused: nothing was stored; a corrected message gets a new key.
        this.draft.key = null;
        saveDraft(this.id, this.draft);
        this.showError(this.a.errorText(e));
      }
    } finally {
      this.sending = false;
      this.sendBtn.textContent = t('composer.send');
      this.sendBtn.disabled = !this.mayWrite();
      this.input.focus();
    }
  }

  async copy() {
    const c = this.conv();
    const lines = [];
    if (c) lines.push(`${(c.customer && (c.customer.name || c.customer.address)) || ''} — ${channelLabel(c.channel)} — ${serviceName(c.service_id)}`);
    // Messages and handovers in order, each message under its author's name; a message the
    // provider refused says so.
    const rows = [...(state.messages.get(this.id) || []).map((m) => ({ at: m.created_at, m })),
      ...(state.handovers.get(this.id) || []).map((e) => ({ at: e.at, e }))];
    rows.sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));
    for (const { m, e } of rows) {
      if (e) {
        lines.push(`[${fmtDateTime(e.at)}] — ${this.handover(e, true).firstChild.textContent} —`);
        continue;
      }
      let body = m.body || '';
      const loc = locationOf(m);
      if (loc) body += `${body ? ' ' : ''}[${t('msg.location')}: ${loc.lat}, ${loc.lon}]`;
      for (const ct of contactsOf(m)) body += `${body ? ' ' : ''}[${t('msg.contact')}: ${ct.name} ${ct.phones.join(', ')}]`;
      for (const a of m.attachments || []) body += `${body ? ' ' : ''}[${t('msg.attachment')}: ${a.name}]`;
      if (m.status === 'failed') body += ` [${t('tick.failed')}${m.error_message ? `: ${m.error_message}` : ''}]`;
      // A copy leaves the desk: agents by their names, "Você" would not say who.
      const mine = m.direction === 'out' && state.me && m.sender_agent_id === state.me.id;
      const who = mine ? state.me.name : this.who(m, c);
      lines.push(`[${fmtDateTime(m.created_at)}] ${who}: ${body}`);
    }
    const text = lines.join('\n');
    window.__omnirouteLastCopy = text;
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch {
      ok = false;
    }
    if (!ok) {
      const ta = h('textarea', { class: 'offscreen', readonly: true });
      ta.value = text;
      document.body.appendChild(ta);
      ta.select();
      try {
        ok = document.execCommand('copy');
      } catch {
        ok = false;
      }
      ta.remove();
    }
    this.a.toast(ok ? t('copy.done') : t('copy.failed'), ok ? 'ok' : 'error');
  }
}

function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
