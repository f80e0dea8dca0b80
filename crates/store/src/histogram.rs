//! A latency histogram for `/metrics`: fixed bucket bounds in seconds,
//! one atomic counter per bucket, written without a lock from any thread
//! and rendered in Prometheus' text format (`_bucket{le=…}`, `_sum`,
//! `_count`).
//!
//! Here because the store times its WAL fsyncs with it; the server uses
//! the same type for request durations.
//!
//! Not here: labels and registries — a caller with labels (route,
//! status) keeps one histogram per label set and passes the labels to
//! [`Histogram::render`].

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds, seconds: 100 µs to 60 s, roughly ×2.5 apart, so
/// an fsync (sub-millisecond to seconds on a sick disk) and an HTTP
/// request (a millisecond to a minute-long query) both fall in the range.
pub const BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 60.0,
];

/// Observations by bucket (non-cumulative; the last is `+Inf`), their sum
/// in microseconds and their count.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the series of this histogram under `name` with `labels`
    /// (`route="/x",status="200"`, or empty). The caller writes `# HELP`
    /// and `# TYPE` once per metric name.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, bound) in BOUNDS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BOUNDS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_every_observation() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(120));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "route=\"/a\"");
        assert!(out.contains("x_seconds_bucket{route=\"/a\",le=\"0.0001\"} 1\n"));
        assert!(out.contains("x_seconds_bucket{route=\"/a\",le=\"0.005\"} 2\n"));
        assert!(out.contains("x_seconds_bucket{route=\"/a\",le=\"60\"} 2\n"));
        assert!(out.contains("x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_seconds_count{route=\"/a\"} 3\n"));
        assert_eq!(h.count(), 3);
        let mut bare = String::new();
        h.render(&mut bare, "y", "");
        assert!(bare.contains("y_bucket{le=\"+Inf\"} 3\n") && bare.contains("y_count 3\n"));
    }
}
