//! What the shipped scrubbing rules cost at ingest: lines per second
//! through `Scrubber::scrub` with the default rules, for clean lines and
//! for lines that each hold a secret, against no rules at all.
//!
//! `cargo bench -p skald-store --bench scrub`

use skald_model::{Entry, LabelSet, TenantId, Timestamp};
use skald_store::StreamBatch;
use skald_store::scrub::Scrubber;
use std::time::Instant;

fn batch(lines: &[String]) -> Vec<StreamBatch> {
    vec![StreamBatch {
        labels: LabelSet::parse(r#"{app="bench"}"#).unwrap(),
        entries: lines
            .iter()
            .enumerate()
            .map(|(i, l)| Entry::new(Timestamp(i as i64), l.clone()))
            .collect(),
    }]
}

fn measure(name: &str, scrubber: &Scrubber, lines: &[String]) -> f64 {
    let tenant = TenantId::new("bench").unwrap();
    let bytes: usize = lines.iter().map(String::len).sum();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut b = batch(lines);
        let start = Instant::now();
        scrubber.scrub(&tenant, &mut b);
        best = best.min(start.elapsed().as_secs_f64());
        std::hint::black_box(&b);
    }
    let per_line_ns = best * 1e9 / lines.len() as f64;
    println!(
        "{name:<34} {:>10.0} lines/s {:>8.1} MB/s {:>8.0} ns/line",
        lines.len() as f64 / best,
        bytes as f64 / best / 1e6,
        per_line_ns
    );
    per_line_ns
}

fn main() {
    let n = 200_000;
    let clean: Vec<String> = (0..n)
        .map(|i| format!("level=info ts=2024-01-01T00:00:{:02}Z caller=api.go:{i} method=GET path=/api/v1/items/{i} status=200 took=12ms user_agent=\"curl/8.0\"", i % 60))
        .collect();
    let secret_kinds = [
        "login ok password=hunter2",
        "Authorization: Bearer abcdef0123456789",
        "key AKIAIOSFODNN7EXAMPLE",
        "paid with 4111 1111 1111 1111",
        "mail to alice@example.com",
    ];
    let dirty: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "level=info caller=api.go:{i} status=200 {}",
                secret_kinds[i % secret_kinds.len()]
            )
        })
        .collect();
    let none = Scrubber::default();
    let defaults = Scrubber::new(Scrubber::default_rules()).unwrap();
    let base = measure("no rules, clean lines", &none, &clean);
    let clean_cost = measure("default rules, clean lines", &defaults, &clean);
    let dirty_cost = measure("default rules, every line a secret", &defaults, &dirty);
    println!(
        "cost of the default rules: {:.0} ns per clean line, {:.0} ns per line holding a secret",
        clean_cost - base,
        dirty_cost - base
    );
}
