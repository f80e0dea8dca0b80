// Time ranges as the URL keeps them: `now`, `now-15m`, `now-2d`, or an
// absolute time (RFC 3339, `YYYY-MM-DD HH:MM[:SS]` local, or epoch
// milliseconds). resolve() turns a range into milliseconds at the moment
// a query runs, so a relative range moves with the clock.

import { h, svg, formatTime } from './dom.js';

const UNIT_MS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000, y: 31536000000 };

/** `15m`, `1h30m` -> milliseconds, or null. */
export function parseDuration(text) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/gy;
  let total = 0;
  let matched = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    total += Number(m[1]) * UNIT_MS[m[2]];
    matched = re.lastIndex;
  }
  return matched > 0 && matched === text.length ? total : null;
}

/** One end of a range -> epoch milliseconds, or null when invalid. */
export function parseTime(text, now = Date.now()) {
  const t = String(text || '').trim();
  if (t === 'now') return now;
  const rel = /^now-(.+)$/.exec(t);
  if (rel) {
    const d = parseDuration(rel[1]);
    return d === null ? null : now - d;
  }
  if (/^\d{10,13}$/.test(t)) return t.length === 13 ? Number(t) : Number(t) * 1000;
  if (/^\d{4}-\d\d-\d\d/.test(t)) {
    const ms = Date.parse(t.includes('T') ? t : t.replace(' ', 'T'));
    return Number.isNaN(ms) ? null : ms;
  }
  return null;
}

export const PRESETS = [
  ['now-5m', 'Last 5 minutes'],
  ['now-15m', 'Last 15 minutes'],
  ['now-1h', 'Last 1 hour'],
  ['now-3h', 'Last 3 hours'],
  ['now-6h', 'Last 6 hours'],
  ['now-12h', 'Last 12 hours'],
  ['now-24h', 'Last 24 hours'],
  ['now-2d', 'Last 2 days'],
  ['now-7d', 'Last 7 days'],
  ['now-30d', 'Last 30 days'],
];

/** {from, to} (texts) -> {start, end} in ms, or throws with a reason. */
export function resolve(range, now = Date.now()) {
  const start = parseTime(range.from, now);
  const end = parseTime(range.to, now);
  if (start === null) throw new Error(`invalid start time "${range.from}"`);
  if (end === null) throw new Error(`invalid end time "${range.to}"`);
  if (start >= end) throw new Error('the start of the time range must be before its end');
  return { start, end };
}

export function describe(range) {
  if (range.to === 'now') {
    const preset = PRESETS.find(([from]) => from === range.from);
    if (preset) return preset[1];
    if (range.from.startsWith('now-')) return `Last ${range.from.slice(4)}`;
  }
  const fmt = (t) => {
    const ms = parseTime(t);
    return t.startsWith('now') || ms === null ? t : formatTime(ms, false);
  };
  return `${fmt(range.from)} to ${fmt(range.to)}`;
}

/**
 * The picker in the top bar: a button showing the range, a panel with
 * presets and free from/to fields (relative or absolute), and a refresh
 * button. onChange(range) runs when the user picks or applies a range.
 */
export class TimePicker {
  constructor(root, onChange) {
    this.range = { from: 'now-1h', to: 'now' };
    this.onChange = onChange;
    this.label = h('span', { class: 'range-label' });
    const clock = svg('svg', { width: 14, height: 14, viewBox: '0 0 16 16', class: 'icon-clock', 'aria-hidden': 'true' },
      svg('circle', { cx: 8, cy: 8, r: 6.5 }), svg('path', { d: 'M8 4.5V8l2.5 1.5' }));
    this.button = h('button', { type: 'button', class: 'ghost', id: 'time-button', onclick: () => this.toggle() }, clock, this.label);
    this.refresh = h('button', { type: 'button', class: 'ghost', title: 'Run again', id: 'refresh-button', onclick: () => this.onChange(this.range) }, '↻');
    this.panel = h('div', { class: 'time-panel', hidden: true });
    root.append(h('div', { class: 'timepicker' }, this.button, this.refresh, this.panel));
    document.addEventListener('mousedown', (e) => {
      if (!this.panel.hidden && !root.contains(e.target)) this.panel.hidden = true;
    });
    this.render();
  }

  set(range) {
    this.range = { ...range };
    this.render();
  }

  toggle() {
    this.panel.hidden = !this.panel.hidden;
    if (!this.panel.hidden) this.renderPanel();
  }

  render() {
    this.label.textContent = describe(this.range);
  }

  renderPanel() {
    const from = h('input', { id: 'time-from', value: this.range.from, spellcheck: 'false' });
    const to = h('input', { id: 'time-to', value: this.range.to, spellcheck: 'false' });
    const error = h('div', { class: 'error-text' });
    const apply = (range) => {
      try {
        resolve(range);
      } catch (e) {
        error.textContent = e.message;
        return;
      }
      this.panel.hidden = true;
      this.set(range);
      this.onChange(this.range);
    };
    const absolute = (ms) => formatTime(ms, false);
    this.panel.replaceChildren(
      h('div', { class: 'time-columns' },
        h('form', { class: 'time-absolute', onsubmit: (e) => { e.preventDefault(); apply({ from: from.value.trim(), to: to.value.trim() }); } },
          h('h3', {}, 'Time range'),
          h('label', {}, 'From', from),
          h('label', {}, 'To', to),
          h('p', { class: 'muted' }, 'now, now-15m, now-2d, or 2026-12-06 14:00:00 (local time)'),
          h('div', { class: 'row' },
            h('button', { type: 'submit', class: 'primary', id: 'time-apply' }, 'Apply'),
            h('button', {
              type: 'button', class: 'ghost', title: 'Turn the current range into absolute times',
              onclick: () => {
                try {
                  const r = resolve({ from: from.value, to: to.value });
                  from.value = absolute(r.start);
                  to.value = absolute(r.end);
                } catch (e) {
                  error.textContent = e.message;
                }
              },
            }, 'Make absolute')),
          error),
        h('ul', { class: 'presets' },
          PRESETS.map(([f, label]) => h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => apply({ from: f, to: 'now' }) }, label))))));
  }
}
