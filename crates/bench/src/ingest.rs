//! Turning the dataset into push requests, and pushing them.
//!
//! Requests are what shippers (Promtail, Grafana Alloy) send: a batch of
//! consecutive lines, grouped per stream, in Loki's `push.proto` encoded
//! with protobuf and compressed with snappy's block format. Every body is
//! encoded before the clock starts, so the ingest figures measure the
//! server, not the generator; on the same pass each stream's lines are
//! compressed with plain zstd, the physical reference for the bytes on disk.

use super::dataset::{Dataset, Format, ID_SEARCH_TEXT};
use anyhow::Context;
use bytes::Bytes;
use rayon::prelude::*;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Loki's `logproto.PushRequest` (push.proto, Apache-2.0), the fields we send.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The labels as selector text: `{job="apache", instance="web-01"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<ProtoTimestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoTimestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// The zstd level of the physical reference (zstd's default).
pub const REFERENCE_ZSTD_LEVEL: i32 = 3;

/// Batches generated in parallel before their lines go to the reference
/// compressors: bounds the raw text held at once.
const BATCHES_PER_ROUND: usize = 64;

/// Per-stream figures of the dataset.
#[derive(Debug, Clone, Default)]
pub struct StreamTotals {
    pub lines: u64,
    pub bytes: u64,
    /// Newest timestamp, Unix nanoseconds.
    pub last_ts: i64,
}

/// The encoded dataset and what we know about it.
pub struct Prepared {
    pub bodies: Vec<Bytes>,
    pub body_bytes: u64,
    pub raw_bytes: u64,
    pub lines_per_format: [u64; 3],
    pub bytes_per_format: [u64; 3],
    pub streams: Vec<StreamTotals>,
    /// Each stream's lines, each followed by `\n`, compressed with zstd at
    /// [`REFERENCE_ZSTD_LEVEL`]; summed over the streams.
    pub zstd_reference_bytes: u64,
    /// Lines containing [`ID_SEARCH_TEXT`].
    pub id_search_matches: u64,
    pub took: Duration,
}

struct EncodedBatch {
    body: Vec<u8>,
    /// Each stream's lines of this batch, each followed by `\n`.
    texts: Vec<(usize, String)>,
    stream_totals: Vec<(usize, i64, u64, u64)>,
    lines_per_format: [u64; 3],
    bytes_per_format: [u64; 3],
    id_search_matches: u64,
}

/// Generates and encodes the whole dataset in batches of `batch_lines`.
pub fn prepare(ds: &Dataset, batch_lines: usize) -> anyhow::Result<Prepared> {
    let started = Instant::now();
    let batch_count = ds.lines.div_ceil(batch_lines as u64) as usize;
    let mut encoders = (0..ds.streams.len())
        .map(|_| zstd::stream::Encoder::new(CountingSink(0), REFERENCE_ZSTD_LEVEL))
        .collect::<Result<Vec<_>, _>>()
        .context("creating zstd encoders")?;
    let mut prepared = Prepared {
        bodies: Vec::with_capacity(batch_count),
        body_bytes: 0,
        raw_bytes: 0,
        lines_per_format: [0; 3],
        bytes_per_format: [0; 3],
        streams: vec![StreamTotals::default(); ds.streams.len()],
        zstd_reference_bytes: 0,
        id_search_matches: 0,
        took: Duration::ZERO,
    };
    for round in (0..batch_count).step_by(BATCHES_PER_ROUND) {
        let last = (round + BATCHES_PER_ROUND).min(batch_count);
        let encoded: Vec<EncodedBatch> = (round..last)
            .into_par_iter()
            .map(|b| {
                let from = b as u64 * batch_lines as u64;
                let to = (from + batch_lines as u64).min(ds.lines);
                encode_batch(ds, from, to)
            })
            .collect();
        let mut per_stream: Vec<Vec<&str>> = vec![Vec::new(); ds.streams.len()];
        for batch in &encoded {
            for (s, text) in &batch.texts {
                per_stream[*s].push(text);
            }
            for &(s, last_ts, lines, bytes) in &batch.stream_totals {
                let totals = &mut prepared.streams[s];
                totals.last_ts = totals.last_ts.max(last_ts);
                totals.lines += lines;
                totals.bytes += bytes;
            }
            prepared.id_search_matches += batch.id_search_matches;
            for f in 0..3 {
                prepared.lines_per_format[f] += batch.lines_per_format[f];
                prepared.bytes_per_format[f] += batch.bytes_per_format[f];
            }
        }
        encoders
            .par_iter_mut()
            .zip(per_stream.par_iter())
            .try_for_each(|(encoder, pieces)| {
                pieces
                    .iter()
                    .try_for_each(|p| encoder.write_all(p.as_bytes()))
            })
            .context("zstd reference compression")?;
        drop(per_stream);
        for batch in encoded {
            prepared.body_bytes += batch.body.len() as u64;
            prepared.bodies.push(Bytes::from(batch.body));
        }
    }
    for encoder in encoders {
        prepared.zstd_reference_bytes += encoder.finish().context("zstd reference compression")?.0;
    }
    prepared.raw_bytes = prepared.bytes_per_format.iter().sum();
    prepared.took = started.elapsed();
    Ok(prepared)
}

/// Lines `from..to` as one push request: grouped per stream, in order of
/// first appearance, entries in time order within each stream.
fn encode_batch(ds: &Dataset, from: u64, to: u64) -> EncodedBatch {
    let mut slot_of_stream = vec![usize::MAX; ds.streams.len()];
    let mut request = PushRequest::default();
    let mut stream_of_slot = Vec::new();
    let mut lines_per_format = [0u64; 3];
    let mut bytes_per_format = [0u64; 3];
    let mut id_search_matches = 0;
    let mut line = String::new();
    for i in from..to {
        let (s, ts) = ds.entry(i, &mut line);
        if slot_of_stream[s] == usize::MAX {
            slot_of_stream[s] = request.streams.len();
            stream_of_slot.push(s);
            request.streams.push(StreamAdapter {
                labels: ds.streams[s].labels.clone(),
                entries: Vec::new(),
            });
        }
        let format: Format = ds.streams[s].format;
        lines_per_format[format.index()] += 1;
        bytes_per_format[format.index()] += line.len() as u64;
        id_search_matches += u64::from(line.contains(ID_SEARCH_TEXT));
        request.streams[slot_of_stream[s]]
            .entries
            .push(EntryAdapter {
                timestamp: Some(ProtoTimestamp {
                    seconds: ts.div_euclid(1_000_000_000),
                    nanos: ts.rem_euclid(1_000_000_000) as i32,
                }),
                line: line.clone(),
            });
    }
    let mut texts = Vec::with_capacity(request.streams.len());
    let mut stream_totals = Vec::with_capacity(request.streams.len());
    for (slot, stream) in request.streams.iter().enumerate() {
        let s = stream_of_slot[slot];
        let bytes: u64 = stream.entries.iter().map(|e| e.line.len() as u64).sum();
        let mut text = String::with_capacity(bytes as usize + stream.entries.len());
        for e in &stream.entries {
            text.push_str(&e.line);
            text.push('\n');
        }
        let last = stream
            .entries
            .last()
            .and_then(|e| e.timestamp.as_ref())
            .expect("a stream has entries");
        let last_ts = last.seconds * 1_000_000_000 + last.nanos as i64;
        texts.push((s, text));
        stream_totals.push((s, last_ts, stream.entries.len() as u64, bytes));
    }
    let proto = prost::Message::encode_to_vec(&request);
    let body = snap::raw::Encoder::new()
        .compress_vec(&proto)
        .expect("snappy compresses any input below 4 GiB");
    EncodedBatch {
        body,
        texts,
        stream_totals,
        lines_per_format,
        bytes_per_format,
        id_search_matches,
    }
}

/// A writer that only counts.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What pushing the dataset took.
#[derive(Debug, Default)]
pub struct PushOutcome {
    pub wall: Duration,
    pub requests: usize,
    pub failures: usize,
    pub first_failure: Option<String>,
    /// Every request's latency, sorted.
    pub latencies: Vec<Duration>,
}

impl PushOutcome {
    /// Any failed request voids the figures: an error naming the first.
    pub fn fail_on_errors(&self, what: &str) -> anyhow::Result<()> {
        if self.failures > 0 {
            anyhow::bail!(
                "{} of {} {what} requests failed; the first: {}",
                self.failures,
                self.requests,
                self.first_failure.as_deref().unwrap_or("?")
            );
        }
        Ok(())
    }
}

/// Stop pushing after this many failed requests: the figures are void.
const MAX_FAILURES: usize = 20;

/// Pushes every body with `clients` concurrent connections, each taking the
/// next body in order; only a 2xx counts as success (Loki's push answers
/// 204, OTLP 200).
pub fn push_all(
    url: &str,
    tenant: Option<&str>,
    bodies: &[Bytes],
    clients: usize,
) -> anyhow::Result<PushOutcome> {
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_failure = Mutex::new(None::<String>);
    let started = Instant::now();
    let per_client: Vec<anyhow::Result<Vec<Duration>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Vec<Duration>> {
                    let client = http_client()?;
                    let mut latencies = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= bodies.len() || stop.load(Ordering::Relaxed) {
                            return Ok(latencies);
                        }
                        let mut request = client
                            .post(url)
                            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                            .body(bodies[i].clone());
                        if let Some(t) = tenant {
                            request = request.header("X-Scope-OrgID", t);
                        }
                        let sent = Instant::now();
                        let failure = match request.send() {
                            Ok(response) if response.status().is_success() => None,
                            Ok(response) => {
                                let status = response.status();
                                Some(format!(
                                    "request {i}: {status}: {}",
                                    response.text().unwrap_or_default()
                                ))
                            }
                            Err(e) => Some(format!("request {i}: {e}")),
                        };
                        latencies.push(sent.elapsed());
                        if let Some(message) = failure {
                            first_failure
                                .lock()
                                .expect("not poisoned")
                                .get_or_insert(message);
                            if failures.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_FAILURES {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("push client panicked"))
            .collect()
    });
    let wall = started.elapsed();
    let mut latencies = Vec::with_capacity(bodies.len());
    for client in per_client {
        latencies.extend(client?);
    }
    latencies.sort();
    Ok(PushOutcome {
        wall,
        requests: latencies.len(),
        failures: failures.into_inner(),
        first_failure: first_failure.into_inner().expect("not poisoned"),
        latencies,
    })
}

pub fn http_client() -> anyhow::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .context("creating an HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_decode_back_to_the_dataset() {
        let end = 1_714_566_896_000_000_000;
        let ds = Dataset::new(3, 2_500, end, 3_600_000_000_000);
        let prepared = prepare(&ds, 1_000).unwrap();
        assert_eq!(prepared.bodies.len(), 3);
        let mut lines = 0;
        let mut raw = 0;
        let mut expected = String::new();
        let mut i = 0;
        for body in &prepared.bodies {
            let proto = snap::raw::Decoder::new().decompress_vec(body).unwrap();
            let request: PushRequest = prost::Message::decode(proto.as_slice()).unwrap();
            // Every line of the batch is there, in its stream, in order.
            let batch_lines: usize = request.streams.iter().map(|s| s.entries.len()).sum();
            for _ in 0..batch_lines {
                let (s, ts) = ds.entry(i, &mut expected);
                let stream = request
                    .streams
                    .iter()
                    .find(|st| st.labels == ds.streams[s].labels)
                    .unwrap();
                assert!(stream.entries.iter().any(|e| {
                    e.line == expected
                        && e.timestamp
                            .as_ref()
                            .map(|t| t.seconds * 1_000_000_000 + t.nanos as i64)
                            == Some(ts)
                }));
                i += 1;
            }
            lines += batch_lines;
            raw += request
                .streams
                .iter()
                .flat_map(|s| &s.entries)
                .map(|e| e.line.len() as u64)
                .sum::<u64>();
        }
        assert_eq!(lines, 2_500);
        assert_eq!(raw, prepared.raw_bytes);
        assert_eq!(prepared.streams.iter().map(|s| s.lines).sum::<u64>(), 2_500);
        assert!(
            prepared.zstd_reference_bytes > 0
                && prepared.zstd_reference_bytes < prepared.raw_bytes / 3
        );
    }
}
