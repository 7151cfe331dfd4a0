// Pieces shared by the detail and tagging pages: the key facts of a dataset, its tags with their
// provenance, and its links with evidence. Text only (see dom.js).

import * as api from './api.js';
import { h, replace } from './dom.js';
import { formatBytes, formatConfidence, formatDate, formatLength, formatNumber } from './format.js';

// [label, value] pairs of what the catalog knows of dataset `d` (GET /datasets/{id}), empty ones left out.
export function factsOf(d) {
  const pixel = d.pixel_size ? formatLength(d.pixel_size, d.pixel_size_units) : null;
  return [
    ['Instrument', d.instrument],
    ['PI', d.pi],
    ['Proposal', d.proposal],
    ['Session', d.session],
    ['Mode', d.mode],
    ['Acquired', d.acquired ? formatDate(d.acquired) : null],
    ['Beam energy', d.beam_energy_kev ? `${formatNumber(d.beam_energy_kev)} keV` : null],
    ['Magnification', d.magnification ? `${formatNumber(d.magnification)}×` : null],
    ['Pixel size', pixel],
    ['Detector', d.detector],
    ['Format', d.format],
    ['Size', d.size_bytes !== undefined && d.size_bytes !== null ? formatBytes(d.size_bytes) : null],
    ['State', d.state],
    ['Embargo until', d.embargo_until ? formatDate(d.embargo_until, { time: false }) : null],
    ['Catalog id', d.id],
  ].filter(([, value]) => value !== null && value !== undefined && value !== '');
}

const SOURCE_LABELS = {
  expert: 'expert', path: 'folder or file name', metadata: 'metadata', text: 'text', image: 'image model',
  log: 'user log', proposal: 'proposal', publication: 'publication',
};

export const sourceLabel = (source) => SOURCE_LABELS[source] || String(source || 'unknown');

// A confidence as a small bar and a percentage (nothing when there is none).
export function confidenceMeter(confidence) {
  const text = formatConfidence(confidence);
  if (!text) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'confidence-meter' },
    h('span', { class: 'meter', 'aria-hidden': 'true' }, h('span', { style: `width: ${text}` })), text);
}

// The table of a dataset's tags: value, source, confidence, state (with who validated it), evidence.
export function tagTable(tags) {
  if (tags.length === 0) return h('p', { class: 'empty-note' }, 'No tags yet.');
  const order = { accepted: 0, suggested: 1, rejected: 2 };
  const sorted = [...tags].sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3)
    || (Number(b.confidence) || 0) - (Number(a.confidence) || 0));
  return h('div', { class: 'table-scroll' }, h('table', { class: 'tag-table' },
    h('caption', { class: 'visually-hidden' }, 'Tags with their source, confidence and state'),
    h('thead', {}, h('tr', {}, ['Tag', 'Source', 'Confidence', 'State'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, sorted.map((tag) => h('tr', { dataset: { tagId: tag.id, state: tag.state } },
      h('th', { scope: 'row' }, h('span', { class: 'tag-value' }, String(tag.value)),
        tag.evidence ? h('p', { class: 'evidence' }, String(tag.evidence)) : null),
      h('td', {}, sourceLabel(tag.source)),
      h('td', {}, confidenceMeter(tag.confidence)),
      h('td', {}, h('span', { class: `state ${tag.state}` }, String(tag.state || '')),
        tag.validated_by ? h('p', { class: 'evidence' }, `by ${tag.validated_by}`,
          tag.validated_at ? `, ${formatDate(tag.validated_at)}` : '') : null))))));
}

const LINK_LABELS = { session: 'Session', proposal: 'Proposal', publication: 'Publication' };

// The list items of a dataset's links (session, proposal, publications) with confidence and
// evidence; proposals and publications can show their text (GET /documents/{id}).
export function linkList(links) {
  if (links.length === 0) return h('li', { class: 'empty-note' }, 'Not linked to a session, proposal or publication.');
  const order = { session: 0, proposal: 1, publication: 2 };
  return [...links].sort((a, b) => (order[a.kind] ?? 3) - (order[b.kind] ?? 3)).map((link, i) => {
    const panelId = `link-text-${i}`;
    const panel = h('div', { class: 'document-text', id: panelId, hidden: true });
    const canOpen = link.kind === 'proposal' || link.kind === 'publication';
    const toggle = canOpen ? h('button', {
      type: 'button',
      class: 'button small',
      'aria-expanded': 'false',
      'aria-controls': panelId,
    }, 'Show text') : null;
    toggle?.addEventListener('click', async () => {
      const open = toggle.getAttribute('aria-expanded') !== 'true';
      toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
      toggle.textContent = open ? 'Hide text' : 'Show text';
      panel.hidden = !open;
      if (!open || panel.dataset.loaded) return;
      panel.textContent = 'Loading…';
      try {
        const doc = await api.documentById(link.id);
        panel.dataset.loaded = '1';
        replace(panel,
          doc.authors?.length ? h('p', {}, h('strong', {}, 'Authors: '), [].concat(doc.authors).join(', ')) : null,
          doc.doi ? h('p', {}, h('strong', {}, 'DOI: '), String(doc.doi)) : null,
          String(doc.text || '(no text)'));
      } catch (err) {
        panel.textContent = `The document could not be read: ${err.message}`;
      }
    });
    const title = link.title && link.title !== link.id ? String(link.title) : null;
    return h('li', { dataset: { kind: link.kind } },
      h('div', {}, h('strong', {}, LINK_LABELS[link.kind] || String(link.kind)), ' ',
        h('code', {}, String(link.id ?? '')), ' ', confidenceMeter(link.confidence)),
      title ? h('div', {}, title) : null,
      link.evidence ? h('p', { class: 'evidence' }, 'Evidence: ', String(link.evidence)) : null,
      toggle, panel);
  });
}
