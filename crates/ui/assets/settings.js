// The tenant (sent as X-Scope-OrgID) and bearer token (Authorization)
// the user typed, kept in localStorage so they survive a reload. Both are
// optional: without them the server's default tenant answers.

import { h } from './dom.js';

const TENANT_KEY = 'skald.tenant';
const TOKEN_KEY = 'skald.token';

export function tenant() {
  return localStorage.getItem(TENANT_KEY) || '';
}

export function token() {
  return localStorage.getItem(TOKEN_KEY) || '';
}

/** Headers every API request carries. */
export function authHeaders() {
  const headers = {};
  if (tenant()) headers['X-Scope-OrgID'] = tenant();
  if (token()) headers.Authorization = `Bearer ${token()}`;
  return headers;
}

function save(newTenant, newToken) {
  const set = (k, v) => (v ? localStorage.setItem(k, v) : localStorage.removeItem(k));
  set(TENANT_KEY, newTenant.trim());
  set(TOKEN_KEY, newToken.trim());
}

/** Opens the tenant and token dialog; onSaved runs after a change. */
export function openSettings(onSaved, reason) {
  const tenantInput = h('input', { id: 'tenant-input', value: tenant(), placeholder: 'default tenant', autocomplete: 'off', spellcheck: 'false' });
  const tokenInput = h('input', { id: 'token-input', type: 'password', value: token(), placeholder: 'none', autocomplete: 'off' });
  const dialog = h('dialog', { class: 'settings' },
    h('form', { method: 'dialog' },
      h('h2', {}, 'Tenant and token'),
      reason ? h('p', { class: 'error-text' }, reason) : null,
      h('label', {}, 'Tenant (X-Scope-OrgID)', tenantInput),
      h('label', {}, 'Bearer token (Authorization)', tokenInput),
      h('p', { class: 'muted' }, 'Kept in this browser only (localStorage) and sent with every request to this server.'),
      h('div', { class: 'row end' },
        h('button', { type: 'button', class: 'ghost', onclick: () => { tenantInput.value = ''; tokenInput.value = ''; } }, 'Clear'),
        h('button', { type: 'button', class: 'ghost', onclick: () => dialog.close('cancel') }, 'Cancel'),
        h('button', { value: 'save', id: 'settings-save', class: 'primary' }, 'Save'))));
  dialog.addEventListener('close', () => {
    if (dialog.returnValue === 'save') {
      save(tenantInput.value, tokenInput.value);
      onSaved();
    }
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  tenantInput.focus();
}
