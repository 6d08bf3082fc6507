// Top bar: agent, connection, telephony toolbar (voice waiting), presence and pause (D10).
import { h, replace, clock } from '../dom.js';
import { t, getLang } from '../i18n.js';
import { state, on, waitingByChannel } from '../state.js';
import { langSelect, channelIcon, toolIcon } from './common.js';

export function mountTopbar(el, actions, bar) {
  // One presence control: the button says where I stand (with the time in pause) and opens the
  // choices — available, a pause reason, unavailable.
  const statusText = h('span', { class: 'presence-text' });
  const clockText = h('span', { class: 'clock-text' });
  const pauseClock = h('span', { class: 'pause-clock', testid: 'pause-clock', title: t('presence.clock'), 'aria-label': t('presence.clock'), hidden: true }, toolIcon('clock'), clockText);
  const menu = h('div', { class: 'menu', role: 'menu', hidden: true, testid: 'pause-menu' });
  const presenceBtn = h('button', {
    type: 'button', class: 'presence-pill', testid: 'presence-status', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
    on: { click: () => (menu.hidden ? openMenu() : closeMenu()) },
  }, h('span', { class: 'presence-dot', 'aria-hidden': 'true' }), statusText, pauseClock, h('span', { class: 'caret', 'aria-hidden': 'true' }, '▾'));
  const ws = h('span', { class: 'ws-status', testid: 'ws-status', role: 'status' });
  const voiceCount = h('span', { class: 'count', testid: 'channel-count-voice' }, '0');

  function choice(testid, label, hint, status, reasonId, current) {
    return h('button', {
      type: 'button', role: 'menuitemradio', class: ['menu-item', current ? 'menu-current' : null], testid,
      'aria-checked': current ? 'true' : 'false',
      on: { click: () => { closeMenu(); actions.setPresence(status, reasonId); } },
    }, h('span', { class: `presence-dot dot-${status}`, 'aria-hidden': 'true' }), h('span', {}, label, hint ? h('small', { class: 'muted menu-hint' }, hint) : null));
  }
  function openMenu() {
    const p = state.presence || {};
    const paused = p.status === 'paused' || p.status === 'pause_pending';
    replace(
      menu,
      choice('presence-available', t('presence.available'), t('presence.availableHint'), 'available', undefined, p.status === 'available'),
      h('div', { class: 'menu-title' }, t('presence.reasons')),
      state.pauseReasons.length
        ? state.pauseReasons.map((r) => choice(`pause-reason-${r.id}`, r.name, null, 'paused', r.id, paused && p.pause_reason_id === r.id))
        : h('div', { class: 'menu-empty' }, t('presence.noReasons')),
      h('div', { class: 'menu-sep', role: 'separator' }),
      choice('presence-offline', t('presence.offline'), t('presence.offlineHint'), 'offline', undefined, p.status === 'offline'),
    );
    menu.hidden = false;
    presenceBtn.setAttribute('aria-expanded', 'true');
    const first = menu.querySelector('button');
    if (first) first.focus();
  }
  function closeMenu() {
    menu.hidden = true;
    presenceBtn.setAttribute('aria-expanded', 'false');
  }
  menu.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      closeMenu();
      presenceBtn.focus();
    }
  });
  document.addEventListener('click', (e) => {
    if (!menu.hidden && !menu.contains(e.target) && !presenceBtn.contains(e.target)) closeMenu();
  });

  replace(
    el,
    h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'O'), t('app.title')),
    h('div', { class: 'agent' },
      h('span', { class: 'agent-name', testid: 'agent-name' }, state.me ? state.me.name : ''),
      ws),
    h('div', { class: 'toolbar-voice', testid: 'voice-toolbar', title: t('toolbar.voice') },
      channelIcon('voice'), h('span', {}, t('toolbar.voice')), voiceCount, h('span', { class: 'muted' }, t('toolbar.voiceWaiting'))),
    h('div', { class: 'presence' }, h('div', { class: 'menu-wrap' }, presenceBtn, menu)),
    h('div', { class: 'top-actions' },
      h('button', { type: 'button', class: 'btn btn-ghost', testid: 'show-summary', on: { click: () => actions.select(null) } }, t('summary.show')),
      langSelect(getLang(), actions.changeLang),
      h('button', { type: 'button', class: 'btn btn-ghost', testid: 'logout', on: { click: () => actions.logout() } }, t('logout'))),
  );

  function renderPresence() {
    const p = state.presence;
    const status = p ? p.status : null;
    let text = status ? t(`presence.${status}`) : t('presence.unknown');
    if (status === 'paused' || status === 'pause_pending') {
      const r = state.pauseReasons.find((x) => x.id === p.pause_reason_id);
      if (r) text += ` — ${r.name}`;
    }
    statusText.textContent = text;
    presenceBtn.className = `presence-pill presence-${status || 'none'}`;
    presenceBtn.dataset.status = status || '';
    presenceBtn.title = status === 'pause_pending' ? t('presence.pendingHint') : t('presence.change');
    renderClock();
  }
  function renderClock() {
    const p = state.presence;
    const paused = p && (p.status === 'paused' || p.status === 'pause_pending') && p.since;
    pauseClock.hidden = !paused;
    if (paused) clockText.textContent = clock((Date.now() - new Date(p.since).getTime()) / 1000);
  }
  function renderWs(s) {
    // A dot by the name; losing the connection is told by the banner (views/main.js).
    ws.replaceChildren(h('span', { class: 'sr-only' }, t(`ws.${s || 'connecting'}`)));
    ws.title = t(`ws.${s || 'connecting'}`);
    ws.className = `ws-status ws-${s}`;
    ws.dataset.status = s || '';
  }
  // Under the bar: the connection lost (sending is off, drafts stay), or, while I receive
  // nothing, how to start receiving customers.
  const banner = h('div', { class: 'conn-banner', testid: 'connection-banner', role: 'alert', hidden: true }, t('conn.lost'));
  const hint = h('div', { class: 'presence-hint', testid: 'presence-hint', role: 'status', hidden: true },
    h('span', {}, t('presence.firstHint')),
    h('button', { type: 'button', class: 'btn btn-small btn-ok', testid: 'presence-hint-available', on: { click: () => actions.setPresence('available') } }, t('presence.becomeAvailable')));
  bar.append(banner, hint);
  function renderBars() {
    const lost = state.wsStatus !== 'online' && state.wsWasOnline;
    banner.hidden = !lost;
    const p = state.presence;
    hint.hidden = lost || !(p && p.status === 'offline');
  }
  on('presence', renderBars);
  on('ws', renderBars);
  renderBars();

  on('presence', renderPresence);
  on('pickers', renderPresence);
  on('tick', renderClock);
  on('ws', renderWs);
  on('queues', () => {
    voiceCount.textContent = String(waitingByChannel().voice || 0);
  });
  renderPresence();
  renderWs(state.wsStatus);
}
