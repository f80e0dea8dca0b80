use super::*;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn router() -> Router {
    Router::new().fallback(serve)
}

async fn get(uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::builder().uri(uri);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let res = router()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

fn content_type(h: &HeaderMap) -> &str {
    h.get(header::CONTENT_TYPE).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn index_is_served_at_the_root_and_at_client_routes() {
    for route in CLIENT_ROUTES {
        let (status, h, body) = get(&format!("{route}?query=%7Bapp%3D%22x%22%7D"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{route}");
        assert_eq!(content_type(&h), "text/html; charset=utf-8");
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-cache");
        assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains("<script type=\"module\" src=\"assets/app.js\">"));
    }
}

#[tokio::test]
async fn assets_carry_their_content_types() {
    let cases = [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/assets/favicon.svg", "image/svg+xml"),
        ("/assets/index.html", "text/html; charset=utf-8"),
    ];
    for (uri, want) in cases {
        let (status, h, body) = get(uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(content_type(&h), want, "{uri}");
        assert_eq!(h.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
        assert!(!body.is_empty(), "{uri}");
    }
}

#[tokio::test]
async fn an_unchanged_asset_costs_a_304() {
    let (_, h, _) = get("/assets/app.js", &[]).await;
    let etag = h.get(header::ETAG).unwrap().to_str().unwrap().to_string();
    let (status, h, body) = get("/assets/app.js", &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(h.get(header::ETAG).unwrap().to_str().unwrap(), etag);
    assert!(body.is_empty());
    let (status, _, _) = get("/assets/app.js", &[("if-none-match", "\"other\"")]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_assets_and_api_paths_are_plain_404s() {
    for uri in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/",
        "/loki/api/v1/patterns",
        "/skald/api/v1/errors",
        "/explore/deeper",
        "/favicon.ico",
    ] {
        let (status, h, _) = get(uri, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(content_type(&h), "text/plain; charset=utf-8", "{uri}");
    }
}

#[tokio::test]
async fn only_get_and_head_are_answered() {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/")
        .body(Body::empty())
        .unwrap();
    let res = router().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// A file added under `assets/` but not to the table would be missing from
/// the binary (and the page would break only at run time).
#[test]
fn every_file_of_the_assets_directory_is_embedded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
}

/// Every module the page imports is embedded: a relative import of a file
/// that is not in the table would 404 in the browser.
#[test]
fn every_module_import_resolves_to_an_embedded_file() {
    for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        let text = std::str::from_utf8(asset.bytes).unwrap();
        for line in text.lines().filter(|l| l.starts_with("import ")) {
            let target = line
                .split("from './")
                .nth(1)
                .and_then(|rest| rest.split('\'').next())
                .unwrap_or_else(|| panic!("{}: unexpected import form: {line}", asset.name));
            assert!(
                ASSETS.iter().any(|a| a.name == target),
                "{} imports {target}, which is not embedded",
                asset.name
            );
        }
    }
}
