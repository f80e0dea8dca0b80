'use strict'
// winston + winston-loki (unmodified, from npm) against Skald.
//
// The transport talks to Skald through a small recording proxy in this
// process, so the test sees exactly what went over the wire:
//   protobuf  json: false (the library's default) with `snappy` installed:
//             Content-Type application/x-protobuf, body = snappy(logproto.PushRequest).
//             The test asserts the transport chose that path, and decodes every
//             request body it sent to confirm it.
//   json      json: true: Content-Type application/json, values of the form
//             [ns, line, {structured metadata}].
// Batching is on (1 s interval); lines of the same stream are sent in the
// same millisecond, so they share timestamps and differ only by line.
//
// Then it reads everything back through query_range and checks each line
// arrived exactly once, with the labels the transport gave it (`level` plus
// the transport's labels plus per-message `labels`) and its timestamp.
// Writes $SKALD_MANIFEST_DIR/winston_loki.json for the after-restart check.

const http = require('http')
const crypto = require('crypto')
const fs = require('fs')
const path = require('path')
const winston = require('winston')
const LokiTransport = require('winston-loki')
const snappy = require('snappy')
// The transport's own protobuf definitions, used here only to decode what it sent.
const { logproto } = require('winston-loki/src/proto')

const SKALD_URL = (process.env.SKALD_URL || '').replace(/\/$/, '')
const RUN = crypto.randomBytes(6).toString('hex')
const APP = 'winston-loki'
const PROTO_COUNT = 50
const JSON_COUNT = 20
const LEVELS = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']

class CheckFailed extends Error {}
function fail (msg) { throw new CheckFailed(msg) }

// ------------------------------------------------------------ recording proxy

const wire = [] // { path, contentType, contentEncoding, body, status, response }

function startProxy (target) {
  const t = new URL(target)
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const rec = {
        path: req.url,
        contentType: req.headers['content-type'],
        contentEncoding: req.headers['content-encoding'],
        body
      }
      wire.push(rec)
      const headers = { ...req.headers, host: t.host, 'content-length': body.length }
      const up = http.request({ hostname: t.hostname, port: t.port, path: req.url, method: req.method, headers }, upRes => {
        const out = []
        upRes.on('data', c => out.push(c))
        upRes.on('end', () => {
          rec.status = upRes.statusCode
          rec.response = Buffer.concat(out).toString()
          res.writeHead(upRes.statusCode, upRes.headers)
          res.end(Buffer.concat(out))
        })
      })
      up.on('error', err => {
        rec.status = 502
        rec.response = `proxy: ${err.message}`
        res.writeHead(502)
        res.end(rec.response)
      })
      up.end(body)
    })
  })
  return new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve(server)))
}

// ------------------------------------------------------------ helpers

function withTimeout (promise, ms, what) {
  let timer
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((resolve, reject) => { timer = setTimeout(() => reject(new CheckFailed(`${what}: no result within ${ms} ms`)), ms) })
  ])
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function parseSelector (s) {
  // winston-loki writes `{level="info",app="x",...}` without escaping; our values are plain.
  const out = {}
  const re = /([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"/g
  let m
  while ((m = re.exec(s)) !== null) out[m[1]] = m[2]
  return out
}

function labelKey (labels) {
  return JSON.stringify(Object.keys(labels).sort().map(k => [k, labels[k]]))
}

async function getJson (p, params) {
  const url = `${SKALD_URL}${p}?${new URLSearchParams(params)}`
  const resp = await fetch(url)
  const text = await resp.text()
  if (resp.status !== 200) fail(`GET ${url} -> HTTP ${resp.status}: ${text.slice(0, 2000)}`)
  let doc
  try { doc = JSON.parse(text) } catch (e) { fail(`GET ${url} -> not JSON: ${text.slice(0, 2000)}`) }
  if (doc.status !== 'success') fail(`GET ${url} -> status ${doc.status}: ${text.slice(0, 2000)}`)
  return doc
}

// -> [{ labels, ts, line }]
async function queryRange (query, startNs, endNs) {
  const doc = await getJson('/loki/api/v1/query_range', {
    query, start: startNs.toString(), end: endNs.toString(), limit: '5000', direction: 'forward'
  })
  const data = doc.data || {}
  if (data.resultType !== 'streams') fail(`query_range ${query}: resultType ${data.resultType}, expected streams`)
  const out = []
  for (const s of data.result || []) {
    let prev = null
    for (const v of s.values || []) {
      if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'string' || !/^\d+$/.test(v[0])) {
        fail(`query_range ${query}: malformed value ${JSON.stringify(v).slice(0, 300)}`)
      }
      const ts = BigInt(v[0])
      if (prev !== null && ts < prev) fail(`query_range ${query}: forward values out of order in ${JSON.stringify(s.stream)}`)
      prev = ts
      out.push({ labels: s.stream, ts: v[0], line: v[1] })
    }
  }
  return out
}

async function pollUntil (query, startNs, endNs, count, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const got = await queryRange(query, startNs, endNs)
    if (got.length >= count || Date.now() > deadline) return got
    await sleep(250)
  }
}

// Sends `count` lines through a fresh transport; returns { transport, markers, errors }.
async function sendThrough (proxyUrl, variant, json, count) {
  const errors = []
  const transport = new LokiTransport({
    host: proxyUrl,
    json,
    batching: true,
    interval: 1,
    labels: { app: APP, run: RUN, variant },
    gracefulShutdown: false,
    timeout: 10000,
    onConnectionError: err => errors.push(err)
  })
  let logged = 0
  transport.on('logged', () => { logged++ })
  const logger = winston.createLogger({ level: 'silly', transports: [transport] })
  const markers = []
  for (let i = 0; i < count; i++) {
    const marker = crypto.randomBytes(8).toString('hex')
    markers.push(marker)
    const level = LEVELS[i % LEVELS.length]
    const n = String(i).padStart(3, '0')
    if (i % 5 === 1) {
      logger.log(level, `js ${RUN} ${variant} #${n} marker=${marker}`, { labels: { req_kind: i % 2 ? 'odd' : 'even' } })
    } else if (i % 5 === 2) {
      logger.log(level, `js ${RUN} ${variant} #${n} with meta marker=${marker}`, { attempt: i, user: 'ünïcödé "q"' })
    } else if (i === 13) {
      logger.log(level, `js ${RUN} ${variant} #${n} multi\nline\ttab ünïcödé "quoted" {brace} marker=${marker}`)
    } else {
      logger.log(level, `js ${RUN} ${variant} #${n} marker=${marker}`)
    }
  }
  const deadline = Date.now() + 10000
  while (logged < count) {
    if (Date.now() > deadline) fail(`${variant}: transport received ${logged} of ${count} log calls`)
    await sleep(10)
  }
  await withTimeout(transport.flush(), 15000, `${variant}: transport.flush()`)
  await withTimeout(transport.close(), 15000, `${variant}: transport.close()`)
  if (errors.length) {
    fail(`${variant}: the transport reported ${errors.length} failed pushes; first: ${errors[0].stack || errors[0]}`)
  }
  return { transport, markers }
}

// Decodes the requests the transport sent (wire[from..]) -> [{ labels, ts, line, metadata }]
function decodeWire (from, variant, expectProtobuf) {
  const reqs = wire.slice(from)
  if (reqs.length === 0) fail(`${variant}: the transport sent no request`)
  const entries = []
  for (const r of reqs) {
    if (r.path !== '/loki/api/v1/push') fail(`${variant}: request to unexpected path ${r.path}`)
    if (r.status !== 204) {
      fail(`${variant}: POST /loki/api/v1/push (${r.contentType}, ${r.body.length} bytes) -> HTTP ${r.status} ${JSON.stringify(r.response)}; Loki answers 204`)
    }
    if (expectProtobuf) {
      if (r.contentType !== 'application/x-protobuf') fail(`${variant}: Content-Type ${r.contentType}, expected application/x-protobuf`)
      let decoded
      try {
        decoded = logproto.PushRequest.decode(snappy.uncompressSync(r.body))
      } catch (e) {
        fail(`${variant}: request body is not snappy-compressed protobuf: ${e.message}`)
      }
      for (const s of decoded.streams) {
        const labels = parseSelector(s.labels)
        for (const e of s.entries) {
          const ts = BigInt(e.timestamp.seconds.toString()) * 1000000000n + BigInt(e.timestamp.nanos)
          entries.push({ labels, ts: ts.toString(), line: e.line, metadata: {} })
        }
      }
    } else {
      if (r.contentType !== 'application/json') fail(`${variant}: Content-Type ${r.contentType}, expected application/json`)
      const doc = JSON.parse(r.body.toString())
      for (const s of doc.streams) {
        for (const v of s.values) entries.push({ labels: s.stream, ts: v[0], line: v[1], metadata: v[2] || {} })
      }
    }
  }
  return { entries, requests: reqs.length }
}

function checkMarkers (variant, markers, entries) {
  for (const m of markers) {
    const n = entries.filter(e => e.line.includes(`marker=${m}`)).length
    if (n !== 1) fail(`${variant}: marker ${m} is in ${n} entries sent, expected 1`)
  }
  if (entries.length !== markers.length) fail(`${variant}: ${entries.length} entries sent for ${markers.length} log calls`)
}

// Every sent entry returned exactly once at its timestamp; labels = sent labels,
// plus (JSON mode) only labels that came from the entry's own structured metadata.
// A metadata key that is also a stream label comes back as `<key>_extracted`,
// as Loki's label builder names any added label that clashes with a stream label.
function checkReadBack (variant, sent, got) {
  const byLine = new Map()
  for (const g of got) {
    if (!byLine.has(g.line)) byLine.set(g.line, [])
    byLine.get(g.line).push(g)
  }
  const problems = []
  for (const s of sent) {
    const hits = byLine.get(s.line) || []
    byLine.delete(s.line)
    if (hits.length !== 1) { problems.push(`line ${JSON.stringify(s.line)} returned ${hits.length}x, expected once`); continue }
    const h = hits[0]
    if (h.ts !== s.ts) problems.push(`line ${JSON.stringify(s.line)} returned at ${h.ts}, sent at ${s.ts}`)
    for (const [k, v] of Object.entries(s.labels)) {
      if (h.labels[k] !== v) problems.push(`line ${JSON.stringify(s.line)}: label ${k}=${JSON.stringify(h.labels[k])}, sent ${JSON.stringify(v)} (stream ${JSON.stringify(h.labels)})`)
    }
    for (const [k, v] of Object.entries(h.labels)) {
      if (k in s.labels) continue
      const base = k.endsWith('_extracted') ? k.slice(0, -'_extracted'.length) : null
      if (base !== null && base in s.labels && s.metadata[base] === v) continue
      if (s.metadata[k] !== v) problems.push(`line ${JSON.stringify(s.line)}: unexpected label ${k}=${JSON.stringify(v)} (sent stream ${JSON.stringify(s.labels)}, metadata ${JSON.stringify(s.metadata)})`)
    }
  }
  for (const [line, hits] of byLine) problems.push(`unexpected line ${JSON.stringify(line)} (${hits.length}x) in ${JSON.stringify(hits[0].labels)}`)
  if (problems.length) {
    fail(`${variant}: ${got.length} entries returned, ${sent.length} sent; mismatches:\n  ${problems.slice(0, 30).join('\n  ')}${problems.length > 30 ? `\n  (and ${problems.length - 30} more)` : ''}`)
  }
}

async function phase (proxyUrl, variant, json, count, startNs) {
  const from = wire.length
  const { transport, markers } = await sendThrough(proxyUrl, variant, json, count)
  const expectProtobuf = !json
  if (expectProtobuf) {
    // The transport silently falls back to JSON when snappy cannot be loaded.
    if (transport.batcher.options.json !== false || transport.batcher.contentType !== 'application/x-protobuf') {
      fail(`${variant}: transport is not configured for protobuf (json=${transport.batcher.options.json}, contentType=${transport.batcher.contentType}); is the snappy package loadable?`)
    }
  }
  const { entries, requests } = decodeWire(from, variant, expectProtobuf)
  checkMarkers(variant, markers, entries)
  const endNs = BigInt(Date.now() + 60000) * 1000000n
  const query = `{app="${APP}",run="${RUN}",variant="${variant}"}`
  const got = await pollUntil(query, startNs, endNs, entries.length)
  checkReadBack(`${variant}: ${query}`, entries, got)
  const streams = new Set(entries.map(e => labelKey(e.labels))).size
  console.log(`  ${variant}: ${entries.length} lines in ${streams} streams over ${requests} requests (${wire[from].contentType}), read back exactly once`)
  return got
}

async function main () {
  if (!SKALD_URL) fail('SKALD_URL is not set')
  const proxy = await startProxy(SKALD_URL)
  const proxyUrl = `http://127.0.0.1:${proxy.address().port}`
  const startNs = BigInt(Date.now() - 60000) * 1000000n
  console.log(`winston ${require('winston/package.json').version}, winston-loki ${require('winston-loki/package.json').version}, run ${RUN}, server ${SKALD_URL}`)
  try {
    const proto = await phase(proxyUrl, 'protobuf', false, PROTO_COUNT, startNs)
    const js = await phase(proxyUrl, 'json', true, JSON_COUNT, startNs)

    const endNs = BigInt(Date.now() + 60000) * 1000000n
    const query = `{run="${RUN}"}`
    const all = await queryRange(query, startNs, endNs)
    const want = [...proto, ...js].map(e => labelKey(e.labels) + '\u0000' + e.line).sort()
    const have = all.map(e => labelKey(e.labels) + '\u0000' + e.line).sort()
    if (JSON.stringify(want) !== JSON.stringify(have)) {
      fail(`${query}: ${have.length} entries, expected the ${want.length} read back per variant`)
    }
    if (process.env.SKALD_MANIFEST_DIR) {
      fs.writeFileSync(path.join(process.env.SKALD_MANIFEST_DIR, 'winston_loki.json'), JSON.stringify({
        name: 'winston_loki',
        query,
        start: startNs.toString(),
        end: endNs.toString(),
        expected: all.map(e => ({ labels: e.labels, line: e.line }))
      }))
    }
    console.log(`winston-loki: OK, ${all.length} lines`)
  } finally {
    proxy.close()
  }
}

main().then(
  () => process.exit(0),
  err => {
    console.error(err instanceof CheckFailed ? `FAILED: ${err.message}` : `FAILED: ${err.stack || err}`)
    process.exit(1)
  }
)
