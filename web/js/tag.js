// The tagging page (tag.html, tag.html?id=N): one dataset at a time — its image, metadata, the tags
// assigned, the machine's suggestions to accept or reject, an Add tag box completing from the
// vocabulary — then Save & next (path order) or Skip to random. Every change is written at once
// (and recorded with the user's name); the keyboard does everything (see the page's list).

import * as api from './api.js';
import { announce, h, replace } from './dom.js';
import { readableTitle } from './format.js';
import { showMetadata } from './metadata.js';
import { confidenceMeter, factsOf, sourceLabel } from './parts.js';
import { currentUser, mountUserField } from './user.js';
import { ImageViewer } from './viewer.js';

const $ = (id) => document.getElementById(id);
const els = {
  position: $('position'),
  taggedCount: $('tagged-count'),
  path: $('dataset-path'),
  detailLink: $('detail-link'),
  status: $('status'),
  layout: $('tagging'),
  facts: $('facts'),
  allMetadata: $('all-metadata'),
  metadata: $('metadata'),
  form: $('add-tag-form'),
  input: $('add-tag-input'),
  completion: $('completion'),
  assigned: $('assigned'),
  suggestions: $('suggestions'),
  rejected: $('rejected'),
  rejectedSection: $('rejected-section'),
  next: $('next-button'),
  random: $('random-button'),
};

const viewer = new ImageViewer($('viewer'), { label: 'Image being tagged' });
const userField = mountUserField($('user-field'), () => refreshTally());

let current = null;      // the dataset shown (GET /datasets/{id})
let position = null;     // its position in path order and the total, when known
let total = null;
let taggedByUser = null; // datasets this user has tagged, as the server last said
let countedHere = false; // whether the current dataset is already in taggedByUser
let busy = false;        // a move (next / random) is under way
let metadataShownFor = null;

// --- Loading -------------------------------------------------------------------------------------

function requireUser() {
  const user = currentUser();
  if (!user) {
    announce(els.status, 'Type your name in “Who are you?” (top right) first: every tag records who gave it.', 'error');
    userField.focus();
  }
  return user;
}

// Moves to the dataset the tagging queue gives (order "path" after the current one, or "random").
async function move(order) {
  if (busy) return;
  busy = true;
  els.next.disabled = true;
  els.random.disabled = true;
  try {
    if (order === 'path' && els.input.value.trim()) {
      // "Save & next" keeps what was typed but not yet added.
      if (!(await addTag(els.input.value))) return;
    }
    announce(els.status, order === 'random' ? 'Finding a random file…' : 'Saved. Loading the next file…');
    const asked = currentUser();
    const answer = await api.taggingNext({
      user: asked,
      // path: the next after this one; random: any but this one.
      after: current ? api.datasetNumber(current.id) : undefined,
      order,
    });
    if (!answer?.dataset) {
      announce(els.status, 'There is nothing to tag: the catalog has no datasets.', 'error');
      return;
    }
    window.history.pushState(null, '', `?id=${encodeURIComponent(api.datasetNumber(answer.dataset.id))}`);
    show(answer.dataset, answer);
    if (currentUser() !== asked) refreshTally();
    announce(els.status, order === 'random' ? 'A random file.' : 'Saved; this is the next file.', 'info');
  } catch (err) {
    announce(els.status, `Could not move on: ${err.message}`, 'error');
  } finally {
    busy = false;
    els.next.disabled = false;
    els.random.disabled = false;
  }
}

async function loadFromUrl() {
  const id = api.datasetNumber(new URLSearchParams(window.location.search).get('id'));
  try {
    if (id) {
      show(await api.dataset(id), null);
    } else {
      const asked = currentUser();
      const answer = await api.taggingNext({ user: asked, order: 'path' });
      if (!answer?.dataset) {
        announce(els.status, 'There is nothing to tag: the catalog has no datasets.', 'error');
        return;
      }
      window.history.replaceState(null, '', `?id=${encodeURIComponent(api.datasetNumber(answer.dataset.id))}`);
      show(answer.dataset, answer);
      if (currentUser() !== asked) refreshTally();
    }
    if (id && currentUser()) refreshTally();
    announce(els.status, '');
  } catch (err) {
    announce(els.status, err.status === 404 ? `There is no dataset ${id}.` : `The tagging queue could not be read: ${err.message}`, 'error');
  }
}

// Asks the queue for this user's tally (the queue is the only place that counts it); the dataset
// it offers is not shown.
async function refreshTally() {
  const user = currentUser();
  taggedByUser = null;
  countedHere = false;
  renderCount();
  if (!user) return;
  try {
    const answer = await api.taggingNext({ user, after: current ? api.datasetNumber(current.id) : undefined, order: 'path' });
    if (currentUser() !== user) return;
    taggedByUser = answer.tagged_by_user ?? null;
    countedHere = (current?.tags || []).some((t) => t.validated_by === user);
  } catch {
    // The tally is a courtesy: tagging works without it.
  }
  renderCount();
}

// Shows dataset `d`; `queue` is the tagging/next answer when it came from the queue.
function show(d, queue) {
  const changed = !current || current.id !== d.id;
  current = d;
  if (queue) {
    position = queue.position ?? null;
    total = queue.total ?? null;
    taggedByUser = queue.tagged_by_user ?? taggedByUser;
  } else if (changed) {
    position = null;
  }
  if (changed) {
    countedHere = (d.tags || []).some((t) => t.validated_by && t.validated_by === currentUser());
    els.input.value = '';
    closeCompletion();
    const { name } = readableTitle(d.name, d.path);
    document.title = `Tagging ${name} · scisearch`;
    els.path.textContent = d.path || '';
    els.detailLink.href = `dataset.html?id=${encodeURIComponent(api.datasetNumber(d.id))}`;
    const signal = d.signals?.[0];
    viewer.show(api.thumbnailUrl(signal?.thumbnail), `Image of ${name}`);
    replace(els.facts, factsOf(d).map(([label, value]) => [h('dt', {}, label), h('dd', {}, String(value))]));
    metadataShownFor = null;
    if (els.allMetadata.open) loadMetadata();
  }
  renderCount();
  renderTags();
  els.layout.hidden = false;
}

function renderCount() {
  let where = '…';
  if (position && total) where = `${position.toLocaleString('en')} of ${total.toLocaleString('en')}`;
  else if (current) where = `dataset ${api.datasetNumber(current.id)}`;
  els.position.textContent = where;
  const user = currentUser();
  if (!user) {
    els.taggedCount.textContent = 'Tell us who you are (top right) to tag and to count your work.';
  } else if (taggedByUser !== null) {
    replace(els.taggedCount, `${user}, you have tagged `, h('strong', { id: 'tagged-number' }, String(taggedByUser)),
      ` ${taggedByUser === 1 ? 'dataset' : 'datasets'}.`);
  } else {
    els.taggedCount.textContent = `Tagging as ${user}.`;
  }
}

function loadMetadata() {
  if (!current || metadataShownFor === current.id) return;
  metadataShownFor = current.id;
  showMetadata(els.metadata, current.id, current.signals?.[0]?.index ?? 0, { idPrefix: 'tag-meta' });
}

// --- Tags ----------------------------------------------------------------------------------------

const suggestedTags = () => (current?.tags || [])
  .filter((t) => t.state === 'suggested')
  .sort((a, b) => (Number(b.confidence) || 0) - (Number(a.confidence) || 0));

function renderTags() {
  const tags = current?.tags || [];
  const assigned = tags.filter((t) => t.state === 'accepted');
  const rejected = tags.filter((t) => t.state === 'rejected');
  const suggestions = suggestedTags();

  replace(els.assigned, assigned.length ? assigned.map((tag) => h('li', { dataset: { tagId: tag.id } },
    h('span', { class: 'tag-value' }, String(tag.value)),
    h('span', { class: 'muted grow' }, sourceLabel(tag.source)),
    h('button', {
      type: 'button',
      class: 'button small reject',
      'aria-label': `Remove tag ${tag.value}`,
      onclick: () => act(() => api.removeTag(tag.id, currentUser()), `Removed “${tag.value}”.`, els.assigned),
    }, 'Remove'))) : h('li', { class: 'empty-note' }, 'None yet. Accept a suggestion or add a tag.'));

  replace(els.suggestions, suggestions.length ? suggestions.map((tag, i) => h('li', { dataset: { tagId: tag.id } },
    h('span', { class: 'shortcut-number', 'aria-hidden': 'true' }, i < 9 ? String(i + 1) : ''),
    h('span', { class: 'tag-value' }, String(tag.value)),
    h('span', { class: 'grow' }, confidenceMeter(tag.confidence)),
    h('button', {
      type: 'button',
      class: 'button small accept',
      'aria-label': `Accept ${tag.value}`,
      'aria-keyshortcuts': i < 9 ? String(i + 1) : null,
      onclick: () => accept(tag),
    }, '✓ Accept'),
    h('button', {
      type: 'button',
      class: 'button small reject',
      'aria-label': `Reject ${tag.value}`,
      'aria-keyshortcuts': i < 9 ? `Shift+${i + 1}` : null,
      onclick: () => reject(tag),
    }, '✗ Reject'),
    h('p', { class: 'evidence' }, `From the ${sourceLabel(tag.source)}`, tag.evidence ? `: ${tag.evidence}` : '')))
    : h('li', { class: 'empty-note' }, 'No suggestions from the machine.'));

  els.rejectedSection.hidden = rejected.length === 0;
  replace(els.rejected, rejected.map((tag) => h('li', { dataset: { tagId: tag.id } },
    h('span', { class: 'tag-value' }, String(tag.value)),
    h('span', { class: 'muted grow' }, sourceLabel(tag.source), tag.validated_by ? ` · rejected by ${tag.validated_by}` : ''),
    h('button', {
      type: 'button',
      class: 'button small accept',
      'aria-label': `Accept ${tag.value} after all`,
      onclick: () => accept(tag),
    }, 'Accept after all'))));
}

const accept = (tag) => act(() => api.acceptTag(tag.id, currentUser()), `Accepted “${tag.value}”.`, els.suggestions);
const reject = (tag) => act(() => api.rejectTag(tag.id, currentUser()), `Rejected “${tag.value}”.`, els.suggestions);

// Runs one write, then shows the dataset as the server now has it. `list` keeps the focus when
// the clicked button disappears.
async function act(write, done, list) {
  if (!current || !requireUser()) return false;
  const hadFocus = list.contains(document.activeElement);
  try {
    await write();
  } catch (err) {
    announce(els.status, `Not saved: ${err.message}`, 'error');
    return false;
  }
  if (!countedHere && taggedByUser !== null) {
    taggedByUser += 1;
    countedHere = true;
  }
  try {
    show(await api.dataset(current.id), null);
  } catch (err) {
    announce(els.status, `Saved, but the dataset could not be re-read: ${err.message}`, 'error');
    return true;
  }
  announce(els.status, `${done} Saved.`, 'ok');
  if (hadFocus && !list.contains(document.activeElement)) {
    (list.querySelector('button') || list).focus();
  }
  return true;
}

async function addTag(raw) {
  const value = raw.trim().replace(/\s+/g, ' ');
  if (!value) return false;
  const ok = await act(() => api.addTag(current.id, currentUser(), value), `Added “${value}”.`, els.assigned);
  if (ok) {
    els.input.value = '';
    closeCompletion();
  }
  return ok;
}

// --- The Add tag box with completion (ARIA combobox) ---------------------------------------------

let completionController = null;
let completionTimer = null;
let activeOption = -1;

function closeCompletion() {
  completionController?.abort();
  els.completion.hidden = true;
  els.completion.replaceChildren();
  els.input.setAttribute('aria-expanded', 'false');
  els.input.removeAttribute('aria-activedescendant');
  activeOption = -1;
}

function options() {
  return [...els.completion.querySelectorAll('[role="option"]')];
}

function setActive(index) {
  const all = options();
  if (all.length === 0) return;
  activeOption = (index + all.length) % all.length;
  all.forEach((option, i) => option.setAttribute('aria-selected', i === activeOption ? 'true' : 'false'));
  els.input.setAttribute('aria-activedescendant', all[activeOption].id);
  all[activeOption].scrollIntoView({ block: 'nearest' });
}

async function complete() {
  const prefix = els.input.value.trim();
  completionController?.abort();
  if (!prefix) {
    closeCompletion();
    return;
  }
  const controller = new AbortController();
  completionController = controller;
  let suggestions;
  try {
    suggestions = (await api.vocabulary(prefix, 8, controller.signal)).suggestions || [];
  } catch {
    return;  // completion is a help: the box still works without it
  }
  if (completionController !== controller || els.input.value.trim() !== prefix) return;
  if (suggestions.length === 0) {
    closeCompletion();
    return;
  }
  activeOption = -1;
  els.input.removeAttribute('aria-activedescendant');
  replace(els.completion, suggestions.map((s, i) => h('li', {
    role: 'option',
    id: `completion-${i}`,
    'aria-selected': 'false',
    dataset: { label: s.label },
    onmousedown: (event) => event.preventDefault(),  // keep the focus in the box
    onclick: () => addTag(String(s.label)),
  }, h('span', {}, String(s.label)), s.kind ? h('span', { class: 'muted' }, String(s.kind)) : null)));
  els.completion.hidden = false;
  els.input.setAttribute('aria-expanded', 'true');
}

els.input.addEventListener('input', () => {
  clearTimeout(completionTimer);
  completionTimer = setTimeout(complete, 120);
});
els.input.addEventListener('keydown', (event) => {
  const open = !els.completion.hidden;
  if (event.key === 'ArrowDown') {
    event.preventDefault();
    if (open) setActive(activeOption + 1);
    else complete();
  } else if (event.key === 'ArrowUp' && open) {
    event.preventDefault();
    setActive(activeOption - 1);
  } else if (event.key === 'Escape') {
    event.preventDefault();
    if (open) closeCompletion();
    else els.input.blur();
  } else if (event.key === 'Tab' && open && activeOption >= 0) {
    event.preventDefault();
    els.input.value = options()[activeOption].dataset.label;
    closeCompletion();
  } else if (event.key === 'Enter' && open && activeOption >= 0) {
    event.preventDefault();
    addTag(options()[activeOption].dataset.label);
  }
});
els.input.addEventListener('blur', () => setTimeout(() => {
  if (document.activeElement !== els.input) closeCompletion();
}, 150));
els.form.addEventListener('submit', (event) => {
  event.preventDefault();
  addTag(els.input.value);
});

// --- Buttons and keyboard ------------------------------------------------------------------------

els.next.addEventListener('click', () => move('path'));
els.random.addEventListener('click', () => move('random'));
els.allMetadata.addEventListener('toggle', () => {
  if (els.allMetadata.open) loadMetadata();
});

function isTyping(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
}

document.addEventListener('keydown', (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
  const digit = /^Digit([1-9])$/.exec(event.code);
  if (digit) {
    const tag = suggestedTags()[Number(digit[1]) - 1];
    if (tag) {
      event.preventDefault();
      if (event.shiftKey) reject(tag);
      else accept(tag);
    }
    return;
  }
  const key = event.key.toLowerCase();
  const actions = {
    '/': () => els.input.focus(),
    a: () => els.input.focus(),
    n: () => move('path'),
    r: () => move('random'),
    i: () => viewer.stage.focus(),
    m: () => {
      els.allMetadata.open = !els.allMetadata.open;
    },
  };
  if (actions[key] && !event.shiftKey) {
    event.preventDefault();
    actions[key]();
  }
});

window.addEventListener('popstate', () => loadFromUrl());
loadFromUrl();
