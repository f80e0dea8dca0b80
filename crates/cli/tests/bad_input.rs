//! Every kind of bad input gets a clear 4xx and changes nothing stored.

mod common;

use common::{Server, now_ns};
use serde_json::json;

fn push_raw(
    server: &Server,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = server
        .client
        .post(server.url("/loki/api/v1/push"))
        .header("Content-Type", content_type);
    if let Some(e) = encoding {
        req = req.header("Content-Encoding", e);
    }
    let r = req.body(body).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[test]
fn bad_pushes_are_refused_and_change_nothing() {
    let server = Server::start();
    let t = now_ns();
    let good =
        json!({"streams": [{"stream": {"app": "keep"}, "values": [[t.to_string(), "kept"]]}]});
    assert_eq!(server.push_json(&good).status(), 204);
    let before = server.lines(r#"{app="keep"}"#, 100, "forward");

    let stream = |labels: serde_json::Value, values: serde_json::Value| json!({"streams": [{"stream": labels, "values": values}]});
    let ts = t.to_string();
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "malformed json",
            b"{\"streams\": [".to_vec(),
            "application/json",
            400,
            "",
        ),
        (
            "not json at all",
            b"hello".to_vec(),
            "application/json",
            400,
            "",
        ),
        (
            "bad label name",
            stream(json!({"1app": "x"}), json!([[ts, "l"]]))
                .to_string()
                .into_bytes(),
            "application/json",
            400,
            "1app",
        ),
        (
            "empty label set",
            stream(json!({}), json!([[ts, "l"]]))
                .to_string()
                .into_bytes(),
            "application/json",
            400,
            "label",
        ),
        (
            "timestamp not a number",
            stream(json!({"app": "x"}), json!([["abc", "l"]]))
                .to_string()
                .into_bytes(),
            "application/json",
            400,
            "abc",
        ),
        (
            "timestamp too new",
            stream(
                json!({"app": "x"}),
                json!([[(t + 3_600_000_000_000i64).to_string(), "l"]]),
            )
            .to_string()
            .into_bytes(),
            "application/json",
            400,
            "too new",
        ),
        (
            "timestamp too old",
            stream(json!({"app": "x"}), json!([["1000000000000000000", "l"]]))
                .to_string()
                .into_bytes(),
            "application/json",
            400,
            "too old",
        ),
        (
            "line too long",
            stream(json!({"app": "x"}), json!([[ts, "x".repeat(300 * 1024)]]))
                .to_string()
                .into_bytes(),
            "application/json",
            400,
            "max entry size",
        ),
        (
            "label value too long",
            stream(json!({"app": "x".repeat(3000)}), json!([[ts, "l"]]))
                .to_string()
                .into_bytes(),
            "application/json",
            400,
            "long",
        ),
        (
            "garbage protobuf",
            b"\x00\x01\x02garbage".to_vec(),
            "application/x-protobuf",
            400,
            "",
        ),
    ];
    for (what, body, ct, status, needle) in cases {
        let (got, msg) = push_raw(&server, ct, None, body);
        assert_eq!(got, status, "{what}: {msg}");
        assert!(
            msg.contains(needle),
            "{what}: message {msg:?} should mention {needle:?}"
        );
        assert!(!msg.trim().is_empty(), "{what}: empty message");
    }
    let (got, msg) = push_raw(
        &server,
        "application/json",
        Some("gzip"),
        b"not gzip".to_vec(),
    );
    assert_eq!(got, 400, "bad gzip: {msg}");

    // Duplicate label names can only be sent in the protobuf selector form.
    // Nothing above was stored, and the good data is intact.
    assert_eq!(server.lines(r#"{app="keep"}"#, 100, "forward"), before);
    assert!(server.lines(r#"{app="x"}"#, 100, "forward").is_empty());
    let v = server.get_json("/loki/api/v1/label/app/values", &[]);
    assert_eq!(v["data"], json!(["keep"]));
}

#[test]
fn a_request_mixing_good_and_bad_streams_stores_the_good_ones() {
    let server = Server::start();
    let ts = now_ns().to_string();
    let body = json!({"streams": [
        {"stream": {"app": "good"}, "values": [[ts, "stored"]]},
        {"stream": {"bad-name": "x"}, "values": [[ts, "refused"]]},
    ]});
    let r = server.push_json(&body);
    assert_eq!(r.status(), 400);
    let msg = r.text().unwrap();
    assert!(
        msg.contains("bad-name") && msg.contains("1 entries refused, 1 stored"),
        "{msg}"
    );
    assert_eq!(server.lines(r#"{app="good"}"#, 10, "forward"), ["stored"]);
}

#[test]
fn oversized_bodies_get_413() {
    let server = Server::start_with(&["--config", "/dev/null"]);
    let big = vec![b' '; 70 * 1024 * 1024];
    let (status, body) = push_raw(&server, "application/json", None, big.clone());
    assert_eq!(status, 413);
    // The message names the setting to raise.
    assert!(
        body.contains("max_push_body_bytes") && body.contains("67108864"),
        "{body}"
    );
    // OTLP's endpoint shares the limit and the message.
    let r = reqwest::blocking::Client::new()
        .post(server.url("/otlp/v1/logs"))
        .header("Content-Type", "application/x-protobuf")
        .body(big)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert!(r.text().unwrap().contains("max_push_body_bytes"));
}

#[test]
fn bad_queries_get_400_with_a_reason() {
    let server = Server::start();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("query", "{app=\"x\"")], "parse error"),
        (&[("query", "{}")], ""),
        (&[("query", "{app=~\".*\"}")], ""),
        (&[("query", "{app=\"x\"} |~ \"(\"")], "regex"),
        (&[("query", "{app=\"x\"}"), ("limit", "-1")], "limit"),
        (&[("query", "{app=\"x\"}"), ("limit", "100000")], "limit"),
        (
            &[("query", "{app=\"x\"}"), ("direction", "sideways")],
            "direction",
        ),
        (&[("query", "{app=\"x\"}"), ("start", "yesterday")], "start"),
        (
            &[("query", "{app=\"x\"}"), ("start", "200"), ("end", "100")],
            "end",
        ),
        (&[], "query"),
    ];
    for (params, needle) in cases {
        let (status, body) = server.get("/loki/api/v1/query_range", params);
        assert_eq!(status, 400, "{params:?}: {body}");
        assert!(
            body.to_lowercase().contains(needle),
            "{params:?}: {body:?} should mention {needle:?}"
        );
    }
    let (status, body) = server.get("/loki/api/v1/series", &[]);
    assert_eq!(status, 400, "{body}");
    let r = server
        .client
        .get(server.url("/loki/api/v1/labels"))
        .header("X-Scope-OrgID", "../etc")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}
