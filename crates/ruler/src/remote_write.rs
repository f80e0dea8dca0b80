//! Recording rules' samples (and `ALERTS`, `ALERTS_FOR_STATE`) to
//! Prometheus' remote-write endpoint (remote-write 1.0: a protobuf
//! `WriteRequest`, snappy block compression), through a bounded queue on
//! disk so an outage of the receiver loses nothing the queue can hold.
//!
//! Every evaluation's samples become one queue file; one sender posts the
//! files oldest first, deletes each once the receiver took it (2xx) or
//! refused it for good (4xx other than 429: retrying cannot help), and
//! retries everything else with a capped exponential backoff. When the
//! queue would grow past its byte bound, the oldest files are dropped and
//! counted.
//!
//! # Queue file format (version 1)
//!
//! `<queue_dir>/<sequence, 20 digits>.rw`, written to a temporary name,
//! fsynced and renamed, so a file that exists is whole:
//!
//! ```text
//! offset size
//!      0    4  magic "SKRW"
//!      4    1  version (1)
//!      5    3  zero
//!      8    4  samples in the request, u32 little-endian
//!     12    4  length of the payload, u32 little-endian
//!     16    4  CRC-32C of the payload, u32 little-endian
//!     20    n  payload: the snappy-compressed WriteRequest, as sent
//! ```
//!
//! A file with another magic, a newer version or a bad checksum is moved
//! aside (`.corrupt`) and counted, never sent.

use crate::client::HttpTarget;
use parking_lot::Mutex;
use prost::Message;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `prometheus.WriteRequest` (remote-write 1.0), the fields we send.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name; `__name__` included.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<PbLabel>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<PbSample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PbLabel {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PbSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Prometheus' staleness marker: tells the receiver a series ended.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// One series' sample at one time.
pub fn series(labels: &crate::alert::Labels, value: f64, ts_ns: i64) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(k, v)| PbLabel {
                name: k.clone(),
                value: v.clone(),
            })
            .collect(),
        samples: vec![PbSample {
            value,
            timestamp: ts_ns.div_euclid(1_000_000),
        }],
    }
}

const MAGIC: &[u8; 4] = b"SKRW";
const VERSION: u8 = 1;
const HEADER: usize = 20;

#[derive(Default)]
pub struct RemoteWriteMetrics {
    pub samples_sent: AtomicU64,
    pub requests_failed: AtomicU64,
    pub samples_dropped: AtomicU64,
    pub queue_bytes: AtomicU64,
    pub queue_files: AtomicU64,
}

pub struct RemoteWriter {
    dir: PathBuf,
    max_bytes: u64,
    target: HttpTarget,
    next_seq: AtomicU64,
    /// Serialises enqueue's bound check against other enqueues.
    lock: Mutex<()>,
    wake: tokio::sync::Notify,
    pub metrics: RemoteWriteMetrics,
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.rw")
}

fn queued_files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf, u64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".rw")) else {
            continue;
        };
        let Ok(seq) = stem.parse::<u64>() else {
            continue;
        };
        out.push((seq, e.path(), e.metadata()?.len()));
    }
    out.sort();
    Ok(out)
}

fn encode(req: &WriteRequest) -> (Vec<u8>, u32) {
    let samples: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    let payload = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(samples.min(u32::MAX as usize) as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    (out, samples as u32)
}

/// The payload and sample count of a queue file, or why it is unusable.
pub fn decode_file(bytes: &[u8]) -> Result<(&[u8], u32), String> {
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err("not a remote-write queue file".into());
    }
    if bytes[4] != VERSION {
        return Err(format!(
            "queue file version {} (this build reads {VERSION})",
            bytes[4]
        ));
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let samples = u32_at(8);
    let len = u32_at(12) as usize;
    let crc = u32_at(16);
    let payload = &bytes[HEADER..];
    if payload.len() != len || crc32c::crc32c(payload) != crc {
        return Err("queue file checksum mismatch".into());
    }
    Ok((payload, samples))
}

fn samples_in(path: &Path) -> u64 {
    std::fs::read(path)
        .ok()
        .and_then(|b| decode_file(&b).ok().map(|(_, n)| u64::from(n)))
        .unwrap_or(0)
}

impl RemoteWriter {
    pub fn open(
        dir: PathBuf,
        max_bytes: u64,
        target: HttpTarget,
    ) -> std::io::Result<Arc<RemoteWriter>> {
        std::fs::create_dir_all(&dir)?;
        let files = queued_files(&dir)?;
        let next = files.last().map_or(0, |(s, _, _)| s + 1);
        let w = RemoteWriter {
            dir,
            max_bytes,
            target,
            next_seq: AtomicU64::new(next),
            lock: Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            metrics: RemoteWriteMetrics::default(),
        };
        w.update_gauges(&files);
        Ok(Arc::new(w))
    }

    pub fn url(&self) -> &str {
        &self.target.url
    }

    fn update_gauges(&self, files: &[(u64, PathBuf, u64)]) {
        let bytes: u64 = files.iter().map(|f| f.2).sum();
        self.metrics.queue_bytes.store(bytes, Ordering::Relaxed);
        self.metrics
            .queue_files
            .store(files.len() as u64, Ordering::Relaxed);
    }

    /// Queues one request durably (blocking file I/O: call it from the
    /// blocking pool). Past the bound, the oldest files go.
    pub fn enqueue(&self, req: &WriteRequest) -> std::io::Result<()> {
        if req.timeseries.is_empty() {
            return Ok(());
        }
        let (bytes, _) = encode(req);
        let _guard = self.lock.lock();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(file_name(seq));
        crate::storage::write_atomic(&path, &bytes)?;
        let mut files = queued_files(&self.dir)?;
        let mut total: u64 = files.iter().map(|f| f.2).sum();
        while total > self.max_bytes && files.len() > 1 {
            let (_, oldest, len) = files.remove(0);
            let lost = samples_in(&oldest);
            if std::fs::remove_file(&oldest).is_ok() {
                total -= len;
                self.metrics
                    .samples_dropped
                    .fetch_add(lost, Ordering::Relaxed);
                tracing::error!(file = %oldest.display(), samples = lost, "remote-write queue full: oldest samples dropped");
            }
        }
        self.update_gauges(&files);
        drop(_guard);
        self.wake.notify_one();
        Ok(())
    }

    /// Sends queued files forever (spawned once).
    pub async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let dir = self.dir.clone();
            let files = tokio::task::spawn_blocking(move || queued_files(&dir))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let Some((_, path, _)) = files.first().cloned() else {
                self.update_gauges(&files);
                // Woken by enqueue; the timeout re-reads the directory in
                // case a wake-up was missed.
                let _ = tokio::time::timeout(Duration::from_secs(5), self.wake.notified()).await;
                continue;
            };
            let bytes = match tokio::fs::read(&path).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "remote-write queue file unreadable");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let (payload, samples) = match decode_file(&bytes) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "remote-write queue file set aside");
                    let _ = tokio::fs::rename(&path, path.with_extension("corrupt")).await;
                    continue;
                }
            };
            let request = self
                .target
                .request(reqwest::Method::POST, &self.target.url)
                .header("Content-Type", "application/x-protobuf")
                .header("Content-Encoding", "snappy")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .header(
                    "User-Agent",
                    concat!("skald-ruler/", env!("CARGO_PKG_VERSION")),
                )
                .body(payload.to_vec());
            let outcome = match request.send().await {
                Ok(r) if r.status().is_success() => Ok(true),
                Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    tracing::error!(url = %self.target.url, %status, body = %body.trim(), samples, "remote write refused; samples dropped");
                    self.metrics
                        .samples_dropped
                        .fetch_add(u64::from(samples), Ordering::Relaxed);
                    Ok(false)
                }
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(crate::client::error_chain(&e)),
            };
            match outcome {
                Ok(sent) => {
                    if sent {
                        self.metrics
                            .samples_sent
                            .fetch_add(u64::from(samples), Ordering::Relaxed);
                    }
                    let _ = tokio::fs::remove_file(&path).await;
                    backoff = Duration::from_millis(500);
                }
                Err(e) => {
                    self.metrics.requests_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %self.target.url, error = %e, retry_in_ms = backoff.as_millis() as u64, "remote write failed; will retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: usize) -> WriteRequest {
        WriteRequest {
            timeseries: (0..n)
                .map(|i| {
                    series(
                        &crate::alert::Labels::from([
                            ("__name__".to_string(), "m".to_string()),
                            ("i".to_string(), i.to_string()),
                        ]),
                        i as f64,
                        1_700_000_000_123_456_789,
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn queue_files_round_trip_and_detect_damage() {
        let (bytes, samples) = encode(&req(3));
        assert_eq!(samples, 3);
        let (payload, n) = decode_file(&bytes).unwrap();
        assert_eq!(n, 3);
        let raw = snap::raw::Decoder::new().decompress_vec(payload).unwrap();
        let back = WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(back, req(3));
        assert_eq!(back.timeseries[0].samples[0].timestamp, 1_700_000_000_123);
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(decode_file(&bad).unwrap_err().contains("checksum"));
        let mut newer = bytes.clone();
        newer[4] = 2;
        assert!(decode_file(&newer).unwrap_err().contains("version 2"));
        assert!(decode_file(b"nope").is_err());
    }

    #[test]
    fn the_queue_is_bounded_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&req(50)).0.len() as u64;
        let target = HttpTarget::plain("http://127.0.0.1:9/api/v1/write");
        let w = RemoteWriter::open(dir.path().join("q"), one * 3, target).unwrap();
        for _ in 0..5 {
            w.enqueue(&req(50)).unwrap();
        }
        let files = queued_files(&dir.path().join("q")).unwrap();
        let seqs: Vec<u64> = files.iter().map(|f| f.0).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        assert_eq!(w.metrics.samples_dropped.load(Ordering::Relaxed), 100);
        // Reopened, it continues after the newest file.
        drop(w);
        let w = RemoteWriter::open(dir.path().join("q"), one * 3, HttpTarget::plain("http://x"))
            .unwrap();
        w.enqueue(&req(1)).unwrap();
        let last = queued_files(&dir.path().join("q"))
            .unwrap()
            .last()
            .unwrap()
            .0;
        assert_eq!(last, 5);
    }
}
