// Small DOM helpers shared by the views. Text always goes in through
// textContent (never innerHTML), so log lines and label values cannot
// inject markup.

/** Creates an element: h('div', {class: 'x', onclick: f}, child, 'text', ...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Creates an SVG element with attributes. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c !== undefined && c !== null) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Calls f at most once per wait ms, after the last call. */
export function debounce(f, wait) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => f(...args), wait);
  };
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** `2026-12-06 21:28:03.123` in local time. */
export function formatTime(ms, withMillis = true) {
  const d = new Date(ms);
  const s = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return withMillis ? `${s}.${pad(d.getMilliseconds(), 3)}` : s;
}

/** A number in a few significant digits with an SI suffix. */
export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '';
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a === 0 || a >= 1) return String(+v.toPrecision(4));
  return String(+v.toPrecision(3));
}

export function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${+n.toPrecision(3)} ${units[i]}`;
}

/** `{a="x", b="y"}` from a label object, values escaped as LogQL strings. */
export function selectorOf(labels) {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${quote(v)}`);
  return `{${parts.join(', ')}}`;
}

/** A LogQL double-quoted string. */
export function quote(s) {
  return `"${String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** Colours of the log levels (and of series), readable on the dark theme. */
export const LEVEL_COLORS = {
  critical: '#d55fde',
  fatal: '#d55fde',
  error: '#f47067',
  warn: '#f2cc60',
  info: '#57ab5a',
  debug: '#6cb6ff',
  trace: '#96d0ff',
  unknown: '#768390',
};

const LEVEL_ALIASES = {
  crit: 'critical', critical: 'critical', fatal: 'fatal', panic: 'fatal', emerg: 'critical', alert: 'critical',
  err: 'error', error: 'error', eror: 'error', e: 'error',
  warn: 'warn', warning: 'warn', wrn: 'warn', w: 'warn',
  info: 'info', inf: 'info', information: 'info', notice: 'info', i: 'info',
  debug: 'debug', dbg: 'debug', d: 'debug', trace: 'trace', trc: 'trace',
};

/** The canonical level of a label value, or null. */
export function canonicalLevel(v) {
  if (v === undefined || v === null) return null;
  return LEVEL_ALIASES[String(v).toLowerCase()] || null;
}

const PALETTE = ['#6cb6ff', '#f2cc60', '#57ab5a', '#f47067', '#d55fde', '#e0823d', '#39c5cf', '#b083f0', '#c6e6ff', '#8ddb8c'];

export function seriesColor(i) {
  return PALETTE[i % PALETTE.length];
}
