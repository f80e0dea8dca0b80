//! The client commands (`skald push`, `query`, `labels`, `series`) against
//! the real server: output formats, exit codes and one-line errors.

mod common;

use common::Server;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn skald(server: Option<&Server>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skald"));
    cmd.args(args).env_remove("SKALD_ADDR").env("NO_COLOR", "1");
    if let Some(s) = server {
        cmd.env("SKALD_ADDR", s.url(""));
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn push_then_query_in_every_format() {
    let server = Server::start();
    let lines = "GET /a 200\nlevel=error msg=\"db down, retrying\"\nGET /b 404\n";
    let o = skald(
        Some(&server),
        &["push", "-L", "app=cli", "-L", "env=test"],
        Some(lines),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("pushed 3 lines"), "{}", stderr(&o));

    let q = r#"{app="cli"}"#;
    let o = skald(Some(&server), &["query", q, "-o", "raw", "--forward"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), lines);

    // Newest first by default.
    let o = skald(
        Some(&server),
        &["query", q, "-o", "raw", "--limit", "1"],
        None,
    );
    assert_eq!(stdout(&o), "GET /b 404\n");

    let o = skald(
        Some(&server),
        &["query", q, "-o", "jsonl", "--forward"],
        None,
    );
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["line"], "level=error msg=\"db down, retrying\"");
    assert_eq!(rows[1]["labels"]["app"], "cli");
    assert!(rows[0]["ts_ns"].as_str().unwrap().parse::<i64>().unwrap() > 0);

    let o = skald(
        Some(&server),
        &["query", q, "-o", "json", "--forward"],
        None,
    );
    let all: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3);

    let o = skald(Some(&server), &["query", q, "-o", "csv", "--forward"], None);
    let text = stdout(&o);
    let mut csv = text.lines();
    assert_eq!(csv.next(), Some("timestamp,labels,line"));
    let second = csv.nth(1).unwrap();
    assert!(
        second
            .ends_with(r#","{app=""cli"", env=""test""}","level=error msg=""db down, retrying""""#),
        "{second}"
    );

    // Default output: time, labels, line; no colour codes with NO_COLOR.
    let o = skald(Some(&server), &["query", q, "--forward", "--utc"], None);
    let text = stdout(&o);
    let first = text.lines().next().unwrap();
    assert!(
        first.contains(r#"Z {app="cli", env="test"} GET /a 200"#),
        "{first}"
    );
    assert!(!text.contains('\x1b'));
    // Forced colours colour the level word.
    let o = skald(Some(&server), &["query", q, "--color", "always"], None);
    assert!(
        stdout(&o).contains("\x1b[31merror\x1b[0m"),
        "{}",
        stdout(&o)
    );

    let o = skald(Some(&server), &["labels"], None);
    assert_eq!(stdout(&o), "app\nenv\n");
    let o = skald(Some(&server), &["labels", "app"], None);
    assert_eq!(stdout(&o), "cli\n");
    let o = skald(Some(&server), &["series", r#"{env="test"}"#], None);
    assert_eq!(stdout(&o), "{app=\"cli\", env=\"test\"}\n");
}

#[test]
fn failures_get_one_line_and_a_distinct_exit_code() {
    let server = Server::start();
    // A malformed query: refused by the server.
    let o = skald(Some(&server), &["query", r#"{app="x""#], None);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.starts_with("skald: the server answered 400"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // Nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("http://127.0.0.1:{port}");
    let o = skald(None, &["query", r#"{app="x"}"#, "--addr", &addr], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot reach"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);

    // A bad label on push: refused before anything is sent.
    let o = skald(Some(&server), &["push", "-L", "1bad=x"], Some("line\n"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn export_pages_through_everything_and_resumes() {
    let server = Server::start();
    let lines: String = (0..25).map(|i| format!("line {i:02}\n")).collect();
    let o = skald(
        Some(&server),
        &["push", "-L", "app=exp", "--batch", "7"],
        Some(&lines),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let q = r#"{app="exp"}"#;

    let out = dir.path().join("all.jsonl");
    let o = skald(
        Some(&server),
        &["export", q, "-o", out.to_str().unwrap(), "--page", "10"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let got: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["line"].as_str().unwrap().to_string()
        })
        .collect();
    let want: Vec<String> = lines.lines().map(str::to_string).collect();
    assert_eq!(got, want);

    // Cut after 7 entries and half a line, then resume.
    let keep: String = text.lines().take(7).map(|l| format!("{l}\n")).collect();
    std::fs::write(&out, format!("{keep}{{\"timestamp\":\"20")).unwrap();
    let o = skald(
        Some(&server),
        &[
            "export",
            q,
            "-o",
            out.to_str().unwrap(),
            "--page",
            "4",
            "--resume",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);

    // CSV, gzipped.
    let gz = dir.path().join("all.csv.gz");
    let o = skald(
        Some(&server),
        &[
            "export",
            q,
            "-o",
            gz.to_str().unwrap(),
            "--format",
            "csv",
            "--gzip",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut csv = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()),
        &mut csv,
    )
    .unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 26);
    assert_eq!(rows[0], "timestamp,ts_ns,labels,line");
    assert!(
        rows[25].ends_with(r#","{app=""exp""}",line 24"#),
        "{}",
        rows[25]
    );

    // A metric query cannot be exported.
    let o = skald(
        Some(&server),
        &[
            "export",
            "vector(1)",
            "-o",
            dir.path().join("x").to_str().unwrap(),
        ],
        None,
    );
    assert!(!o.status.success());
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let o = skald(None, &["completions", shell], None);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        assert!(script.contains("skald"), "{shell}");
        assert!(script.contains("export"), "{shell}: subcommands listed");
    }
    let o = skald(None, &["completions", "tcsh"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn tail_prints_new_entries_once_across_a_restart_and_index_commands_answer() {
    let mut server = Server::start();
    let o = skald(Some(&server), &["push", "-L", "app=tail"], Some("before\n"));
    assert!(o.status.success(), "{}", stderr(&o));
    let mut child = Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(["tail", r#"{app="tail"}"#, "-o", "raw", "--since", "5m"])
        .env("SKALD_ADDR", server.url(""))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    assert_eq!(next(), "before");
    let push = |server: &Server, i: usize| {
        let line = format!("live {i}\n");
        let o = skald(Some(server), &["push", "-L", "app=tail"], Some(&line));
        assert!(o.status.success(), "{}", stderr(&o));
    };
    for i in 0..3 {
        push(&server, i);
        assert_eq!(next(), format!("live {i}"));
    }
    // Nothing is printed twice.
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(1500))
            .is_err()
    );
    // The server restarts on the same data directory and port: the tail
    // reconnects, catches up from the last line it printed, and repeats
    // none of the lines before.
    server.restart();
    for i in 3..6 {
        push(&server, i);
        assert_eq!(next(), format!("live {i}"));
    }
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(1500))
            .is_err()
    );
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(err.contains("reconnecting"), "{err}");
    // The websocket tail, not the polling fallback.
    assert!(!err.contains("polling"), "{err}");

    let o = skald(Some(&server), &["stats", r#"{app="tail"}"#], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("streams  1"), "{text}");
    assert!(text.contains("entries  7"), "{text}");
    let o = skald(Some(&server), &["volume", r#"{app="tail"}"#], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("{app=\"tail\"}\t"), "{}", stdout(&o));
}

#[test]
fn push_follow_survives_rotation_and_truncation() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "old line, before following\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skald"))
        .args([
            "push",
            "-f",
            log.to_str().unwrap(),
            "-L",
            "app=follow",
            "--batch",
            "1",
        ])
        .env("SKALD_ADDR", server.url(""))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let lines = server.lines(r#"{app="follow"}"#, 100, "forward");
            if lines.len() >= n || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    append("one\ntwo\n");
    assert_eq!(wait_for(2), ["one", "two"]);
    // Rotation: the file is renamed and a new one takes its name.
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    std::fs::write(&log, "three\n").unwrap();
    assert_eq!(wait_for(3), ["one", "two", "three"]);
    // Truncation in place.
    std::fs::write(&log, "").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    append("four\n");
    assert_eq!(wait_for(4), ["one", "two", "three", "four"]);
    child.kill().unwrap();
    let _ = child.wait();
}

/// Runs `skald ARGS` under a pseudo-terminal (util-linux `script`), so
/// stdout and stderr are terminals; returns everything the terminal showed.
fn skald_on_a_terminal(server: &Server, args: &[&str]) -> String {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_skald").to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let o = Command::new("script")
        .args(["-qefc", &quoted.join(" "), "/dev/null"])
        .env("SKALD_ADDR", server.url(""))
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .output()
        .expect("running script(1) for a pseudo-terminal");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn on_a_terminal_output_is_coloured_and_export_shows_progress() {
    let server = Server::start();
    let o = skald(
        Some(&server),
        &["push", "-L", "app=tty"],
        Some("level=error boom\nall good\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = skald_on_a_terminal(&server, &["query", r#"{app="tty"}"#]);
    assert!(shown.contains("\x1b[31merror\x1b[0m"), "{shown:?}");
    assert!(shown.contains("\x1b[38;5;"), "stream colour: {shown:?}");
    // NO_COLOR wins over a terminal.
    let plain = {
        let o = Command::new("script")
            .args([
                "-qefc",
                &format!("'{}' query '{{app=\"tty\"}}'", env!("CARGO_BIN_EXE_skald")),
                "/dev/null",
            ])
            .env("SKALD_ADDR", server.url(""))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(plain.contains("level=error boom"), "{plain:?}");
    assert!(!plain.contains("\x1b["), "{plain:?}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.jsonl");
    let shown = skald_on_a_terminal(
        &server,
        &["export", r#"{app="tty"}"#, "-o", out.to_str().unwrap()],
    );
    assert!(shown.contains("2/2 entries"), "{shown:?}");
    assert!(shown.contains("exported 2 entries"), "{shown:?}");
    // Piped: no progress line.
    let o = skald(
        Some(&server),
        &["export", r#"{app="tty"}"#, "-o", out.to_str().unwrap()],
        None,
    );
    assert!(!stderr(&o).contains("entries/s"), "{}", stderr(&o));
}
