// Patterns (`GET /loki/api/v1/patterns`, Loki's shape) and error groups
// (`GET /skald/api/v1/errors`). Both come from optional analysis on the
// server: when an endpoint answers 404 the view says the server does not
// offer it, rather than showing an empty result.

import { h, svg, formatNumber, formatTime, quote } from './dom.js';
import { ApiError, getJSON, ns } from './api.js';
import { resolve } from './timerange.js';

/** A tiny bar chart of [seconds, count] samples. */
function sparkline(samples, start, end) {
  const w = 160;
  const hgt = 24;
  const max = Math.max(1, ...samples.map(([, v]) => Number(v)));
  const g = svg('svg', { width: w, height: hgt, class: 'sparkline' });
  for (const [t, v] of samples) {
    const x = ((t * 1000 - start) / (end - start)) * w;
    const bh = Math.max(1, (Number(v) / max) * hgt);
    g.append(svg('rect', { x: x.toFixed(1), y: (hgt - bh).toFixed(1), width: 2, height: bh.toFixed(1) }));
  }
  return g;
}

/** Seconds, milliseconds, nanoseconds (number or string) or RFC 3339 -> ms. */
function toMs(v) {
  if (v === undefined || v === null || v === '') return null;
  if (typeof v === 'string' && !/^\d+(\.\d+)?$/.test(v)) {
    const ms = Date.parse(v);
    return Number.isNaN(ms) ? null : ms;
  }
  const n = Number(v);
  if (n > 1e17) return n / 1e6;
  if (n > 1e11) return n;
  return n * 1000;
}

class AnalysisView {
  constructor(app, { title, path, help, placeholder, render, id }) {
    this.app = app;
    this.path = path;
    this.render = render;
    this.input = h('input', { class: 'selector-input', id: `${id}-query`, placeholder, spellcheck: 'false', onkeydown: (e) => { if (e.key === 'Enter') this.run(true); } });
    this.body = h('div', { class: 'analysis-body', id: `${id}-body` });
    this.root = h('section', { class: 'analysis' },
      h('div', { class: 'panel' }, h('h2', {}, title), h('p', { class: 'muted' }, help),
        h('div', { class: 'row' }, this.input, h('button', { type: 'button', class: 'primary', onclick: () => this.run(true) }, 'Run'))),
      this.body);
  }

  load(params) {
    this.input.value = params.get('query') || '';
    this.run(false);
  }

  writeURL(params) {
    if (this.input.value.trim()) params.set('query', this.input.value.trim());
    else params.delete('query');
  }

  leave() {}

  async run(push) {
    this.app.updateURL(push);
    const query = this.input.value.trim();
    this.body.replaceChildren(h('p', { class: 'muted panel' }, 'Loading…'));
    try {
      const range = resolve(this.app.range());
      const r = await getJSON(this.path, { query, start: ns(range.start), end: ns(range.end) });
      this.body.replaceChildren(this.render(r, range, query, this.app));
    } catch (e) {
      let message = e.message;
      if (e instanceof ApiError && e.notFound) message = `Not available on this server: GET /${this.path} answered 404. This view works with a server that offers it.`;
      else if (e instanceof ApiError && e.unauthorized) message = `The server refused the request (${e.status}): set the tenant and token (top right).`;
      this.body.replaceChildren(h('div', { class: `panel ${e.notFound ? 'unavailable' : 'error-panel'}`, id: 'analysis-message' }, message));
    }
  }
}

function renderPatterns(r, range, query, app) {
  const list = Array.isArray(r.data) ? r.data : [];
  if (!list.length) return h('p', { class: 'panel muted' }, 'No patterns detected for this selector and time range.');
  const rows = list
    .map((p) => ({ ...p, total: (p.samples || []).reduce((s, [, v]) => s + Number(v), 0) }))
    .sort((a, b) => b.total - a.total);
  return h('div', { class: 'panel' }, h('table', { class: 'data-table', id: 'patterns-table' },
    h('thead', {}, h('tr', {}, h('th', { class: 'num' }, 'lines'), h('th', {}, 'over time'), p0(rows) ? h('th', {}, 'level') : null, h('th', {}, 'pattern'))),
    h('tbody', {}, rows.map((p) => h('tr', {},
      h('td', { class: 'num' }, formatNumber(p.total)),
      h('td', {}, sparkline(p.samples || [], range.start, range.end)),
      p0(rows) ? h('td', {}, p.level || '') : null,
      h('td', {}, h('button', {
        type: 'button', class: 'link pattern', title: 'Show the lines of this pattern',
        onclick: () => app.navigate('/explore', { query: `${query || '{}'} |> ${quote(p.pattern)}` }),
      }, p.pattern)))))));
}

const p0 = (rows) => rows.some((p) => p.level);

/**
 * Error groups as `GET /skald/api/v1/errors` answers them:
 * `{status, data: [{fingerprint, category, exception, frame, pattern,
 * count, firstSeen, lastSeen (unix s), new, samples: [[s, n]],
 * examples: [line], streams: [{labels: '{app="api"}', count}]}]}`,
 * most lines first.
 */
function renderErrors(r, range, query, app) {
  const groups = Array.isArray(r.data) ? r.data : [];
  if (!groups.length) return h('p', { class: 'panel muted' }, 'No error groups in this time range.');
  return h('div', { class: 'error-groups', id: 'error-groups' }, groups.map((g) => {
    const streams = Array.isArray(g.streams) ? g.streams : [];
    const examples = Array.isArray(g.examples) ? g.examples : [];
    const times = [['first seen', g.firstSeen], ['last seen', g.lastSeen]]
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([name, v]) => `${name}: ${formatTime(toMs(v), false)}`);
    const kind = [g.category, g.exception, g.frame].filter((v) => v).join(' · ');
    // The group's own stream when it has one, else the view's selector.
    const selector = streams.length === 1 ? streams[0].labels : (query || (streams[0] && streams[0].labels));
    return h('div', { class: 'panel error-group', 'data-fingerprint': g.fingerprint || '' },
      h('div', { class: 'row' },
        h('span', { class: 'count' }, formatNumber(Number(g.count ?? 0))),
        g.new ? h('span', { class: 'chip static new-badge', title: 'First seen in this range: none in the days before' }, 'NEW') : null,
        h('strong', { class: 'group-title' }, g.pattern || g.fingerprint || '')),
      kind ? h('div', { class: 'group-kind' }, kind) : null,
      times.length ? h('div', { class: 'muted' }, times.join(' · ')) : null,
      streams.length ? h('div', { class: 'chip-row group-streams' }, streams.map((s) => h('span', { class: 'chip static', title: `${formatNumber(Number(s.count ?? 0))} lines` }, `${s.labels} ${formatNumber(Number(s.count ?? 0))}`))) : null,
      examples.map((e) => h('pre', { class: 'detail-line' }, e)),
      Array.isArray(g.samples) ? sparkline(g.samples, range.start, range.end) : null,
      g.fingerprint ? h('div', { class: 'muted' }, `fingerprint ${g.fingerprint}`) : null,
      selector ? h('button', { type: 'button', class: 'link', onclick: () => app.navigate('/explore', { query: selector }) }, 'Show logs') : null);
  }));
}

export function patternsView(app) {
  return new AnalysisView(app, {
    id: 'patterns',
    title: 'Patterns',
    path: 'loki/api/v1/patterns',
    help: 'The shapes of the lines of a stream selector, with how often each occurs; click one to see its lines.',
    placeholder: '{service_name="api"}',
    render: renderPatterns,
  });
}

export function errorsView(app) {
  return new AnalysisView(app, {
    id: 'errors',
    title: 'Error groups',
    path: 'skald/api/v1/errors',
    help: 'Error lines grouped by what they say, with counts and when they were first and last seen. The selector is optional.',
    placeholder: '{app="api"} (optional)',
    render: renderErrors,
  });
}
