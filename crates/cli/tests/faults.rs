//! The server under faults, against the real binary: a data directory on a
//! small file system that fills up (a real tmpfs, so the kernel itself
//! refuses writes part-way), then frees up, then a crash or a shutdown.
//!
//! The bar: every acknowledged push is there exactly once after the
//! restart, no entry of a push answered with an error ever is, and a
//! shutdown on a full disk finishes promptly (the WAL keeps the entries).
//!
//! Mounting needs root (or CAP_SYS_ADMIN); where that is not permitted
//! the tests say so and pass without running.

mod common;

use common::{Server, now_ns};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { _dir: dir, path }),
            Ok(o) => {
                eprintln!(
                    "skipped: mounting a tmpfs is not permitted here ({})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it open: detach it now, the kernel
            // frees it when the last user goes.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Writes a file until the file system is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0x5au8; 256 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    path
}

const LINES_PER_BATCH: usize = 100;

/// Pushes batch `n` (its own stream, `batch="n"`): the HTTP status.
fn push_batch(server: &Server, base: i64, n: usize) -> u16 {
    let values: Vec<_> = (0..LINES_PER_BATCH)
        .map(|i| {
            json!([
                (base + (n * LINES_PER_BATCH + i) as i64).to_string(),
                format!("batch {n} line {i} {}", "x".repeat(1000))
            ])
        })
        .collect();
    let body =
        json!({"streams": [{"stream": {"app": "full", "batch": n.to_string()}, "values": values}]});
    server.push_json(&body).status().as_u16()
}

/// Entries stored per batch.
fn counts(server: &Server) -> BTreeMap<usize, u64> {
    let v = server.get_json(
        "/loki/api/v1/query",
        &[
            (
                "query",
                r#"sum by (batch) (count_over_time({app="full"}[2h]))"#,
            ),
            ("time", &now_ns().to_string()),
        ],
    );
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let batch: usize = s["metric"]["batch"].as_str().unwrap().parse().unwrap();
        let n: u64 = s["value"][1].as_str().unwrap().parse().unwrap();
        out.insert(batch, n);
    }
    out
}

struct Outcome {
    acked: Vec<usize>,
    refused: Vec<usize>,
}

/// Fills the disk under a running server, pushes until pushes fail, frees
/// the disk, pushes more (all must be acknowledged).
fn fill_fail_free_push(server: &Server, data: &Path, base: i64) -> Outcome {
    let mut out = Outcome {
        acked: Vec::new(),
        refused: Vec::new(),
    };
    let mut n = 0;
    for _ in 0..3 {
        assert_eq!(push_batch(server, base, n), 204, "{}", server.log());
        out.acked.push(n);
        n += 1;
    }
    let filler = fill(data.parent().unwrap());
    // Only a little room was left: pushes fail within a bounded number.
    while out.refused.len() < 4 {
        assert!(n < 200, "the full disk never refused a push");
        match push_batch(server, base, n) {
            204 => out.acked.push(n),
            500 => out.refused.push(n),
            other => panic!("push {n} answered {other}"),
        }
        n += 1;
    }
    std::fs::remove_file(filler).unwrap();
    for _ in 0..5 {
        assert_eq!(push_batch(server, base, n), 204, "after room came back");
        out.acked.push(n);
        n += 1;
    }
    out
}

fn assert_exactly(counts: &BTreeMap<usize, u64>, outcome: &Outcome, log: &str) {
    for b in &outcome.acked {
        assert_eq!(
            counts.get(b).copied().unwrap_or(0),
            LINES_PER_BATCH as u64,
            "acknowledged batch {b} must be there exactly once; all: {counts:?}\n{log}"
        );
    }
    for b in &outcome.refused {
        assert!(
            !counts.contains_key(b),
            "refused batch {b} must never be stored; all: {counts:?}"
        );
    }
}

/// The server's data directory sits one level below the mount point, so
/// the filler (at the mount point) shares the file system.
fn data_on(fs: &Tmpfs) -> PathBuf {
    fs.path.join("data")
}

/// A server on `fs` that went through a full disk: filled, refused,
/// freed, acknowledged again.
fn full_disk_episode(fs: &Tmpfs) -> (Server, Outcome) {
    let data = data_on(fs);
    let server = Server::start_on(&data, &[]);
    let base = now_ns() - 600_000_000_000;
    let outcome = fill_fail_free_push(&server, &data, base);
    (server, outcome)
}

#[test]
fn disk_full_then_kill_9_keeps_exactly_what_was_acknowledged() {
    let Some(fs) = Tmpfs::mount("64m") else {
        return;
    };
    let (mut server, outcome) = full_disk_episode(&fs);
    assert_exactly(&counts(&server), &outcome, &server.log());
    server.kill9();
    server.start_again();
    assert_exactly(&counts(&server), &outcome, &server.log());
    let log = server.log();
    assert!(
        !log.contains("wal corruption"),
        "a full disk must not leave a damaged wal:\n{log}"
    );
}

#[test]
fn sigterm_on_a_full_disk_finishes_promptly_and_loses_nothing() {
    let Some(fs) = Tmpfs::mount("64m") else {
        return;
    };
    let (mut server, outcome) = full_disk_episode(&fs);
    // Full again: the final flush cannot write its segment.
    let filler = fill(&fs.path);
    let asked = Instant::now();
    server.stop();
    let took = asked.elapsed();
    // A bound, not a speed measurement: before, retries held it past 30 s.
    assert!(
        took < Duration::from_secs(20),
        "shutdown on a full disk took {took:?}"
    );
    std::fs::remove_file(filler).unwrap();
    server.start_again();
    assert_exactly(&counts(&server), &outcome, &server.log());
}
