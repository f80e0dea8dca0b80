// The log lines: a virtualised list (only the rows in view, plus a few,
// exist in the DOM, absolutely placed over a spacer as tall as the whole
// list), so thousands of lines scroll without freezing the page. A row is
// one line high; an expanded row adds its details (stream labels,
// structured metadata, parsed fields), whose height is measured once
// rendered and folded into the row offsets.

import { h, formatTime, LEVEL_COLORS, canonicalLevel } from './dom.js';

const ROW_HEIGHT = 22;
const OVERSCAN = 12;
/** The most lines a live tail keeps (older ones scroll out). */
export const MAX_LIVE_LINES = 5000;

let nextId = 1;

const LEVEL_LABELS = ['detected_level', 'level', 'lvl', 'severity', 'severity_text', 'loglevel', 'log_level'];

function levelOf(labels, metadata, parsed, line) {
  for (const set of [labels, metadata, parsed]) {
    for (const name of LEVEL_LABELS) {
      const l = canonicalLevel(set[name]);
      if (l) return l;
    }
  }
  // Like Loki's detected_level: a level word near the start of the line.
  const m = /\b(fatal|panic|critical|error|err|warn|warning|info|debug|trace)\b/i.exec(line.slice(0, 200));
  return (m && canonicalLevel(m[1])) || 'unknown';
}

/**
 * Entries from Loki's `streams` result. With the categorize-labels flag a
 * value carries {structuredMetadata, parsed} beside the line; without it,
 * the stream's labels mix all three and are shown as labels.
 */
export function entriesOf(streams) {
  const out = [];
  for (const s of streams) {
    const labels = s.stream || {};
    for (const v of s.values || []) {
      const cat = v[2] || {};
      const metadata = cat.structuredMetadata || {};
      const parsed = cat.parsed || {};
      out.push({
        id: nextId++,
        ns: v[0],
        ms: Number(BigInt(v[0]) / 1000000n),
        nanos: Number(BigInt(v[0]) % 1000000000n),
        line: v[1],
        labels,
        metadata,
        parsed,
        level: levelOf(labels, metadata, parsed, v[1]),
      });
    }
  }
  return out;
}

/** Orders entries by timestamp; newest first unless forward. */
export function sortEntries(entries, forward) {
  const cmp = (a, b) => (a.ns.length - b.ns.length) || (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0);
  entries.sort(forward ? cmp : (a, b) => cmp(b, a));
  return entries;
}

/** Identity of an entry, for de-duplicating pages and tail messages. */
export function entryKey(e) {
  return `${e.ns}\u0000${JSON.stringify(e.labels)}\u0000${e.line}`;
}

function labelText(labels) {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(' ');
}

export class LogView {
  /** onFilter(kind, name, value, negate): kind 'stream' or 'field'. */
  constructor({ onFilter }) {
    this.onFilter = onFilter;
    this.entries = [];
    this.expanded = new Map(); // id -> measured details height (0 until measured)
    this.rows = new Map(); // id -> row element in the DOM
    this.tops = new Float64Array(1);
    this.showLabels = true;
    this.spacer = h('div', { class: 'logs-spacer' });
    this.root = h('div', { class: 'logs', id: 'logs', tabindex: '0' }, this.spacer);
    this.root.addEventListener('scroll', () => this.paintSoon());
    new ResizeObserver(() => this.paintSoon()).observe(this.root);
    this.frame = 0;
  }

  set(entries) {
    this.entries = entries;
    this.expanded.clear();
    this.clearRows();
    this.root.scrollTop = 0;
    this.layout();
    this.paint();
  }

  /** Adds entries before the first (newest-first tail); keeps the view still. */
  prepend(entries) {
    if (!entries.length) return;
    const before = this.tops[this.entries.length];
    this.entries = entries.concat(this.entries);
    this.trim(false);
    this.layout();
    if (this.root.scrollTop > 0) this.root.scrollTop += this.tops[this.entries.length] - before;
    this.paint();
  }

  /** Adds entries after the last (a page of older lines, or a forward tail). */
  append(entries, { follow = false } = {}) {
    if (!entries.length) return;
    const atBottom = this.root.scrollTop + this.root.clientHeight >= this.tops[this.entries.length] - ROW_HEIGHT;
    this.entries = this.entries.concat(entries);
    if (follow) this.trim(true);
    this.layout();
    if (follow && atBottom) this.root.scrollTop = this.tops[this.entries.length];
    this.paint();
  }

  trim(fromStart) {
    const extra = this.entries.length - MAX_LIVE_LINES;
    if (extra <= 0) return;
    const dropped = fromStart ? this.entries.splice(0, extra) : this.entries.splice(MAX_LIVE_LINES);
    for (const e of dropped) this.expanded.delete(e.id);
    this.clearRows();
  }

  setShowLabels(show) {
    this.showLabels = show;
    this.clearRows();
    this.paint();
  }

  clearRows() {
    for (const el of this.rows.values()) el.remove();
    this.rows.clear();
  }

  layout() {
    const n = this.entries.length;
    const tops = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) {
      const e = this.entries[i];
      const extra = this.expanded.has(e.id) ? this.expanded.get(e.id) : 0;
      tops[i + 1] = tops[i] + ROW_HEIGHT + extra;
    }
    this.tops = tops;
    this.spacer.style.height = `${tops[n]}px`;
  }

  /** Index of the row covering offset y. */
  rowAt(y) {
    let lo = 0;
    let hi = this.entries.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.tops[mid] <= y) lo = mid;
      else hi = mid - 1;
    }
    return Math.max(0, lo);
  }

  paintSoon() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paint();
    });
  }

  paint() {
    const n = this.entries.length;
    const top = this.root.scrollTop;
    const bottom = top + Math.max(this.root.clientHeight, 400);
    const first = Math.max(0, this.rowAt(top) - OVERSCAN);
    let last = first;
    while (last < n && this.tops[last] < bottom) last++;
    last = Math.min(n, last + OVERSCAN);
    const keep = new Set();
    let remeasured = false;
    for (let i = first; i < last; i++) {
      const e = this.entries[i];
      keep.add(e.id);
      let el = this.rows.get(e.id);
      if (!el) {
        el = this.row(e);
        this.rows.set(e.id, el);
        this.spacer.append(el);
      }
      el.style.transform = `translateY(${this.tops[i]}px)`;
      if (this.expanded.get(e.id) === 0) {
        const details = el.querySelector('.details');
        this.expanded.set(e.id, details ? details.offsetHeight : 0);
        remeasured = true;
      }
    }
    for (const [id, el] of this.rows) {
      if (!keep.has(id)) {
        el.remove();
        this.rows.delete(id);
      }
    }
    if (remeasured) {
      this.layout();
      for (let i = first; i < last; i++) {
        const el = this.rows.get(this.entries[i].id);
        if (el) el.style.transform = `translateY(${this.tops[i]}px)`;
      }
    }
  }

  toggle(e) {
    if (this.expanded.has(e.id)) this.expanded.delete(e.id);
    else this.expanded.set(e.id, 0);
    const el = this.rows.get(e.id);
    if (el) el.remove();
    this.rows.delete(e.id);
    this.layout();
    this.paint();
  }

  row(e) {
    const open = this.expanded.has(e.id);
    const line = h('div', { class: 'log-line', onclick: (ev) => { if (!window.getSelection().toString() || ev.target.closest('.expand')) this.toggle(e); } },
      h('span', { class: 'expand', 'aria-label': open ? 'collapse' : 'expand' }, open ? '▾' : '▸'),
      h('span', { class: 'lvl', style: { background: LEVEL_COLORS[e.level] || LEVEL_COLORS.unknown }, title: e.level }),
      h('span', { class: 'ts' }, formatTime(e.ms)),
      this.showLabels ? h('span', { class: 'stream', title: labelText(e.labels) }, labelText(e.labels)) : null,
      h('span', { class: `msg level-${e.level}` }, e.line));
    return h('div', { class: `log-row${open ? ' open' : ''}`, dataset: { level: e.level } }, line, open ? this.details(e) : null);
  }

  details(e) {
    const table = (title, kind, fields) => {
      const names = Object.keys(fields);
      if (!names.length) return null;
      return h('div', { class: 'field-group' },
        h('h4', {}, title),
        h('table', { class: 'fields' }, names.sort().map((name) => h('tr', {},
          h('td', { class: 'field-actions' },
            h('button', { type: 'button', class: 'icon', title: 'Filter for this value', onclick: () => this.onFilter(kind, name, fields[name], false) }, '+'),
            h('button', { type: 'button', class: 'icon', title: 'Filter out this value', onclick: () => this.onFilter(kind, name, fields[name], true) }, '−')),
          h('td', { class: 'field-name' }, name),
          h('td', { class: 'field-value' }, fields[name])))));
    };
    return h('div', { class: 'details' },
      h('div', { class: 'detail-head' },
        h('span', {}, `${new Date(e.ms).toISOString().slice(0, 19)}.${String(e.nanos).padStart(9, '0')}Z`),
        h('span', { class: 'muted' }, `${e.ns} ns · level ${e.level}`),
        h('button', { type: 'button', class: 'link', onclick: () => navigator.clipboard?.writeText(e.line) }, 'Copy line')),
      h('pre', { class: 'detail-line' }, e.line),
      table('Stream labels', 'stream', e.labels),
      table('Structured metadata', 'field', e.metadata),
      table('Parsed fields', 'field', e.parsed));
  }
}
