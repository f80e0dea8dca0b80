//! Pushing in every format Loki clients use, and reading it back through
//! the query, labels and series APIs of the real binary.

mod common;

use common::{Server, now_ns};
use serde_json::json;
use std::io::Write;

#[derive(Clone, PartialEq, prost::Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StreamAdapter {
    #[prost(string, tag = "1")]
    labels: String,
    #[prost(message, repeated, tag = "2")]
    entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    hash: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    timestamp: Option<ProtoTimestamp>,
    #[prost(string, tag = "2")]
    line: String,
    #[prost(message, repeated, tag = "3")]
    structured_metadata: Vec<LabelPair>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoTimestamp {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LabelPair {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

fn proto_body(labels: &str, entries: &[(i64, &str)]) -> Vec<u8> {
    let req = PushRequest {
        streams: vec![StreamAdapter {
            labels: labels.to_string(),
            entries: entries
                .iter()
                .map(|(ts, line)| EntryAdapter {
                    timestamp: Some(ProtoTimestamp {
                        seconds: ts / 1_000_000_000,
                        nanos: (ts % 1_000_000_000) as i32,
                    }),
                    line: line.to_string(),
                    structured_metadata: vec![],
                })
                .collect(),
            hash: 0,
        }],
    };
    snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(&req))
        .unwrap()
}

#[test]
fn json_gzip_deflate_and_protobuf_pushes_read_back() {
    let server = Server::start();
    let t = now_ns() - 60_000_000_000;

    let body = json!({"streams": [{"stream": {"app": "api", "env": "prod"},
        "values": [[t.to_string(), "json one"], [(t + 1).to_string(), "json two"]]}]});
    let r = server.push_json(&body);
    assert_eq!(r.status(), 204, "{}", r.text().unwrap());

    let gz_body = json!({"streams": [{"stream": {"app": "api", "env": "prod"},
        "values": [[(t + 2).to_string(), "gzip three"]]}]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(gz_body.to_string().as_bytes()).unwrap();
    let r = server
        .client
        .post(server.url("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().unwrap());

    let df_body = json!({"streams": [{"stream": {"app": "api", "env": "prod"},
        "values": [[(t + 3).to_string(), "deflate four"]]}]});
    let mut df = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    df.write_all(df_body.to_string().as_bytes()).unwrap();
    let r = server
        .client
        .post(server.url("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "deflate")
        .body(df.finish().unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().unwrap());

    let r = server
        .client
        .post(server.url("/loki/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .body(proto_body(
            r#"{app="api", env="prod"}"#,
            &[(t + 4, "proto five")],
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().unwrap());

    assert_eq!(
        server.lines(r#"{app="api"}"#, 100, "forward"),
        [
            "json one",
            "json two",
            "gzip three",
            "deflate four",
            "proto five"
        ]
    );
    assert_eq!(
        server.lines(r#"{app="api"}"#, 2, "backward"),
        ["proto five", "deflate four"]
    );
    assert_eq!(
        server.lines(
            r#"{app="api"} |= "o" != "two" |~ "f(ou|iv)r?e?""#,
            100,
            "forward"
        ),
        ["deflate four", "proto five"]
    );
    assert_eq!(
        server.lines(r#"{env=~"pr.*"} !~ "json|gzip""#, 100, "forward"),
        ["deflate four", "proto five"]
    );
    assert!(server.lines(r#"{app="nope"}"#, 100, "forward").is_empty());

    // Response shape as Grafana and logcli read it.
    let v = server.get_json(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="api"}"#),
            ("start", &common::day_ago()),
            ("limit", "1"),
        ],
    );
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "streams");
    assert_eq!(
        v["data"]["result"][0]["stream"],
        json!({"app": "api", "env": "prod"})
    );
    assert_eq!(v["data"]["result"][0]["values"][0][0], (t + 4).to_string());
    assert!(
        v["data"]["stats"]["summary"]["totalLinesProcessed"]
            .as_u64()
            .unwrap()
            >= 1
    );

    // Labels, values, series.
    let v = server.get_json("/loki/api/v1/labels", &[]);
    assert_eq!(v["data"], json!(["app", "env"]));
    let v = server.get_json("/loki/api/v1/label/env/values", &[]);
    assert_eq!(v["data"], json!(["prod"]));
    let v = server.get_json("/loki/api/v1/series", &[("match[]", r#"{app="api"}"#)]);
    assert_eq!(v["data"], json!([{"app": "api", "env": "prod"}]));
}

#[test]
fn time_parameters_in_every_form_loki_accepts() {
    let server = Server::start();
    let base_s: i64 = now_ns() / 1_000_000_000 - 600;
    let values: Vec<_> = (0..10)
        .map(|i| {
            json!([
                ((base_s + i * 10) * 1_000_000_000).to_string(),
                format!("line {i}")
            ])
        })
        .collect();
    let r = server.push_json(&json!({"streams": [{"stream": {"job": "t"}, "values": values}]}));
    assert_eq!(r.status(), 204);
    let count = |start: &str, end: &str| {
        let v = server.get_json(
            "/loki/api/v1/query_range",
            &[("query", r#"{job="t"}"#), ("start", start), ("end", end)],
        );
        v["data"]["result"][0]["values"]
            .as_array()
            .map_or(0, |a| a.len())
    };
    let s = base_s + 20;
    let e = base_s + 50; // exclusive: lines 2, 3, 4
    assert_eq!(
        count(
            &(s * 1_000_000_000).to_string(),
            &(e * 1_000_000_000).to_string()
        ),
        3,
        "nanoseconds"
    );
    assert_eq!(count(&s.to_string(), &e.to_string()), 3, "seconds");
    assert_eq!(
        count(&format!("{s}.0"), &format!("{e}.000"),),
        3,
        "float seconds"
    );
    let rfc = |secs: i64| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(count(&rfc(s), &rfc(e)), 3, "RFC 3339");
    // Default range is the last hour; `since` widens or narrows it.
    let v = server.get_json(
        "/loki/api/v1/query_range",
        &[("query", r#"{job="t"}"#), ("since", "5m")],
    );
    assert!(v["data"]["result"].as_array().unwrap().is_empty());
    let v = server.get_json("/loki/api/v1/query_range", &[("query", r#"{job="t"}"#)]);
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().unwrap().len(),
        10
    );
}

#[test]
fn structured_metadata_merged_or_categorized() {
    let server = Server::start();
    let t = now_ns() - 1_000_000_000;
    let body = json!({"streams": [{"stream": {"app": "m"}, "values": [
        [t.to_string(), "with meta", {"trace_id": "abc"}],
        [(t + 1).to_string(), "without"]
    ]}]});
    assert_eq!(server.push_json(&body).status(), 204);
    let v = server.get_json(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="m"}"#),
            ("start", &common::day_ago()),
            ("direction", "forward"),
        ],
    );
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "metadata joins the labels: {v}");
    assert!(
        result
            .iter()
            .any(|s| s["stream"] == json!({"app": "m", "trace_id": "abc"}))
    );

    let r = server
        .client
        .get(server.url("/loki/api/v1/query_range"))
        .header("X-Loki-Response-Encoding-Flags", "categorize-labels")
        .query(&[
            ("query", r#"{app="m"}"#),
            ("start", &common::day_ago()),
            ("direction", "forward"),
        ])
        .send()
        .unwrap();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["data"]["encodingFlags"], json!(["categorize-labels"]));
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["stream"], json!({"app": "m"}));
    assert_eq!(
        result[0]["values"][0][2]["structuredMetadata"],
        json!({"trace_id": "abc"})
    );
}

#[test]
fn tenants_see_only_their_own_streams() {
    let server = Server::start();
    let t = now_ns().to_string();
    let body = |line: &str| json!({"streams": [{"stream": {"app": "x"}, "values": [[t, line]]}]});
    assert_eq!(
        server
            .push_json_tenant("team-a", &body("a's line"))
            .status(),
        204
    );
    assert_eq!(
        server
            .push_json_tenant("team-b", &body("b's line"))
            .status(),
        204
    );
    let r = server
        .client
        .get(server.url("/loki/api/v1/query_range"))
        .header("X-Scope-OrgID", "team-a")
        .query(&[("query", r#"{app="x"}"#), ("start", &common::day_ago())])
        .send()
        .unwrap();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["data"]["result"][0]["values"][0][1], "a's line");
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1);
    assert!(
        server.lines(r#"{app="x"}"#, 10, "forward").is_empty(),
        "default tenant sees nothing"
    );
}

#[test]
fn sigterm_flushes_into_segments_and_restart_serves_them() {
    let mut server = Server::start();
    let t = now_ns() - 1_000_000_000;
    let values: Vec<_> = (0..500)
        .map(|i| json!([(t + i).to_string(), format!("entry {i}")]))
        .collect();
    assert_eq!(
        server
            .push_json(&json!({"streams": [{"stream": {"app": "f"}, "values": values}]}))
            .status(),
        204
    );
    let status = server.stop();
    assert!(status.success(), "exit status {status}");
    assert!(
        !common::segment_files(&server.data_dir()).is_empty(),
        "a segment was written at shutdown"
    );
    server.start_again();
    let lines = server.lines(r#"{app="f"}"#, 1000, "forward");
    assert_eq!(lines.len(), 500);
    assert_eq!(lines[0], "entry 0");
    assert_eq!(lines[499], "entry 499");
}

/// Block filters let a needle search skip blocks that cannot hold it,
/// for `|=` and for case-insensitive regexes of a literal alike.
#[test]
fn needle_searches_skip_blocks_case_insensitively_too() {
    let mut server = Server::start();
    let t = now_ns() - 60_000_000_000;
    let streams: Vec<_> = ["alpha", "bravo", "Needle-Word here", "delta"]
        .iter()
        .enumerate()
        .map(|(i, word)| {
            let values: Vec<_> = (0..50)
                .map(|j| json!([(t + j).to_string(), format!("{word} line {j}")]))
                .collect();
            json!({"stream": {"app": "skip", "part": i.to_string()}, "values": values})
        })
        .collect();
    let r = server.push_json(&json!({ "streams": streams }));
    assert_eq!(r.status(), 204);
    // Into a segment: one chunk per stream, each with its filter.
    server.restart();
    for query in [
        r#"{app="skip"} |= "needle-word""#,
        r#"{app="skip"} |~ "(?i)NEEDLE-WORD""#,
    ] {
        let v = server.get_json(
            "/loki/api/v1/query_range",
            &[
                ("query", query),
                ("start", &common::day_ago()),
                ("limit", "1000"),
            ],
        );
        let found: usize = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["values"].as_array().unwrap().len())
            .sum();
        let skipped = v["data"]["stats"]["querier"]["skald"]["chunksSkippedByFilters"]
            .as_u64()
            .unwrap_or_else(|| panic!("no skip count in {}", v["data"]["stats"]));
        if query.contains("(?i)") {
            assert_eq!(found, 50, "{query}");
        } else {
            // `|=` is case-sensitive: the block is read, nothing matches.
            assert_eq!(found, 0, "{query}");
        }
        assert_eq!(skipped, 3, "{query}");
    }
}
