// Labels and streams: every label name of the time range, its values on
// demand, and the streams a chosen set of values selects (with their
// volume), each one click away from its logs in Explore.

import { h, formatBytes, quote } from './dom.js';
import { ApiError, labelNames, labelValues, series, volume } from './api.js';
import { resolve } from './timerange.js';

/** A selector from chosen values: one value `=`, several `=~"a|b"`. */
export function selectorFrom(chosen) {
  const parts = [];
  for (const [name, values] of chosen) {
    if (!values.size) continue;
    const list = [...values].sort();
    if (list.length === 1) parts.push(`${name}=${quote(list[0])}`);
    else parts.push(`${name}=~${quote(list.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'))}`);
  }
  return parts.length ? `{${parts.join(', ')}}` : '';
}

export class Labels {
  constructor(app) {
    this.app = app;
    this.chosen = new Map();
    this.names = h('div', { class: 'label-list', id: 'label-list' });
    this.selector = h('code', { class: 'selector', id: 'selector-preview' });
    this.streams = h('div', { class: 'streams', id: 'streams' });
    this.actions = h('div', { class: 'row' },
      h('button', { type: 'button', class: 'primary', id: 'show-logs', onclick: () => this.open(this.currentSelector()) }, 'Show logs'),
      h('button', { type: 'button', class: 'ghost', id: 'show-rate', onclick: () => this.open(`sum by (level) (count_over_time(${this.currentSelector()} [1m]))`) }, 'Lines per minute'),
      h('button', { type: 'button', class: 'ghost', onclick: () => { this.chosen.clear(); this.refreshSelection(); this.renderNames(); } }, 'Clear'));
    this.root = h('section', { class: 'labels-view' },
      h('div', { class: 'labels-left panel' }, h('h2', {}, 'Labels'), this.names),
      h('div', { class: 'labels-right' },
        h('div', { class: 'panel' }, h('h2', {}, 'Selector'), this.selector, this.actions),
        h('div', { class: 'panel' }, h('h2', {}, 'Streams'), this.streams)));
    this.values = new Map();
    this.open = (query) => this.app.navigate('/explore', { query });
  }

  currentSelector() {
    return selectorFrom(this.chosen);
  }

  load() {
    this.values.clear();
    this.refresh();
  }

  writeURL() {}

  leave() {}

  async refresh() {
    this.names.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    try {
      const { start, end } = resolve(this.app.range());
      this.list = await labelNames({ start, end });
      this.renderNames();
      this.refreshSelection();
    } catch (e) {
      this.names.replaceChildren(h('p', { class: 'error-text' }, this.explain(e)));
    }
  }

  explain(e) {
    return e instanceof ApiError && e.unauthorized
      ? `The server refused the request (${e.status}): set the tenant and token (top right).`
      : e.message;
  }

  renderNames() {
    if (!this.list.length) {
      this.names.replaceChildren(h('p', { class: 'muted' }, 'No labels in this time range.'));
      return;
    }
    this.names.replaceChildren(...this.list.map((name) => {
      const open = this.values.has(name);
      const count = open ? ` (${this.values.get(name).length})` : '';
      const chosen = this.chosen.get(name) || new Set();
      return h('div', { class: 'label-item' },
        h('button', { type: 'button', class: `label-name${chosen.size ? ' active' : ''}`, dataset: { label: name }, onclick: () => this.toggleName(name) }, `${open ? '▾' : '▸'} ${name}${count}`),
        open ? h('div', { class: 'chip-row' }, this.values.get(name).map((v) => h('button', {
          type: 'button', class: `chip${chosen.has(v) ? ' active' : ''}`, onclick: () => this.toggleValue(name, v),
        }, v))) : null);
    }));
  }

  async toggleName(name) {
    if (this.values.has(name)) {
      this.values.delete(name);
      this.renderNames();
      return;
    }
    try {
      const { start, end } = resolve(this.app.range());
      this.values.set(name, await labelValues(name, { start, end }));
      this.renderNames();
    } catch (e) {
      this.names.prepend(h('p', { class: 'error-text' }, this.explain(e)));
    }
  }

  toggleValue(name, value) {
    if (!this.chosen.has(name)) this.chosen.set(name, new Set());
    const set = this.chosen.get(name);
    if (set.has(value)) set.delete(value);
    else set.add(value);
    this.renderNames();
    this.refreshSelection();
  }

  async refreshSelection() {
    const sel = this.currentSelector();
    this.selector.textContent = sel || 'Pick label values on the left.';
    for (const b of this.actions.querySelectorAll('button.primary, #show-rate')) b.disabled = !sel;
    if (!sel) {
      this.streams.replaceChildren(h('p', { class: 'muted' }, 'The streams of the selector appear here.'));
      return;
    }
    this.streams.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    try {
      const { start, end } = resolve(this.app.range());
      const found = await series(sel, { start, end });
      // Volume per stream: grouped by every label the streams have.
      const targetLabels = [...new Set(found.flatMap((s) => Object.keys(s)))];
      const sizes = await volume(sel, { start, end, limit: 1000, targetLabels }).catch(() => []);
      if (sel !== this.currentSelector()) return;
      const bytes = new Map(sizes.map((s) => [JSON.stringify(Object.entries(s.metric).sort()), Number(s.value[1])]));
      const rows = found.map((labels) => {
        const s = `{${Object.entries(labels).map(([k, v]) => `${k}=${quote(v)}`).join(', ')}}`;
        const b = bytes.get(JSON.stringify(Object.entries(labels).sort()));
        return h('tr', {},
          h('td', {}, h('code', {}, s)),
          h('td', { class: 'num' }, b === undefined ? '' : formatBytes(b)),
          h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => this.open(s) }, 'Logs')));
      });
      this.streams.replaceChildren(found.length
        ? h('table', { class: 'data-table', id: 'streams-table' }, h('thead', {}, h('tr', {}, h('th', {}, `${found.length} streams`), h('th', { class: 'num' }, 'volume'), h('th', {}, ''))), h('tbody', {}, rows))
        : h('p', { class: 'muted' }, 'No streams match in this time range.'));
    } catch (e) {
      this.streams.replaceChildren(h('p', { class: 'error-text' }, this.explain(e)));
    }
  }
}
