//! LogQL through the real binary: log pipelines and metric queries, with
//! their values checked numerically and their JSON in Loki's shapes.

mod common;

use common::{Server, now_ns};
use serde_json::{Value, json};

const S: i64 = 1_000_000_000;

/// A minute boundary five minutes back, so windows are easy to reason
/// about and within the ingest limits.
fn base() -> i64 {
    (now_ns() / (60 * S)) * 60 * S - 5 * 60 * S
}

/// Six JSON lines on `{app="x"}` at base+1s..base+6s: three info, two
/// error, one warn.
fn push_levels(server: &Server, base: i64) {
    let levels = ["info", "info", "error", "info", "error", "warn"];
    let values: Vec<Value> = levels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!([
                (base + (i as i64 + 1) * S).to_string(),
                format!(r#"{{"level":"{l}","n":{i}}}"#)
            ])
        })
        .collect();
    let body = json!({"streams": [{"stream": {"app": "x"}, "values": values}]});
    assert_eq!(server.push_json(&body).status(), 204);
}

fn secs(ns: i64) -> String {
    (ns / S).to_string()
}

#[test]
fn grafana_datasource_check_and_scalars() {
    let server = Server::start();
    let v = server.get_json("/loki/api/v1/query", &[("query", "vector(1)+vector(1)")]);
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["metric"], json!({}));
    assert_eq!(result[0]["value"][1], "2");
    assert!(result[0]["value"][0].is_number());
    assert!(v["data"]["stats"]["summary"].is_object());

    let v = server.get_json("/loki/api/v1/query", &[("query", "1 + 2 * 3")]);
    assert_eq!(v["data"]["resultType"], "scalar");
    assert_eq!(v["data"]["result"][1], "7");
}

#[test]
fn count_by_parsed_level() {
    let server = Server::start();
    let b = base();
    push_levels(&server, b);
    let q = r#"sum by (level) (count_over_time({app="x"} | json [1m]))"#;
    let v = server.get_json(
        "/loki/api/v1/query",
        &[("query", q), ("time", &secs(b + 60 * S))],
    );
    assert_eq!(v["data"]["resultType"], "vector");
    let mut got: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["value"][0], json!((b + 60 * S) / S));
            (
                r["metric"]["level"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("error".to_string(), "2".to_string()),
            ("info".to_string(), "3".to_string()),
            ("warn".to_string(), "1".to_string())
        ]
    );
}

#[test]
fn range_queries_return_matrices_at_every_step_form() {
    let server = Server::start();
    let b = base();
    push_levels(&server, b);
    let start = (b + 60 * S).to_string();
    let end = (b + 180 * S).to_string();
    for step in ["60", "1m", "60000ms", "60.0"] {
        let v = server.get_json(
            "/loki/api/v1/query_range",
            &[
                ("query", r#"count_over_time({app="x"}[1m])"#),
                ("start", &start),
                ("end", &end),
                ("step", step),
            ],
        );
        assert_eq!(v["data"]["resultType"], "matrix", "step {step}: {v}");
        let result = v["data"]["result"].as_array().unwrap();
        assert_eq!(result.len(), 1);
        assert_eq!(result[0]["metric"], json!({"app": "x"}));
        // Steps at +60s (all six lines), +120s and +180s (none).
        assert_eq!(
            result[0]["values"],
            json!([[(b + 60 * S) / S, "6"]]),
            "step {step}"
        );
    }
    // rate over the same minute: 6 lines / 60 s.
    let v = server.get_json(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"sum(rate({app="x"} |= "error" [1m]))"#),
            ("start", &start),
            ("end", &start),
            ("step", "1"),
        ],
    );
    let value: f64 = v["data"]["result"][0]["values"][0][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((value - 2.0 / 60.0).abs() < 1e-12, "{v}");
}

#[test]
fn pipelines_split_streams_and_rewrite_lines() {
    let server = Server::start();
    let b = base();
    push_levels(&server, b);
    let start = b.to_string();
    let v = server.get_json(
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"{app="x"} | json | level="error" | line_format "{{.level}}:{{.n}}""#,
            ),
            ("start", &start),
            ("direction", "forward"),
        ],
    );
    assert_eq!(v["data"]["resultType"], "streams");
    // `n` differs, so each error line is its own stream.
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{v}");
    assert!(
        result
            .iter()
            .any(|s| s["stream"] == json!({"app": "x", "level": "error", "n": "2"}))
    );
    let mut lines: Vec<&str> = result
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap())
        .map(|e| e[1].as_str().unwrap())
        .collect();
    lines.sort();
    assert_eq!(lines, vec!["error:2", "error:4"]);

    // Lines with different parsed labels land in different streams.
    let v = server.get_json(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="x"} | json | keep level"#),
            ("start", &start),
        ],
    );
    let mut streams: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream"].to_string())
        .collect();
    streams.sort();
    assert_eq!(
        streams,
        vec![
            r#"{"level":"error"}"#,
            r#"{"level":"info"}"#,
            r#"{"level":"warn"}"#
        ]
    );

    // categorize-labels: parsed labels beside each line, stream labels apart.
    let r = server
        .client
        .get(server.url("/loki/api/v1/query_range"))
        .header("X-Loki-Response-Encoding-Flags", "categorize-labels")
        .query(&[
            ("query", r#"{app="x"} | json | level="warn""#),
            ("start", start.as_str()),
        ])
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(result[0]["stream"], json!({"app": "x"}));
    assert_eq!(
        result[0]["values"][0][2],
        json!({"parsed": {"level": "warn", "n": "5"}})
    );
}

#[test]
fn errors_are_400_with_a_reason() {
    let server = Server::start();
    let (status, body) = server.get(
        "/loki/api/v1/query",
        &[("query", r#"sum(count_over_time({app="x"}[1m])"#)],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("parse error at line 1, col"), "{body}");

    // A pipeline error in a series fails a metric query, as in Loki.
    let b = base();
    let body = json!({"streams": [{"stream": {"app": "bad"}, "values": [
        [(b + S).to_string(), "not json"]
    ]}]});
    assert_eq!(server.push_json(&body).status(), 204);
    let (status, body) = server.get(
        "/loki/api/v1/query",
        &[
            ("query", r#"count_over_time({app="bad"} | json [1m])"#),
            ("time", &secs(b + 60 * S)),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("JSONParserErr"), "{body}");

    // More series than max_query_series (500).
    let streams: Vec<Value> = (0..501)
        .map(|i| {
            json!({"stream": {"job": "many", "i": i.to_string()},
                   "values": [[(b + S).to_string(), "line"]]})
        })
        .collect();
    assert_eq!(server.push_json(&json!({"streams": streams})).status(), 204);
    let (status, body) = server.get(
        "/loki/api/v1/query",
        &[
            ("query", r#"count_over_time({job="many"}[1m])"#),
            ("time", &secs(b + 60 * S)),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("maximum of series (500)"), "{body}");
    // Aggregated, the same streams answer.
    let v = server.get_json(
        "/loki/api/v1/query",
        &[
            ("query", r#"sum(count_over_time({job="many"}[1m]))"#),
            ("time", &secs(b + 60 * S)),
        ],
    );
    assert_eq!(v["data"]["result"][0]["value"][1], "501");
}

#[test]
fn format_query_prints_canonical_logql() {
    let server = Server::start();
    let v = server.get_json(
        "/loki/api/v1/format_query",
        &[(
            "query",
            r#"sum by(level)(count_over_time({app="x"}|json[5m]))"#,
        )],
    );
    assert_eq!(v["status"], "success");
    let printed = v["data"].as_str().unwrap();
    let again = server.get_json("/loki/api/v1/format_query", &[("query", printed)]);
    assert_eq!(again["data"], printed);
    assert!(printed.contains("count_over_time"), "{printed}");
}
