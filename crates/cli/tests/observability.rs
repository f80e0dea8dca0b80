//! Audit log, monitoring, per-tenant query limits and multi-tenant reads
//! against the real binary.
//!
//! - Every audited action leaves one JSON line naming who, what and the
//!   outcome, over HTTP and over gRPC, refused ones included, and never
//!   the token; token and limit changes are recorded too.
//! - `/metrics` exports what `operations/alerts.yaml` and
//!   `operations/dashboard.json` use (the rules also pass
//!   `promtool check rules`), with per-tenant series.
//! - Query limits come from the tenant's own limits, reloaded on SIGHUP.
//! - `X-Scope-OrgID: a|b` reads both tenants when authorised for both:
//!   queries, labels, label values, series, index stats, volumes, tail.
//! - `skald push`, `skald query` and `skald tail` work against `--auth`.

mod common;

use common::{Server, create_token, now_ns, wait_until};
use serde_json::{Value, json};
use skald_server::grpc::proto;
use skald_server::grpc::proto::log_service_client::LogServiceClient;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn skald(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("running skald")
}

/// `(status, body)` of a request with an optional token and tenant header.
fn call(
    s: &Server,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    token: Option<&str>,
    org: Option<&str>,
    body: Option<String>,
) -> (u16, String) {
    let mut req = s
        .client
        .request(method.parse().unwrap(), s.url(path))
        .query(params);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(o) = org {
        req = req.header("X-Scope-OrgID", o);
    }
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(b);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    (status, r.text().unwrap())
}

fn push(s: &Server, token: Option<&str>, org: Option<&str>, streams: Value) {
    let body = json!({ "streams": streams }).to_string();
    let (status, text) = call(s, "POST", "/loki/api/v1/push", &[], token, org, Some(body));
    assert_eq!(status, 204, "{text}");
}

fn lines(app: &str, prefix: &str, n: i64, at: i64) -> Value {
    let values: Vec<Value> = (0..n)
        .map(|i| json!([(at + i).to_string(), format!("{prefix} {i}")]))
        .collect();
    json!({ "stream": { "app": app }, "values": values })
}

fn range(query: &str, start: i64, limit: &str) -> Vec<(String, String)> {
    vec![
        ("query".into(), query.into()),
        ("start".into(), start.to_string()),
        ("end".into(), (now_ns() + 1_000_000_000).to_string()),
        ("limit".into(), limit.into()),
    ]
}

fn pairs(p: &[(String, String)]) -> Vec<(&str, &str)> {
    p.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn grpc_req<T>(msg: T, token: Option<&str>, org: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    if let Some(o) = org {
        r.metadata_mut().insert("x-scope-orgid", o.parse().unwrap());
    }
    r
}

fn audit_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every audit line is JSON"))
        .collect()
}

fn find(records: &[Value], f: impl Fn(&Value) -> bool) -> Option<&Value> {
    records.iter().find(|r| f(r))
}

#[test]
fn audit_log_records_http_and_grpc_actions_refusals_and_changes() {
    let logs = tempfile::tempdir().unwrap();
    let audit = logs.path().join("audit.log");
    let config = logs.path().join("skald.toml");
    std::fs::write(&config, "[audit]\ntenant = \"audit\"\n").unwrap();
    let s = Server::start_with(&[
        "--auth",
        "--audit-log",
        audit.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let pusher = create_token(&s, "alpha", "push", "alpha-push");
    let reader = create_token(&s, "alpha", "read", "alpha-reader");
    let admin = create_token(&s, "alpha", "admin", "alpha-admin");
    let auditor = create_token(&s, "audit", "read", "auditor");
    wait_until("tokens loaded", || {
        call(
            &s,
            "GET",
            "/loki/api/v1/labels",
            &[],
            Some(&reader),
            None,
            None,
        )
        .0 == 200
    });
    let t0 = now_ns() - 60_000_000_000;
    push(
        &s,
        Some(&pusher),
        None,
        json!([lines("api", "hello", 3, t0)]),
    );

    // HTTP: a query, a refused one (another tenant), one without a token,
    // a delete.
    let q = range(r#"{app="api"} |= "hello""#, t0 - 1, "10");
    let (status, body) = call(
        &s,
        "GET",
        "/loki/api/v1/query_range",
        &pairs(&q),
        Some(&reader),
        None,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(
        &s,
        "GET",
        "/loki/api/v1/query_range",
        &pairs(&q),
        Some(&reader),
        Some("beta"),
        None,
    );
    assert_eq!(status, 403);
    let (status, _) = call(
        &s,
        "GET",
        "/loki/api/v1/query_range",
        &pairs(&q),
        None,
        None,
        None,
    );
    assert_eq!(status, 401);
    let (status, _) = call(
        &s,
        "POST",
        "/loki/api/v1/push",
        &[],
        Some(&reader),
        None,
        Some("{}".into()),
    );
    assert_eq!(status, 403, "a read token may not push");
    let (status, body) = call(
        &s,
        "POST",
        "/loki/api/v1/delete",
        &[("query", r#"{app="gone"}"#), ("start", "0")],
        Some(&admin),
        None,
        None,
    );
    assert_eq!(status, 204, "{body}");

    // gRPC: a query and a refused one.
    let grpc = s.grpc_url();
    rt().block_on(async {
        let mut c = LogServiceClient::connect(grpc).await.unwrap();
        let q = proto::QueryLogsRequest {
            query: r#"{app="api"}"#.into(),
            start_ns: t0 - 1,
            end_ns: now_ns() + 1_000_000_000,
            limit: 2,
            ..Default::default()
        };
        let r = c
            .query_logs(grpc_req(q.clone(), Some(&reader), None))
            .await
            .unwrap();
        assert!(!r.into_inner().streams.is_empty());
        let e = c
            .query_logs(grpc_req(q, Some("skald_0_bad"), None))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    });

    // A token revoked while the server runs is recorded once the server
    // notices (at its next authenticated request).
    let out = skald(
        &[
            "token",
            "revoke",
            "--data-dir",
            s.data_dir().to_str().unwrap(),
            "alpha-admin",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    wait_until("revocation noticed", || {
        call(
            &s,
            "GET",
            "/loki/api/v1/labels",
            &[],
            Some(&admin),
            None,
            None,
        )
        .0 == 401
    });

    let records = audit_records(&audit);
    let text = std::fs::read_to_string(&audit).unwrap();
    for secret in [&pusher, &reader, &admin, &auditor] {
        assert!(
            !text.contains(secret.as_str()),
            "a token is in the audit log"
        );
    }
    let http_query = find(&records, |r| {
        r["action"] == "query" && r["protocol"] == "http" && r["result"] == "ok"
    })
    .unwrap_or_else(|| panic!("no HTTP query record in {text}"));
    assert_eq!(http_query["tenant"], "alpha");
    assert_eq!(http_query["subject"], "alpha-reader");
    assert_eq!(http_query["route"], "/loki/api/v1/query_range");
    assert_eq!(http_query["entries"], 3);
    assert!(http_query["target"].as_str().unwrap().contains("hello"));
    assert!(http_query["params"]["limit"] == 10, "{http_query}");
    assert!(
        http_query["remote"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{http_query}"
    );
    let grpc_query = find(&records, |r| {
        r["action"] == "query" && r["protocol"] == "grpc"
    })
    .unwrap_or_else(|| panic!("no gRPC query record in {text}"));
    assert_eq!(grpc_query["route"], "/skald.v1.LogService/QueryLogs");
    assert_eq!(grpc_query["entries"], 2);
    assert!(grpc_query["remote"].as_str().is_some(), "{grpc_query}");
    // Refused before the query ran: recorded as a refused authorisation
    // of the route.
    let refused = find(&records, |r| {
        r["route"] == "/loki/api/v1/query_range"
            && r["result"] == "refused"
            && r["tenant"] == "beta"
    })
    .unwrap_or_else(|| panic!("no refused query in {text}"));
    assert_eq!(refused["subject"], "alpha-reader");
    assert_eq!(refused["code"], "PermissionDenied");
    assert_eq!(refused["status"], 403);
    assert_eq!(refused["tenant"], "beta");
    let unauthenticated: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "authenticate")
        .collect();
    assert!(
        unauthenticated.iter().any(|r| r["protocol"] == "http")
            && unauthenticated.iter().any(|r| r["protocol"] == "grpc"),
        "{text}"
    );
    assert!(unauthenticated.iter().all(|r| r["status"] == 401));
    let push_refused = find(&records, |r| {
        r["action"] == "authorize" && r["route"] == "/loki/api/v1/push"
    })
    .unwrap_or_else(|| panic!("no refused push in {text}"));
    assert_eq!(push_refused["route"], "/loki/api/v1/push");
    let delete = find(&records, |r| r["action"] == "delete")
        .unwrap_or_else(|| panic!("no delete in {text}"));
    assert_eq!(delete["target"], r#"{app="gone"}"#);
    assert_eq!(delete["params"]["start_ns"], 0);
    assert_eq!(delete["subject"], "alpha-admin");
    let revoked = find(&records, |r| r["action"] == "token.revoke")
        .unwrap_or_else(|| panic!("no token revocation in {text}"));
    assert_eq!(revoked["target"], "alpha-admin");
    assert_eq!(revoked["params"]["role"], "admin");
    assert!(
        find(&records, |r| r["action"] == "token.create").is_some(),
        "{text}"
    );

    // The same records are queryable in the audit tenant.
    let q = range(r#"{source="audit", action="query"}"#, t0, "100");
    wait_until("audit tenant holds the queries", || {
        let (status, body) = call(
            &s,
            "GET",
            "/loki/api/v1/query_range",
            &pairs(&q),
            Some(&auditor),
            None,
            None,
        );
        status == 200 && body.contains("alpha-reader") && body.contains("grpc")
    });
}

/// Metric names a rules or dashboard file refers to (`skald_…`), with a
/// histogram's `_bucket`, `_sum` and `_count` taken off.
fn referenced_metrics(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("skald_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                name = base;
            }
        }
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
        rest = &tail[end..];
    }
    out
}

#[test]
fn metrics_cover_what_the_alerts_and_dashboard_use() {
    let s = Server::start();
    let t0 = now_ns() - 60_000_000_000;
    push(&s, None, Some("alpha"), json!([lines("api", "x", 5, t0)]));
    // An empty label set and a too-long label value are refused and
    // counted by reason.
    let body = json!({"streams": [
        {"stream": {}, "values": [[t0.to_string(), "no labels"]]},
        {"stream": {"app": "v".repeat(3000)}, "values": [[t0.to_string(), "long"]]},
    ]})
    .to_string();
    let (status, _) = call(
        &s,
        "POST",
        "/loki/api/v1/push",
        &[],
        None,
        Some("alpha"),
        Some(body),
    );
    assert_eq!(status, 400);
    let q = range(r#"{app="api"}"#, t0 - 1, "10");
    let (status, _) = call(
        &s,
        "GET",
        "/loki/api/v1/query_range",
        &pairs(&q),
        None,
        Some("alpha"),
        None,
    );
    assert_eq!(status, 200);
    let grpc = s.grpc_url();
    rt().block_on(async {
        let mut c = LogServiceClient::connect(grpc).await.unwrap();
        let bad = proto::QueryLogsRequest {
            query: "{".into(),
            ..Default::default()
        };
        let e = c
            .query_logs(grpc_req(bad, None, Some("alpha")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    });

    let (status, metrics) = call(&s, "GET", "/metrics", &[], None, None, None);
    assert_eq!(status, 200);
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no series {series} in\n{metrics}"))
    };
    assert_eq!(
        value("skald_tenant_ingested_entries_total{tenant=\"alpha\"} "),
        5.0
    );
    assert!(value("skald_tenant_ingested_bytes_total{tenant=\"alpha\"} ") >= 5.0);
    assert_eq!(
        value("skald_discarded_entries_total{tenant=\"alpha\",reason=\"invalid_labels\"} "),
        1.0
    );
    assert_eq!(
        value("skald_discarded_entries_total{tenant=\"alpha\",reason=\"label_value_too_long\"} "),
        1.0
    );
    assert!(value("skald_rejected_entries_total ") >= 2.0);
    assert_eq!(value("skald_active_streams{tenant=\"alpha\"} "), 1.0);
    assert!(value("skald_query_bytes_scanned_total{tenant=\"alpha\"} ") > 0.0);
    assert!(value("skald_wal_fsync_duration_seconds_count ") >= 1.0);
    assert!(value("skald_disk_total_bytes ") > 0.0);
    assert_eq!(
        value(
            "skald_request_duration_seconds_count{protocol=\"http\",route=\"/loki/api/v1/push\",status=\"204\"} "
        ),
        1.0
    );
    assert_eq!(
        value(
            "skald_request_duration_seconds_count{protocol=\"grpc\",route=\"/skald.v1.LogService/QueryLogs\",status=\"InvalidArgument\"} "
        ),
        1.0
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let alerts = root.join("operations/alerts.yaml");
    let dashboard = root.join("operations/dashboard.json");
    let check = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&alerts)
        .output()
        .expect("promtool (apt-get install prometheus) checks the alerting rules");
    assert!(check.status.success(), "{check:?}");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&dashboard).unwrap())
        .expect("the dashboard is JSON");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 10);
    let rules = std::fs::read_to_string(&alerts).unwrap();
    for (file, names) in [
        ("alerts.yaml", referenced_metrics(&rules)),
        ("dashboard.json", referenced_metrics(&exprs.join("\n"))),
    ] {
        assert!(names.len() >= 6, "{file}: {names:?}");
        for name in names {
            assert!(
                metrics.contains(&format!("# TYPE {name} ")),
                "{file} uses {name}, which /metrics does not export"
            );
        }
    }
}

#[test]
fn query_limits_are_the_tenants_own_and_reload() {
    let logs = tempfile::tempdir().unwrap();
    let config = logs.path().join("skald.toml");
    let audit = logs.path().join("audit.log");
    let small = "[tenants.small]\nmax_entries_limit_per_query = 10\nmax_query_length = \"2h\"\nmax_query_lookback = \"1h\"\nmax_query_series = 1\n";
    std::fs::write(&config, small).unwrap();
    let s = Server::start_with(&[
        "--config",
        config.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    let now = now_ns();
    let old = now - 90 * 60 * 1_000_000_000;
    let recent = now - 60_000_000_000;
    for tenant in ["small", "big"] {
        push(
            &s,
            None,
            Some(tenant),
            json!([lines("a", "old", 2, old), lines("b", "new", 2, recent)]),
        );
    }
    let get = |tenant: &str, p: &[(String, String)]| {
        call(
            &s,
            "GET",
            "/loki/api/v1/query_range",
            &pairs(p),
            None,
            Some(tenant),
            None,
        )
    };
    // max_entries_limit_per_query
    let q = range(r#"{app=~"a|b"}"#, old - 1, "20");
    let (status, body) = get("small", &q);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("max_entries_limit") && body.contains("20 > 10"),
        "{body}"
    );
    assert_eq!(get("big", &q).0, 200);
    // max_query_length
    let q = range(r#"{app="a"}"#, now - 3 * 3600 * 1_000_000_000, "5");
    let (status, body) = get("small", &q);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("max_query_length"), "{body}");
    assert_eq!(get("big", &q).0, 200);
    // max_query_lookback: the old lines are out of reach of small only.
    let q = range(r#"{app=~"a|b"}"#, old - 1, "10");
    let (status, body) = get("small", &q);
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("old 0") && body.contains("new 0"), "{body}");
    let (_, body) = get("big", &q);
    assert!(body.contains("old 0") && body.contains("new 0"), "{body}");
    // max_query_series
    let mut q = range(
        r#"count_over_time({app=~"a|b"}[1h])"#,
        now - 3_600_000_000_000,
        "10",
    );
    q.push(("step".into(), "60".into()));
    let (status, body) = get("small", &q);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("maximum of series (1)"), "{body}");
    assert_eq!(get("big", &q).0, 200);

    // Raised on a running server: SIGHUP applies it (and audits it).
    std::fs::write(&config, small.replace("= 10\n", "= 50\n")).unwrap();
    s.signal("HUP");
    let q = range(r#"{app=~"a|b"}"#, old - 1, "20");
    wait_until("the reloaded limit applies", || get("small", &q).0 == 200);
    let records = audit_records(&audit);
    let change = find(&records, |r| r["action"] == "limits.change")
        .unwrap_or_else(|| panic!("no limit change in {records:?}"));
    assert!(
        change["target"]
            .as_str()
            .unwrap()
            .contains("tenant small: max_entries_limit_per_query 10 -> 50"),
        "{change}"
    );
}

/// A server with authentication on, and the push and read tokens of
/// tenants alpha and beta, in that order.
fn two_tenants() -> (Server, [String; 4]) {
    let s = Server::start_with(&["--auth"]);
    let tokens = [
        create_token(&s, "alpha", "push", "a-push"),
        create_token(&s, "beta", "push", "b-push"),
        create_token(&s, "alpha", "read", "a-read"),
        create_token(&s, "beta", "read", "b-read"),
    ];
    (s, tokens)
}

#[test]
fn multi_tenant_reads_need_every_tenant_and_label_each_stream() {
    let (s, [a_push, b_push, a_read, b_read]) = two_tenants();
    wait_until("tokens loaded", || {
        call(
            &s,
            "GET",
            "/loki/api/v1/labels",
            &[],
            Some(&a_read),
            None,
            None,
        )
        .0 == 200
    });
    let t0 = now_ns() - 60_000_000_000;
    push(
        &s,
        Some(&a_push),
        None,
        json!([lines("web", "from-alpha", 3, t0)]),
    );
    push(
        &s,
        Some(&b_push),
        None,
        json!([lines("web", "from-beta", 3, t0 + 10)]),
    );
    let both = format!("{a_read},{b_read}");
    let q = range(r#"{app="web"}"#, t0 - 1, "100");
    let (status, body) = call(
        &s,
        "GET",
        "/loki/api/v1/query_range",
        &pairs(&q),
        Some(&a_read),
        Some("alpha|beta"),
        None,
    );
    assert_eq!(status, 403, "one tenant's token reads one tenant: {body}");
    assert!(!body.contains("from-beta"));
    let (status, body) = call(
        &s,
        "GET",
        "/loki/api/v1/query_range",
        &pairs(&q),
        Some(&both),
        Some("alpha|beta"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let streams = v["data"]["result"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{body}");
    for s in streams {
        let tenant = s["stream"]["__tenant_id__"].as_str().unwrap();
        let line = s["values"][0][1].as_str().unwrap();
        assert!(line.starts_with(&format!("from-{tenant}")), "{s}");
    }
    // The limit counts over both tenants, newest first.
    let q = range(r#"{app="web"}"#, t0 - 1, "4");
    let (_, body) = call(
        &s,
        "GET",
        "/loki/api/v1/query_range",
        &pairs(&q),
        Some(&both),
        Some("alpha|beta"),
        None,
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    let n: usize = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 4, "{body}");
    assert!(
        body.contains("from-beta 2") && !body.contains("from-alpha 0"),
        "{body}"
    );
    // A selector on __tenant_id__ picks the tenant.
    let q = range(r#"{app="web", __tenant_id__="beta"}"#, t0 - 1, "100");
    let (_, body) = call(
        &s,
        "GET",
        "/loki/api/v1/query_range",
        &pairs(&q),
        Some(&both),
        Some("alpha|beta"),
        None,
    );
    assert!(
        body.contains("from-beta") && !body.contains("from-alpha"),
        "{body}"
    );
    // Metric queries keep tenants apart, or are refused naming the fix.
    let mut q = range(
        r#"sum by (__tenant_id__) (count_over_time({app="web"}[5m]))"#,
        t0 - 1,
        "100",
    );
    q.push(("step".into(), "60".into()));
    let (status, body) = call(
        &s,
        "GET",
        "/loki/api/v1/query_range",
        &pairs(&q),
        Some(&both),
        Some("alpha|beta"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let tenants: Vec<&str> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["__tenant_id__"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["alpha", "beta"], "{body}");
    q[0].1 = r#"sum(count_over_time({app="web"}[5m]))"#.into();
    let (status, body) = call(
        &s,
        "GET",
        "/loki/api/v1/query_range",
        &pairs(&q),
        Some(&both),
        Some("alpha|beta"),
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("by (__tenant_id__"), "{body}");
    // gRPC the same way.
    let grpc = s.grpc_url();
    rt().block_on(async {
        let mut c = LogServiceClient::connect(grpc).await.unwrap();
        let q = proto::QueryLogsRequest {
            query: r#"{app="web"}"#.into(),
            start_ns: t0 - 1,
            end_ns: now_ns() + 1_000_000_000,
            limit: 100,
            ..Default::default()
        };
        let r = c
            .query_logs(grpc_req(q.clone(), Some(&both), Some("alpha|beta")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.streams.len(), 2);
        let e = c
            .query_logs(grpc_req(q, Some(&b_read), Some("alpha|beta")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
    });
}

/// Labels, label values, series, index stats, volumes and the live tail
/// read several tenants as queries do: read granted on each (or an
/// admin token for every tenant), `__tenant_id__` naming each stream's
/// tenant and picking tenants in selectors.
#[test]
fn multi_tenant_labels_series_stats_volume_and_tail() {
    let (s, [a_push, b_push, a_read, b_read]) = two_tenants();
    let admin = create_token(&s, "*", "admin", "root");
    let both = format!("{a_read},{b_read}");
    let get = |path: &str, params: &[(&str, &str)], token: &str, org: &str| {
        call(&s, "GET", path, params, Some(token), Some(org), None)
    };
    wait_until("tokens loaded", || {
        get("/loki/api/v1/labels", &[], &admin, "alpha|beta").0 == 200
    });
    let t0 = now_ns() - 60_000_000_000;
    let mut web = lines("web", "from-alpha", 3, t0);
    web["stream"]["team"] = json!("red");
    push(&s, Some(&a_push), None, json!([web]));
    let mut api = lines("api", "from-beta", 2, t0 + 10);
    api["stream"]["team"] = json!("blue");
    push(&s, Some(&b_push), None, json!([api]));
    let since = (t0 - 1).to_string();
    let start = [("start", since.as_str())];
    let data = |(status, body): (u16, String)| -> Value {
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["data"].clone()
    };

    // Label names: both tenants' and __tenant_id__, for read tokens of
    // both or an admin token; one tenant's token is refused, revealing
    // nothing of the other.
    for token in [&both, &admin] {
        let names = data(get("/loki/api/v1/labels", &start, token, "alpha|beta"));
        assert_eq!(names, json!(["__tenant_id__", "app", "team"]));
    }
    for (token, other) in [(&a_read, "api"), (&b_read, "web")] {
        let (status, body) = get("/loki/api/v1/labels", &start, token, "alpha|beta");
        assert_eq!(status, 403, "{body}");
        let (status, body) = get("/loki/api/v1/label/app/values", &start, token, "alpha|beta");
        assert_eq!(status, 403, "{body}");
        assert!(!body.contains(other), "{body}");
    }
    // One tenant alone: no __tenant_id__.
    let names = data(get("/loki/api/v1/labels", &start, &a_read, "alpha"));
    assert_eq!(names, json!(["app", "team"]));

    // Label values: the union; __tenant_id__'s are the tenants; a
    // __tenant_id__ matcher picks the tenant.
    let values = |name: &str, query: Option<&str>| {
        let mut p = start.to_vec();
        if let Some(q) = query {
            p.push(("query", q));
        }
        data(get(
            &format!("/loki/api/v1/label/{name}/values"),
            &p,
            &both,
            "alpha|beta",
        ))
    };
    assert_eq!(values("app", None), json!(["api", "web"]));
    assert_eq!(values("__tenant_id__", None), json!(["alpha", "beta"]));
    assert_eq!(
        values("app", Some(r#"{__tenant_id__="beta"}"#)),
        json!(["api"])
    );
    assert_eq!(
        values("__tenant_id__", Some(r#"{__tenant_id__=~"a.*"}"#)),
        json!(["alpha"])
    );

    // Series: each labelled with its tenant.
    let series = |token: &str, selector: &str| {
        get(
            "/loki/api/v1/series",
            &[("match[]", selector), ("start", since.as_str())],
            token,
            "alpha|beta",
        )
    };
    let found = data(series(&both, r#"{team=~".+"}"#));
    assert_eq!(
        found,
        json!([
            {"__tenant_id__": "alpha", "app": "web", "team": "red"},
            {"__tenant_id__": "beta", "app": "api", "team": "blue"},
        ])
    );
    let found = data(series(&admin, r#"{team=~".+", __tenant_id__="alpha"}"#));
    assert_eq!(
        found,
        json!([{"__tenant_id__": "alpha", "app": "web", "team": "red"}])
    );
    let (status, body) = series(&b_read, r#"{team=~".+"}"#);
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("red"), "{body}");

    // Index stats add up over the tenants; volumes of the same labels too.
    let stats = |token: &str, org: &str| {
        let (status, body) = get(
            "/loki/api/v1/index/stats",
            &[("query", r#"{app=~".+"}"#), ("start", since.as_str())],
            token,
            org,
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()
    };
    let (one, two, all) = (
        stats(&a_read, "alpha"),
        stats(&b_read, "beta"),
        stats(&both, "alpha|beta"),
    );
    assert_eq!(
        (all["streams"].as_u64(), all["entries"].as_u64()),
        (Some(2), Some(5))
    );
    assert_eq!(
        all["bytes"].as_u64().unwrap(),
        one["bytes"].as_u64().unwrap() + two["bytes"].as_u64().unwrap()
    );
    let (status, body) = get(
        "/loki/api/v1/index/stats",
        &[("query", r#"{app=~".+"}"#)],
        &a_read,
        "alpha|beta",
    );
    assert_eq!(status, 403, "{body}");
    let volume = data(get(
        "/loki/api/v1/index/volume",
        &[
            ("query", r#"{team=~".+"}"#),
            ("start", since.as_str()),
            ("aggregateBy", "labels"),
        ],
        &both,
        "alpha|beta",
    ));
    let groups = volume["result"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{volume}");
    assert_eq!(groups[0]["metric"], json!({"team": ""}));
    let total: u64 = groups[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert_eq!(
        total,
        one["bytes"].as_u64().unwrap() + two["bytes"].as_u64().unwrap()
    );

    // The live tail: history and live entries of both tenants, each
    // stream labelled; one tenant's token is refused.
    let grpc = s.grpc_url();
    rt().block_on(async {
        let mut c = LogServiceClient::connect(grpc).await.unwrap();
        let tail_req = proto::TailLogsRequest {
            query: r#"{team=~".+"}"#.into(),
            limit: 100,
            start_ns: t0 - 1,
            ..Default::default()
        };
        let e = c
            .tail_logs(grpc_req(
                tail_req.clone(),
                Some(&a_read),
                Some("alpha|beta"),
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let mut tail = c
            .tail_logs(grpc_req(tail_req, Some(&both), Some("alpha|beta")))
            .await
            .unwrap()
            .into_inner();
        let label = |s: &proto::Stream, name: &str| {
            s.labels
                .iter()
                .find(|l| l.name == name)
                .map(|l| l.value.clone())
                .unwrap_or_default()
        };
        let mut seen: Vec<(String, String)> = Vec::new();
        let mut pushed = false;
        while seen.len() < 7 {
            let msg = tokio::time::timeout(Duration::from_secs(30), tail.message())
                .await
                .expect("a tail message within 30 s")
                .unwrap()
                .expect("the tail goes on");
            for st in &msg.streams {
                for e in &st.entries {
                    seen.push((label(st, "__tenant_id__"), e.line.clone()));
                }
            }
            if !pushed && seen.len() >= 5 {
                pushed = true;
                for (token, app, team, line) in [
                    (&a_push, "web", "red", "live-alpha"),
                    (&b_push, "api", "blue", "live-beta"),
                ] {
                    let label = |name: &str, value: &str| proto::Label {
                        name: name.into(),
                        value: value.into(),
                    };
                    let batch = proto::PushLogBatchRequest {
                        streams: vec![proto::Stream {
                            labels: vec![label("app", app), label("team", team)],
                            entries: vec![proto::Entry {
                                timestamp_ns: now_ns(),
                                line: line.into(),
                                structured_metadata: vec![],
                            }],
                        }],
                    };
                    c.push_log_batch(grpc_req(batch, Some(token), None))
                        .await
                        .unwrap();
                }
            }
        }
        seen.sort();
        for (tenant, line) in &seen {
            assert!(
                line.starts_with(&format!("from-{tenant}")) || *line == format!("live-{tenant}"),
                "{seen:?}"
            );
        }
        assert!(
            seen.contains(&("alpha".into(), "live-alpha".into())),
            "{seen:?}"
        );
        assert!(
            seen.contains(&("beta".into(), "live-beta".into())),
            "{seen:?}"
        );
    });
}

#[test]
fn the_cli_pushes_queries_and_tails_with_a_token() {
    let s = Server::start_with(&["--auth"]);
    let pusher = create_token(&s, "team", "push", "cli-push");
    let reader = create_token(&s, "team", "read", "cli-read");
    wait_until("tokens loaded", || {
        call(
            &s,
            "GET",
            "/loki/api/v1/labels",
            &[],
            Some(&reader),
            None,
            None,
        )
        .0 == 200
    });
    let addr = s.url("");
    let addr = addr.trim_end_matches('/');
    let file = s.dir.path().join("lines.log");
    std::fs::write(&file, "cli line one\ncli line two\n").unwrap();
    let file = file.to_str().unwrap();
    // No token: refused with a one-line reason and a failing exit code.
    let out = skald(&["push", file, "--addr", addr, "-L", "app=cli"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") || err.to_lowercase().contains("authentication"),
        "{err}"
    );
    // The token by flag, then by environment.
    let out = skald(
        &[
            "push", file, "--addr", addr, "-L", "app=cli", "--token", &pusher,
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let out = skald(
        &["query", r#"{app="cli"}"#, "--addr", addr, "--since", "1h"],
        &[("SKALD_TOKEN", &reader)],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cli line one") && text.contains("cli line two"),
        "{text}"
    );
    // A push token may not read.
    let out = skald(
        &[
            "query",
            r#"{app="cli"}"#,
            "--addr",
            addr,
            "--token",
            &pusher,
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{out:?}"
    );
    // Tail: the history comes back through the websocket with the token.
    let mut tail = Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(["tail", r#"{app="cli"}"#, "--addr", addr, "--since", "1h"])
        .env("SKALD_TOKEN", &reader)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(
        seen.iter().any(|l| l.contains("cli line one"))
            && seen.iter().any(|l| l.contains("cli line two")),
        "{seen:?}"
    );
}
