// "Resumo de meus atendimentos no dia" (D2): started / concluded, average handling time, charts.
import { h, s, replace, clock } from '../dom.js';
import { t } from '../i18n.js';
import { state, on, CHANNELS } from '../state.js';
import { channelLabel } from './common.js';

export function renderSummary(actions) {
  const startedN = h('span', { class: 'big', testid: 'summary-started-count' }, '–');
  const concludedN = h('span', { class: 'big', testid: 'summary-concluded-count' }, '–');
  const started = h('button', {
    type: 'button', class: 'kpi', testid: 'summary-started', on: { click: () => setMode('started') },
  }, startedN, h('span', { class: 'kpi-label' }, t('summary.started')));
  const concluded = h('button', {
    type: 'button', class: 'kpi', testid: 'summary-concluded', on: { click: () => setMode('concluded') },
  }, concludedN, h('span', { class: 'kpi-label' }, t('summary.concluded')));
  const avg = h('span', { class: 'big', testid: 'summary-avg-value' }, '–');
  const avgBox = h('div', { class: 'kpi kpi-static', testid: 'summary-avg' }, avg, h('span', { class: 'kpi-label' }, t('summary.avg')));
  const chChart = h('div', { class: 'chart', testid: 'chart-channel' });
  const hrChart = h('div', { class: 'chart', testid: 'chart-hour' });
  const date = h('span', { class: 'muted', testid: 'summary-date' });

  function setMode(m) {
    state.summaryMode = m;
    render();
  }

  function render() {
    const d = state.summary;
    started.setAttribute('aria-pressed', String(state.summaryMode === 'started'));
    concluded.setAttribute('aria-pressed', String(state.summaryMode === 'concluded'));
    started.classList.toggle('kpi-on', state.summaryMode === 'started');
    concluded.classList.toggle('kpi-on', state.summaryMode === 'concluded');
    if (!d) return;
    date.textContent = d.date ? new Date(`${d.date}T12:00:00`).toLocaleDateString(document.documentElement.lang) : '';
    startedN.textContent = String(d.started.count);
    concludedN.textContent = String(d.concluded.count);
    const fig = d[state.summaryMode];
    const a = fig.avg_handling_s ?? (state.summaryMode === 'started' ? d.concluded.avg_handling_s : null);
    avg.textContent = a === null || a === undefined ? t('summary.none') : clock(a);
    const byCh = CHANNELS.concat('voice').map((c) => [c, (fig.by_channel && fig.by_channel[c]) || 0]);
    replace(chChart, h('h3', {}, t('summary.byChannel')), barChart(byCh.map(([c, n]) => ({ label: channelLabel(c), n, cls: `bar-${c}` })), { rotate: false, testid: 'chart-channel-svg' }));
    const hours = (fig.by_hour && fig.by_hour.length === 24 ? fig.by_hour : new Array(24).fill(0))
      .map((n, i) => ({ label: String(i).padStart(2, '0'), n, cls: 'bar-hour' }));
    replace(hrChart, h('h3', {}, t('summary.byHour')), barChart(hours, { small: true, testid: 'chart-hour-svg' }));
  }

  const off = on('summary', () => (root.isConnected ? render() : off()));
  render();
  if (!state.summary) actions.refreshSummary();
  const root = h('section', { class: 'summary', testid: 'summary', 'aria-labelledby': 'summary-title' },
    h('header', { class: 'summary-head' }, h('h2', { id: 'summary-title' }, t('summary.title')), date),
    h('div', { class: 'kpis' }, started, concluded, avgBox),
    h('div', { class: 'charts' }, chChart, hrChart));
  return root;
}

/** Vertical bar chart as inline SVG (built with DOM APIs). */
function barChart(items, { small = false, testid } = {}) {
  const W = 520;
  const H = 200;
  const top = 18;
  const bottom = 28;
  const left = 8;
  const max = Math.max(1, ...items.map((i) => i.n));
  const slot = (W - left * 2) / items.length;
  const bw = Math.max(4, slot * 0.62);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'bars', role: 'img', testid, preserveAspectRatio: 'xMidYMid meet' });
  const total = items.reduce((a, b) => a + b.n, 0);
  svg.appendChild(s('title', {}, items.filter((i) => i.n).map((i) => `${i.label}: ${i.n}`).join(', ') || '0'));
  svg.appendChild(s('line', { x1: left, x2: W - left, y1: H - bottom, y2: H - bottom, class: 'axis' }));
  items.forEach((it, idx) => {
    const x = left + idx * slot + (slot - bw) / 2;
    const bh = ((H - top - bottom) * it.n) / max;
    const y = H - bottom - bh;
    const g = s('g', { class: 'bar-g' });
    g.appendChild(s('rect', { x, y, width: bw, height: Math.max(bh, it.n ? 1 : 0), rx: 2, class: `bar ${it.cls}` }, s('title', {}, `${it.label}: ${it.n}`)));
    if (it.n) g.appendChild(s('text', { x: x + bw / 2, y: y - 4, 'text-anchor': 'middle', class: 'bar-value' }, String(it.n)));
    if (!small || idx % 3 === 0) {
      g.appendChild(s('text', { x: x + bw / 2, y: H - bottom + 16, 'text-anchor': 'middle', class: small ? 'bar-label small' : 'bar-label' }, it.label));
    }
    svg.appendChild(g);
  });
  svg.dataset.total = String(total);
  return svg;
}
