//! `skald bench` end to end on a small dataset: it starts its own server,
//! pushes, restarts it, checks the query answers and prints the tables.

use std::process::Command;

#[test]
fn bench_runs_end_to_end_on_a_small_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("benchmarks.md");
    let output = Command::new(env!("CARGO_BIN_EXE_skald"))
        .args([
            "bench",
            "--lines",
            "20000",
            "--clients",
            "2",
            "--warm-runs",
            "2",
        ])
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .arg("--write-md")
        .arg(&md)
        .output()
        .expect("running skald bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "skald bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    for expected in [
        "| Ingest | **",
        "| Failed pushes | 0 of 20 |",
        "| Disk after flush |",
        "| Disk after flush / zstd reference |",
        "| Disk after compaction / zstd reference |",
        "| Server peak RSS, ingest |",
        "| Live tail latency (gRPC push to TailLogs delivery) |",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in\n{stdout}");
    }
    // Nine queries, before and after the restart, all answered correctly.
    let names = [
        "needle",
        "id search",
        "newest 100",
        "json filter",
        "logfmt filter",
        "logfmt count by level",
        "json count by level",
        "topk paths",
        "p99 latency",
    ];
    let query_rows: Vec<&str> = stdout
        .lines()
        .filter(|l| names.iter().any(|n| l.starts_with(&format!("| {n}: "))))
        .collect();
    assert_eq!(query_rows.len(), 2 * names.len(), "{stdout}");
    assert!(
        query_rows.iter().all(|row| row.ends_with("| ok |")),
        "{stdout}"
    );

    let section = std::fs::read_to_string(&md).unwrap();
    assert!(section.starts_with("# Benchmarks"), "{section}");
    for heading in [
        "### Machine",
        "### Method",
        "### Dataset",
        "### Results",
        "### Queries",
    ] {
        assert!(section.contains(heading), "no {heading} in\n{section}");
    }
    // The work directory was named, so it is kept, with the server's data.
    assert!(dir.path().join("work/data").is_dir());
}
