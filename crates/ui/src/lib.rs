//! Skald's web UI, embedded in the binary.
//!
//! The UI is a single page written as plain ES modules, CSS and SVG under
//! `assets/`; there is no JavaScript build step, so `cargo build` alone
//! produces a binary that serves it, offline, with no CDN. The page talks
//! only to the Loki HTTP API the same server answers (and to the optional
//! `/skald/api/...` analysis endpoints, which it reports as unavailable when
//! they answer 404).
//!
//! [`serve`] is meant to be the router's fallback: it answers only what no
//! API route took. It serves `/assets/<file>` from the embedded table with
//! its content type and an `ETag` (`Cache-Control: no-cache`, so a new
//! binary's files are picked up at once and an unchanged file costs a 304),
//! and `index.html` for `/` and the page's client-side routes
//! ([`CLIENT_ROUTES`]). Anything else — an unknown asset, an API path no
//! route matched — is a plain-text 404, so API clients probing for optional
//! endpoints are never handed HTML.
//!
//! Not here: any API handler, authentication (the page sends the tenant and
//! bearer token the user typed; the server checks them).

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;

/// One embedded file.
struct Asset {
    /// Name under `assets/`, as requested after `/assets/`.
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $ty:expr),* $(,)?) => {
        &[$(Asset {
            name: $name,
            content_type: $ty,
            bytes: include_bytes!(concat!("../assets/", $name)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `assets/` (a test checks that none is missing).
static ASSETS: &[Asset] = assets! {
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "app.js" => JS,
    "api.js" => JS,
    "chart.js" => JS,
    "dom.js" => JS,
    "editor.js" => JS,
    "explore.js" => JS,
    "labels.js" => JS,
    "logql.js" => JS,
    "logview.js" => JS,
    "analysis.js" => JS,
    "settings.js" => JS,
    "timerange.js" => JS,
};

/// Paths of the page's own views: a reload or a shared link on one of them
/// gets `index.html`, and the page shows the view.
pub const CLIENT_ROUTES: &[&str] = &["/", "/explore", "/labels", "/patterns", "/errors"];

/// Strong validators, computed once from the embedded bytes.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let hash = xxhash_rust::xxh3::xxh3_64(a.bytes);
            HeaderValue::from_str(&format!("\"{hash:016x}\"")).expect("hex is a valid header")
        })
        .collect()
});

/// What the page is allowed to load and connect to: only this origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'";

/// The router's fallback: the UI's files and routes, or a plain 404.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return not_found(uri.path());
    }
    let path = uri.path();
    let name = if let Some(name) = path.strip_prefix("/assets/") {
        name
    } else if CLIENT_ROUTES.contains(&path) {
        "index.html"
    } else {
        return not_found(path);
    };
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return not_found(path);
    };
    respond(index, &headers, method == Method::HEAD)
}

fn respond(index: usize, request: &HeaderMap, head_only: bool) -> Response {
    let asset = &ASSETS[index];
    let etag = ETAGS[index].clone();
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().as_bytes() == etag.as_bytes())
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if head_only {
        (
            [(header::CONTENT_LENGTH, HeaderValue::from(asset.bytes.len()))],
            (),
        )
            .into_response()
    } else {
        asset.bytes.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.name == "index.html" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}

fn not_found(path: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("404 page not found: {path}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
