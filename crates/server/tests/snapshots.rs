//! Snapshot tests of the HTTP API's responses: each file in
//! `tests/snapshots/*.json` holds a request, the expected status and the
//! expected body (JSON, compared structurally, or plain text for errors,
//! as Loki answers them). The router runs without a socket over a store
//! filled with the fixed data below.
//!
//! In `stats`, timing fields (`execTime`, `queueTime`, the per-second
//! rates, fetch and download times) differ from run to run: they must be
//! present and are otherwise ignored. `SNAPSHOT_UPDATE=1` rewrites the
//! files with the current answers, to review with `git diff`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use skald_model::{Entry, Label, LabelSet, TenantId, Timestamp};
use skald_server::{AppState, Deletes, ServerConfig, app};
use skald_store::{FsyncMode, Store, StoreConfig, StreamBatch};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

/// 2024-01-01T00:00:00Z; the data is at T0 + 1s ... T0 + 6s.
const T0: i64 = 1_704_067_200_000_000_000;
const S: i64 = 1_000_000_000;

/// Stats fields whose values depend on timing.
const TIMING: &[&str] = &[
    "execTime",
    "queueTime",
    "bytesProcessedPerSecond",
    "linesProcessedPerSecond",
    "chunksDownloadTime",
    "chunkRefsFetchTime",
    "congestionControlLatency",
];

fn entry(secs: i64, line: &str, metadata: &[(&str, &str)]) -> Entry {
    Entry {
        ts: Timestamp(T0 + secs * S),
        line: line.to_string(),
        metadata: metadata.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
    }
}

fn store(dir: &Path) -> Arc<Store> {
    let mut config = StoreConfig {
        data_dir: dir.to_path_buf(),
        fsync: FsyncMode::Interval,
        compact_fan_in: 0,
        ..StoreConfig::default()
    };
    config.limits.reject_old_samples_max_age_secs = 100 * 365 * 24 * 3600;
    let store = Store::open(config).expect("open store");
    let batches = vec![
        StreamBatch {
            labels: LabelSet::parse(r#"{app="api", env="prod"}"#).expect("labels"),
            entries: vec![
                entry(1, "level=info msg=started latency=10", &[]),
                entry(
                    2,
                    "level=error msg=failed latency=30",
                    &[("trace_id", "t1")],
                ),
                entry(3, "level=info msg=served latency=20", &[]),
            ],
        },
        StreamBatch {
            labels: LabelSet::parse(r#"{app="web", env="dev"}"#).expect("labels"),
            entries: vec![
                entry(4, r#"{"level":"warn","path":"/a"}"#, &[]),
                entry(6, r#"{"level":"info","path":"/b"}"#, &[]),
            ],
        },
    ];
    let tenant = TenantId::new("fake").expect("tenant");
    let out = store.push(&tenant, batches).expect("push");
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    Arc::new(store)
}

/// Replaces the value of every timing field under `stats` with null.
fn mask_timing(v: &mut Value, in_stats: bool) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if in_stats && TIMING.contains(&k.as_str()) {
                    *child = Value::Null;
                } else {
                    mask_timing(child, in_stats || k == "stats");
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| mask_timing(c, in_stats)),
        _ => {}
    }
}

fn request_of(case: &Value) -> Request<Body> {
    let req = &case["request"];
    let method = req["method"].as_str().unwrap_or("GET");
    let path = req["path"].as_str().expect("request.path");
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(params) = req["params"].as_object() {
        for (k, v) in params {
            query.append_pair(k, v.as_str().expect("params are strings"));
        }
    }
    let query = query.finish();
    let uri = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(headers) = req["headers"].as_object() {
        for (k, v) in headers {
            builder = builder.header(k, v.as_str().expect("headers are strings"));
        }
    }
    builder.body(Body::empty()).expect("request")
}

fn snapshot_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/snapshots")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn http_api_snapshots() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store(dir.path());
    let state = Arc::new(AppState {
        store: store.clone(),
        config: ServerConfig::default(),
        started: Instant::now(),
        deletes: Arc::new(Deletes::open(store.clone()).expect("deletes")),
        exports: Default::default(),
        ruler: None,
    });
    let router = app(state);
    let update = std::env::var_os("SNAPSHOT_UPDATE").is_some();
    let mut failures = Vec::new();
    let files = snapshot_files();
    assert!(files.len() >= 10, "snapshot files missing");
    for path in &files {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(path).expect("read snapshot");
        let mut case: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: invalid JSON: {e}"));
        let response = router
            .clone()
            .oneshot(request_of(&case))
            .await
            .expect("response");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let got_body = match serde_json::from_slice::<Value>(&bytes) {
            Ok(mut v) => {
                mask_timing(&mut v, false);
                v
            }
            Err(_) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        };
        if update {
            case["status"] = status.as_u16().into();
            case["body"] = got_body;
            let out = serde_json::to_string_pretty(&case).expect("serialise") + "\n";
            std::fs::write(path, out).expect("write snapshot");
            continue;
        }
        let want_status = case["status"].as_u64().unwrap_or(0);
        let want_body = &case["body"];
        if u64::from(status.as_u16()) != want_status || &got_body != want_body {
            failures.push(format!(
                "tests/snapshots/{name}: want {want_status} {}\n  got {} {}",
                want_body,
                status.as_u16(),
                got_body
            ));
        }
        // Every success carries stats with the timing fields present.
        if status == StatusCode::OK
            && let Some(stats) = got_body["data"].get("stats")
        {
            assert!(
                stats["summary"].get("execTime").is_some(),
                "{name}: stats without summary.execTime"
            );
        }
    }
    store.close().expect("close");
    assert!(
        failures.is_empty(),
        "{} snapshot(s) differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// `max_query_bytes_read`: queries whose selectors cover more bytes than
/// allowed are refused with Loki's message before reading a line; log
/// queries without filters, which stop at their limit, are not.
#[tokio::test]
async fn queries_reading_too_many_bytes_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store(dir.path());
    let state = Arc::new(AppState {
        store: store.clone(),
        config: ServerConfig {
            max_query_bytes_read: 80,
            ..ServerConfig::default()
        },
        started: Instant::now(),
        deletes: Arc::new(Deletes::open(store.clone()).expect("deletes")),
        exports: Default::default(),
        ruler: None,
    });
    let router = app(state);
    let get = |path: &str, query: &str, step: Option<&str>| {
        let mut params = form_urlencoded::Serializer::new(String::new());
        params
            .append_pair("query", query)
            .append_pair("start", &T0.to_string())
            .append_pair("end", &(T0 + 10 * S).to_string());
        if let Some(step) = step {
            params.append_pair("step", step);
        }
        let uri = format!("{path}?{}", params.finish());
        let router = router.clone();
        async move {
            let response = router
                .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
                .await
                .expect("response");
            let status = response.status();
            let body = response.into_body().collect().await.expect("body");
            (
                status,
                String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            )
        }
    };
    let range = "/loki/api/v1/query_range";
    // The api stream's three lines and their metadata: about 110 bytes.
    let (status, body) = get(range, r#"{app="api"} |= "level""#, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.starts_with("the query would read too many bytes (query: 1")
            && body.contains("limit: 80 B); consider adding more specific stream selectors"),
        "{body}"
    );
    let (status, body) = get(
        range,
        r#"sum(count_over_time({app="api"}[1m]))"#,
        Some("1s"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("would read too many bytes"), "{body}");
    // No filter: read until the limit, allowed.
    let (status, body) = get(range, r#"{app="api"}"#, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The web stream's two lines are under the limit.
    let (status, body) = get(
        range,
        r#"sum(count_over_time({app="web"} | json [1m]))"#,
        Some("1s"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A window that ends before the data reads nothing.
    let (status, body) = get(
        range,
        r#"sum(count_over_time({app="api"}[1m] offset 1h))"#,
        Some("1s"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    store.close().expect("close");
}
