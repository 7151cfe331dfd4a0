// The metadata of one signal as a table with a filter box. Keys and values are text nodes only.

import * as api from './api.js';
import { h, replace } from './dom.js';

// Fills `container` with a filter box and the table of `datasetId`'s signal `signal`.
// Returns a promise that settles when the entries are shown (or the error is).
export async function showMetadata(container, datasetId, signal, { idPrefix = 'meta' } = {}) {
  const filterId = `${idPrefix}-filter-${signal}`;
  const filter = h('input', {
    id: filterId,
    type: 'search',
    class: 'metadata-filter',
    placeholder: 'e.g. defocus, stage, dwell',
    autocomplete: 'off',
  });
  const count = h('span', { class: 'muted', 'aria-live': 'polite' });
  const body = h('tbody');
  const table = h(
    'table',
    { class: 'metadata-table' },
    h('caption', { class: 'visually-hidden' }, `Metadata of signal ${signal}`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Value'))),
    body,
  );
  replace(
    container,
    h('div', { class: 'metadata-tools' }, h('label', { for: filterId }, 'Filter metadata'), filter, count),
    h('div', { class: 'table-scroll' }, table),
  );
  count.textContent = 'Loading…';
  let entries;
  try {
    entries = (await api.metadata(datasetId, signal)).entries || [];
  } catch (err) {
    count.textContent = `Metadata could not be read: ${err.message}`;
    return;
  }
  const rows = entries.map((entry) => {
    const key = String(entry.key ?? '');
    const value = entry.value === null || entry.value === undefined ? '' : String(entry.value);
    const row = h(
      'tr',
      {},
      h('th', { scope: 'row', class: 'metadata-key' }, key),
      h('td', { class: entry.type === 'text' || entry.type === 'string' ? '' : 'numeric' }, value),
    );
    return { row, haystack: `${key}\u0000${value}`.toLowerCase() };
  });
  body.replaceChildren(...rows.map((r) => r.row));
  const update = () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const { row, haystack } of rows) {
      const visible = words.every((w) => haystack.includes(w));
      row.hidden = !visible;
      if (visible) shown += 1;
    }
    count.textContent = words.length ? `${shown} of ${rows.length} entries` : `${rows.length} entries`;
  };
  filter.addEventListener('input', update);
  update();
}
