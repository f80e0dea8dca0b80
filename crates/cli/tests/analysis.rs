//! Log analysis against the real binary: `skald patterns mine` and
//! `GET /loki/api/v1/patterns` (tenants, restarts, bad input).

mod common;

use common::Server;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn skald(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn patterns_mine_prints_each_lines_final_pattern_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    let mut lines = Vec::new();
    for (i, user) in ["alice", "bob", "carol", "dave", "erin"].iter().enumerate() {
        lines.push(format!("session opened for user {user} by uid={i}"));
        lines.push(format!("GET /api/items/{i} 200 {}ms", 10 + i));
    }
    lines.push("cupsd startup succeeded".into());
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    let out = skald(&["patterns", "mine", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(printed.len(), lines.len(), "one pattern per input line");
    // The first users were seen before the position became a variable;
    // they are printed with the pattern they finally belong to.
    assert_eq!(printed[0], "session opened for user <_> by uid=<_>");
    assert_eq!(printed[8], printed[0]);
    // Runs of values (path, status, duration) are one variable.
    assert_eq!(printed[1], "GET <_>");
    assert_eq!(printed[10], "cupsd startup succeeded");
    assert!(printed.iter().all(|p| !p.contains('\t')));

    let out = skald(&["patterns", "mine", "--summary", file.to_str().unwrap()]);
    assert!(out.status.success());
    let summary = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = summary.lines().collect();
    assert_eq!(rows.len(), 3, "{summary}");
    assert!(
        rows.contains(&"5\tsession opened for user <_> by uid=<_>"),
        "{summary}"
    );
    assert!(rows.contains(&"1\tcupsd startup succeeded"), "{summary}");
}

#[test]
fn patterns_mine_refuses_a_missing_file_in_one_line() {
    let out = skald(&["patterns", "mine", "/nonexistent/skald.log"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot read /nonexistent/skald.log"), "{err}");
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn push(server: &Server, tenant: &str, app: &str, lines: &[String]) {
    let base = (now_s() - 120) * 1_000_000_000;
    let values: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(base + i as i64 * 1_000_000).to_string(), l]))
        .collect();
    let body = json!({"streams": [{"stream": {"app": app}, "values": values}]});
    let r = server.push_json_tenant(tenant, &body);
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().unwrap());
}

fn patterns(server: &Server, tenant: &str, query: &str, extra: &[(&str, String)]) -> (u16, Value) {
    let mut params = vec![("query", query.to_string())];
    params.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    let r = server
        .client
        .get(server.url("/loki/api/v1/patterns"))
        .header("X-Scope-OrgID", tenant)
        .query(&params)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn totals(answer: &Value) -> Vec<(String, String, u64)> {
    let mut out: Vec<(String, String, u64)> = answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let total = p["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s[1].as_u64().unwrap())
                .sum();
            (
                p["pattern"].as_str().unwrap().to_owned(),
                p["level"].as_str().unwrap().to_owned(),
                total,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn patterns_endpoint_serves_each_tenant_its_own_and_survives_restarts() {
    let mut server = Server::start();
    let web: Vec<String> = (0..40)
        .map(|i| format!("level=info GET /api/items/{i} 200 {}ms", i % 7))
        .chain((0..10).map(|i| format!("level=error upstream timeout after {i}s")))
        .collect();
    push(&server, "team-a", "web", &web);
    push(
        &server,
        "team-b",
        "db",
        &["checkpoint complete: wrote 12 buffers".to_string()],
    );

    let (status, a) = patterns(&server, "team-a", r#"{app="web"}"#, &[]);
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["status"], "success");
    let expected = vec![
        ("level=<_> GET <_>".to_string(), "info".to_string(), 40),
        (
            "level=<_> upstream timeout after <_>".to_string(),
            "error".to_string(),
            10,
        ),
    ];
    assert_eq!(totals(&a), expected);
    let sample = &a["data"][0]["samples"][0];
    assert!(
        sample[0].is_i64() && sample[1].is_u64(),
        "[unix s, count]: {sample}"
    );

    // Another tenant sees only its own.
    let (_, b) = patterns(&server, "team-b", r#"{app=~".+"}"#, &[]);
    assert_eq!(
        totals(&b),
        [(
            "checkpoint complete: wrote <_> buffers".to_string(),
            "unknown".to_string(),
            1
        )]
    );
    let (_, none) = patterns(&server, "team-b", r#"{app="web"}"#, &[]);
    assert_eq!(none["data"], json!([]));

    // A clean restart, then a kill after more lines were queried.
    server.restart();
    let (_, again) = patterns(&server, "team-a", r#"{app="web"}"#, &[]);
    assert_eq!(totals(&again), expected);
    push(
        &server,
        "team-a",
        "web",
        &["level=info GET /api/items/99 200 3ms".to_string()],
    );
    let (_, more) = patterns(&server, "team-a", r#"{app="web"}"#, &[]);
    assert_eq!(totals(&more)[0].2, 41);
    server.kill9();
    server.start_again();
    let (_, after_kill) = patterns(&server, "team-a", r#"{app="web"}"#, &[]);
    assert_eq!(totals(&after_kill)[0].2, 41);

    // A range without those lines is empty.
    let old = [
        ("start", "1000000000".to_string()),
        ("end", "1000003600".to_string()),
    ];
    let (status, empty) = patterns(&server, "team-a", r#"{app="web"}"#, &old);
    assert_eq!((status, empty["data"].clone()), (200, json!([])));
}

#[test]
fn patterns_endpoint_refuses_bad_input_with_a_clear_400() {
    let server = Server::start();
    let (status, body) = patterns(&server, "t", r#"{app="web""#, &[]);
    assert_eq!(status, 400, "{body}");
    let (status, body) = patterns(&server, "t", "", &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("query"), "{body}");
    let long = [("start", "0".to_string()), ("end", now_s().to_string())];
    let (status, body) = patterns(&server, "t", r#"{app="web"}"#, &long);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("time range exceeds the limit"),
        "{body}"
    );
    let (status, body) = patterns(&server, "t", r#"{app="web"}"#, &[("step", "x".into())]);
    assert_eq!(status, 400, "{body}");
    let r = server
        .client
        .get(server.url("/loki/api/v1/patterns"))
        .header("X-Scope-OrgID", "bad/tenant")
        .query(&[("query", r#"{app="web"}"#)])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}
