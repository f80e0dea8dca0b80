//! Per-tenant limits against the real binary: each ingest limit refused
//! with Loki's words and status and nothing of the refused push stored;
//! the file re-read on SIGHUP (a bad file keeps the values in force);
//! `GetUserQuota` showing the limits with usage; and a tenant pushing flat
//! out at its rate limit beside a quiet one.

mod common;

use common::{Server, now_ns};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const LIMITS: &str = r#"
[limits]
max_line_size = "100B"
max_label_names_per_series = 3
max_label_name_length = 10
max_label_value_length = 10
reject_old_samples_max_age = "1h"
creation_grace_period = "1m"

[tenants.truncate]
max_line_size_truncate = true

[tenants.rate]
ingestion_rate_mb = 0.01
ingestion_burst_size_mb = 0.01

[tenants.stream-rate]
per_stream_rate_limit = "1KB"
per_stream_rate_limit_burst = "2KB"
max_line_size = "10KB"

[tenants.streams]
max_streams_per_user = 2
"#;

fn body(streams: &[(Value, Vec<(i64, String)>)]) -> Value {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(labels, values)| {
            let values: Vec<Value> = values
                .iter()
                .map(|(ts, l)| json!([ts.to_string(), l]))
                .collect();
            json!({"stream": labels, "values": values})
        })
        .collect();
    json!({ "streams": streams })
}

fn one(labels: Value, ts: i64, line: &str) -> Value {
    body(&[(labels, vec![(ts, line.to_string())])])
}

fn push(s: &Server, tenant: &str, body: &Value) -> (u16, String) {
    let r = s.push_json_tenant(tenant, body);
    (r.status().as_u16(), r.text().unwrap())
}

fn stored(s: &Server, tenant: &str, query: &str) -> Vec<String> {
    let r = reqwest::blocking::Client::new()
        .get(s.url("/loki/api/v1/query_range"))
        .header("X-Scope-OrgID", tenant)
        .query(&[
            ("query", query),
            ("start", &(now_ns() - 3_600_000_000_000).to_string()),
            ("limit", "1000"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().unwrap();
    let mut out = Vec::new();
    for st in v["data"]["result"].as_array().unwrap() {
        for e in st["values"].as_array().unwrap() {
            out.push(e[1].as_str().unwrap().to_string());
        }
    }
    out
}

fn server_with(config: &str) -> (Server, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skald.toml");
    std::fs::write(&path, config).unwrap();
    let s = Server::start_with(&["--config", path.to_str().unwrap()]);
    (s, dir, path)
}

#[test]
fn each_ingest_limit_is_refused_with_lokis_message_and_nothing_refused_is_stored() {
    let (s, _dir, _) = server_with(LIMITS);
    let t = now_ns();
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "max_line_size",
            "fake",
            one(json!({"app": "line"}), t, &"x".repeat(200)),
            400,
            "max entry size '100' bytes exceeded for stream '{app=\"line\"}' while adding an entry with length '200' bytes",
        ),
        (
            "max_label_names_per_series",
            "fake",
            one(json!({"a": "1", "b": "2", "c": "3", "d": "4"}), t, "l"),
            400,
            "has 4 label names; limit 3",
        ),
        (
            "max_label_name_length",
            "fake",
            one(json!({"a_very_long_name": "1"}), t, "l"),
            400,
            "has label name too long: 'a_very_long_name'",
        ),
        (
            "max_label_value_length",
            "fake",
            one(json!({"app": "a-very-long-value"}), t, "l"),
            400,
            "has label value too long: 'a-very-long-value'",
        ),
        (
            "reject_old_samples_max_age",
            "fake",
            one(json!({"app": "old"}), t - 2 * 3_600_000_000_000, "l"),
            400,
            "has timestamp too old",
        ),
        (
            "creation_grace_period",
            "fake",
            one(json!({"app": "new"}), t + 600_000_000_000, "l"),
            400,
            "has timestamp too new",
        ),
        (
            "ingestion_rate_mb",
            "rate",
            body(&[
                (
                    json!({"app": "r1"}),
                    (0..10).map(|i| (t + i, "y".repeat(90))).collect(),
                ),
                (
                    json!({"app": "r2"}),
                    (0..200).map(|i| (t + i, "y".repeat(90))).collect(),
                ),
            ]),
            429,
            "ingestion rate limit exceeded for user rate (limit: 10485 bytes/sec) while attempting to ingest '210' lines totaling",
        ),
        (
            "per_stream_rate_limit",
            "stream-rate",
            one(json!({"app": "hot"}), t, &"z".repeat(3000)),
            429,
            "per stream rate limit exceeded (limit: 1KB/sec) while attempting to ingest for stream '{app=\"hot\"}'",
        ),
    ];
    for (limit, tenant, request, status, message) in &cases {
        let (got, text) = push(&s, tenant, request);
        assert_eq!(got, *status, "{limit}: {text}");
        assert!(text.contains(message), "{limit}: {text}");
        assert!(text.contains(limit), "{limit}: the limit is named: {text}");
        assert!(
            stored(&s, tenant, r#"{app=~".+"}"#).is_empty(),
            "{limit}: nothing stored"
        );
    }
    // The rate-limited tenant is named, with its value.
    let (_, text) = push(&s, "rate", &cases[6].2);
    assert!(
        text.contains("for user rate") && text.contains("ingestion_rate_mb = 0.01"),
        "{text}"
    );

    // Active streams: the third new stream is refused, the two first kept.
    let three = body(&[
        (json!({"app": "s1"}), vec![(t, "1".into())]),
        (json!({"app": "s2"}), vec![(t, "2".into())]),
        (json!({"app": "s3"}), vec![(t, "3".into())]),
    ]);
    let (got, text) = push(&s, "streams", &three);
    assert_eq!(got, 429, "{text}");
    assert!(
        text.contains(
            "maximum active stream limit exceeded when trying to create stream {app=\"s3\"}"
        ) && text.contains("user: 'streams'")
            && text.contains("max_streams_per_user"),
        "{text}"
    );
    let mut kept = stored(&s, "streams", r#"{app=~".+"}"#);
    kept.sort();
    assert_eq!(kept, vec!["1", "2"]);

    // max_line_size_truncate: stored, cut to size.
    let (got, text) = push(
        &s,
        "truncate",
        &one(json!({"app": "t"}), t, &"w".repeat(150)),
    );
    assert_eq!(got, 204, "{text}");
    assert_eq!(
        stored(&s, "truncate", r#"{app="t"}"#),
        vec!["w".repeat(100)]
    );

    // Under the limits, other tenants' pushes pass.
    let (got, text) = push(&s, "fake", &one(json!({"app": "ok"}), t, "fine"));
    assert_eq!(got, 204, "{text}");
    let c = s.get("/metrics", &[]).1;
    assert!(c.contains("skald_rejected_entries_total"), "{c}");
}

#[test]
fn grpc_push_over_a_rate_limit_is_resource_exhausted() {
    use skald_server::grpc::proto;
    let (s, _dir, _) = server_with(LIMITS);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = proto::log_service_client::LogServiceClient::connect(s.grpc_url())
            .await
            .unwrap();
        let stream = proto::Stream {
            labels: vec![proto::Label {
                name: "app".into(),
                value: "hot".into(),
            }],
            entries: vec![proto::Entry {
                timestamp_ns: now_ns(),
                line: "z".repeat(3000),
                structured_metadata: vec![],
            }],
        };
        let mut req = tonic::Request::new(proto::PushLogBatchRequest {
            streams: vec![stream],
        });
        req.metadata_mut()
            .insert("x-scope-orgid", "stream-rate".parse().unwrap());
        let err = c.push_log_batch(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
        assert!(
            err.message().contains("per stream rate limit exceeded"),
            "{err:?}"
        );

        let mut req = tonic::Request::new(proto::GetUserQuotaRequest {});
        req.metadata_mut()
            .insert("x-scope-orgid", "streams".parse().unwrap());
        let q = c.get_user_quota(req).await.unwrap().into_inner();
        let row = |name: &str| {
            q.limits
                .iter()
                .find(|l| l.name == name)
                .unwrap_or_else(|| panic!("{name} in {:?}", q.limits))
                .clone()
        };
        assert_eq!(row("max_streams_per_user").value, "2");
        assert_eq!(row("max_streams_per_user").usage, "0 active streams");
        assert_eq!(row("max_line_size").value, "100B");
        assert_eq!(row("reject_old_samples_max_age").value, "1h");
        assert_eq!(q.max_line_bytes, 100);
        for name in [
            "ingestion_rate_mb",
            "ingestion_burst_size_mb",
            "per_stream_rate_limit",
            "per_stream_rate_limit_burst",
            "max_line_size_truncate",
            "max_query_length",
            "max_query_lookback",
            "max_entries_limit_per_query",
            "max_query_series",
            "max_query_bytes_read",
            "query_timeout",
            "max_concurrent_queries",
            "max_export_jobs",
            "retention_period",
            "retention_stream",
            "retention_max_bytes",
        ] {
            row(name);
        }
    });
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    // A bound, not a speed check: the reload is asynchronous.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn limits_are_reloaded_on_sighup_and_a_bad_file_keeps_the_values_in_force() {
    let (s, _dir, path) = server_with("[limits]\nmax_line_size = \"100B\"\n");
    let t = now_ns();
    let line = |n: usize| one(json!({"app": "r"}), t, &"x".repeat(n));
    assert_eq!(push(&s, "a", &line(200)).0, 400);

    std::fs::write(&path, "[limits]\nmax_line_size = \"1KB\"\n").unwrap();
    s.signal("HUP");
    wait_for("the new limit", || push(&s, "a", &line(200)).0 == 204);
    wait_for("the change logged", || {
        s.log().contains("limit changed") && s.log().contains("max_line_size")
    });
    assert_eq!(push(&s, "a", &line(2000)).0, 400);

    std::fs::write(&path, "[limits]\nmax_line_size = \"lots\"\n").unwrap();
    s.signal("HUP");
    wait_for("the bad file reported", || {
        s.log().contains("configuration not reloaded") && s.log().contains("invalid size")
    });
    assert_eq!(push(&s, "a", &line(300)).0, 204, "1KB still in force");
    assert_eq!(push(&s, "a", &line(2000)).0, 400, "1KB still in force");
    // Still serving after all that.
    assert_eq!(s.get("/ready", &[]).0, 200);
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// Tenant B's push latency alone, then beside tenant A pushing flat out
/// at its rate limit: B must not notice (A's refused pushes are cheap and
/// never reach the WAL). Prints the figures.
#[test]
fn a_tenant_at_its_rate_limit_does_not_slow_another_tenants_pushes() {
    let (s, _dir, _) =
        server_with("[tenants.noisy]\ningestion_rate_mb = 0.1\ningestion_burst_size_mb = 0.1\n");
    let url = s.url("/loki/api/v1/push");
    let quiet = |n: usize| -> Vec<Duration> {
        let client = reqwest::blocking::Client::new();
        (0..n)
            .map(|i| {
                let b = one(
                    json!({"app": "quiet"}),
                    now_ns(),
                    &format!("quiet {i} {}", "q".repeat(200)),
                );
                let start = Instant::now();
                let r = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("X-Scope-OrgID", "quiet")
                    .body(b.to_string())
                    .send()
                    .unwrap();
                assert_eq!(r.status().as_u16(), 204);
                start.elapsed()
            })
            .collect()
    };
    quiet(20);
    let alone = quiet(300);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noisy: Vec<_> = (0..2)
        .map(|w| {
            let stop = stop.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let (mut ok, mut limited) = (0u64, 0u64);
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let values: Vec<(i64, String)> = (0..50)
                        .map(|j| {
                            (
                                now_ns() + j,
                                format!("noisy {w} {i} {j} {}", "n".repeat(150)),
                            )
                        })
                        .collect();
                    let b = body(&[(json!({"app": "noisy", "w": w.to_string()}), values)]);
                    let r = client
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .header("X-Scope-OrgID", "noisy")
                        .body(b.to_string())
                        .send()
                        .unwrap();
                    match r.status().as_u16() {
                        204 => ok += 1,
                        429 => limited += 1,
                        other => panic!("noisy push answered {other}"),
                    }
                    i += 1;
                }
                (ok, limited)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let beside = quiet(300);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut limited) = (0, 0);
    for n in noisy {
        let (o, l) = n.join().unwrap();
        ok += o;
        limited += l;
    }
    let (a, b) = (p99(alone.clone()), p99(beside.clone()));
    let ratio = b.as_secs_f64() / a.as_secs_f64();
    println!(
        "noisy neighbour: quiet tenant push p99 alone {:.2} ms, beside the noisy one {:.2} ms, ratio {ratio:.2}; medians {:.2} / {:.2} ms; noisy pushes {ok} accepted, {limited} refused (429)",
        a.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        p99_at(alone, 50).as_secs_f64() * 1e3,
        p99_at(beside, 50).as_secs_f64() * 1e3,
    );
    assert!(limited > 0, "the noisy tenant reached its limit");
    // The target is under 2x; the bound leaves room for a shared machine.
    assert!(
        ratio < 4.0,
        "quiet tenant's p99 grew {ratio:.2}x beside the noisy one"
    );
}

fn p99_at(mut v: Vec<Duration>, pct: usize) -> Duration {
    v.sort();
    v[(v.len() * pct / 100).min(v.len() - 1)]
}

/// A query as `tenant` at `now` (instant) or over the hour before it
/// (range, limit 4000): the status and the start of the body, enough to
/// tell what happened without a page of entries.
fn ask_at(s: &Server, now: i64, tenant: &str, path: &str, query: &str) -> (u16, String) {
    let r = reqwest::blocking::Client::new()
        .get(s.url(path))
        .header("X-Scope-OrgID", tenant)
        .query(&[
            ("query", query),
            ("time", &now.to_string()),
            ("start", &(now - 3_600_000_000_000).to_string()),
            ("end", &now.to_string()),
            ("limit", "4000"),
        ])
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (status, text.chars().take(400).collect())
}

/// `max_query_memory`, the server's and a tenant's: a metric query whose
/// series do not fit at a single step, and a log query whose kept entries
/// do not fit, fail with 400 naming the setting; within it, the same
/// queries answer, and nothing stored is touched.
#[test]
fn a_query_past_max_query_memory_fails_naming_it() {
    let (s, _dir, _path) = server_with(
        r#"
[http]
max_query_memory = 65536
[tenants.roomy]
max_query_memory = "64MB"
[tenants.tight]
max_query_memory = "32KB"
"#,
    );
    let now = now_ns();
    let lines: Vec<(i64, String)> = (0..4000)
        .map(|i| {
            (
                now - 60_000_000_000 + i * 1_000_000,
                format!("level=info id=req-{i:05} msg=\"{}\"", "x".repeat(40)),
            )
        })
        .collect();
    for tenant in ["fake", "roomy", "tight"] {
        let (status, text) = push(&s, tenant, &body(&[(json!({"job": "mem"}), lines.clone())]));
        assert_eq!(status, 204, "{text}");
    }
    let metric = r#"count(sum by (id) (count_over_time({job="mem"} | logfmt [5m])))"#;
    let log = r#"{job="mem"} | logfmt | line_format "{{ .msg }}{{ .msg }}{{ .msg }}""#;
    let ask = |tenant: &str, path: &str, query: &str| ask_at(&s, now, tenant, path, query);
    // The server's 64 KiB, and a tenant's own 32 KB under it.
    for tenant in ["fake", "tight"] {
        let (status, text) = ask(tenant, "/loki/api/v1/query", metric);
        assert_eq!(status, 400, "{tenant}: {text}");
        assert!(text.contains("max_query_memory"), "{tenant}: {text}");
        let (status, text) = ask(tenant, "/loki/api/v1/query_range", log);
        assert_eq!(status, 400, "{tenant}: {text}");
        assert!(text.contains("max_query_memory"), "{tenant}: {text}");
    }
    // A tenant's larger value does not pass the server's ceiling...
    let (status, text) = ask("roomy", "/loki/api/v1/query", metric);
    assert_eq!(status, 400, "{text}");
    drop(s);

    // ...and with the default ceiling the same queries answer in full.
    let (s, _dir, _path) = server_with("[tenants.tight]\nmax_query_memory = \"32KB\"\n");
    for tenant in ["fake", "tight"] {
        let (status, text) = push(&s, tenant, &body(&[(json!({"job": "mem"}), lines.clone())]));
        assert_eq!(status, 204, "{text}");
    }
    let ask = |tenant: &str, path: &str, query: &str| ask_at(&s, now, tenant, path, query);
    let (status, text) = ask("fake", "/loki/api/v1/query", metric);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(r#""value":["#) && text.contains(r#","4000"]"#),
        "{text}"
    );
    let (status, text) = ask("fake", "/loki/api/v1/query_range", log);
    assert_eq!(status, 200, "{text}");
    let (status, text) = ask("tight", "/loki/api/v1/query", metric);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("max_query_memory"), "{text}");
    // The refused queries changed nothing stored, and a query that holds
    // little still answers within the tenant's 32 KB.
    let (status, text) = ask(
        "tight",
        "/loki/api/v1/query",
        r#"sum(count_over_time({job="mem"}[1h]))"#,
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#","4000"]"#), "{text}");
    assert_eq!(stored(&s, "fake", r#"{job="mem"}"#).len(), 1000);
}
