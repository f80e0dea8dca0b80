//! A labelled anomaly dataset and the detector's precision and recall on
//! it: real lines on a synthetic timeline with injected anomalies.
//!
//! Each stream takes its lines from one source (a Loghub system's log in
//! `examples/anomalies.rs`, the repository's labelled corpus in the CI
//! test) and emits them for `days` days at its own rate (lines per
//! minute, drawn between `min_rate` and `max_rate`) with a daily rhythm
//! (±30%) and Poisson noise per 10 s bucket. On the last day, anomalies
//! are injected at random, non-overlapping times, several sizes of each
//! kind:
//! - spikes: the rate ×2, ×3 or ×5 for 5, 15 or 30 minutes;
//! - drops: the rate ×0.2 or ×0.1 for 15, 30 or 60 minutes;
//! - silences: no line for 10, 30 or 60 minutes;
//! - new error bursts: 15, 40 or 120 lines of an error never logged
//!   before, over 2 to 5 minutes, on top of the normal lines.
//!
//! Every line goes through the real path: the pattern index mines it and
//! writes its counts to disk, [`PatternIndex::window_counts`] reads them
//! back and `crate::anomaly::detect` judges the last day. A detection is
//! right when it overlaps an injected anomaly of its stream (up to one
//! window after its end); an injected anomaly is found when a detection
//! overlaps it.

use crate::anomaly::{self, Anomaly, DetectConfig, Range};
use crate::index::{IndexConfig, PatternIndex};
use skald_model::{Entry, LabelSet, Matcher, TenantId, Timestamp};
use std::collections::BTreeMap;
use std::path::Path;

/// The dataset's shape.
#[derive(Debug, Clone)]
pub struct InjectConfig {
    /// Days of timeline; anomalies are injected on the last one.
    pub days: i64,
    pub min_rate: f64,
    pub max_rate: f64,
    /// Anomalies per stream (kinds and sizes taken in turn).
    pub anomalies_per_stream: usize,
    pub window_secs: i64,
    pub seed: u64,
}

impl Default for InjectConfig {
    fn default() -> Self {
        Self {
            days: 4,
            min_rate: 20.0,
            max_rate: 120.0,
            anomalies_per_stream: 4,
            window_secs: 300,
            seed: 15,
        }
    }
}

/// One injected anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    pub stream: String,
    /// `spike`, `drop`, `silence` or `error_burst`.
    pub kind: &'static str,
    /// How big: `x3 15m`, `80 lines 3m`, …
    pub size: String,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
}

/// Precision and recall of one run.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub lines: u64,
    pub injected: Vec<Injected>,
    pub detected: Vec<Anomaly>,
    /// Detections overlapping an injected anomaly.
    pub true_detections: usize,
    /// Injected anomalies found, per kind: (found, injected).
    pub found: BTreeMap<&'static str, (usize, usize)>,
    /// Injected anomalies not found, and detections overlapping nothing.
    pub missed: Vec<Injected>,
    pub false_detections: Vec<Anomaly>,
}

impl Outcome {
    pub fn precision(&self) -> f64 {
        if self.detected.is_empty() {
            return 1.0;
        }
        self.true_detections as f64 / self.detected.len() as f64
    }

    pub fn recall(&self) -> f64 {
        let (found, total) = self
            .found
            .values()
            .fold((0, 0), |(f, t), (a, b)| (f + a, t + b));
        if total == 0 {
            return 1.0;
        }
        found as f64 / total as f64
    }
}

/// SplitMix64: a small deterministic generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A Poisson draw (Knuth's method below 30, a rounded normal above).
    fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean < 30.0 {
            let limit = (-mean).exp();
            let mut k = 0;
            let mut p = self.unit();
            while p > limit {
                k += 1;
                p *= self.unit();
            }
            return k;
        }
        let (u1, u2) = (self.unit().max(1e-12), self.unit());
        let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (mean + normal * mean.sqrt()).round().max(0.0) as u64
    }
}

/// Error lines never logged by any source: one template per burst.
const ERROR_TEMPLATES: [&str; 12] = [
    "ERROR storage.Volume: java.io.IOException: disk sd{n} failed after {m} retries",
    "FATAL payment gateway rejected batch {n}: upstream 10.9.{m}.7:443 connection refused",
    "ERROR replication lag {n}ms exceeded on shard {m}, follower fenced",
    "CRITICAL certificate for node-{n} expired; TLS handshake aborted with peer {m}",
    "ERROR OOMKilled: container worker-{n} exceeded memory limit {m}MiB",
    "ERROR quota service answered HTTP 503 for tenant {n} after {m}ms",
    "FATAL journal checksum mismatch at offset {n} in segment {m}",
    "ERROR lease renewal for lock /locks/{n} timed out after {m}s",
    "ERROR kafka producer: broker {n} not available, {m} records dropped",
    "CRITICAL raid controller reports degraded array md{n}, {m} disks missing",
    "ERROR permission denied writing /var/spool/out/{n}.dat by uid {m}",
    "ERROR schema migration {n} aborted: deadlock detected on table t{m}",
];

enum Kind {
    Spike(f64),
    Drop(f64),
    Silence,
    Burst(u64),
}

/// The kinds and sizes injected in turn: (kind, duration in minutes).
fn plan(i: usize) -> (Kind, i64) {
    let sizes: [(Kind, i64); 12] = [
        (Kind::Spike(3.0), 15),
        (Kind::Silence, 30),
        (Kind::Burst(40), 3),
        (Kind::Drop(0.2), 30),
        (Kind::Spike(5.0), 5),
        (Kind::Silence, 10),
        (Kind::Burst(15), 2),
        (Kind::Drop(0.1), 15),
        (Kind::Spike(2.0), 30),
        (Kind::Silence, 60),
        (Kind::Burst(120), 5),
        (Kind::Drop(0.2), 60),
    ];
    let (kind, minutes) = &sizes[i % sizes.len()];
    let kind = match kind {
        Kind::Spike(f) => Kind::Spike(*f),
        Kind::Drop(f) => Kind::Drop(*f),
        Kind::Silence => Kind::Silence,
        Kind::Burst(n) => Kind::Burst(*n),
    };
    (kind, *minutes)
}

/// Builds the dataset from `sources` (name, lines), one stream each,
/// mines it in `dir` and measures the detector (default configuration).
pub fn run(
    sources: &[(String, Vec<String>)],
    config: &InjectConfig,
    dir: &Path,
) -> std::io::Result<Outcome> {
    const BUCKET: i64 = 10;
    let mut rng = Rng(config.seed);
    // A day boundary, so "the same window of previous days" is aligned.
    let epoch: i64 = 1_700_006_400;
    let eval_start = epoch + (config.days - 1) * 86_400;
    let end = epoch + config.days * 86_400;
    let tenant = TenantId::new("eval").map_err(std::io::Error::other)?;
    let index = PatternIndex::open(dir, IndexConfig::default())?;
    let mut outcome = Outcome::default();
    let mut template = 0usize;
    for (s, (name, lines)) in sources.iter().enumerate() {
        if lines.is_empty() {
            continue;
        }
        let labels_text = format!("{{app=\"{name}\", n=\"{s}\"}}");
        let labels = LabelSet::parse(&labels_text).map_err(std::io::Error::other)?;
        let rate = config.min_rate + rng.unit() * (config.max_rate - config.min_rate);
        let phase = rng.unit() * std::f64::consts::TAU;
        // Injections: one per slot of the last day (an hour kept clear at
        // each end), at a random time within its slot.
        let n = config.anomalies_per_stream.max(1) as i64;
        let slot = (86_400 - 7_200) / n;
        let mut injections = Vec::new();
        for i in 0..n {
            let (kind, minutes) = plan(s * config.anomalies_per_stream + i as usize);
            let room = (slot - minutes * 60 - 3_600).max(1);
            let start =
                eval_start + 3_600 + i * slot + (rng.below(room as usize) as i64 / BUCKET) * BUCKET;
            let stop = start + minutes * 60;
            let (kind_name, size) = match kind {
                Kind::Spike(f) => ("spike", format!("x{f} {minutes}m")),
                Kind::Drop(f) => ("drop", format!("x{f} {minutes}m")),
                Kind::Silence => ("silence", format!("{minutes}m")),
                Kind::Burst(lines) => ("error_burst", format!("{lines} lines {minutes}m")),
            };
            outcome.injected.push(Injected {
                stream: labels_text.clone(),
                kind: kind_name,
                size,
                start,
                end: stop,
            });
            let burst = match kind {
                Kind::Burst(lines) => {
                    let t = ERROR_TEMPLATES[template % ERROR_TEMPLATES.len()];
                    template += 1;
                    Some((t, lines))
                }
                _ => None,
            };
            injections.push((kind, start, stop, burst));
        }
        let mut entries: Vec<Entry> = Vec::new();
        let mut t = epoch;
        while t < end {
            let daily =
                1.0 + 0.3 * ((t - epoch) as f64 / 86_400.0 * std::f64::consts::TAU + phase).sin();
            let mut mean = rate / 6.0 * daily;
            for (kind, start, stop, burst) in &injections {
                if t < *start || t >= *stop {
                    continue;
                }
                match kind {
                    Kind::Spike(f) => mean *= f,
                    Kind::Drop(f) => mean *= f,
                    Kind::Silence => mean = 0.0,
                    Kind::Burst(_) => {}
                }
                if let Some((template, lines)) = burst {
                    let buckets = ((stop - start) / BUCKET).max(1) as f64;
                    for _ in 0..rng.poisson(*lines as f64 / buckets) {
                        let line = template
                            .replace("{n}", &rng.below(10_000).to_string())
                            .replace("{m}", &rng.below(500).to_string());
                        let ts = t * 1_000_000_000 + rng.below(10_000_000_000) as i64;
                        entries.push(Entry::new(Timestamp(ts), line));
                    }
                }
            }
            for _ in 0..rng.poisson(mean) {
                let line = lines[rng.below(lines.len())].clone();
                let ts = t * 1_000_000_000 + rng.below(10_000_000_000) as i64;
                entries.push(Entry::new(Timestamp(ts), line));
            }
            t += BUCKET;
            // Groups of ten minutes, as a stream would be pushed.
            if (t - epoch) % 600 == 0 && !entries.is_empty() {
                outcome.lines += entries.len() as u64;
                index.offer_waiting(
                    tenant.clone(),
                    vec![(labels.clone(), std::mem::take(&mut entries))],
                );
            }
        }
        if !entries.is_empty() {
            outcome.lines += entries.len() as u64;
            index.offer_waiting(tenant.clone(), vec![(labels.clone(), entries)]);
        }
    }
    let detect = DetectConfig::default();
    let range = Range {
        start: eval_start,
        window_secs: config.window_secs,
        windows: 86_400 / config.window_secs,
    };
    let any = [Matcher::new("app", skald_model::MatchOp::Re, ".+").map_err(std::io::Error::other)?];
    let counts = index.window_counts(&tenant, &any, range, &detect)?;
    outcome.detected = anomaly::detect(&counts, range, &detect).anomalies;
    score(&mut outcome, config.window_secs);
    Ok(outcome)
}

fn overlaps(a: &Anomaly, i: &Injected, slack: i64) -> bool {
    a.labels == i.stream && a.start < i.end + slack && i.start < a.end
}

fn score(outcome: &mut Outcome, window: i64) {
    for i in &outcome.injected {
        let found = outcome.detected.iter().any(|a| overlaps(a, i, window));
        let entry = outcome.found.entry(i.kind).or_default();
        entry.1 += 1;
        if found {
            entry.0 += 1;
        } else {
            outcome.missed.push(i.clone());
        }
    }
    for a in &outcome.detected {
        if outcome.injected.iter().any(|i| overlaps(a, i, window)) {
            outcome.true_detections += 1;
        } else {
            outcome.false_detections.push(a.clone());
        }
    }
}
