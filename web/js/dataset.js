// The detail page of one dataset (dataset.html?id=N): the image large with zoom, what the catalog
// knows of it, its tags with their provenance, its links with evidence, its metadata per signal,
// and the items most like it.

import * as api from './api.js';
import { announce, h, replace } from './dom.js';
import { formatBytes, readableTitle } from './format.js';
import { showMetadata } from './metadata.js';
import { mountUserField } from './user.js';
import { ImageViewer } from './viewer.js';
import { factsOf, linkList, tagTable } from './parts.js';

const $ = (id) => document.getElementById(id);
const status = $('status');

mountUserField($('user-field'));

// "Back to search" returns to the very search (with its scroll position) when we came from it.
$('back-link').addEventListener('click', (event) => {
  if (document.referrer && new URL(document.referrer).origin === window.location.origin && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});

const id = api.datasetNumber(new URLSearchParams(window.location.search).get('id'));
if (!id) {
  announce(status, 'No dataset given: open this page from a search result (dataset.html?id=N).', 'error');
} else {
  load(id);
}

async function load(datasetId) {
  announce(status, 'Loading…');
  let d;
  try {
    d = await api.dataset(datasetId);
  } catch (err) {
    announce(status, err.status === 404 ? `There is no dataset ${datasetId}.` : `The dataset could not be read: ${err.message}`, 'error');
    return;
  }
  announce(status, '');
  render(d);
}

function render(d) {
  const { name, sample } = readableTitle(d.name, d.path);
  document.title = `${name} · scisearch`;
  $('dataset-name').textContent = name;
  $('dataset-sample').textContent = sample;
  $('dataset-path').textContent = d.path || '';
  $('tag-link').href = `tag.html?id=${encodeURIComponent(api.datasetNumber(d.id))}`;
  $('copy-path').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(d.path || '');
      announce(status, 'Path copied.', 'ok');
    } catch {
      announce(status, 'The browser refused the clipboard: select the path and copy it.', 'error');
    }
  });

  replace($('facts'), factsOf(d).map(([label, value]) => [h('dt', {}, label), h('dd', {}, String(value))]));
  const files = d.files || [];
  if (files.length > 1) {
    $('facts').append(h('dt', {}, 'Files'), h('dd', {}, h('ul', { class: 'tags' },
      files.map((f) => h('li', { class: 'tag' }, `${readableTitle('', f.path).name || f.path}`,
        f.size !== undefined ? h('span', { class: 'confidence' }, formatBytes(f.size)) : null)))));
  }
  replace($('download'), d.download
    ? h('a', { class: 'button primary', href: d.download, download: '' }, 'Download the original file')
    : h('span', { class: 'muted' }, 'The original file cannot be downloaded here (embargo or permissions).'));

  replace($('tags'), tagTable(d.tags || []));
  replace($('links'), linkList(d.links || []));

  // Image and metadata follow the chosen signal.
  const viewer = new ImageViewer($('viewer'), { label: `Image of ${name}` });
  const signals = d.signals?.length ? d.signals : [{ index: 0, name: 'signal 0', thumbnail: null }];
  const tabs = signals.map((signal, i) => h('button', {
    type: 'button',
    role: 'tab',
    class: 'button small',
    id: `signal-tab-${i}`,
    'aria-selected': 'false',
    onclick: () => choose(i),
  }, signal.name || `signal ${signal.index}`));
  replace($('signal-tabs'), signals.length > 1 ? tabs : []);
  const choose = (i) => {
    const signal = signals[i];
    tabs.forEach((tab, j) => tab.setAttribute('aria-selected', i === j ? 'true' : 'false'));
    const shape = Array.isArray(signal.shape) ? signal.shape.join('×') : signal.shape;
    viewer.show(api.thumbnailUrl(signal.thumbnail), `${signal.name || 'signal'}${shape ? `, ${shape}` : ''} of ${name}`);
    $('metadata-signal').textContent = signals.length > 1 ? `of ${signal.name || `signal ${signal.index}`}` : '';
    showMetadata($('metadata'), d.id, signal.index ?? i, { idPrefix: 'detail-meta' });
  };
  choose(0);

  const similar = d.similar || [];
  replace($('similar'), similar.length
    ? similar.map((hit) => {
      const number = api.hitDatasetNumber(hit);
      const thumb = api.thumbnailUrl(hit);
      const title = readableTitle(hit.title, hit.path);
      const content = [
        thumb ? h('img', { class: 'thumb', src: thumb, alt: '', loading: 'lazy' }) : h('div', { class: 'thumb placeholder' }, hit.kind || ''),
        h('span', { class: 'similar-title' }, title.name),
        title.sample ? h('span', { class: 'muted' }, ` — ${title.sample}`) : null,
      ];
      return h('li', {}, number ? h('a', { href: `dataset.html?id=${encodeURIComponent(number)}` }, content) : content);
    })
    : h('li', { class: 'empty-note' }, 'Nothing similar found.'));

  $('dataset').hidden = false;
}
