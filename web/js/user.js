// Who is using the page. There is no login yet: the name typed into "Who are you?" is kept in
// localStorage and sent as "user" with every write (the API records who tagged what).

import { h } from './dom.js';

const KEY = 'scisearch.user';
export const USER_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;

export function currentUser() {
  try {
    const name = localStorage.getItem(KEY) || '';
    return USER_PATTERN.test(name) ? name : '';
  } catch {
    return '';
  }
}

function storeUser(name) {
  try {
    if (name) localStorage.setItem(KEY, name);
    else localStorage.removeItem(KEY);
  } catch {
    // Private windows may refuse storage: the name then lasts as long as the page.
  }
}

// Fills `container` with the labelled "Who are you?" field. onChange(name) runs when a valid name is
// saved. Returns {focus()} so a page can ask for the name before a write.
export function mountUserField(container, onChange = () => {}) {
  const input = h('input', {
    id: 'user-name',
    type: 'text',
    name: 'user',
    autocomplete: 'username',
    spellcheck: 'false',
    maxlength: '64',
    placeholder: 'your name',
    pattern: '[A-Za-z0-9._@\\-]{1,64}',
    'aria-describedby': 'user-hint',
  });
  input.value = currentUser();
  const hint = h('span', { id: 'user-hint', class: 'visually-hidden' }, 'Letters, digits, dot, dash, underscore or @; kept in this browser.');
  const save = () => {
    const name = input.value.trim();
    if (name && !USER_PATTERN.test(name)) {
      input.setAttribute('aria-invalid', 'true');
      return;
    }
    input.removeAttribute('aria-invalid');
    storeUser(name);
    onChange(name);
  };
  input.addEventListener('change', save);
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      save();
      input.blur();
    }
  });
  container.replaceChildren(h('label', { for: 'user-name' }, 'Who are you?'), input, hint);
  return {
    focus() {
      input.focus();
      input.setAttribute('aria-invalid', 'true');
    },
  };
}
