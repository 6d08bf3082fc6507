// Pieces shared by several views.
import { h, s } from '../dom.js';
import { t, DICTS, datePattern, fmtDateField, parseDateField } from '../i18n.js';

export function langSelect(current, onChange) {
  const id = `lang-${Math.random().toString(36).slice(2, 8)}`;
  const sel = h(
    'select',
    { id, class: 'lang-select', testid: 'lang-select', on: { change: (e) => onChange(e.target.value) } },
    Object.keys(DICTS).map((l) => h('option', { value: l, selected: l === current }, l === 'en' ? 'English' : 'Português (BR)')),
  );
  return h('span', { class: 'lang' }, h('label', { for: id, class: 'sr-only' }, t('lang')), sel);
}

/**
 * A date (or date and time) typed in the desk's language ("dd/mm/aaaa" in pt-BR), where a native
 * date input would follow the browser's. `value`/`onChange` use local "YYYY-MM-DD[THH:MM]"; a
 * text that is not a date is marked invalid and changes nothing.
 */
export function dateField({ value = '', withTime = false, testid, id, disabled = false, onChange = () => {} }) {
  const input = h('input', {
    type: 'text', id, testid, inputmode: 'numeric', autocomplete: 'off', disabled,
    placeholder: datePattern(withTime), value: fmtDateField(value), 'aria-label': datePattern(withTime),
  });
  input.dateValue = value;
  input.addEventListener('change', () => {
    const parsed = parseDateField(input.value, withTime);
    input.setAttribute('aria-invalid', parsed === null ? 'true' : 'false');
    if (parsed === null) return;
    input.dateValue = parsed;
    input.value = fmtDateField(parsed);
    onChange(parsed);
  });
  return input;
}

/** A small channel icon (SVG built with DOM APIs). */
export function channelIcon(channel) {
  const paths = {
    email: 'M3 6h18v12H3z M3 6l9 7 9-7',
    webchat: 'M4 5h16v10H8l-4 4z',
    whatsapp: 'M12 3a9 9 0 0 0-7.8 13.5L3 21l4.6-1.2A9 9 0 1 0 12 3z M9 8c0 4 3 7 7 7',
    messenger: 'M12 3C7 3 3 6.7 3 11.3c0 2.6 1.3 4.9 3.3 6.4V21l3-1.7c.9.3 1.8.4 2.7.4 5 0 9-3.7 9-8.3S17 3 12 3z M7 13l3-3 2 2 3-3',
    instagram: 'M7 3h10a4 4 0 0 1 4 4v10a4 4 0 0 1-4 4H7a4 4 0 0 1-4-4V7a4 4 0 0 1 4-4z M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z',
    telegram: 'M21 4L3 11l6 2 2 6 3-4 5 4z M9 13l8-6',
    sms: 'M4 4h16v12H7l-3 3z M8 9h8 M8 12h5',
    voice: 'M6 3l3 4-2 2a11 11 0 0 0 8 8l2-2 4 3-2 3C10 21 3 14 3 5z',
  };
  return s(
    'svg',
    { class: `icon icon-${channel}`, viewBox: '0 0 24 24', width: 18, height: 18, 'aria-hidden': 'true', focusable: 'false' },
    s('path', { d: paths[channel] || paths.webchat, fill: 'none', stroke: 'currentColor', 'stroke-width': 1.8, 'stroke-linejoin': 'round', 'stroke-linecap': 'round' }),
  );
}

export function channelLabel(channel) {
  return t(`channel.${channel}`);
}

/** A modal dialog (native <dialog>): returns {dialog, close}. */
export function openDialog({ title, body, footer, testid, onClose }) {
  const close = () => {
    if (dlg.open) dlg.close();
  };
  const dlg = h(
    'dialog',
    { class: 'dialog', testid, 'aria-label': title, on: { close: () => { dlg.remove(); if (onClose) onClose(); } } },
    h('header', { class: 'dialog-head' }, h('h2', {}, title),
      h('button', { type: 'button', class: 'btn-icon', 'aria-label': t('preview.close'), on: { click: close } }, '×')),
    h('div', { class: 'dialog-body' }, body),
    footer ? h('footer', { class: 'dialog-foot' }, footer) : null,
  );
  document.body.appendChild(dlg);
  dlg.showModal();
  return { dialog: dlg, close };
}

/** Small stroke icons for the composer tools (no emoji fonts needed). */
export function toolIcon(name) {
  const paths = {
    clip: 'M16.5 6.5l-7.8 7.8a2 2 0 0 0 2.8 2.8l7.8-7.8a4 4 0 0 0-5.7-5.7l-7.8 7.8a6 6 0 0 0 8.5 8.5l6.4-6.4',
    list: 'M8 6h12 M8 12h12 M8 18h12 M4 6h.01 M4 12h.01 M4 18h.01',
    copy: 'M9 9h11v11H9z M5 15H4V4h11v1',
    smile: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z M8.5 14a4.5 4.5 0 0 0 7 0 M9 9.5h.01 M15 9.5h.01',
    clock: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z M12 7v5l3 2',
    pin: 'M12 21s-7-6.1-7-11a7 7 0 0 1 14 0c0 4.9-7 11-7 11z M12 7.5a2.5 2.5 0 1 0 0 5 2.5 2.5 0 0 0 0-5z',
    user: 'M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z M4 21a8 8 0 0 1 16 0',
    mic: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z M5 11a7 7 0 0 0 14 0 M12 18v3',
  };
  return s(
    'svg',
    { class: `ticon ticon-${name}`, viewBox: '0 0 24 24', width: 18, height: 18, 'aria-hidden': 'true', focusable: 'false' },
    s('path', { d: paths[name], fill: 'none', stroke: 'currentColor', 'stroke-width': 1.8, 'stroke-linejoin': 'round', 'stroke-linecap': 'round' }),
  );
}
