//! Authentication, roles and tenant isolation against the real binary
//! started with `--auth`.
//!
//! Two tenants, `alpha` and `beta`, push lines carrying markers only they
//! hold (`beta-secret` lines, `owner="bsecret"` labels). Every HTTP
//! endpoint and every gRPC operation is then called with alpha's tokens,
//! and nothing of beta may come back: not in answers, not in counts, not
//! in error messages; deletes by alpha leave beta's data whole; beta's ids
//! (export job, stream, delete request) are not found for alpha. Role
//! tests check that each role does only what it may, and every endpoint
//! answers 401 (gRPC UNAUTHENTICATED) without a token.

mod common;

use common::{Server, create_token, day_ago, now_ns, wait_until};
use serde_json::{Value, json};
use skald_server::grpc::proto;
use skald_server::grpc::proto::log_service_client::LogServiceClient;
use std::process::Command;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const BETA_MARKERS: [&str; 2] = ["beta-secret", "bsecret"];

fn skald(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(args)
        .output()
        .expect("running skald")
}

struct Tokens {
    alpha_push: String,
    alpha_read: String,
    alpha_admin: String,
    beta_push: String,
    beta_read: String,
    beta_admin: String,
}

/// Starts an authenticating server with both tenants' tokens, and pushes
/// each tenant's data.
fn setup() -> (Server, Tokens) {
    let s = Server::start_with(&["--auth"]);
    let t = Tokens {
        alpha_push: create_token(&s, "alpha", "push", "alpha-push"),
        alpha_read: create_token(&s, "alpha", "read", "alpha-read"),
        alpha_admin: create_token(&s, "alpha", "admin", "alpha-admin"),
        beta_push: create_token(&s, "beta", "push", "beta-push"),
        beta_read: create_token(&s, "beta", "read", "beta-read"),
        beta_admin: create_token(&s, "beta", "admin", "beta-admin"),
    };
    // The running server picks the new tokens up within a second.
    wait_until("tokens loaded", || {
        http(
            &s,
            "GET",
            "/loki/api/v1/labels",
            &[],
            Some(&t.alpha_read),
            None,
        )
        .0 == 200
    });
    let now = now_ns();
    for (token, owner, prefix) in [
        (&t.alpha_push, "alpha", "alpha-line"),
        (&t.beta_push, "bsecret", "beta-secret"),
    ] {
        let values: Vec<Value> = (0..5)
            .map(|i| {
                json!([
                    (now - 5_000_000_000 + i).to_string(),
                    format!("{prefix} {i}")
                ])
            })
            .collect();
        let body =
            json!({"streams": [{"stream": {"app": "shared", "owner": owner}, "values": values}]});
        let (status, _, text) = http_body(
            &s,
            "POST",
            "/loki/api/v1/push",
            body.to_string(),
            Some(token),
            None,
        );
        assert_eq!(status, 204, "{text}");
    }
    (s, t)
}

fn http(
    s: &Server,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    token: Option<&str>,
    org: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = s
        .client
        .request(method.parse().unwrap(), s.url(path))
        .query(params);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(o) = org {
        r = r.header("X-Scope-OrgID", o);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().unwrap())
}

fn http_body(
    s: &Server,
    method: &str,
    path: &str,
    body: String,
    token: Option<&str>,
    org: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = s
        .client
        .request(method.parse().unwrap(), s.url(path))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(o) = org {
        r = r.header("X-Scope-OrgID", o);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().unwrap())
}

fn assert_clean(what: &str, text: &str) {
    for m in BETA_MARKERS {
        assert!(!text.contains(m), "{what} revealed {m:?}: {text}");
    }
}

/// An HTTP call: method, path, parameters.
type Endpoint = (&'static str, String, Vec<(&'static str, String)>);

/// Every reading HTTP endpoint.
fn read_endpoints(start: &str) -> Vec<Endpoint> {
    let q = r#"{app="shared"}"#.to_string();
    let range = |mut v: Vec<(&'static str, String)>| {
        v.push(("start", start.to_string()));
        v
    };
    vec![
        (
            "GET",
            "/loki/api/v1/query_range".into(),
            range(vec![("query", q.clone()), ("limit", "100".into())]),
        ),
        (
            "POST",
            "/loki/api/v1/query_range".into(),
            range(vec![("query", q.clone())]),
        ),
        (
            "GET",
            "/loki/api/v1/query_range".into(),
            range(vec![
                (
                    "query",
                    format!("sum by (owner) (count_over_time({q}[1h]))"),
                ),
                ("step", "60".into()),
            ]),
        ),
        (
            "GET",
            "/loki/api/v1/query".into(),
            vec![("query", q.clone())],
        ),
        (
            "GET",
            "/loki/api/v1/query".into(),
            vec![(
                "query",
                format!("sum by (owner) (count_over_time({q}[1h]))"),
            )],
        ),
        ("GET", "/loki/api/v1/labels".into(), range(vec![])),
        ("GET", "/loki/api/v1/label".into(), range(vec![])),
        (
            "GET",
            "/loki/api/v1/label/owner/values".into(),
            range(vec![]),
        ),
        (
            "GET",
            "/loki/api/v1/series".into(),
            range(vec![("match[]", q.clone())]),
        ),
        (
            "GET",
            "/loki/api/v1/index/stats".into(),
            range(vec![("query", q.clone())]),
        ),
        (
            "GET",
            "/loki/api/v1/index/volume".into(),
            range(vec![("query", q.clone())]),
        ),
        (
            "GET",
            "/loki/api/v1/index/volume_range".into(),
            range(vec![("query", q.clone())]),
        ),
        (
            "GET",
            "/loki/api/v1/format_query".into(),
            vec![("query", q.clone())],
        ),
    ]
}

#[test]
fn http_endpoints_show_a_tenant_only_its_own_data() {
    let (s, t) = setup();
    let start = day_ago();
    for (method, path, params) in read_endpoints(&start) {
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, body) = http(&s, method, &path, &p, Some(&t.alpha_read), None);
        assert_eq!(status, 200, "{method} {path}: {body}");
        assert_clean(&format!("{method} {path}"), &body);
        // Naming the other tenant with one's own token is refused, and
        // the refusal reveals nothing of it.
        let (status, _, body) = http(&s, method, &path, &p, Some(&t.alpha_read), Some("beta"));
        assert_eq!(status, 403, "{method} {path} as beta: {body}");
        assert_clean(&format!("{method} {path} as beta"), &body);
    }
    // Counts are alpha's alone: one stream, five entries.
    let (_, _, body) = http(
        &s,
        "GET",
        "/loki/api/v1/index/stats",
        &[("query", r#"{app="shared"}"#), ("start", &start)],
        Some(&t.alpha_read),
        None,
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["streams"].as_u64(), v["entries"].as_u64()),
        (Some(1), Some(5)),
        "{v}"
    );
    let lines = query_lines(&s, &t.alpha_read, None);
    assert_eq!(lines.len(), 5);
    assert!(
        lines.iter().all(|l| l.starts_with("alpha-line")),
        "{lines:?}"
    );
    // Basic auth as Grafana sends it: tenant as user, token as password.
    let r = s
        .client
        .get(s.url("/loki/api/v1/labels"))
        .basic_auth("alpha", Some(&t.alpha_read))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = s
        .client
        .get(s.url("/loki/api/v1/labels"))
        .basic_auth("beta", Some(&t.alpha_read))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // A multi-tenant read needs a token for each tenant.
    let (status, _, body) = http(
        &s,
        "GET",
        "/loki/api/v1/labels",
        &[],
        Some(&t.alpha_read),
        Some("alpha|beta"),
    );
    assert_eq!(status, 403, "{body}");
    let both = format!("{},{}", t.alpha_read, t.beta_read);
    let (status, _, _) = http(
        &s,
        "GET",
        "/loki/api/v1/labels",
        &[],
        Some(&both),
        Some("alpha|beta"),
    );
    assert_ne!(status, 403);
    assert_ne!(status, 401);

    // Deletes: alpha's admin deletes everything it can name; beta's data
    // stays whole, and alpha's list never shows beta's requests.
    let (status, _, body) = http(
        &s,
        "POST",
        "/loki/api/v1/delete",
        &[("query", r#"{app="shared"}"#), ("start", "0")],
        Some(&t.beta_admin),
        None,
    );
    assert_eq!(status, 204, "{body}");
    let (_, _, beta_list) = http(
        &s,
        "GET",
        "/loki/api/v1/delete",
        &[],
        Some(&t.beta_admin),
        None,
    );
    let beta_id = serde_json::from_str::<Value>(&beta_list).unwrap()[0]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, body) = http(
        &s,
        "GET",
        "/loki/api/v1/delete",
        &[],
        Some(&t.alpha_admin),
        None,
    );
    assert_eq!((status, body.trim()), (200, "[]"));
    let (status, _, body) = http(
        &s,
        "DELETE",
        "/loki/api/v1/delete",
        &[("request_id", &beta_id)],
        Some(&t.alpha_admin),
        None,
    );
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = http(
        &s,
        "DELETE",
        "/loki/api/v1/delete",
        &[("request_id", &beta_id)],
        Some(&t.beta_admin),
        None,
    );
    assert_eq!(status, 204);
    let (status, _, body) = http(
        &s,
        "POST",
        "/loki/api/v1/delete",
        &[("query", r#"{app="shared"}"#), ("start", "0")],
        Some(&t.alpha_admin),
        None,
    );
    assert_eq!(status, 204, "{body}");
    assert!(query_lines(&s, &t.alpha_read, None).is_empty());
    assert_eq!(query_lines(&s, &t.beta_read, None).len(), 5);
}

fn query_lines(s: &Server, token: &str, org: Option<&str>) -> Vec<String> {
    let (status, _, body) = http(
        s,
        "GET",
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="shared"}"#),
            ("start", &day_ago()),
            ("limit", "1000"),
        ],
        Some(token),
        org,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|st| st["values"].as_array().unwrap().iter())
        .map(|e| e[1].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_http_endpoint_needs_a_token_and_the_right_role() {
    let (s, t) = setup();
    let start = day_ago();
    // No token: 401 with a challenge, everywhere but /ready and /metrics.
    let mut all = read_endpoints(&start);
    all.push(("POST", "/loki/api/v1/push".into(), vec![]));
    all.push(("POST", "/api/prom/push".into(), vec![]));
    all.push((
        "GET",
        "/loki/api/v1/tail".into(),
        vec![("query", r#"{app="shared"}"#.into())],
    ));
    all.push((
        "POST",
        "/loki/api/v1/delete".into(),
        vec![("query", r#"{app="shared"}"#.into())],
    ));
    all.push(("GET", "/loki/api/v1/delete".into(), vec![]));
    all.push((
        "DELETE",
        "/loki/api/v1/delete".into(),
        vec![("request_id", "x".into())],
    ));
    for (method, path, params) in &all {
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, headers, body) = http(&s, method, path, &p, None, None);
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert!(headers.contains_key("www-authenticate"), "{method} {path}");
        let (status, _, body) = http(
            &s,
            method,
            path,
            &p,
            Some("skald_0000000000000000_bad"),
            None,
        );
        assert_eq!(status, 401, "{method} {path}: {body}");
    }
    for open in ["/ready", "/metrics"] {
        assert_eq!(http(&s, "GET", open, &[], None, None).0, 200, "{open}");
    }
    let (_, _, metrics) = http(&s, "GET", "/metrics", &[], None, None);
    assert!(metrics.contains("skald_auth_failures_total"), "{metrics}");

    // push: only push.
    let (status, _, _) = http(
        &s,
        "GET",
        "/loki/api/v1/labels",
        &[],
        Some(&t.alpha_push),
        None,
    );
    assert_eq!(status, 403);
    // read: no push, no delete.
    let body =
        json!({"streams": [{"stream": {"app": "x"}, "values": [[now_ns().to_string(), "x"]]}]});
    let (status, _, _) = http_body(
        &s,
        "POST",
        "/loki/api/v1/push",
        body.to_string(),
        Some(&t.alpha_read),
        None,
    );
    assert_eq!(status, 403);
    for method in ["POST", "GET"] {
        let (status, _, _) = http(
            &s,
            method,
            "/loki/api/v1/delete",
            &[("query", r#"{app="shared"}"#)],
            Some(&t.alpha_read),
            None,
        );
        assert_eq!(status, 403, "{method} delete with a read token");
    }
    // admin: reads, pushes and deletes its own tenant, not another.
    let (status, _, _) = http_body(
        &s,
        "POST",
        "/loki/api/v1/push",
        body.to_string(),
        Some(&t.alpha_admin),
        None,
    );
    assert_eq!(status, 204);
    let (status, _, _) = http(
        &s,
        "GET",
        "/loki/api/v1/labels",
        &[],
        Some(&t.alpha_admin),
        Some("beta"),
    );
    assert_eq!(status, 403);

    // Revoking takes effect on the running server.
    let out = skald(&[
        "token",
        "revoke",
        "--data-dir",
        s.data_dir().to_str().unwrap(),
        "alpha-read",
    ]);
    assert!(out.status.success(), "{out:?}");
    wait_until("revocation noticed", || {
        http(
            &s,
            "GET",
            "/loki/api/v1/labels",
            &[],
            Some(&t.alpha_read),
            None,
        )
        .0 == 401
    });
    let out = skald(&[
        "token",
        "list",
        "--data-dir",
        s.data_dir().to_str().unwrap(),
    ]);
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        listed.contains("alpha-admin") && !listed.contains("alpha-read"),
        "{listed}"
    );
    assert!(
        !listed.contains(&t.alpha_admin),
        "the list shows a token: {listed}"
    );
    // Tokens are stored hashed.
    let stored = std::fs::read_to_string(s.data_dir().join("tokens.json")).unwrap();
    for token in [&t.alpha_admin, &t.beta_read, &t.beta_push] {
        assert!(!stored.contains(token.as_str()));
    }
}

#[test]
fn websocket_tail_streams_only_the_callers_tenant() {
    let (s, t) = setup();
    rt().block_on(async {
        let url = format!(
            "ws://127.0.0.1:{}/loki/api/v1/tail?query={}&limit=100",
            s.http, "%7Bapp%3D%22shared%22%7D"
        );
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        // Without a token the upgrade is refused.
        let refused = tokio_tungstenite::connect_async(url.clone()).await;
        assert!(refused.is_err());
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", t.alpha_read).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        tokio::task::block_in_place(|| {
            let now = now_ns();
            for (token, owner, line) in [(&t.beta_push, "bsecret", "beta-secret live"), (&t.alpha_push, "alpha", "alpha-line live")] {
                let body = json!({"streams": [{"stream": {"app": "shared", "owner": owner}, "values": [[now.to_string(), line]]}]});
                assert_eq!(http_body(&s, "POST", "/loki/api/v1/push", body.to_string(), Some(token), None).0, 204);
            }
        });
        let mut seen_live = false;
        while !seen_live {
            let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .expect("tail message")
                .unwrap()
                .unwrap();
            let text = msg.into_text().unwrap().as_str().to_string();
            assert_clean("websocket tail", &text);
            seen_live = text.contains("alpha-line live");
        }
    });
}

#[test]
fn websocket_tail_takes_a_browsers_credentials_as_subprotocols() {
    use base64::Engine as _;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (s, t) = setup();
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    rt().block_on(async {
        let url = format!(
            "ws://127.0.0.1:{}/loki/api/v1/tail?query={}&limit=100",
            s.http, "%7Bapp%3D%22shared%22%7D"
        );
        let offer = |protocols: String| {
            let mut request = url.clone().into_client_request().unwrap();
            request
                .headers_mut()
                .insert("sec-websocket-protocol", protocols.parse().unwrap());
            request
        };
        // A wrong token, and another tenant than the token's, are refused.
        for protocols in [
            format!("skald.tail, skald.bearer.{}", b64("not-a-token")),
            format!(
                "skald.tail, skald.bearer.{}, skald.tenant.{}",
                b64(&t.alpha_read),
                b64("beta")
            ),
        ] {
            let refused = tokio_tungstenite::connect_async(offer(protocols)).await;
            assert!(refused.is_err());
        }
        let (mut ws, response) = tokio_tungstenite::connect_async(offer(format!(
            "skald.tail, skald.bearer.{}, skald.tenant.{}",
            b64(&t.alpha_read),
            b64("alpha")
        )))
        .await
        .unwrap();
        // The answer selects the protocol, or a browser would close the socket.
        assert_eq!(response.headers()["sec-websocket-protocol"], "skald.tail");
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("tail history")
            .unwrap()
            .unwrap();
        let text = msg.into_text().unwrap().as_str().to_string();
        assert!(text.contains("alpha-line 0"), "{text}");
        assert_clean("websocket tail", &text);
    });
}

async fn grpc(s: &Server) -> LogServiceClient<Channel> {
    LogServiceClient::connect(s.grpc_url()).await.unwrap()
}

fn req<T>(msg: T, token: Option<&str>, org: Option<&str>) -> tonic::Request<T> {
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

fn stream(owner: &str, line: &str) -> proto::Stream {
    proto::Stream {
        labels: vec![
            proto::Label {
                name: "app".into(),
                value: "shared".into(),
            },
            proto::Label {
                name: "owner".into(),
                value: owner.into(),
            },
        ],
        entries: vec![proto::Entry {
            timestamp_ns: now_ns(),
            line: line.into(),
            structured_metadata: vec![],
        }],
    }
}

#[test]
fn grpc_operations_show_a_tenant_only_its_own_data() {
    let (s, t) = setup();
    rt().block_on(async {
        let mut c = grpc(&s).await;
        let a = Some(t.alpha_read.as_str());
        let sel = r#"{app="shared"}"#.to_string();
        let day = day_ago().parse::<i64>().unwrap();

        // Pushes of every kind land in the token's tenant.
        let ap = Some(t.alpha_push.as_str());
        c.push_log(req(
            proto::PushLogRequest {
                labels: stream("alpha", "").labels,
                entry: stream("alpha", "alpha-line one").entries.pop(),
            },
            ap,
            None,
        ))
        .await
        .unwrap();
        c.push_log_batch(req(
            proto::PushLogBatchRequest {
                streams: vec![stream("alpha", "alpha-line batch")],
            },
            ap,
            None,
        ))
        .await
        .unwrap();
        let msgs = tokio_stream::iter(vec![proto::PushLogBatchRequest {
            streams: vec![stream("alpha", "alpha-line streamed")],
        }]);
        c.push_log_stream(req(msgs, ap, None)).await.unwrap();
        c.push_simple_log(req(
            proto::PushSimpleLogRequest {
                service: "svc".into(),
                message: "alpha-line simple".into(),
                ..Default::default()
            },
            ap,
            None,
        ))
        .await
        .unwrap();
        // ... and a push token names no other tenant.
        let err = c
            .push_log_batch(req(
                proto::PushLogBatchRequest {
                    streams: vec![stream("alpha", "x")],
                },
                ap,
                Some("beta"),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);

        let logs = c
            .query_logs(req(
                proto::QueryLogsRequest {
                    query: sel.clone(),
                    start_ns: day,
                    limit: 1000,
                    ..Default::default()
                },
                a,
                None,
            ))
            .await
            .unwrap()
            .into_inner();
        let text = format!("{logs:?}");
        assert_clean("QueryLogs", &text);
        let n: usize = logs.streams.iter().map(|s| s.entries.len()).sum();
        assert_eq!(n, 5 + 3, "{text}");
        let range = c
            .query_range(req(
                proto::QueryRangeRequest {
                    query: format!("sum by (owner) (count_over_time({sel}[1h]))"),
                    start_ns: day,
                    step_ns: 3_600_000_000_000,
                    ..Default::default()
                },
                a,
                None,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_clean("QueryRange", &format!("{range:?}"));
        let stats = c
            .query_stats(req(
                proto::QueryStatsRequest {
                    query: sel.clone(),
                    start_ns: day,
                    ..Default::default()
                },
                a,
                None,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stats.streams, 1, "{stats:?}");
        let labels = c
            .get_labels(req(
                proto::GetLabelsRequest {
                    start_ns: day,
                    ..Default::default()
                },
                a,
                None,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_clean("GetLabels", &format!("{labels:?}"));
        let values = c
            .get_label_values(req(
                proto::GetLabelValuesRequest {
                    name: "owner".into(),
                    start_ns: day,
                    ..Default::default()
                },
                a,
                None,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(values.values, ["alpha"]);
        let streams = c
            .list_streams(req(proto::ListStreamsRequest::default(), a, None))
            .await
            .unwrap()
            .into_inner();
        assert_clean("ListStreams", &format!("{streams:?}"));
        assert_eq!(streams.total, 2, "{streams:?}");

        // Beta's stream, job and data stay out of alpha's reach.
        let beta_streams = c
            .list_streams(req(
                proto::ListStreamsRequest::default(),
                Some(&t.beta_read),
                None,
            ))
            .await
            .unwrap()
            .into_inner();
        let beta_stream = beta_streams.streams[0].stream_id.clone();
        let err = c
            .get_stream_info(req(
                proto::GetStreamInfoRequest {
                    stream_id: beta_stream.clone(),
                    ..Default::default()
                },
                a,
                None,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert_clean("GetStreamInfo", err.message());
        let mut export = c
            .export_logs(req(
                proto::ExportLogsRequest {
                    query: sel.clone(),
                    start_ns: day,
                    ..Default::default()
                },
                a,
                None,
            ))
            .await
            .unwrap()
            .into_inner();
        while let Some(chunk) = export.message().await.unwrap() {
            assert_clean("ExportLogs", &format!("{chunk:?}"));
        }
        let job_req = |token: &str| {
            req(
                proto::ExportLogsRequest {
                    query: sel.clone(),
                    start_ns: day,
                    destination: Some(proto::ExportDestination {
                        path: String::new(),
                        format: proto::ExportFormat::Ndjson as i32,
                        gzip: false,
                    }),
                    ..Default::default()
                },
                Some(token),
                None,
            )
        };
        // A read token may not write files on the server.
        let err = c.export_logs(job_req(&t.beta_read)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        let beta_job = c
            .export_logs(job_req(&t.beta_admin))
            .await
            .unwrap()
            .into_inner()
            .message()
            .await
            .unwrap()
            .unwrap()
            .job_id;
        let err = c
            .get_export_status(req(
                proto::GetExportStatusRequest {
                    job_id: beta_job.clone(),
                },
                a,
                None,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        c.get_export_status(req(
            proto::GetExportStatusRequest { job_id: beta_job },
            Some(&t.beta_read),
            None,
        ))
        .await
        .unwrap();

        let stat = c
            .get_statistics(req(proto::GetStatisticsRequest::default(), a, None))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stat.tenants.len(), 1, "{stat:?}");
        assert_eq!(stat.tenants[0].tenant, "alpha");
        let err = c
            .get_statistics(req(
                proto::GetStatisticsRequest {
                    tenant: "beta".into(),
                },
                a,
                None,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        let quota = c
            .get_user_quota(req(proto::GetUserQuotaRequest::default(), a, None))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((quota.tenant.as_str(), quota.streams), ("alpha", 2));

        // The live tail carries only alpha's entries.
        let mut tail = c
            .tail_logs(req(
                proto::TailLogsRequest {
                    query: sel.clone(),
                    limit: 100,
                    ..Default::default()
                },
                a,
                None,
            ))
            .await
            .unwrap()
            .into_inner();
        c.push_log_batch(req(
            proto::PushLogBatchRequest {
                streams: vec![stream("bsecret", "beta-secret live")],
            },
            Some(&t.beta_push),
            None,
        ))
        .await
        .unwrap();
        c.push_log_batch(req(
            proto::PushLogBatchRequest {
                streams: vec![stream("alpha", "alpha-line live")],
            },
            ap,
            None,
        ))
        .await
        .unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), tail.next())
                .await
                .expect("tail")
                .unwrap()
                .unwrap();
            let text = format!("{m:?}");
            assert_clean("TailLogs", &text);
            if text.contains("alpha-line live") {
                break;
            }
        }

        // Deletion: a read token may not; alpha's admin deletes alpha's.
        let err = c
            .delete_stream(req(
                proto::DeleteStreamRequest {
                    query: sel.clone(),
                    ..Default::default()
                },
                a,
                None,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        c.delete_stream(req(
            proto::DeleteStreamRequest {
                query: sel.clone(),
                ..Default::default()
            },
            Some(&t.alpha_admin),
            None,
        ))
        .await
        .unwrap();
        let beta = c
            .query_logs(req(
                proto::QueryLogsRequest {
                    query: sel.clone(),
                    start_ns: day,
                    limit: 1000,
                    ..Default::default()
                },
                Some(&t.beta_read),
                None,
            ))
            .await
            .unwrap()
            .into_inner();
        let n: usize = beta.streams.iter().map(|s| s.entries.len()).sum();
        assert_eq!(n, 6, "beta lost data to alpha's delete");

        // Without a token, every operation is UNAUTHENTICATED.
        let none = None;
        let codes = vec![
            c.push_log_batch(req(proto::PushLogBatchRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.query_logs(req(
                proto::QueryLogsRequest {
                    query: sel.clone(),
                    ..Default::default()
                },
                none,
                None,
            ))
            .await
            .unwrap_err()
            .code(),
            c.query_range(req(proto::QueryRangeRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.query_stats(req(proto::QueryStatsRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.get_labels(req(proto::GetLabelsRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.get_label_values(req(proto::GetLabelValuesRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.list_streams(req(proto::ListStreamsRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.get_stream_info(req(proto::GetStreamInfoRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.delete_stream(req(proto::DeleteStreamRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.get_export_status(req(proto::GetExportStatusRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.get_statistics(req(proto::GetStatisticsRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.get_user_quota(req(proto::GetUserQuotaRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.tail_logs(req(proto::TailLogsRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
            c.export_logs(req(proto::ExportLogsRequest::default(), none, None))
                .await
                .unwrap_err()
                .code(),
        ];
        assert!(
            codes.iter().all(|c| *c == tonic::Code::Unauthenticated),
            "{codes:?}"
        );
        // Health stays open.
        c.health_check(proto::HealthCheckRequest::default())
            .await
            .unwrap();
    });
}

#[test]
fn without_auth_a_non_loopback_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = skald(&[
        "serve",
        "--data-dir",
        dir.path().join("d").to_str().unwrap(),
        "--http-addr",
        "0.0.0.0:0",
        "--grpc-addr",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without authentication") && err.contains("--insecure-no-auth"),
        "{err}"
    );
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}
