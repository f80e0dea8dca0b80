//! `skald run` and `skald logs`: a pipeline of three small components (a
//! chatty one, one that crashes and is restarted, one writing JSON logs),
//! every line found afterwards; Ctrl-C; bad pipeline files.

mod common;

use common::Server;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn skald(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("SKALD_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const PIPELINE: &str = r#"
name: demo
components:
  chatty:
    command: sh
    args: ["-c", "i=0; while [ $i -lt 40 ]; do echo \"INFO tick $i\"; i=$((i+1)); done; echo 'ERROR tock failed' >&2; printf 'partial line without newline'"]
    labels: {team: core}
  crasher:
    command: sh
    args: ["-c", "echo \"WARN starting pid $$\"; exit 3"]
    restart: on-failure
    max_restarts: 2
  jsonlog:
    command: sh
    args: ["-c", "for l in debug info error; do echo \"{\\\"level\\\":\\\"$l\\\",\\\"msg\\\":\\\"json $l\\\"}\"; done"]
    format: json
"#;

fn write_pipeline(dir: &Path, body: &str) -> String {
    let p = dir.join("pipeline.yaml");
    std::fs::write(&p, body).unwrap();
    p.to_str().unwrap().to_string()
}

fn export(data: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["logs", "demo", "--data-dir", data, "--export", "json"];
    args.extend_from_slice(extra);
    let o = skald(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_str::<Vec<Value>>(&text(&o.stdout)).unwrap()
}

#[test]
fn a_pipeline_runs_and_every_line_is_found_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(dir.path(), PIPELINE);
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let o = skald(&["run", &file, "--data-dir", data]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let view = text(&o.stdout);
    assert!(view.contains("[chatty ] "), "{view}");
    assert!(view.contains(" INFO  INFO tick 39"), "{view}");
    assert!(view.contains("[jsonlog] "), "{view}");
    assert!(view.contains("ERROR json error"), "{view}");

    let all = export(data, &[]);
    let lines: Vec<&str> = all.iter().map(|r| r["line"].as_str().unwrap()).collect();
    for i in 0..40 {
        let want = format!("INFO tick {i}");
        assert_eq!(lines.iter().filter(|l| **l == want).count(), 1, "{want}");
    }
    assert!(lines.contains(&"ERROR tock failed"));
    assert!(lines.contains(&"partial line without newline"));
    // Started once and restarted twice.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("WARN starting pid"))
            .count(),
        3
    );
    assert!(lines.iter().any(|l| l.contains("restarting (2 of 2)")));
    let stderr_row = all
        .iter()
        .find(|r| r["line"] == "ERROR tock failed")
        .unwrap();
    assert_eq!(stderr_row["stream"], "stderr");
    assert_eq!(stderr_row["level"], "error");
    let json_row = all
        .iter()
        .find(|r| r["line"].as_str().unwrap().contains("json debug"))
        .unwrap();
    assert_eq!(json_row["level"], "debug");

    // Filters.
    let errors = export(data, &["-l", "error"]);
    assert!(errors.iter().all(|r| r["level"] == "error"));
    assert!(errors.len() >= 3, "{errors:?}");
    let crasher = export(data, &["-c", "crasher", "--grep", "pid"]);
    assert_eq!(crasher.len(), 3);
    let csv = skald(&[
        "logs",
        "demo",
        "--data-dir",
        data,
        "--export",
        "csv",
        "-c",
        "jsonlog",
    ]);
    // Three lines and the supervisor's note of the exit.
    assert_eq!(
        text(&csv.stdout).lines().count(),
        5,
        "{}",
        text(&csv.stdout)
    );

    // The view format.
    let o = skald(&[
        "logs",
        "demo",
        "--data-dir",
        data,
        "-c",
        "jsonlog",
        "-l",
        "info",
        "--grep",
        "json",
    ]);
    let shown = text(&o.stdout);
    assert_eq!(shown.lines().count(), 1, "{shown}");
    assert!(shown.starts_with("[jsonlog] "), "{shown}");
    assert!(shown.trim_end().ends_with(" INFO  json info"), "{shown}");
}

#[test]
fn a_pipeline_can_ship_to_a_server_and_be_queried_with_logql() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(dir.path(), PIPELINE);
    let o = skald(&["run", &file, "--addr", &server.url(""), "-q"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());
    let lines = server.lines(
        r#"{pipeline="demo", component="chatty", stream="stdout"}"#,
        1000,
        "forward",
    );
    assert_eq!(lines.len(), 41);
    assert_eq!(lines[39], "INFO tick 39");
    assert_eq!(lines[40], "partial line without newline");
    let v = server.get_json("/loki/api/v1/label/level/values", &[("since", "1h")]);
    let levels: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    for l in ["debug", "error", "info", "warn"] {
        assert!(levels.contains(&l), "{levels:?}");
    }
    let v = server.get_json(
        "/loki/api/v1/series",
        &[("match[]", r#"{component="chatty"}"#), ("since", "1h")],
    );
    assert_eq!(v["data"][0]["team"], "core");
}

#[test]
fn ctrl_c_stops_the_components_and_keeps_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(
        dir.path(),
        r#"
name: demo
components:
  forever:
    command: sh
    args: ["-c", "i=0; while true; do echo \"line $i\"; i=$((i+1)); sleep 0.05; done"]
"#,
    );
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_skald"))
        .args([
            "run",
            &file,
            "--data-dir",
            data,
            "-q",
            "--stop-timeout",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some lines are stored (the local API serves them).
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr_file = Path::new(data).join("run.addr");
    while !addr_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(800));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!addr_file.exists());
    let all = export(data, &[]);
    let lines: Vec<&str> = all.iter().map(|r| r["line"].as_str().unwrap()).collect();
    assert!(lines.contains(&"line 0"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("[skald] exited")),
        "{lines:?}"
    );
}

#[test]
fn bad_pipelines_get_one_line_and_their_own_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let file = write_pipeline(dir.path(), "components:\n  a:\n    comand: echo\n");
    let o = skald(&["run", &file, "--data-dir", data]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("line 3"), "{err}");

    let o = skald(&["run", "/nonexistent/pipeline.yaml", "--data-dir", data]);
    assert_eq!(o.status.code(), Some(6));

    let file = write_pipeline(
        dir.path(),
        "components:\n  ok:\n    command: echo\n    args: [hi]\n  broken:\n    command: /nonexistent/binary\n",
    );
    let o = skald(&["run", &file, "--data-dir", data]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("component broken failed to start"), "{err}");

    let o = skald(&["logs", "demo", "--data-dir", data, "--grep", "("]);
    assert!(!o.status.success());
    assert_eq!(text(&o.stderr).lines().count(), 1, "{}", text(&o.stderr));
}

#[test]
fn export_refuses_follow() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = skald(&[
        "logs",
        "demo",
        "--data-dir",
        data.to_str().unwrap(),
        "--export",
        "json",
        "-f",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("cannot be used with"),
        "{}",
        text(&o.stderr)
    );
    assert!(!data.exists(), "nothing opened for a refused command line");
}

/// `skald logs -o raw|jsonl` print what `-o` means for `skald query`: the
/// lines as the components wrote them, or one JSON object per line; and a
/// crash report without a level word is stored as an error.
#[test]
fn logs_prints_raw_lines_and_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(
        dir.path(),
        r#"
name: demo
components:
  py:
    command: sh
    args: ["-c", "echo 'starting'; echo 'Traceback (most recent call last):' >&2; echo 'panic: nil map' >&2"]
"#,
    );
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let o = skald(&["run", &file, "--data-dir", data, "-q"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    let o = skald(&["logs", "demo", "--data-dir", data, "-o", "raw"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut raw: Vec<String> = text(&o.stdout).lines().map(str::to_string).collect();
    raw.sort();
    assert_eq!(
        raw,
        [
            "Traceback (most recent call last):",
            "[skald] exited: exit status: 0",
            "panic: nil map",
            "starting"
        ]
    );

    let o = skald(&[
        "logs",
        "demo",
        "--data-dir",
        data,
        "-o",
        "jsonl",
        "-l",
        "error",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let rows: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r["level"], "error");
        assert_eq!(r["component"], "py");
        assert_eq!(r["stream"], "stderr");
    }

    // -o and --export are two answers to one question.
    let o = skald(&[
        "logs",
        "demo",
        "--data-dir",
        data,
        "-o",
        "raw",
        "--export",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}
