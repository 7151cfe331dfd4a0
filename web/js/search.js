// The search page: one box, facets to narrow, paging; the whole search lives in the URL
// (?q=&f=field:value&f=...&sort=&page=) so it can be shared and the back button works.

import * as api from './api.js';
import { announce, h, replace, snippetNodes } from './dom.js';
import { formatDate, plural, readableTitle } from './format.js';
import { currentUser, mountUserField } from './user.js';

const PAGE_SIZE = 10;
const FACET_ORDER = ['kind', 'instrument', 'pi', 'year', 'mode', 'format', 'tag'];
const FACET_LABELS = {
  kind: 'Kind', instrument: 'Instrument', pi: 'PI', year: 'Year', mode: 'Mode', format: 'Format', tag: 'Tags',
};
const FACET_VISIBLE = 6;  // values shown before "Show more"
const SORTS = new Set(['relevance', 'newest', 'oldest']);

const els = {
  form: document.getElementById('search-form'),
  q: document.getElementById('q'),
  sort: document.getElementById('sort'),
  status: document.getElementById('status'),
  hints: document.getElementById('hints'),
  layout: document.getElementById('search-layout'),
  facets: document.getElementById('facets'),
  meta: document.getElementById('results-meta'),
  didYouMean: document.getElementById('did-you-mean'),
  activeFilters: document.getElementById('active-filters'),
  results: document.getElementById('results'),
  pager: document.getElementById('pager'),
  resultsHeading: document.getElementById('results-heading'),
};

let inFlight = null;       // AbortController of the search being fetched
const expandedFacets = new Set();

// --- The search state <-> the URL --------------------------------------------------------------

function readState(search = window.location.search) {
  const params = new URLSearchParams(search);
  const page = Number.parseInt(params.get('page') || '1', 10);
  const sort = params.get('sort') || 'relevance';
  return {
    q: params.get('q') || '',
    f: [...new Set(params.getAll('f').filter((f) => f.includes(':')))],
    page: Number.isFinite(page) && page >= 1 ? page : 1,
    sort: SORTS.has(sort) ? sort : 'relevance',
  };
}

function stateUrl(state) {
  const params = new URLSearchParams();
  if (state.q) params.set('q', state.q);
  for (const f of state.f) params.append('f', f);
  if (state.sort !== 'relevance') params.set('sort', state.sort);
  if (state.page > 1) params.set('page', String(state.page));
  const qs = params.toString();
  return `${window.location.pathname}${qs ? `?${qs}` : ''}`;
}

// Moves to `state`: a new history entry (so Back returns to the previous search), then the search.
function go(state, { focusResults = false } = {}) {
  window.history.pushState(null, '', stateUrl(state));
  run(state, { focusResults });
}

const splitFilter = (f) => {
  const i = f.indexOf(':');
  return [f.slice(0, i), f.slice(i + 1)];
};

// --- Running a search ------------------------------------------------------------------------

async function run(state, { focusResults = false } = {}) {
  els.q.value = state.q;
  els.sort.value = state.sort;
  document.title = state.q ? `${state.q} · scisearch` : 'Search · scisearch';
  if (!state.q && state.f.length === 0) {
    els.hints.hidden = false;
    els.layout.hidden = true;
    announce(els.status, '');
    return;
  }
  inFlight?.abort();
  const controller = new AbortController();
  inFlight = controller;
  announce(els.status, 'Searching…');
  els.layout.setAttribute('aria-busy', 'true');
  let results;
  try {
    results = await api.search(
      {
        q: state.q,
        f: state.f,
        sort: state.sort,
        offset: (state.page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
        user: currentUser(),
      },
      controller.signal,
    );
  } catch (err) {
    if (err.name === 'AbortError') return;
    els.layout.removeAttribute('aria-busy');
    announce(els.status, `The search failed: ${err.message}`, 'error');
    els.hints.hidden = true;
    els.layout.hidden = true;
    return;
  }
  if (inFlight !== controller) return;
  inFlight = null;
  els.layout.removeAttribute('aria-busy');
  els.hints.hidden = true;
  els.layout.hidden = false;
  render(state, results);
  if (focusResults) els.resultsHeading.focus({ preventScroll: false });
}

function render(state, results) {
  const total = Number(results.total) || 0;
  const ms = results.took_ms ?? (results.seconds !== undefined ? results.seconds * 1000 : null);
  const time = ms === null ? '' : ` (${ms < 10 ? Number(ms).toFixed(1) : Math.round(ms)} ms)`;
  const count = `${results.total_exact === false ? 'About ' : ''}${plural(total, 'result')}`;
  // A broad query's datasets are ranked among those added last (the server says so).
  const scope = results.ranked_recent ? ' · datasets ranked among the most recently added' : '';
  els.meta.textContent = `${count}${time}${scope}`;
  announce(els.status, results.error ? results.error : `${count} for “${state.q || 'all'}”`,
    results.error ? 'error' : 'info');

  const suggestion = results.suggestion || results.corrected;
  if (suggestion && suggestion !== state.q) {
    const link = h('a', { href: stateUrl({ ...state, q: suggestion, page: 1 }) }, suggestion);
    link.addEventListener('click', (event) => {
      event.preventDefault();
      go({ ...state, q: suggestion, page: 1 });
    });
    replace(els.didYouMean, 'Did you mean ', link, '?');
    els.didYouMean.hidden = false;
  } else {
    els.didYouMean.hidden = true;
  }

  renderActiveFilters(state);
  renderFacets(state, results.facets || {}, results.facets_approximate);
  const queryId = results.query_id;
  const hits = results.hits || [];
  if (hits.length === 0) {
    replace(els.results, h('li', { class: 'empty-note' },
      total > 0 ? 'No more results on this page.' : 'Nothing matches. Try fewer words or remove a filter.'));
  } else {
    replace(els.results, hits.map((hit) => renderHit(hit, queryId)));
  }
  renderPager(state, total);
}

function renderActiveFilters(state) {
  if (state.f.length === 0) {
    els.activeFilters.replaceChildren();
    return;
  }
  replace(
    els.activeFilters,
    h('li', { class: 'muted' }, 'Filters:'),
    state.f.map((f) => {
      const [field, value] = splitFilter(f);
      return h('li', {}, h('button', {
        type: 'button',
        class: 'button small',
        'aria-label': `Remove filter ${FACET_LABELS[field] || field}: ${value}`,
        onclick: () => go({ ...state, f: state.f.filter((x) => x !== f), page: 1 }),
      }, `${FACET_LABELS[field] || field}: ${value}`, h('span', { 'aria-hidden': 'true' }, ' ×')));
    }),
    state.f.length > 1
      ? h('li', {}, h('button', { type: 'button', class: 'button small', onclick: () => go({ ...state, f: [], page: 1 }) }, 'Clear all'))
      : null,
  );
}

function renderFacets(state, facets, approximate) {
  const heading = els.facets.querySelector('#facets-heading');
  const groups = [];
  const fields = [...FACET_ORDER, ...Object.keys(facets).filter((k) => !FACET_ORDER.includes(k))];
  for (const field of fields) {
    const values = [...(facets[field] || [])];
    // A chosen value stays visible (and un-choosable) even when the counts no longer list it.
    for (const f of state.f) {
      const [ff, value] = splitFilter(f);
      if (ff === field && !values.some((v) => String(v.value) === value)) values.unshift({ value, count: null });
    }
    if (values.length === 0) continue;
    const headingId = `facet-${field}`;
    const expanded = expandedFacets.has(field);
    const items = values.map((v, i) => {
      const filter = `${field}:${v.value}`;
      const pressed = state.f.includes(filter);
      return h('li', { hidden: !expanded && !pressed && i >= FACET_VISIBLE },
        h('button', {
          type: 'button',
          class: 'facet-toggle',
          'aria-pressed': pressed ? 'true' : 'false',
          dataset: { filter },
          onclick: () => {
            const f = pressed ? state.f.filter((x) => x !== filter) : [...state.f, filter];
            go({ ...state, f, page: 1 });
          },
        },
        h('span', { class: 'facet-value' }, String(v.value)),
        v.count === null ? null : h('span', { class: 'count' },
          `${approximate ? '~' : ''}${Number(v.count).toLocaleString('en')}`)));
    });
    const more = values.length > FACET_VISIBLE
      ? h('button', {
        type: 'button',
        class: 'button small',
        'aria-expanded': expanded ? 'true' : 'false',
        onclick: () => {
          if (expanded) expandedFacets.delete(field);
          else expandedFacets.add(field);
          renderFacets(state, facets, approximate);
        },
      }, expanded ? 'Show fewer' : `Show all ${values.length}`)
      : null;
    groups.push(h('h2', { id: headingId }, FACET_LABELS[field] || field),
      h('ul', { 'aria-labelledby': headingId }, items), more);
  }
  replace(els.facets, heading, groups.length ? groups : h('p', { class: 'muted' }, 'No facets.'));
}

function renderHit(hit, queryId) {
  const number = api.hitDatasetNumber(hit);
  const info = hit.dataset && typeof hit.dataset === 'object' ? hit.dataset : {};
  const href = number ? `dataset.html?id=${encodeURIComponent(number)}` : null;
  const { name, sample } = readableTitle(hit.title, hit.path);
  const logOpen = () => api.logClick({ user: currentUser(), queryId, item: hit.id, rank: hit.rank });

  const thumbSrc = api.thumbnailUrl(hit);
  const thumb = thumbSrc
    ? h('img', { class: 'thumb', src: thumbSrc, alt: '', loading: 'lazy', width: '96', height: '96' })
    : h('div', { class: 'thumb placeholder', 'aria-hidden': 'true' }, hit.kind || 'item');
  if (thumbSrc) thumb.addEventListener('error', () => thumb.replaceWith(h('div', { class: 'thumb placeholder', 'aria-hidden': 'true' }, 'no image')));
  const thumbLink = href
    ? h('a', { href, tabindex: '-1', 'aria-hidden': 'true', onclick: logOpen, onauxclick: logOpen }, thumb)
    : thumb;

  const kindBadge = hit.kind && hit.kind !== 'dataset' ? h('span', { class: 'kind-badge' }, hit.kind) : null;
  const titleText = [name, sample ? h('span', { class: 'sample' }, ` — ${sample}`) : null];
  const body = h('div', { class: 'result-body' });
  let titleEl;
  let documentPanel = null;
  if (href) {
    titleEl = h('a', { href, class: 'result-link', onclick: logOpen, onauxclick: logOpen }, titleText);
  } else {
    // Proposals, publications and log entries open in place: their text from /documents/{id}.
    documentPanel = h('div', { class: 'document-text', hidden: true, id: `doc-${hit.rank}` });
    titleEl = h('a', {
      href: '#',
      role: 'button',
      class: 'result-link',
      'aria-expanded': 'false',
      'aria-controls': documentPanel.id,
    }, titleText);
    titleEl.addEventListener('click', async (event) => {
      event.preventDefault();
      const open = titleEl.getAttribute('aria-expanded') !== 'true';
      titleEl.setAttribute('aria-expanded', open ? 'true' : 'false');
      documentPanel.hidden = !open;
      if (!open || documentPanel.dataset.loaded) return;
      logOpen();
      documentPanel.textContent = 'Loading…';
      try {
        const doc = await api.documentById(hit.id);
        documentPanel.dataset.loaded = '1';
        replace(documentPanel,
          doc.authors ? h('p', {}, h('strong', {}, 'Authors: '), [].concat(doc.authors).join(', ')) : null,
          doc.doi ? h('p', {}, h('strong', {}, 'DOI: '), doc.doi) : null,
          doc.text || '(no text)');
      } catch (err) {
        documentPanel.textContent = `The document could not be read: ${err.message}`;
      }
    });
  }

  const matchedTags = new Set((hit.matched || []).filter((m) => m.field === 'tag').map((m) => String(m.value).toLowerCase()));
  const instrument = info.instrument ?? hit.instrument;
  const pi = info.pi ?? hit.pi;
  const facts = [
    instrument ? h('span', {}, 'Instrument ', h('strong', {}, String(instrument))) : null,
    hit.date ? h('span', {}, h('time', { datetime: hit.date }, formatDate(hit.date))) : null,
    pi ? h('span', {}, 'PI ', h('strong', {}, String(pi))) : null,
    info.embargoed ? h('span', { class: 'embargo' }, 'Embargoed') : null,
    hit.summary ? h('span', {}, String(hit.summary)) : null,
  ].filter(Boolean);
  replace(body,
    h('h3', { class: 'result-title' }, kindBadge, titleEl),
    hit.path ? h('p', { class: 'result-path' }, hit.path) : null,
    facts.length ? h('p', { class: 'result-facts' }, facts) : null,
    hit.snippet ? h('p', { class: 'snippet' }, snippetNodes(hit.snippet)) : null,
    hit.tags?.length
      ? h('ul', { class: 'tags', 'aria-label': 'Tags' }, hit.tags.map((tag) => {
        const matched = matchedTags.has(String(tag).toLowerCase());
        return h('li', { class: `tag${matched ? ' matched' : ''}` }, String(tag),
          matched ? h('span', { class: 'visually-hidden' }, ' (matches the query)') : null);
      }))
      : null,
    documentPanel);
  return h('li', { class: 'result', dataset: { id: hit.id } }, thumbLink, body);
}

function renderPager(state, total) {
  const pages = Math.ceil(total / PAGE_SIZE);
  if (pages <= 1) {
    els.pager.replaceChildren();
    return;
  }
  const link = (page, text, label) => {
    const a = h('a', { href: stateUrl({ ...state, page }), 'aria-label': label || `Page ${page}` }, text);
    a.addEventListener('click', (event) => {
      event.preventDefault();
      go({ ...state, page }, { focusResults: true });
    });
    return h('li', {}, a);
  };
  const items = [];
  if (state.page > 1) items.push(link(state.page - 1, '‹ Previous', 'Previous page'));
  const first = Math.max(1, state.page - 3);
  const last = Math.min(pages, state.page + 3);
  if (first > 1) items.push(link(1, '1'), first > 2 ? h('li', {}, h('span', { 'aria-hidden': 'true' }, '…')) : null);
  for (let p = first; p <= last; p += 1) {
    items.push(p === state.page
      ? h('li', {}, h('span', { 'aria-current': 'page', 'aria-label': `Page ${p}, current` }, String(p)))
      : link(p, String(p)));
  }
  if (last < pages) items.push(last < pages - 1 ? h('li', {}, h('span', { 'aria-hidden': 'true' }, '…')) : null, link(pages, String(pages)));
  if (state.page < pages) items.push(link(state.page + 1, 'Next ›', 'Next page'));
  replace(els.pager, items);
}

// --- Wiring -----------------------------------------------------------------------------------

mountUserField(document.getElementById('user-field'));

els.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const state = readState();
  go({ ...state, q: els.q.value.trim(), page: 1 });
});
els.sort.addEventListener('change', () => go({ ...readState(), sort: els.sort.value, page: 1 }));
window.addEventListener('popstate', () => run(readState()));
document.addEventListener('keydown', (event) => {
  // "/" jumps to the search box, as on most search sites.
  if (event.key === '/' && !event.ctrlKey && !event.metaKey && !isTyping(event.target)) {
    event.preventDefault();
    els.q.focus();
    els.q.select();
  }
});

function isTyping(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
}

const initial = readState();
run(initial);
if (!initial.q && initial.f.length === 0) els.q.focus();
