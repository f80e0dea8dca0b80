//! CPU cost per line of each step the pattern index takes at ingest, on
//! the lines of a file, one core: masking, the miner (masking included),
//! level detection, error classification, and the whole index (queued
//! groups mined and counted, as the `skald-patterns` thread does).
//!
//! Usage: `cargo run --release -p skald-analysis --example ingest_cost -- FILE`
//! where each line of FILE is `<stream labels> TAB <log line>` (lines
//! without a tab belong to `{source="file"}`). Thread CPU time is
//! reported, so other processes on the machine matter less than for
//! wall-clock figures.

use skald_analysis::index::{IndexConfig, PatternIndex};
use skald_analysis::mask::{Masked, mask_into};
use skald_analysis::{Miner, errors, level};
use skald_model::{Entry, LabelSet, TenantId, Timestamp};
use std::collections::BTreeMap;

fn main() {
    let path = std::env::args().nth(1).expect("usage: ingest_cost FILE");
    let text = std::fs::read_to_string(&path).expect("readable FILE");
    let mut rows: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for row in text.lines() {
        let (labels, line) = row.split_once('\t').unwrap_or((r#"{source="file"}"#, row));
        rows.entry(labels).or_default().push(line);
    }
    // Each stream's lines side by side in memory, as a pushed batch holds
    // them: the steps below then measure their own work, not cache misses
    // of lines scattered over the file's whole allocation.
    let buffers: Vec<(&str, String)> = rows
        .iter()
        .map(|(labels, lines)| (*labels, lines.concat()))
        .collect();
    let mut streams: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for ((labels, lines), (_, buffer)) in rows.iter().zip(&buffers) {
        let mut at = 0;
        let slices = lines
            .iter()
            .map(|line| {
                at += line.len();
                &buffer[at - line.len()..at]
            })
            .collect();
        streams.insert(labels, slices);
    }
    let lines: Vec<&str> = streams.values().flatten().copied().collect();
    let n = lines.len() as f64;
    println!("{} lines in {} streams", lines.len(), streams.len());
    let per_line = |secs: f64| secs / n * 1e9;

    let mut masked = Masked::default();
    let cpu = thread_cpu_secs();
    for line in &lines {
        mask_into(line, 64, &mut masked);
    }
    println!(
        "mask      {:7.0} ns/line",
        per_line(thread_cpu_secs() - cpu)
    );

    let cpu = thread_cpu_secs();
    for lines in streams.values() {
        let mut miner = Miner::default();
        for line in lines {
            miner.add(line);
        }
    }
    println!(
        "miner     {:7.0} ns/line",
        per_line(thread_cpu_secs() - cpu)
    );

    let cpu = thread_cpu_secs();
    let mut levels = Vec::with_capacity(lines.len());
    for line in &lines {
        levels.push(level::detect(line, std::iter::empty()));
    }
    println!(
        "level     {:7.0} ns/line",
        per_line(thread_cpu_secs() - cpu)
    );

    let cpu = thread_cpu_secs();
    let mut errors = 0;
    for (line, level) in lines.iter().zip(&levels) {
        errors += usize::from(errors::classify(line, *level).is_some());
    }
    println!(
        "classify  {:7.0} ns/line ({errors} error lines)",
        per_line(thread_cpu_secs() - cpu)
    );

    // The whole index: groups of up to 1,000 lines per stream, queued and
    // mined on the index's own thread; this thread's time is added (it
    // only builds and queues groups).
    let dir = std::env::temp_dir().join(format!("skald-ingest-cost-{}", std::process::id()));
    let index = PatternIndex::open(&dir, IndexConfig::default()).expect("index directory");
    let tenant = TenantId::new("bench").expect("valid tenant");
    // Timestamps spread over the last two hours, as `skald bench` sends
    // them: the lines then fall in many 10 s buckets, and the counts
    // written per bucket are part of the cost.
    const SPAN_NS: i64 = 2 * 3600 * 1_000_000_000;
    let now = Timestamp::now().0;
    let mut groups = Vec::new();
    for (labels, lines) in &streams {
        let labels = LabelSet::parse(labels).expect("stream labels");
        let step = SPAN_NS / lines.len().max(1) as i64;
        for (c, chunk) in lines.chunks(1000).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let at = now - SPAN_NS + (c * 1000 + i) as i64 * step;
                    Entry::new(Timestamp(at), *l)
                })
                .collect();
            groups.push(vec![(labels.clone(), entries)]);
        }
    }
    let process = process_cpu_secs();
    for group in groups {
        index.offer_waiting(tenant.clone(), group);
    }
    index.sync().expect("index written");
    println!(
        "index     {:7.0} ns/line (all threads)",
        per_line(process_cpu_secs() - process)
    );
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
}

fn cpu_secs(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn thread_cpu_secs() -> f64 {
    cpu_secs(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn process_cpu_secs() -> f64 {
    cpu_secs(libc::CLOCK_PROCESS_CPUTIME_ID)
}
