// Top bar: agent, connection, telephony toolbar (voice waiting), presence and pause (D10).
import { h, replace, clock } from '../dom.js';
import { t, getLang } from '../i18n.js';
import { state, on, waitingByChannel } from '../state.js';
import { langSelect, channelIcon, toolIcon } from './common.js';

export function mountTopbar(el, actions) {
  const statusPill = h('span', { class: 'presence-pill', testid: 'presence-status', role: 'status' });
  const clockText = h('span', { class: 'clock-text' });
  const pauseClock = h('span', { class: 'pause-clock', testid: 'pause-clock', title: t('presence.clock'), 'aria-label': t('presence.clock'), hidden: true }, toolIcon('clock'), clockText);
  const availableBtn = h('button', {
    type: 'button', class: 'btn btn-ok', testid: 'presence-available',
    on: { click: () => { closeMenu(); actions.setPresence('available'); } },
  }, t('presence.available'));
  const menu = h('div', { class: 'menu', role: 'menu', hidden: true, testid: 'pause-menu' });
  const pauseBtn = h('button', {
    type: 'button', class: 'btn btn-warn', testid: 'presence-pause', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
    on: { click: () => (menu.hidden ? openMenu() : closeMenu()) },
  }, t('presence.pause'), h('span', { class: 'caret', 'aria-hidden': 'true' }, '▾'));
  const ws = h('span', { class: 'ws-status', testid: 'ws-status', role: 'status' });
  const voiceCount = h('span', { class: 'count', testid: 'channel-count-voice' }, '0');

  function openMenu() {
    replace(
      menu,
      h('div', { class: 'menu-title' }, t('presence.reasons')),
      state.pauseReasons.length
        ? state.pauseReasons.map((r) => h('button', {
          type: 'button', role: 'menuitem', class: 'menu-item', testid: `pause-reason-${r.id}`,
          on: { click: () => { closeMenu(); actions.setPresence('paused', r.id); } },
        }, r.name))
        : h('div', { class: 'menu-empty' }, t('presence.noReasons')),
    );
    menu.hidden = false;
    pauseBtn.setAttribute('aria-expanded', 'true');
    const first = menu.querySelector('button');
    if (first) first.focus();
  }
  function closeMenu() {
    menu.hidden = true;
    pauseBtn.setAttribute('aria-expanded', 'false');
  }
  menu.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      closeMenu();
      pauseBtn.focus();
    }
  });
  document.addEventListener('click', (e) => {
    if (!menu.hidden && !menu.contains(e.target) && !pauseBtn.contains(e.target)) closeMenu();
  });

  replace(
    el,
    h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'O'), t('app.title')),
    h('div', { class: 'agent' },
      h('span', { class: 'agent-name', testid: 'agent-name' }, state.me ? state.me.name : ''),
      ws),
    h('div', { class: 'toolbar-voice', testid: 'voice-toolbar', title: t('toolbar.voice') },
      channelIcon('voice'), h('span', {}, t('toolbar.voice')), voiceCount, h('span', { class: 'muted' }, t('toolbar.voiceWaiting'))),
    h('div', { class: 'presence' }, statusPill, pauseClock, availableBtn, h('div', { class: 'menu-wrap' }, pauseBtn, menu)),
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
    statusPill.textContent = text;
    statusPill.className = `presence-pill presence-${status || 'none'}`;
    statusPill.dataset.status = status || '';
    statusPill.title = status === 'pause_pending' ? t('presence.pendingHint') : '';
    availableBtn.disabled = status === 'available';
    renderClock();
  }
  function renderClock() {
    const p = state.presence;
    const paused = p && (p.status === 'paused' || p.status === 'pause_pending') && p.since;
    pauseClock.hidden = !paused;
    if (paused) clockText.textContent = clock((Date.now() - new Date(p.since).getTime()) / 1000);
  }
  function renderWs(s) {
    ws.textContent = t(`ws.${s || 'connecting'}`);
    ws.className = `ws-status ws-${s}`;
    ws.dataset.status = s || '';
  }
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
