// The emoji picker (D6): the full set from /desk/emoji.json (loaded when first opened), by group,
// with a search box that finds emoji by their English name, shortcodes and Portuguese words, and
// the agent's recent picks first.
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';

const GROUPS = ['recent', 'smileys', 'people', 'animals', 'food', 'travel', 'activities', 'objects', 'symbols', 'flags'];
const GROUP_ICON = {
  recent: '🕘', smileys: '😀', people: '👋', animals: '🐶', food: '🍕', travel: '🚗', activities: '⚽', objects: '💡', symbols: '❤️', flags: '🏳️',
};
const RECENT_KEY = 'omniroute.emoji.recent';
const MAX_SHOWN = 400;

let catalogue = null;
function load() {
  if (!catalogue) {
    catalogue = fetch('/desk/emoji.json', { credentials: 'same-origin' })
      .then((r) => (r.ok ? r.json() : []))
      .then((all) => all.map((x) => ({ ...x, words: fold(`${x.n} ${x.k.join(' ')}`) })))
      .catch(() => {
        catalogue = null;
        return [];
      });
  }
  return catalogue;
}

/** Lower case without accents, so "coracao" finds "coração". */
function fold(s) {
  return s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
}

function recent() {
  try {
    return JSON.parse(localStorage.getItem(RECENT_KEY) || '[]');
  } catch {
    return [];
  }
}

function remember(e) {
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify([e, ...recent().filter((x) => x !== e)].slice(0, 32)));
  } catch {
    /* a private window keeps none */
  }
}

/**
 * The picker's panel; `onPick(emoji)` is called with the chosen one. Returns `{ panel, open, close }`.
 */
export function emojiPicker(onPick) {
  let group = recent().length ? 'recent' : 'smileys';
  const search = h('input', {
    type: 'search', class: 'emoji-search', testid: 'emoji-search', placeholder: t('emoji.search'), 'aria-label': t('emoji.search'),
  });
  const tabs = h('div', { class: 'emoji-tabs', role: 'tablist' });
  const grid = h('div', { class: 'emoji-grid', testid: 'emoji-grid', role: 'listbox', 'aria-label': t('composer.emoji') });
  const panel = h('div', { class: 'emoji-panel', testid: 'emoji-panel', hidden: true }, search, tabs, grid);

  function pick(e) {
    remember(e);
    onPick(e);
  }

  async function render() {
    const all = await load();
    const q = fold(search.value.trim());
    replace(tabs, GROUPS.map((g) => h('button', {
      type: 'button', role: 'tab', class: ['emoji-tab', g === group && !q ? 'on' : null], testid: `emoji-group-${g}`,
      title: t(`emoji.group.${g}`), 'aria-label': t(`emoji.group.${g}`), 'aria-selected': g === group && !q ? 'true' : 'false',
      on: { click: () => { group = g; search.value = ''; render(); } },
    }, GROUP_ICON[g])));
    let shown;
    if (q) {
      const terms = q.split(/\s+/);
      shown = all.filter((x) => terms.every((term) => x.words.includes(term)));
    } else if (group === 'recent') {
      const byGlyph = new Map(all.map((x) => [x.e, x]));
      shown = recent().map((e) => byGlyph.get(e) || { e, n: e });
    } else {
      shown = all.filter((x) => x.g === group);
    }
    if (!shown.length) {
      replace(grid, h('p', { class: 'muted emoji-none', testid: 'emoji-none' }, t(q ? 'emoji.none' : 'emoji.noRecent')));
      return;
    }
    replace(grid, shown.slice(0, MAX_SHOWN).map((x) => h('button', {
      type: 'button', class: 'emoji', role: 'option', title: x.n, 'aria-label': x.n, 'data-emoji': x.e,
      on: { click: () => pick(x.e) },
    }, x.e)));
  }

  search.addEventListener('input', () => render());
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      const first = grid.querySelector('button.emoji');
      if (first) first.click();
    }
  });

  return {
    panel,
    open() {
      panel.hidden = false;
      render();
      search.focus();
    },
    close() {
      panel.hidden = true;
      search.value = '';
    },
  };
}
