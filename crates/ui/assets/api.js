// The Loki HTTP API, as the page uses it. Every request carries the tenant
// and token from settings.js; errors come back as ApiError with the
// server's own message (Loki answers errors as plain text), and 401/403
// are announced to the page (app.js shows a banner) as well as thrown.
//
// URLs are relative to the page, so a UI served under a path prefix by a
// reverse proxy talks to the API under the same prefix.

import { authHeaders, tenant as savedTenant, token as savedToken } from './settings.js';

export class ApiError extends Error {
  constructor(status, message, path) {
    super(message);
    this.status = status;
    this.path = path;
  }

  get unauthorized() {
    return this.status === 401 || this.status === 403;
  }

  get notFound() {
    return this.status === 404;
  }
}

const listeners = new Set();

/** Registers f(error) for every 401/403 answer. */
export function onAuthError(f) {
  listeners.add(f);
}

function url(path, params) {
  const u = new URL(path, document.baseURI);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  return u;
}

/** GET path?params, parsed as JSON. */
export async function getJSON(path, params, { signal, headers } = {}) {
  let res;
  try {
    res = await fetch(url(path, params), { headers: { ...authHeaders(), ...headers }, signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `cannot reach the server: ${e.message}`, path);
  }
  if (!res.ok) {
    const text = (await res.text()).trim();
    const err = new ApiError(res.status, text || `${res.status} ${res.statusText}`, path);
    if (err.unauthorized) {
      for (const f of listeners) f(err);
    }
    throw err;
  }
  return res.json();
}

/** Nanoseconds since the epoch, as a decimal string, from milliseconds. */
export function ns(ms) {
  return (BigInt(Math.round(ms)) * 1000000n).toString();
}

export async function labelNames({ start, end, query, signal } = {}) {
  const r = await getJSON('loki/api/v1/labels', { start: start && ns(start), end: end && ns(end), query }, { signal });
  return r.data || [];
}

export async function labelValues(name, { start, end, query, signal } = {}) {
  const r = await getJSON(`loki/api/v1/label/${encodeURIComponent(name)}/values`, { start: start && ns(start), end: end && ns(end), query }, { signal });
  return r.data || [];
}

export async function series(match, { start, end, signal } = {}) {
  const r = await getJSON('loki/api/v1/series', { match, start: ns(start), end: ns(end) }, { signal });
  return r.data || [];
}

export async function volume(query, { start, end, limit, targetLabels, signal } = {}) {
  const r = await getJSON('loki/api/v1/index/volume', {
    query, start: ns(start), end: ns(end), limit, targetLabels: targetLabels && targetLabels.join(','),
  }, { signal });
  return r.data?.result || [];
}

/** Validates a query with the server's parser: null, or the error text. */
export async function checkQuery(query, { signal } = {}) {
  try {
    await getJSON('loki/api/v1/format_query', { query }, { signal });
    return null;
  } catch (e) {
    if (e instanceof ApiError && e.status === 400) return e.message;
    throw e;
  }
}

/** `parse error at line L, col C: ...` -> character offset, or null. */
export function errorOffset(query, message) {
  const m = /line (\d+), col (\d+)/.exec(message || '');
  if (!m) return null;
  const line = Number(m[1]);
  const col = Number(m[2]);
  const lines = query.split('\n');
  if (line < 1 || line > lines.length) return null;
  let offset = 0;
  for (let i = 0; i < line - 1; i++) offset += lines[i].length + 1;
  // Columns count characters; string indexes count UTF-16 units.
  const chars = Array.from(lines[line - 1]).slice(0, col - 1).join('');
  return offset + chars.length;
}

/**
 * query_range, asking for categorised labels (Loki 3's encoding flag).
 * start and end are milliseconds, or nanosecond strings (paging resumes
 * at an entry's exact timestamp).
 */
export function queryRange(query, { start, end, limit, direction, step, signal }) {
  const t = (v) => (typeof v === 'string' ? v : ns(v));
  return getJSON('loki/api/v1/query_range', {
    query, start: t(start), end: t(end), limit, direction, step,
  }, { signal, headers: { 'X-Loki-Response-Encoding-Flags': 'categorize-labels' } });
}

export function queryInstant(query, { time, limit, direction, signal }) {
  return getJSON('loki/api/v1/query', { query, time: ns(time), limit, direction }, {
    signal, headers: { 'X-Loki-Response-Encoding-Flags': 'categorize-labels' },
  });
}

/** base64url without padding, of a string's UTF-8 bytes. */
export function base64url(text) {
  let bin = '';
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The websocket subprotocols of a tail: a browser cannot set headers on a
 * websocket, so the tenant and token travel as `skald.tenant.<b64url>` and
 * `skald.bearer.<b64url>` beside `skald.tail`, which the server answers.
 */
export function tailProtocols() {
  const protocols = ['skald.tail'];
  const { tenant, token } = credentials();
  if (token) protocols.push(`skald.bearer.${base64url(token)}`);
  if (tenant) protocols.push(`skald.tenant.${base64url(tenant)}`);
  return protocols;
}

/**
 * Live tail over the websocket, with the tenant and token as subprotocols.
 * Only a browser without websockets, or a server that refuses the upgrade
 * (a proxy in between), makes it poll query_range every two seconds
 * instead, and the status says so. Calls onEntries(resultStreams) with
 * Loki's stream objects, onStatus(text) on changes; returns stop().
 */
export function tail(query, { onEntries, onStatus, onError }) {
  let stopped = false;
  let ws = null;
  let timer = 0;
  let since = Date.now();
  const poll = async () => {
    if (stopped) return;
    const until = Date.now();
    try {
      const r = await queryRange(query, { start: since, end: until, limit: 1000, direction: 'forward' });
      if (!stopped && r.data?.result?.length) onEntries(r.data.result);
      since = until;
    } catch (e) {
      if (!stopped) onError(e);
    }
    if (!stopped) timer = setTimeout(poll, 2000);
  };
  const startPolling = (why) => {
    onStatus(`live (polling every 2 s: ${why})`);
    poll();
  };
  if (typeof WebSocket === 'undefined') {
    startPolling('this browser has no websockets');
  } else {
    const u = url('loki/api/v1/tail', { query, start: ns(Date.now()), limit: 100 });
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    let opened = false;
    ws = new WebSocket(u, tailProtocols());
    ws.onopen = () => {
      opened = true;
      onStatus('live');
    };
    ws.onmessage = (ev) => {
      try {
        const msg = JSON.parse(ev.data);
        if (msg.streams?.length) onEntries(msg.streams);
        if (msg.dropped_entries?.length) onStatus(`live — ${msg.dropped_entries.length} streams dropped entries (reading too slowly)`);
      } catch (e) {
        onError(e);
      }
    };
    ws.onclose = (ev) => {
      if (stopped) return;
      if (!opened) {
        // A refusal for the credentials is an error like any other request's;
        // only a server (or proxy) without websockets makes it poll.
        probeTail(query).then((err) => {
          if (stopped) return;
          if (err) {
            onError(err);
          } else {
            since = Date.now();
            startPolling('the websocket was refused');
          }
        });
      } else {
        onError(new ApiError(0, `live tail closed by the server${ev.reason ? `: ${ev.reason}` : ''}`, 'loki/api/v1/tail'));
      }
    };
  }
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (ws) ws.close();
  };
}

function credentials() {
  return { tenant: savedTenant(), token: savedToken() };
}

/**
 * Whether a tail's websocket was refused for its credentials, asked over
 * plain HTTP (a browser does not show the status of a refused upgrade):
 * the server checks credentials before the upgrade, so a 401/403 comes
 * back as an ApiError; anything else (the missing upgrade) is null.
 */
async function probeTail(query) {
  try {
    await getJSON('loki/api/v1/tail', { query, limit: 1 });
    return null;
  } catch (e) {
    return e instanceof ApiError && e.unauthorized ? e : null;
  }
}
