//! The ruler's metrics, in Prometheus' text format for `/metrics`:
//! per group (evaluations, failures, missed iterations, last duration,
//! last evaluation time), per receiver (alerts sent, failed requests,
//! dropped alerts, queue length) and for remote write (samples sent,
//! failed requests, dropped samples, queue size).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct GroupMetrics {
    pub evaluations: AtomicU64,
    pub failures: AtomicU64,
    pub missed: AtomicU64,
    /// f64 bits.
    last_duration: AtomicU64,
    /// Nanoseconds.
    last_eval: AtomicU64,
}

impl GroupMetrics {
    pub fn record(&self, ts: i64, duration_secs: f64, failed: bool) {
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.last_duration
            .store(duration_secs.to_bits(), Ordering::Relaxed);
        self.last_eval.store(ts.max(0) as u64, Ordering::Relaxed);
    }
}

/// Escapes a label value for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one metric family: `rows` are (labels, value).
pub fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    rows: &[(Vec<(&str, &str)>, f64)],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in rows {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

pub struct GroupRow<'a> {
    pub tenant: &'a str,
    pub namespace: &'a str,
    pub group: &'a str,
    pub metrics: &'a GroupMetrics,
    pub rules: usize,
}

pub fn render_groups(out: &mut String, rows: &[GroupRow<'_>]) {
    let labels = |r: &GroupRow<'_>| {
        vec![
            ("tenant", r.tenant.to_string()),
            ("namespace", r.namespace.to_string()),
            ("group", r.group.to_string()),
        ]
    };
    let owned: Vec<Vec<(&str, String)>> = rows.iter().map(labels).collect();
    let as_refs = |i: usize| -> Vec<(&str, &str)> {
        owned[i].iter().map(|(k, v)| (*k, v.as_str())).collect()
    };
    type Get = fn(&GroupRow<'_>) -> f64;
    let families: [(&str, &str, &str, Get); 6] = [
        (
            "skald_ruler_group_evaluations_total",
            "counter",
            "Evaluations of the rule group.",
            |r| r.metrics.evaluations.load(Ordering::Relaxed) as f64,
        ),
        (
            "skald_ruler_group_evaluation_failures_total",
            "counter",
            "Evaluations of the rule group in which a rule failed.",
            |r| r.metrics.failures.load(Ordering::Relaxed) as f64,
        ),
        (
            "skald_ruler_group_iterations_missed_total",
            "counter",
            "Evaluations skipped because the previous one ran late or the server was down.",
            |r| r.metrics.missed.load(Ordering::Relaxed) as f64,
        ),
        (
            "skald_ruler_group_last_duration_seconds",
            "gauge",
            "Duration of the last evaluation of the rule group.",
            |r| f64::from_bits(r.metrics.last_duration.load(Ordering::Relaxed)),
        ),
        (
            "skald_ruler_group_last_evaluation_timestamp_seconds",
            "gauge",
            "Time of the last evaluation of the rule group (0: none yet).",
            |r| r.metrics.last_eval.load(Ordering::Relaxed) as f64 / 1e9,
        ),
        (
            "skald_ruler_group_rules",
            "gauge",
            "Rules in the rule group.",
            |r| r.rules as f64,
        ),
    ];
    for (name, kind, help, get) in families {
        let data: Vec<(Vec<(&str, &str)>, f64)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (as_refs(i), get(r)))
            .collect();
        family(out, name, kind, help, &data);
    }
}
