// Middle column: offers (R7) and my conversations in Active / Inactive tabs with totals (D7).
import { h, replace, clock } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { state, on, isActive, isInactive, serviceName } from '../state.js';
import { channelIcon, channelLabel } from './common.js';

export function mountConvList(el, actions) {
  const offers = h('div', { class: 'offers', testid: 'offers' });
  const activeCount = h('span', { class: 'count', testid: 'tab-active-count' }, '0');
  const inactiveCount = h('span', { class: 'count', testid: 'tab-inactive-count' }, '0');
  const tabActive = h('button', {
    type: 'button', role: 'tab', id: 'tab-active', class: 'tab', testid: 'tab-active', 'aria-controls': 'conv-list',
    on: { click: () => setTab('active'), keydown: arrows },
  }, t('tabs.active'), ' ', activeCount);
  const tabInactive = h('button', {
    type: 'button', role: 'tab', id: 'tab-inactive', class: 'tab', testid: 'tab-inactive', 'aria-controls': 'conv-list',
    on: { click: () => setTab('inactive'), keydown: arrows },
  }, t('tabs.inactive'), ' ', inactiveCount);
  const list = h('ul', { class: 'conv-list', id: 'conv-list', role: 'tabpanel', testid: 'conv-list' });

  function arrows(e) {
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      setTab(state.tab === 'active' ? 'inactive' : 'active');
      (state.tab === 'active' ? tabActive : tabInactive).focus();
    }
  }
  function setTab(tab) {
    state.tab = tab;
    render();
  }

  function render() {
    const all = [...state.convs.values()];
    const act = all.filter(isActive);
    const inact = all.filter(isInactive);
    activeCount.textContent = String(act.length);
    inactiveCount.textContent = String(inact.length);
    tabActive.setAttribute('aria-selected', String(state.tab === 'active'));
    tabInactive.setAttribute('aria-selected', String(state.tab === 'inactive'));
    tabActive.classList.toggle('tab-on', state.tab === 'active');
    tabInactive.classList.toggle('tab-on', state.tab === 'inactive');
    tabActive.tabIndex = state.tab === 'active' ? 0 : -1;
    tabInactive.tabIndex = state.tab === 'inactive' ? 0 : -1;
    const shown = (state.tab === 'active' ? act : inact).sort((a, b) =>
      String(a.assigned_at || a.arrived_at).localeCompare(String(b.assigned_at || b.arrived_at)));
    if (!shown.length) {
      replace(list, h('li', { class: 'list-empty muted' }, t('list.empty')));
      return;
    }
    replace(list, shown.map((c) => item(c)));
  }

  function item(c) {
    const unread = state.unread.get(c.id) || 0;
    const handed = state.handed.has(c.id);
    const alert = state.alerts.get(c.id);
    const name = (c.customer && (c.customer.name || c.customer.address)) || t('conv.unknownCustomer');
    const since = c.assigned_at ? (Date.now() - new Date(c.assigned_at).getTime()) / 1000 : null;
    return h('li', {},
      h('button', {
        type: 'button', class: ['conv-item', `ch-${c.channel}`, state.selectedId === c.id ? 'selected' : null, unread || handed ? 'has-unread' : null, handed ? 'handed' : null],
        testid: `conv-item-${c.id}`, 'aria-current': state.selectedId === c.id ? 'true' : null,
        on: { click: () => actions.select(c.id) },
      },
      h('span', { class: 'ch-icon', title: channelLabel(c.channel) }, channelIcon(c.channel)),
      h('span', { class: 'ci-main' },
        h('span', { class: 'ci-name' }, name),
        h('span', { class: 'ci-meta muted' }, serviceName(c.service_id),
          c.last_customer_message_at ? ` · ${fmtTime(c.last_customer_message_at)}` : '')),
      h('span', { class: 'ci-side' },
        handed ? h('span', { class: 'badge badge-new', testid: `conv-handed-${c.id}` }, t('handed.badge')) : null,
        unread ? h('span', { class: 'badge', testid: `conv-unread-${c.id}`, 'aria-label': `${unread}` }, String(unread)) : null,
        alert ? h('span', { class: 'alert-dot', title: t(`alert.${alert}`) }, '!') : null,
        since !== null ? h('span', { class: 'ci-time muted', 'data-since': c.assigned_at }, clock(since)) : null)));
  }

  function renderOffers() {
    replace(offers, [...state.offers.values()].map((o) => h('div', { class: 'offer', testid: `offer-${o.conversation_id}` },
      h('span', { class: 'ch-icon' }, channelIcon(o.channel)),
      h('span', { class: 'offer-text' }, `${t('offers.title')}: ${channelLabel(o.channel)} · ${serviceName(o.service_id)}`),
      h('button', { type: 'button', class: 'btn btn-small btn-ok', testid: `offer-accept-${o.conversation_id}`, on: { click: () => actions.answerOffer(o.conversation_id, true) } }, t('offers.accept')),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', testid: `offer-decline-${o.conversation_id}`, on: { click: () => actions.answerOffer(o.conversation_id, false) } }, t('offers.decline')))));
  }

  replace(el,
    offers,
    h('h2', { class: 'section-title' }, t('tabs.mine')),
    h('div', { class: 'tabs', role: 'tablist' }, tabActive, tabInactive),
    list);
  on('convs', render);
  on('selected', render);
  on('offers', renderOffers);
  on('tick', () => {
    for (const s of list.querySelectorAll('[data-since]')) s.textContent = clock((Date.now() - new Date(s.dataset.since).getTime()) / 1000);
  });
  render();
  renderOffers();
}
