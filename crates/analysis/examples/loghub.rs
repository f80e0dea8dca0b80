//! Grouping accuracy of the miner on Loghub-2k.
//!
//! Usage: `cargo run --release -p skald-analysis --example loghub -- <loghub checkout> [System ...]`
//!
//! Reads `<System>/<System>_2k.log_structured.csv` (the `Content` and
//! `EventId` columns) for the 16 systems, mines the contents in order with
//! the default configuration, and prints GA per system and the average.
//! Loghub is licensed for research: it is read from a checkout, never
//! copied into this repository.

use skald_analysis::eval::{LOGHUB_SYSTEMS, grouping_accuracy};
use skald_analysis::{Miner, MinerConfig};
use std::path::Path;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(root) = args.next() else {
        eprintln!("usage: loghub <loghub checkout> [System ...]");
        std::process::exit(2);
    };
    let chosen: Vec<String> = args.collect();
    let verbose = std::env::var_os("LOGHUB_VERBOSE").is_some();
    let mut total = 0.0;
    let mut n = 0;
    println!("| system | lines | true groups | patterns | GA |");
    println!("|---|---:|---:|---:|---:|");
    for system in LOGHUB_SYSTEMS {
        if !chosen.is_empty() && !chosen.iter().any(|c| c == system) {
            continue;
        }
        let path = Path::new(&root)
            .join(system)
            .join(format!("{system}_2k.log_structured.csv"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                std::process::exit(1);
            }
        };
        let rows = parse_csv(&text);
        let header = &rows[0];
        let col = |name: &str| header.iter().position(|h| h == name).expect(name);
        let (content, event) = (col("Content"), col("EventId"));
        let rows = &rows[1..];
        let mut config = MinerConfig {
            track_merges: true,
            ..MinerConfig::default()
        };
        if let Some(k) = std::env::var("LOGHUB_MIN_DISTINCT")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.min_distinct = k;
        }
        let mut miner = Miner::new(config);
        let ids: Vec<_> = rows.iter().map(|r| miner.add(&r[content])).collect();
        let predicted: Vec<_> = ids.iter().map(|&id| miner.resolve(id)).collect();
        let truth: Vec<&str> = rows.iter().map(|r| r[event].as_str()).collect();
        let ga = grouping_accuracy(&truth, &predicted);
        let groups: std::collections::HashSet<_> = truth.iter().collect();
        println!(
            "| {system} | {} | {} | {} | {ga:.3} |",
            rows.len(),
            groups.len(),
            miner.len()
        );
        if verbose {
            report_errors(&truth, &predicted, rows, content, &miner);
        }
        total += ga;
        n += 1;
    }
    println!("| **average** | | | | **{:.3}** |", total / n as f64);
    speed(&root);
}

/// CPU time of this thread, in seconds: on a shared machine wall time
/// counts other processes' work too.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Mines all contents repeatedly and prints lines per second (one core).
fn speed(root: &str) {
    let mut lines = Vec::new();
    for system in LOGHUB_SYSTEMS {
        let path = Path::new(root)
            .join(system)
            .join(format!("{system}_2k.log_structured.csv"));
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let rows = parse_csv(&text);
        let content = rows[0].iter().position(|h| h == "Content").unwrap();
        lines.extend(rows[1..].iter().map(|r| r[content].clone()));
    }
    let start = Instant::now();
    let cpu_start = thread_cpu_secs();
    let mut mined = 0u64;
    let mut rounds = 0;
    while start.elapsed().as_secs_f64() < 2.0 {
        let mut miner = Miner::default();
        for line in &lines {
            miner.add(line);
        }
        mined += lines.len() as u64;
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_secs() - cpu_start;
    if std::env::var_os("LOGHUB_VERBOSE").is_some() {
        let start = thread_cpu_secs();
        let mut masked = skald_analysis::mask::Masked::default();
        let mut tokens = 0;
        for _ in 0..10 {
            for line in &lines {
                skald_analysis::mask::mask_into(line, 64, &mut masked);
                tokens += masked.len();
            }
        }
        let m = thread_cpu_secs() - start;
        println!(
            "masking alone: {:.0} lines/s ({tokens} tokens)",
            10.0 * lines.len() as f64 / m
        );
    }
    println!(
        "\nminer speed: {:.0} lines per CPU second on one core, {:.0} lines/s by the wall clock \
         ({mined} lines in {rounds} rounds, {cpu:.2} s CPU, {secs:.2} s wall)",
        mined as f64 / cpu,
        mined as f64 / secs
    );
}

fn report_errors(
    truth: &[&str],
    predicted: &[Option<skald_analysis::PatternId>],
    rows: &[Vec<String>],
    content: usize,
    miner: &Miner,
) {
    use std::collections::{BTreeMap, BTreeSet};
    let mut by_truth: BTreeMap<&str, BTreeSet<Option<skald_analysis::PatternId>>> = BTreeMap::new();
    let mut by_pred: BTreeMap<Option<skald_analysis::PatternId>, BTreeSet<&str>> = BTreeMap::new();
    for (t, p) in truth.iter().zip(predicted) {
        by_truth.entry(t).or_default().insert(*p);
        by_pred.entry(*p).or_default().insert(t);
    }
    let text = |p: &Option<skald_analysis::PatternId>| {
        p.and_then(|p| miner.get(p))
            .map(|p| p.text())
            .unwrap_or_default()
    };
    for (t, ps) in &by_truth {
        if ps.len() > 1 {
            let ex = truth.iter().position(|x| x == t).unwrap();
            let size = truth.iter().filter(|x| *x == t).count();
            println!(
                "  SPLIT {t} ({} groups, {size} lines) e.g. {}",
                ps.len(),
                rows[ex][content]
            );
            for p in ps.iter().take(4) {
                println!("      -> {}", text(p));
            }
        }
    }
    for (p, ts) in &by_pred {
        if ts.len() > 1 {
            println!("  MERGED {} <- {:?}", text(p), ts);
            for t in ts.iter().take(4) {
                let ex = truth.iter().position(|x| x == t).unwrap();
                println!("      {t}: {}", rows[ex][content]);
            }
        }
    }
}

/// RFC 4180 rows: commas, double quotes, `""` escapes, quoted newlines.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}
