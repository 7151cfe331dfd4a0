// Building the page safely. Every string from the catalog (file names, tags, metadata, evidence)
// becomes a text node: nothing here parses HTML, so a file named "<img onerror=...>" shows as text.

// Creates <tag> with attributes and children. attrs: "class", "text" (text content), "on<event>"
// handlers, booleans (true = present, false/null = absent), anything else via setAttribute.
// Children: nodes, strings (text nodes), arrays, and null/false (skipped).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') el.textContent = String(value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// Replaces all children of `el`.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'", '#34': '"' };

function unescapeEntities(text) {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, name) => {
    const lower = name.toLowerCase();
    if (lower in ENTITIES) return ENTITIES[lower];
    if (lower.startsWith('#x')) return safeCodePoint(parseInt(lower.slice(2), 16), whole);
    if (lower.startsWith('#')) return safeCodePoint(parseInt(lower.slice(1), 10), whole);
    return whole;
  });
}

function safeCodePoint(code, fallback) {
  return Number.isInteger(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : fallback;
}

// The API's snippets are HTML-escaped text with <b>…</b> around the matches. Rather than trust
// that to innerHTML, they are rebuilt here: <b> marks become <mark> elements and everything else
// (entities decoded) becomes text, so even a malformed snippet cannot inject markup.
export function snippetNodes(snippet) {
  const nodes = [];
  const parts = String(snippet || '').split(/(<b>|<\/b>)/i);
  let bold = false;
  for (const part of parts) {
    if (/^<b>$/i.test(part)) bold = true;
    else if (/^<\/b>$/i.test(part)) bold = false;
    else if (part) {
      const text = unescapeEntities(part);
      nodes.push(bold ? h('mark', { text }) : document.createTextNode(text));
    }
  }
  return nodes;
}

// Shows a message in the page's live status region (role=status / alert).
export function announce(region, message, kind = 'info') {
  if (!region) return;
  region.dataset.kind = kind;
  region.textContent = message;
}
