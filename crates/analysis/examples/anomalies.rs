//! Precision and recall of the anomaly detector on Loghub lines with
//! injected anomalies (see `skald_analysis::inject`).
//!
//! Usage: `cargo run --release -p skald-analysis --example anomalies -- <loghub checkout>`
//!
//! Each of the 16 Loghub-2k systems' raw logs (`<System>/<System>_2k.log`)
//! feeds one stream. Two dataset sizes are run: quiet streams (5–20 lines
//! per minute) and busy ones (20–120), each over four days with anomalies
//! injected on the last. Loghub is licensed for research use: it is read
//! where it is, never copied into this repository.

use skald_analysis::eval::LOGHUB_SYSTEMS;
use skald_analysis::inject::{self, InjectConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args()
        .nth(1)
        .ok_or("usage: anomalies <loghub checkout>")?;
    let mut sources = Vec::new();
    for system in LOGHUB_SYSTEMS {
        let path = std::path::Path::new(&root)
            .join(system)
            .join(format!("{system}_2k.log"));
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let lines: Vec<String> = String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        sources.push((system.to_owned(), lines));
    }
    let verbose = std::env::var_os("LOGHUB_VERBOSE").is_some();
    println!(
        "| dataset | lines | injected | detections | precision | recall | spike | drop | silence | error burst |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, min_rate, max_rate, seed) in [
        ("quiet (5–20 lines/min)", 5.0, 20.0, 1),
        ("busy (20–120 lines/min)", 20.0, 120.0, 2),
        ("busy, other seed", 20.0, 120.0, 3),
    ] {
        let dir = tempfile::tempdir()?;
        let config = InjectConfig {
            min_rate,
            max_rate,
            seed,
            ..InjectConfig::default()
        };
        let started = std::time::Instant::now();
        let o = inject::run(&sources, &config, dir.path())?;
        let kind = |k: &str| {
            o.found
                .get(k)
                .map_or("-".to_owned(), |(f, t)| format!("{f}/{t}"))
        };
        println!(
            "| {name} | {} | {} | {} | {:.3} | {:.3} | {} | {} | {} | {} |",
            o.lines,
            o.injected.len(),
            o.detected.len(),
            o.precision(),
            o.recall(),
            kind("spike"),
            kind("drop"),
            kind("silence"),
            kind("error_burst"),
        );
        if verbose {
            eprintln!("{name}: {:.1}s", started.elapsed().as_secs_f64());
            for m in &o.missed {
                eprintln!("  missed {} {} {} at {}", m.stream, m.kind, m.size, m.start);
            }
            for a in &o.false_detections {
                eprintln!(
                    "  false {} {} {:?} {}..{} score {:.1}: {}",
                    a.labels,
                    a.kind.as_str(),
                    a.pattern,
                    a.start,
                    a.end,
                    a.score,
                    a.evidence
                );
            }
        }
    }
    Ok(())
}
