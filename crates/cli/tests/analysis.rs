//! Log analysis against the real binary: `skald patterns mine`,
//! `GET /loki/api/v1/patterns` (tenants, restarts, bad input), error
//! groups, anomalies and `skald analyze` (`/skald/api/v1/*`).

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

/// Pushes `(seconds ago, line)` pairs into `{app}` of `tenant`.
fn push_at(server: &Server, tenant: &str, app: &str, lines: &[(i64, String)]) {
    let now = now_s();
    let mut values: Vec<(i64, &str)> = lines
        .iter()
        .enumerate()
        .map(|(i, (ago, l))| ((now - ago) * 1_000_000_000 + i as i64, l.as_str()))
        .collect();
    values.sort();
    let values: Vec<Value> = values
        .iter()
        .map(|(ts, l)| json!([ts.to_string(), l]))
        .collect();
    let body = json!({"streams": [{"stream": {"app": app}, "values": values}]});
    let r = server.push_json_tenant(tenant, &body);
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().unwrap());
}

fn get(server: &Server, path: &str, tenant: &str, params: &[(&str, String)]) -> (u16, Value) {
    let r = server
        .client
        .get(server.url(path))
        .header("X-Scope-OrgID", tenant)
        .query(params)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Fifty minutes of a steady API log with a refused connection every
/// minute, a tenfold spike ten minutes ago and a burst of a new exception
/// five minutes ago.
fn incident() -> Vec<(i64, String)> {
    let mut lines = Vec::new();
    for minute in 1..=50i64 {
        let per_minute = if (9..=10).contains(&minute) { 300 } else { 30 };
        for i in 0..per_minute {
            lines.push((
                minute * 60 - i * 60 / per_minute,
                format!("level=info GET /api/items/{i} took {}ms", 5 + i % 20),
            ));
        }
        lines.push((
            minute * 60 - 30,
            format!("level=error db 10.0.0.{minute}:5432 connection refused"),
        ));
    }
    for i in 0..20 {
        lines.push((
            300 - i,
            format!("java.lang.IllegalStateException: bad state {i}"),
        ));
    }
    lines
}

#[test]
fn error_groups_anomalies_and_the_report_of_an_incident() {
    let server = Server::start();
    let lines = incident();
    push_at(&server, "team-a", "api", &lines);
    push_at(
        &server,
        "team-b",
        "api",
        &[(60, "panic: other tenant".into())],
    );
    let api = || ("query", r#"{app="api"}"#.to_string());

    // Error groups: both new over the hour; the refused connections are
    // not new in the last six minutes (seen before), the exception is.
    let (status, errors) = get(
        &server,
        "/skald/api/v1/errors",
        "team-a",
        &[api(), ("since", "1h".into())],
    );
    assert_eq!(status, 200, "{errors}");
    let groups = errors["data"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{errors}");
    let refused = groups
        .iter()
        .find(|g| g["category"] == "connection_refused")
        .unwrap();
    assert_eq!(refused["count"], 50);
    assert!(
        refused["pattern"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    assert_eq!(refused["new"], true);
    let (_, recent) = get(
        &server,
        "/skald/api/v1/errors",
        "team-a",
        &[api(), ("since", "6m".into())],
    );
    let recent = recent["data"].as_array().unwrap();
    let by = |c: &str| recent.iter().find(|g| g["category"] == c).unwrap().clone();
    assert_eq!(by("connection_refused")["new"], false);
    let exception = by("exception");
    assert_eq!(exception["new"], true);
    assert_eq!(exception["count"], 20);
    assert_eq!(exception["exception"], "java.lang.IllegalStateException");
    assert_eq!(exception["streams"][0]["labels"], r#"{app="api"}"#);
    assert!(
        exception["examples"][0]
            .as_str()
            .unwrap()
            .starts_with("java.lang.IllegalStateException")
    );
    // Another tenant sees only its own.
    let (_, metrics) = server.get("/metrics", &[]);
    let mined: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("skald_patterns_mined_lines_total "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    assert_eq!(mined, lines.len() as u64 + 1);
    assert!(
        metrics.contains("skald_patterns_shed_lines_total 0"),
        "{metrics}"
    );
    let (_, b) = get(&server, "/skald/api/v1/errors", "team-b", &[api()]);
    assert_eq!(b["data"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["data"][0]["exception"], "panic");

    // Anomalies in one-minute windows: the spike and the new exception.
    let (status, found) = get(
        &server,
        "/skald/api/v1/anomalies",
        "team-a",
        &[api(), ("since", "1h".into()), ("step", "60".into())],
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["data"]["window"], 60);
    let anomalies = found["data"]["anomalies"].as_array().unwrap();
    let now = now_s();
    let kinds: Vec<&str> = anomalies
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    let spike = anomalies
        .iter()
        .find(|a| a["kind"] == "spike")
        .unwrap_or_else(|| panic!("{found}"));
    let (start, end) = (
        spike["start"].as_i64().unwrap(),
        spike["end"].as_i64().unwrap(),
    );
    assert!(
        start < now - 480 && end > now - 660,
        "spike at {start}..{end}, now {now}: {found}"
    );
    assert!(spike["score"].as_f64().unwrap() > 4.5);
    assert_eq!(spike["baseline"]["source"], "recent_windows");
    assert!(spike["evidence"].as_str().unwrap().contains("lines in 60s"));
    let new = anomalies
        .iter()
        .find(|a| a["kind"] == "new_pattern")
        .unwrap_or_else(|| panic!("{kinds:?}"));
    assert!(
        new["pattern"]
            .as_str()
            .unwrap()
            .contains("IllegalStateException"),
        "{new}"
    );
    assert!(kinds.contains(&"error_spike"), "{kinds:?}");

    // The report, as text and as JSON.
    let addr = server.url("");
    let out = skald(&[
        "analyze",
        r#"{app="api"}"#,
        "--since",
        "1h",
        "--addr",
        &addr,
        "--tenant",
        "team-a",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for part in [
        "errors      70",
        "Top patterns",
        "level=<_> GET <_> took <_>",
        "took p50",
        "NEW exception java.lang.IllegalStateException",
        "spike",
        "Lines per hour",
        "█",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
    // The report's error groups are the index's: same fingerprints, same
    // NEW, as `/skald/api/v1/errors` lists them over the same range.
    let (status, analyzed) = get(
        &server,
        "/skald/api/v1/analyze",
        "team-a",
        &[api(), ("since", "1h".into())],
    );
    assert_eq!(status, 200, "{analyzed}");
    let key = |g: &Value| {
        (
            g["fingerprint"].clone(),
            g["pattern"].clone(),
            g["new"].clone(),
            g["count"].clone(),
        )
    };
    let mut reported: Vec<_> = analyzed["data"]["errorGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let mut listed: Vec<_> = groups.iter().map(key).collect();
    reported.sort_by_key(|k| k.0.to_string());
    listed.sort_by_key(|k| k.0.to_string());
    assert_eq!(reported, listed);
    let out = skald(&[
        "analyze",
        r#"{app="api"} |= "GET""#,
        "--since",
        "1h",
        "--addr",
        &addr,
        "--tenant",
        "team-a",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gets = lines.iter().filter(|(_, l)| l.contains("GET")).count() as u64;
    assert_eq!(report["lines"], gets);
    assert_eq!(report["errorLines"], 0);
    assert_eq!(report["truncated"], false);
    let top = &report["patterns"][0];
    assert_eq!(top["share"], 1.0);
    let took = &top["numbers"][0];
    assert_eq!(
        (took["name"].as_str(), took["unit"].as_str()),
        (Some("took"), Some("ms"))
    );
    assert!(
        took["p50"].as_f64().unwrap() >= 5.0 && took["p99"].as_f64().unwrap() <= 24.0,
        "{took}"
    );
    assert!(report["anomalyCount"].as_u64().unwrap() >= 1);
    let hours: u64 = report["hourly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["lines"].as_u64().unwrap())
        .sum();
    assert_eq!(hours, gets);
    let out = skald(&[
        "analyze",
        r#"{app="api"}"#,
        "--max-lines",
        "100",
        "--since",
        "1h",
        "--addr",
        &addr,
        "--tenant",
        "team-a",
        "-o",
        "json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["lines"].as_u64(), report["truncated"].as_bool()),
        (Some(100), Some(true))
    );
}

#[test]
fn analysis_endpoints_refuse_bad_input_and_answer_unknown_streams_empty() {
    let server = Server::start();
    let long = ("start", "0".to_string());
    for path in [
        "/skald/api/v1/errors",
        "/skald/api/v1/anomalies",
        "/skald/api/v1/analyze",
    ] {
        let (status, body) = get(&server, path, "t", &[("query", r#"{app="web""#.into())]);
        assert_eq!(status, 400, "{path}: {body}");
        if path != "/skald/api/v1/errors" {
            // Error groups without a selector are those of every stream.
            let (status, body) = get(&server, path, "t", &[]);
            assert_eq!(status, 400, "{path}: {body}");
            assert!(body.to_string().contains("query"), "{path}: {body}");
        }
        let (status, body) = get(
            &server,
            path,
            "t",
            &[("query", r#"{app="web"}"#.into()), long.clone()],
        );
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body.to_string().contains("time range exceeds the limit"),
            "{path}: {body}"
        );
    }
    for path in ["/skald/api/v1/errors", "/skald/api/v1/anomalies"] {
        let (status, body) = get(
            &server,
            path,
            "t",
            &[("query", r#"{app="nothing"}"#.into())],
        );
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, body) = get(
        &server,
        "/skald/api/v1/errors",
        "t",
        &[("query", r#"{app="nothing"}"#.into())],
    );
    assert_eq!(body["data"], json!([]));
    let (status, body) = get(
        &server,
        "/skald/api/v1/errors",
        "t",
        &[
            ("query", r#"{app="a"}"#.into()),
            ("examples", "many".into()),
        ],
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(
        &server,
        "/skald/api/v1/analyze",
        "t",
        &[("query", r#"sum(rate({app="a"}[1m]))"#.into())],
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(
        &server,
        "/skald/api/v1/analyze",
        "t",
        &[
            ("query", r#"{app="a"}"#.into()),
            ("max_lines", "100000000".into()),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("report_max_lines"), "{body}");

    let out = skald(&[
        "analyze",
        r#"{app="web""#,
        "--addr",
        &server.url(""),
        "--tenant",
        "t",
    ]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = skald(&[
        "analyze",
        r#"{app="web"}"#,
        "--addr",
        "http://127.0.0.1:1",
        "--tenant",
        "t",
    ]);
    assert_eq!(out.status.code(), Some(3));
}
