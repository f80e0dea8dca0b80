'use strict'
// pino + pino-loki (unmodified, from npm) against Skald.
//
// pino-loki runs as a pino transport (a worker thread, as applications use
// it) with batching on: JSON pushes of [ns, line, {structured metadata}]
// values, the `meta` object of a log call becoming structured metadata and
// the pino level becoming the `level` label (10/20 debug, 30 info,
// 40 warning, 50 error, 60 critical). Many lines share a millisecond, so
// they share timestamps and differ only by line.
//
// Then it reads everything back through query_range and checks each line
// arrived exactly once with its level label, and that the structured
// metadata can be filtered on with LogQL. Writes
// $SKALD_MANIFEST_DIR/pino_loki.json for the after-restart check.

const crypto = require('crypto')
const fs = require('fs')
const path = require('path')
const pino = require('pino')

const SKALD_URL = (process.env.SKALD_URL || '').replace(/\/$/, '')
const RUN = crypto.randomBytes(6).toString('hex')
const PER_LEVEL = 20
const LEVELS = { trace: 'debug', debug: 'debug', info: 'info', warn: 'warning', error: 'error', fatal: 'critical' }

class CheckFailed extends Error {}
function fail (msg) { throw new CheckFailed(msg) }

async function queryRange (query, startNs, endNs) {
  const params = new URLSearchParams({
    query, start: startNs.toString(), end: endNs.toString(), limit: '5000', direction: 'forward'
  })
  const res = await fetch(`${SKALD_URL}/loki/api/v1/query_range?${params}`)
  const body = await res.text()
  if (res.status !== 200) fail(`query_range ${query}: HTTP ${res.status}: ${body.slice(0, 2000)}`)
  const doc = JSON.parse(body)
  if (doc.data.resultType !== 'streams') fail(`query_range ${query}: resultType ${doc.data.resultType}`)
  const out = []
  for (const s of doc.data.result) {
    for (const v of s.values) out.push({ labels: s.stream, ts: v[0], line: v[1] })
  }
  return out
}

async function main () {
  if (!SKALD_URL) fail('SKALD_URL is not set')
  const startNs = (BigInt(Date.now()) - 1000n) * 1000000n

  const transport = pino.transport({
    target: 'pino-loki',
    options: {
      host: SKALD_URL,
      batching: { interval: 1 },
      labels: { app: 'pino-loki', run: RUN }
    }
  })
  const logger = pino({ level: 'trace' }, transport)
  const sent = []
  for (let i = 0; i < PER_LEVEL; i++) {
    for (const level of Object.keys(LEVELS)) {
      const msg = `${level} line ${i}`
      logger[level]({ meta: { request_id: `req-${i}` }, i }, msg)
      sent.push({ level: LEVELS[level], msg })
    }
  }
  // Ending the transport flushes the batch that is still buffered.
  await new Promise((resolve, reject) => {
    transport.on('close', resolve)
    transport.on('error', reject)
    logger.flush()
    transport.end()
  })
  const endNs = (BigInt(Date.now()) + 1000n) * 1000000n

  const query = `{app="pino-loki", run="${RUN}"}`
  const got = await queryRange(query, startNs, endNs)
  const want = new Map()
  for (const s of sent) {
    const k = `${s.level}\u0000${s.msg}`
    want.set(k, (want.get(k) || 0) + 1)
  }
  const have = new Map()
  for (const e of got) {
    const doc = JSON.parse(e.line)
    const k = `${e.labels.level}\u0000${doc.msg}`
    have.set(k, (have.get(k) || 0) + 1)
  }
  const missing = [...want.keys()].filter(k => !have.has(k))
  const wrong = [...have.entries()].filter(([k, n]) => want.get(k) !== n)
  if (missing.length || wrong.length) {
    fail(`${sent.length} lines sent, ${got.length} read back; missing ${JSON.stringify(missing.slice(0, 5))}; ` +
      `unexpected or repeated ${JSON.stringify(wrong.slice(0, 5))}`)
  }

  // Structured metadata: filterable, and not a stream label.
  const one = await queryRange(`${query} | request_id="req-7"`, startNs, endNs)
  if (one.length !== Object.keys(LEVELS).length) {
    fail(`| request_id="req-7" found ${one.length} lines, expected ${Object.keys(LEVELS).length}`)
  }
  if (got.some(e => 'request_id' in e.labels)) fail('structured metadata came back as a stream label')

  if (process.env.SKALD_MANIFEST_DIR) {
    fs.writeFileSync(path.join(process.env.SKALD_MANIFEST_DIR, 'pino_loki.json'), JSON.stringify({
      name: 'pino_loki',
      query,
      start: startNs.toString(),
      end: endNs.toString(),
      expected: got.map(e => ({ labels: e.labels, line: e.line }))
    }))
  }
  console.log(`pino-loki: OK, ${got.length} lines`)
}

main().catch(e => {
  console.error(`pino-loki: FAIL: ${e instanceof CheckFailed ? e.message : e.stack}`)
  process.exit(1)
})
