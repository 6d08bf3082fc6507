// Right column: the summary when no conversation is open, else the conversation view.
import { replace } from '../dom.js';
import { state, on } from '../state.js';
import { renderSummary } from './summary.js';
import { ConversationView } from './conversation.js';

export function mountMain(el, actions) {
  let current = null; // {id, view}
  function render() {
    const id = state.selectedId;
    if (current && current.id === id) return;
    if (current && current.view) current.view.destroy();
    current = { id, view: null };
    if (!id) {
      replace(el, renderSummary(actions));
    } else {
      const view = new ConversationView(id, actions);
      current.view = view;
      replace(el, view.el);
      view.focus();
    }
  }
  on('selected', render);
  render();
}
