//! The answers logcli decodes into typed Go structures, where a different
//! JSON type (a float for an integer, a string for a number) makes logcli
//! fail even though a person reading the JSON would see no difference.
//! Loki's own logcli, built from its source, runs every command against
//! the real binary in `tests/logcli/` (not in CI: it needs Go and Loki's
//! source); these tests pin, without it, what that check found logcli
//! depends on, with the shapes of Loki's documentation.
//!
//! The rest of the API's shapes are pinned by `snapshots.rs`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use skald_server::{AppState, ServerConfig, app};
use skald_store::{FsyncMode, Store, StoreConfig};
use std::sync::Arc;
use tower::ServiceExt;

fn router(dir: &std::path::Path) -> axum::Router {
    let store = Arc::new(
        Store::open(StoreConfig {
            data_dir: dir.to_path_buf(),
            fsync: FsyncMode::Interval,
            ..StoreConfig::default()
        })
        .expect("open store"),
    );
    app(Arc::new(AppState {
        ingest: Default::default(),
        ..AppState::build(store, ServerConfig::default()).expect("state")
    }))
}

async fn call(router: &axum::Router, method: &str, uri: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `logcli delete list` reads `start_time` and `end_time` into `int64`:
/// Loki writes them as Prometheus `model.Time` does, whole seconds as
/// JSON integers (and logcli always asks for whole seconds). A `.0` made
/// logcli fail with "cannot unmarshal number 1591616227.0 into ... int64".
#[tokio::test]
async fn delete_list_times_are_integers_for_whole_seconds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let router = router(dir.path());
    // What `logcli delete create '{app="x"}' --from ... --to ...` sends.
    let q = "query=%7Bapp%3D%22x%22%7D&start=1591616227&end=1591619692";
    let (status, body) = call(&router, "POST", &format!("/loki/api/v1/delete?{q}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let (status, body) = call(&router, "GET", "/loki/api/v1/delete").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains(r#""start_time":1591616227,"#) && body.contains(r#""end_time":1591619692,"#),
        "times must be written as integers: {body}"
    );
    let list: Value = serde_json::from_str(&body).expect("JSON");
    let r = &list[0];
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(r["start_time"].as_i64(), Some(1_591_616_227));
    assert_eq!(r["end_time"].as_i64(), Some(1_591_619_692));
    assert_eq!(r["query"], r#"{app="x"}"#);
    assert_eq!(r["status"], "received");
    assert!(r["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    // `created_at` is a model.Time too: seconds, with milliseconds when
    // it has them.
    let created = r["created_at"].as_f64().expect("created_at is a number");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!((now - created).abs() < 3600.0, "created_at {created}");

    // Cancelling by that id empties the list (`logcli delete cancel`).
    let id = r["request_id"].as_str().expect("id");
    let (status, body) = call(
        &router,
        "DELETE",
        &format!("/loki/api/v1/delete?request_id={id}"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, body) = call(&router, "GET", "/loki/api/v1/delete").await;
    assert_eq!(body.trim(), "[]");
}

/// Times that are not whole seconds keep their milliseconds, as Loki's
/// `model.Time` writes them (`1591616227.5`), never more digits.
#[tokio::test]
async fn delete_list_times_keep_milliseconds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let router = router(dir.path());
    let q =
        "query=%7Bapp%3D%22x%22%7D&start=2020-06-08T11:37:07.5Z&end=2020-06-08T12:34:52.123456789Z";
    let (status, body) = call(&router, "POST", &format!("/loki/api/v1/delete?{q}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, body) = call(&router, "GET", "/loki/api/v1/delete").await;
    assert!(
        body.contains(r#""start_time":1591616227.5,"#)
            && body.contains(r#""end_time":1591619692.123,"#),
        "{body}"
    );
}
