// Explore: the LogQL editor, the logs volume histogram, and the result —
// log lines (paged, or live), a metric graph, or an instant table. The
// query, time range and options live in the URL, so a link reproduces the
// view.

import { h, formatBytes, formatNumber, quote, seriesColor, LEVEL_COLORS, canonicalLevel } from './dom.js';
import { ApiError, labelNames, labelValues, queryInstant, queryRange, tail } from './api.js';
import { Editor } from './editor.js';
import { histogram, lineChart } from './chart.js';
import { LogView, entriesOf, entryKey, sortEntries } from './logview.js';
import { isLogQuery } from './logql.js';
import { resolve } from './timerange.js';

const DEFAULT_LIMIT = 1000;
const LIMITS = [100, 500, 1000, 2000, 5000];
/** Bucket sizes of the volume histogram, seconds. */
const VOLUME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const LEVEL_ORDER = ['critical', 'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'unknown'];

/** Explore's part of the URL, with defaults. */
export function stateFromURL(params) {
  const limit = Number(params.get('limit'));
  return {
    query: params.get('query') || '',
    limit: LIMITS.includes(limit) || (limit > 0 && limit <= 5000) ? limit : DEFAULT_LIMIT,
    direction: params.get('direction') === 'forward' ? 'forward' : 'backward',
    type: params.get('type') === 'instant' ? 'instant' : 'range',
  };
}

function stateToParams(s, params) {
  const set = (k, v, dflt) => (v === dflt || v === '' ? params.delete(k) : params.set(k, v));
  set('query', s.query, '');
  set('limit', String(s.limit), String(DEFAULT_LIMIT));
  set('direction', s.direction, 'backward');
  set('type', s.type, 'range');
}

function labelsText(metric) {
  const parts = Object.entries(metric || {}).map(([k, v]) => `${k}=${quote(v)}`);
  return parts.length ? `{${parts.join(', ')}}` : '';
}

function volumeStepSecs(rangeMs) {
  return VOLUME_STEPS.find((s) => rangeMs / (s * 1000) <= 120) || VOLUME_STEPS[VOLUME_STEPS.length - 1];
}

export class Explore {
  /** app: {range(), setRange(range), navigate(), updateURL(push)}. */
  constructor(app) {
    this.app = app;
    this.state = stateFromURL(new URLSearchParams());
    this.controller = null;
    this.stopTail = null;
    this.labelCache = new Map();
    this.editor = new Editor({
      provider: (ctx) => this.complete(ctx),
      onRun: () => this.run({ push: true }),
      onChange: (text) => { this.state.query = text; },
    });
    this.runButton = h('button', { type: 'button', class: 'primary', id: 'run-button', onclick: () => this.run({ push: true }) }, 'Run query');
    this.typeSelect = h('select', { id: 'query-type', title: 'Range: over the time range; instant: at its end', onchange: () => { this.state.type = this.typeSelect.value; this.run({ push: true }); } },
      h('option', { value: 'range' }, 'Range'), h('option', { value: 'instant' }, 'Instant'));
    this.limitSelect = h('select', { id: 'limit', title: 'Most lines per page', onchange: () => { this.state.limit = Number(this.limitSelect.value); this.run({ push: true }); } },
      LIMITS.map((l) => h('option', { value: l }, `${l} lines`)));
    this.directionSelect = h('select', { id: 'direction', onchange: () => { this.state.direction = this.directionSelect.value; this.run({ push: true }); } },
      h('option', { value: 'backward' }, 'Newest first'), h('option', { value: 'forward' }, 'Oldest first'));
    this.labelsToggle = h('input', { type: 'checkbox', id: 'show-labels', checked: true, onchange: () => this.logs.setShowLabels(this.labelsToggle.checked) });
    this.liveButton = h('button', { type: 'button', class: 'ghost', id: 'live-button', onclick: () => (this.stopTail ? this.stopLive() : this.startLive()) }, '● Live');
    this.status = h('span', { class: 'status', id: 'status', role: 'status' });
    this.volume = h('div', { class: 'volume', id: 'volume' });
    this.logs = new LogView({ onFilter: (kind, name, value, negate) => this.addFilter(kind, name, value, negate) });
    this.more = h('button', { type: 'button', class: 'ghost', id: 'load-more', onclick: () => this.loadMore() }, 'Load more');
    this.footer = h('div', { class: 'logs-footer', id: 'logs-footer' });
    this.result = h('div', { class: 'result', id: 'result' });
    this.root = h('section', { class: 'explore' },
      h('div', { class: 'query-row' }, this.editor.root, this.runButton),
      h('div', { class: 'options-row' },
        this.typeSelect, this.limitSelect, this.directionSelect,
        h('label', { class: 'check' }, this.labelsToggle, 'Labels'),
        this.liveButton, this.status),
      this.volume,
      this.result);
  }

  /** Shows the state of a URL and runs it. */
  load(params) {
    this.state = stateFromURL(params);
    this.editor.value = this.state.query;
    this.typeSelect.value = this.state.type;
    this.limitSelect.value = String(this.state.limit);
    if (this.limitSelect.value !== String(this.state.limit)) {
      this.limitSelect.append(h('option', { value: this.state.limit }, `${this.state.limit} lines`));
      this.limitSelect.value = String(this.state.limit);
    }
    this.directionSelect.value = this.state.direction;
    this.run({ push: false });
  }

  writeURL(params) {
    stateToParams(this.state, params);
  }

  leave() {
    this.stopLive();
    if (this.controller) this.controller.abort();
  }

  async complete(ctx) {
    const { start, end } = resolve(this.app.range());
    const key = `${ctx.kind}:${ctx.label || ''}`;
    const cached = this.labelCache.get(key);
    if (cached && Date.now() - cached.at < 30000) return cached.items;
    const items = ctx.kind === 'labelName'
      ? await labelNames({ start, end })
      : await labelValues(ctx.label, { start, end });
    this.labelCache.set(key, { at: Date.now(), items });
    return items;
  }

  setStatus(text, cls = '') {
    this.status.textContent = text;
    this.status.className = `status ${cls}`;
  }

  fail(e) {
    if (e.name === 'AbortError') return;
    if (e instanceof ApiError && e.status === 400) {
      this.editor.showError(e.message);
      this.setStatus('query error', 'error-text');
      this.result.replaceChildren();
      this.volume.replaceChildren();
      return;
    }
    const message = e instanceof ApiError && e.unauthorized
      ? `${e.status === 401 ? 'Not signed in' : 'Not allowed'}: ${e.message}. Set the tenant and token (top right).`
      : e.message;
    this.result.replaceChildren(h('div', { class: 'panel error-panel', id: 'result-error' }, message));
    this.setStatus('failed', 'error-text');
  }

  /** Runs the editor's query; push records a new history entry. */
  async run({ push }) {
    this.stopLive();
    if (this.controller) this.controller.abort();
    this.controller = new AbortController();
    const signal = this.controller.signal;
    this.state.query = this.editor.value.trim();
    this.app.updateURL(push);
    this.editor.clearError();
    this.volume.replaceChildren();
    const query = this.state.query;
    if (!query) {
      this.setStatus('');
      this.showStart();
      return;
    }
    let range;
    try {
      range = resolve(this.app.range());
    } catch (e) {
      this.fail(e);
      return;
    }
    const log = isLogQuery(query);
    this.liveButton.disabled = !log;
    this.directionSelect.disabled = !log;
    this.limitSelect.disabled = !log;
    this.setStatus('running…', 'muted');
    this.runButton.disabled = true;
    const started = performance.now();
    try {
      if (log && this.state.type === 'range') this.runVolume(query, range, signal);
      const r = this.state.type === 'instant'
        ? await queryInstant(query, { time: range.end, limit: this.state.limit, direction: this.state.direction, signal })
        : await queryRange(query, { start: range.start, end: range.end, limit: this.state.limit, direction: this.state.direction, signal });
      const took = ((performance.now() - started) / 1000).toFixed(2);
      this.show(r.data, range, took);
      if (r.warnings?.length) this.setStatus(`${this.status.textContent} · warnings: ${r.warnings.join('; ')}`, 'warn-text');
    } catch (e) {
      this.fail(e);
    } finally {
      this.runButton.disabled = false;
    }
  }

  show(data, range, took) {
    const summary = data.stats?.summary;
    const processed = summary ? ` · ${formatNumber(summary.totalLinesProcessed)} lines, ${formatBytes(summary.totalBytesProcessed)} read` : '';
    switch (data.resultType) {
      case 'streams': {
        const entries = sortEntries(entriesOf(data.result), this.state.direction === 'forward');
        this.range = range;
        this.seen = new Set(entries.map(entryKey));
        this.exhausted = entries.length < this.state.limit;
        this.showLogs(entries);
        this.setStatus(`${entries.length} lines in ${took} s${processed}`);
        break;
      }
      case 'matrix': {
        // Series that are one level each take the level colours.
        const levels = data.result.map((s) => canonicalLevel(s.metric.detected_level || s.metric.level));
        const byLevel = levels.every((l) => l) && new Set(levels).size === levels.length;
        const series = data.result.map((s, i) => ({
          name: labelsText(s.metric) || this.state.query,
          color: byLevel ? LEVEL_COLORS[levels[i]] : seriesColor(i),
          points: s.values.map(([t, v]) => [t * 1000, Number(v)]),
        }));
        const graph = h('div', { class: 'graph', id: 'graph' });
        this.result.replaceChildren(graph);
        if (!series.length) graph.append(h('div', { class: 'empty' }, 'No data in this time range.'));
        else lineChart(graph, { start: range.start, end: range.end, series, onSelect: (s, e) => this.zoom(s, e) });
        this.setStatus(`${series.length} series in ${took} s${processed}`);
        break;
      }
      case 'vector':
      case 'scalar':
        this.showTable(data);
        this.setStatus(`${data.resultType === 'scalar' ? 1 : data.result.length} results in ${took} s${processed}`);
        break;
      default:
        this.fail(new Error(`unexpected result type "${data.resultType}"`));
    }
  }

  showLogs(entries) {
    this.logs.set(entries);
    this.updateFooter();
    this.result.replaceChildren(this.logs.root, this.footer);
    this.logs.paint();
  }

  updateFooter() {
    const n = this.logs.entries.length;
    if (this.stopTail) {
      this.footer.replaceChildren(h('span', { class: 'muted' }, `${n} lines (live, at most 5000 kept)`));
      return;
    }
    if (n === 0) {
      this.footer.replaceChildren(h('span', { class: 'muted', id: 'no-lines' }, 'No lines in this time range. Try a wider range or fewer filters.'));
      return;
    }
    const older = this.state.direction === 'forward' ? 'newer' : 'older';
    this.more.textContent = `Load ${this.state.limit} ${older} lines`;
    this.footer.replaceChildren(
      h('span', { class: 'muted' }, `${n} lines`),
      this.exhausted ? h('span', { class: 'muted' }, ` · no ${older} lines in this range`) : this.more);
  }

  /** The next page: it resumes at the last entry's timestamp (inclusive), skipping entries already shown. */
  async loadMore() {
    const last = this.logs.entries[this.logs.entries.length - 1];
    if (!last || !this.range) return;
    const forward = this.state.direction === 'forward';
    const start = forward ? last.ns : this.range.start;
    const end = forward ? this.range.end : (BigInt(last.ns) + 1n).toString();
    this.more.disabled = true;
    try {
      const r = await queryRange(this.state.query, { start, end, limit: this.state.limit, direction: this.state.direction });
      const page = sortEntries(entriesOf(r.data.result), forward);
      const fresh = page.filter((e) => !this.seen.has(entryKey(e)));
      for (const e of fresh) this.seen.add(entryKey(e));
      this.exhausted = page.length < this.state.limit || fresh.length === 0;
      this.logs.append(fresh);
      this.setStatus(`${this.logs.entries.length} lines`);
    } catch (e) {
      this.fail(e);
    } finally {
      this.more.disabled = false;
      this.updateFooter();
    }
  }

  /** The histogram: lines per bucket, by level (detected_level, else level). */
  async runVolume(query, range, signal) {
    const stepSecs = volumeStepSecs(range.end - range.start);
    const stepMs = stepSecs * 1000;
    const q = `sum by (detected_level, level) (count_over_time(${query} [${stepSecs}s]))`;
    this.volume.replaceChildren(h('div', { class: 'volume-placeholder muted' }, 'Loading volume…'));
    try {
      const r = await queryRange(q, { start: range.start, end: range.end, step: stepSecs, signal });
      const groups = new Map();
      let total = 0;
      for (const s of r.data.result) {
        const raw = s.metric.detected_level || s.metric.level || '';
        const name = canonicalLevel(raw) || (raw ? raw.toLowerCase() : 'unknown');
        if (!groups.has(name)) groups.set(name, { name, color: LEVEL_COLORS[name] || LEVEL_COLORS.unknown, counts: new Map() });
        const counts = groups.get(name).counts;
        for (const [t, v] of s.values) {
          // A point at t counts (t - step, t]: its bar starts a step earlier.
          const bucket = Math.floor((t * 1000 - stepMs) / stepMs) * stepMs;
          counts.set(bucket, (counts.get(bucket) || 0) + Number(v));
          total += Number(v);
        }
      }
      const ordered = [...groups.values()].sort((a, b) => LEVEL_ORDER.indexOf(a.name) - LEVEL_ORDER.indexOf(b.name));
      const chart = h('div', { class: 'volume-chart' });
      const legend = h('div', { class: 'volume-legend' },
        h('span', { class: 'muted' }, `${formatNumber(total)} lines · ${stepSecs}s buckets`),
        ordered.map((g) => h('span', { class: 'legend-item' }, h('i', { style: { background: g.color } }), g.name)));
      this.volume.replaceChildren(legend, chart);
      histogram(chart, { start: range.start, end: range.end, stepMs, groups: ordered, onSelect: (s, e) => this.zoom(s, e) });
    } catch (e) {
      if (e.name === 'AbortError') return;
      // A refused or invalid query is reported once, by the main query.
      if (e instanceof ApiError && [400, 401, 403].includes(e.status)) {
        this.volume.replaceChildren();
        return;
      }
      this.volume.replaceChildren(h('div', { class: 'volume-placeholder muted' }, `Logs volume unavailable: ${e.message}`));
    }
  }

  zoom(start, end) {
    this.app.setRange({ from: String(start), to: String(end) });
  }

  showTable(data) {
    const rows = data.resultType === 'scalar'
      ? [{ metric: {}, value: data.result }]
      : [...data.result].sort((a, b) => Number(b.value[1]) - Number(a.value[1]));
    const names = [...new Set(rows.flatMap((r) => Object.keys(r.metric)))].sort();
    const table = h('table', { class: 'data-table', id: 'instant-table' },
      h('thead', {}, h('tr', {}, names.map((n) => h('th', {}, n)), h('th', { class: 'num' }, 'value'))),
      h('tbody', {}, rows.map((r) => h('tr', {},
        names.map((n) => h('td', {}, r.metric[n] ?? '')),
        h('td', { class: 'num' }, formatNumber(Number(r.value[1])))))));
    this.result.replaceChildren(rows.length ? h('div', { class: 'table-wrap' }, table) : h('div', { class: 'empty' }, 'No data at this time.'));
  }

  /** For a first visit: the labels of the range, each value a one-click query. */
  async showStart() {
    const box = h('div', { class: 'panel start', id: 'start' }, h('h2', {}, 'Start with a stream'),
      h('p', { class: 'muted' }, 'Type a LogQL query above, or pick a label value:'));
    this.result.replaceChildren(box);
    try {
      const { start, end } = resolve(this.app.range());
      const names = (await labelNames({ start, end })).filter((n) => n !== '__name__').slice(0, 12);
      if (!names.length) {
        box.append(h('p', {}, 'No streams in this time range yet. Push some lines to /loki/api/v1/push, or widen the time range.'));
        return;
      }
      for (const name of names) {
        const values = await labelValues(name, { start, end });
        box.append(h('div', { class: 'chip-row' }, h('span', { class: 'chip-label' }, name),
          values.slice(0, 15).map((v) => h('button', {
            type: 'button', class: 'chip',
            onclick: () => { this.editor.value = `{${name}=${quote(v)}}`; this.run({ push: true }); },
          }, v)),
          values.length > 15 ? h('span', { class: 'muted' }, ` +${values.length - 15} more`) : null));
      }
    } catch (e) {
      if (!(e instanceof ApiError && e.unauthorized)) box.append(h('p', { class: 'error-text' }, e.message));
      else box.append(h('p', { class: 'error-text' }, 'The server refused the request: set the tenant and token (top right).'));
    }
  }

  /** A label value from a line's details added to the query as a filter. */
  addFilter(kind, name, value, negate) {
    const q = this.editor.value;
    const op = negate ? '!=' : '=';
    let next;
    if (kind === 'stream') {
      const close = q.indexOf('}');
      next = close < 0 ? q : `${q.slice(0, close).replace(/\s+$/, '')}, ${name}${op}${quote(value)}${q.slice(close)}`;
    } else {
      next = `${q} | ${name}${op}${quote(value)}`;
    }
    this.editor.value = next;
    this.run({ push: true });
  }

  startLive() {
    const query = this.editor.value.trim();
    if (!isLogQuery(query)) {
      this.setStatus('live tail needs a log query (a selector first)', 'error-text');
      return;
    }
    this.stopLive();
    if (this.controller) this.controller.abort();
    this.state.query = query;
    this.app.updateURL(false);
    const forward = this.state.direction === 'forward';
    this.logs.set([]);
    this.result.replaceChildren(this.logs.root, this.footer);
    this.volume.replaceChildren();
    const seen = new Set();
    this.liveButton.classList.add('live');
    this.liveButton.textContent = '■ Stop live';
    this.setStatus('connecting…', 'muted');
    this.stopTail = tail(query, {
      onEntries: (streams) => {
        const fresh = sortEntries(entriesOf(streams), forward).filter((e) => {
          const k = entryKey(e);
          if (seen.has(k)) return false;
          seen.add(k);
          return true;
        });
        if (seen.size > 20000) seen.clear();
        if (forward) this.logs.append(fresh, { follow: true });
        else this.logs.prepend(fresh);
        this.updateFooter();
      },
      onStatus: (text) => this.setStatus(text, 'live-text'),
      onError: (e) => {
        this.stopLive();
        this.fail(e);
      },
    });
    this.updateFooter();
  }

  stopLive() {
    if (!this.stopTail) return;
    this.stopTail();
    this.stopTail = null;
    this.liveButton.classList.remove('live');
    this.liveButton.textContent = '● Live';
    this.setStatus(`stopped · ${this.logs.entries.length} lines`);
    this.exhausted = true;
    this.updateFooter();
  }
}
