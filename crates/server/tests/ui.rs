//! The web UI is the router's fallback: it is served at `/` and under
//! `/assets/`, and never answers in place of an API route (or turns an
//! unknown API path into a page).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use skald_server::{AppState, ServerConfig, app};
use skald_store::{FsyncMode, Store, StoreConfig};
use std::sync::Arc;
use tower::ServiceExt;

async fn call(router: &axum::Router, method: Method, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let res = router
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, content_type, body)
}

#[tokio::test]
async fn ui_is_served_beside_the_api_without_shadowing_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(StoreConfig {
            data_dir: dir.path().to_path_buf(),
            fsync: FsyncMode::Interval,
            ..StoreConfig::default()
        })
        .unwrap(),
    );
    let router = app(Arc::new(AppState {
        ingest: Default::default(),
        ..AppState::build(store, ServerConfig::default(), Default::default()).expect("state")
    }));

    let (status, ty, body) = call(&router, Method::GET, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ty, "text/html; charset=utf-8");
    assert!(String::from_utf8(body).unwrap().contains("assets/app.js"));
    let (status, ty, _) = call(&router, Method::GET, "/explore?query=%7Ba%3D%22b%22%7D").await;
    assert_eq!(
        (status, ty.as_str()),
        (StatusCode::OK, "text/html; charset=utf-8")
    );
    let (status, ty, _) = call(&router, Method::GET, "/assets/app.js").await;
    assert_eq!(
        (status, ty.as_str()),
        (StatusCode::OK, "text/javascript; charset=utf-8")
    );

    // API routes keep their own answers.
    let (status, ty, body) = call(&router, Method::GET, "/loki/api/v1/labels").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ty.starts_with("application/json"), "{ty}");
    assert!(String::from_utf8(body).unwrap().contains("\"success\""));
    let (status, ty, _) = call(&router, Method::GET, "/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!ty.starts_with("text/html"), "{ty}");
    let (status, ty, _) = call(&router, Method::GET, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!ty.starts_with("text/html"), "{ty}");
    let (status, _, _) = call(&router, Method::GET, "/loki/api/v1/status/buildinfo").await;
    assert_eq!(status, StatusCode::OK);
    // A route with other methods still answers 405, not the page.
    for push in ["/loki/api/v1/push", "/api/prom/push", "/otlp/v1/logs"] {
        let (status, _, _) = call(&router, Method::GET, push).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{push}");
    }
    // Unknown API paths are plain 404s (the UI relies on this to tell
    // that an optional endpoint is missing).
    for path in ["/skald/api/v1/nope", "/api/v1/nope"] {
        let (status, ty, _) = call(&router, Method::GET, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(ty, "text/plain; charset=utf-8", "{path}");
    }
}
