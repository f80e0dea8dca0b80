//! What `/metrics` says about requests and tenants, and what a request
//! knows about itself before an operation runs.
//!
//! Both adapters wrap every request: HTTP with the axum middleware
//! [`track_http`], gRPC with the tower layer [`GrpcLayer`]. The wrapper
//! times the request into a histogram by protocol, route and status, and
//! runs it inside a task-local [`RequestInfo`] (protocol, route, remote
//! address), which `service::Context` reads when the adapter builds it, so
//! the audit log knows who called what from where without every handler
//! passing it along.
//!
//! [`Metrics`] also holds the per-tenant figures the service layer counts
//! as operations end: lines and bytes stored, entries refused by reason,
//! bytes scanned by queries, live tails open.
//!
//! Not here: the store's own counters (`Store::counters`), rendered with
//! these by `status::metrics`.

use skald_model::TenantId;
use skald_store::histogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The request being served, as its wrapper saw it.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// `http` or `grpc`.
    pub protocol: &'static str,
    /// The route template (`/loki/api/v1/query_range`) or gRPC method path.
    pub route: String,
    /// The peer, when the listener knows it.
    pub remote: Option<SocketAddr>,
}

tokio::task_local! {
    static REQUEST: RequestInfo;
}

impl RequestInfo {
    /// The request this task serves (`None` outside a wrapped request:
    /// tests driving a router without the wrapper, background work).
    pub fn current() -> Option<RequestInfo> {
        REQUEST.try_with(Clone::clone).ok()
    }
}

/// A poisoned lock still holds good counters: a panic elsewhere must not
/// take `/metrics` down.
trait Locked<T> {
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Protocol, route and status of a request.
type RouteKey = (&'static str, String, String);

/// Per-tenant and per-route figures for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RouteKey, Arc<Histogram>>>,
    ingested: Mutex<BTreeMap<TenantId, (u64, u64)>>,
    refused: Mutex<BTreeMap<(TenantId, &'static str), u64>>,
    scanned: Mutex<BTreeMap<TenantId, u64>>,
    /// Live tails open now (websocket and gRPC).
    pub tails: AtomicI64,
}

impl Metrics {
    fn request_done(
        &self,
        protocol: &'static str,
        route: String,
        status: String,
        started: Instant,
    ) {
        let h = self
            .requests
            .locked()
            .entry((protocol, route, status))
            .or_default()
            .clone();
        h.observe(started.elapsed());
    }

    /// Entries and bytes stored for `tenant`.
    pub fn ingested(&self, tenant: &TenantId, entries: u64, bytes: u64) {
        if entries == 0 {
            return;
        }
        let mut m = self.ingested.locked();
        let e = m.entry(tenant.clone()).or_default();
        e.0 += entries;
        e.1 += bytes;
    }

    /// Entries refused for `tenant`, by reason (Loki's discard reasons).
    pub fn refused(&self, tenant: &TenantId, reason: &'static str, entries: u64) {
        if entries == 0 {
            return;
        }
        *self
            .refused
            .locked()
            .entry((tenant.clone(), reason))
            .or_default() += entries;
    }

    /// Bytes a query of `tenant` read (decompressed and from memory).
    pub fn scanned(&self, tenant: &TenantId, bytes: u64) {
        *self.scanned.locked().entry(tenant.clone()).or_default() += bytes;
    }

    /// Appends every series of these metrics in Prometheus' text format.
    pub fn render(&self, out: &mut String, active_streams: &[(TenantId, u64)]) {
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let ingested = self.ingested.locked().clone();
        head(
            out,
            "skald_tenant_ingested_entries_total",
            "counter",
            "Entries stored, by tenant.",
        );
        for (t, (entries, _)) in &ingested {
            let _ = writeln!(
                out,
                "skald_tenant_ingested_entries_total{{tenant=\"{t}\"}} {entries}"
            );
        }
        head(
            out,
            "skald_tenant_ingested_bytes_total",
            "counter",
            "Bytes of lines and metadata stored, by tenant.",
        );
        for (t, (_, bytes)) in &ingested {
            let _ = writeln!(
                out,
                "skald_tenant_ingested_bytes_total{{tenant=\"{t}\"}} {bytes}"
            );
        }
        head(
            out,
            "skald_discarded_entries_total",
            "counter",
            "Entries refused at ingest, by tenant and reason (Loki's discard reasons).",
        );
        for ((t, reason), n) in self.refused.locked().iter() {
            let _ = writeln!(
                out,
                "skald_discarded_entries_total{{tenant=\"{t}\",reason=\"{reason}\"}} {n}"
            );
        }
        head(
            out,
            "skald_active_streams",
            "gauge",
            "Streams pushed to in the last 30 minutes, by tenant.",
        );
        for (t, n) in active_streams {
            let _ = writeln!(out, "skald_active_streams{{tenant=\"{t}\"}} {n}");
        }
        head(
            out,
            "skald_query_bytes_scanned_total",
            "counter",
            "Bytes of lines read by queries (decompressed and from memory), by tenant.",
        );
        for (t, n) in self.scanned.locked().iter() {
            let _ = writeln!(out, "skald_query_bytes_scanned_total{{tenant=\"{t}\"}} {n}");
        }
        head(
            out,
            "skald_tail_connections",
            "gauge",
            "Live tails open (websocket and gRPC).",
        );
        let _ = writeln!(
            out,
            "skald_tail_connections {}",
            self.tails.load(Ordering::Relaxed).max(0)
        );
        head(
            out,
            "skald_request_duration_seconds",
            "histogram",
            "Requests by protocol (http, grpc), route and status (HTTP status or gRPC code).",
        );
        let requests: Vec<_> = self
            .requests
            .locked()
            .iter()
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        for ((protocol, route, status), h) in requests {
            let labels = format!(
                "protocol=\"{protocol}\",route=\"{}\",status=\"{status}\"",
                escape(&route)
            );
            h.render(out, "skald_request_duration_seconds", &labels);
        }
    }
}

/// A label value as Prometheus' text format needs it.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counts a live tail while it exists.
pub struct TailGauge(Arc<crate::AppState>);

impl TailGauge {
    pub fn open(app: &Arc<crate::AppState>) -> TailGauge {
        app.metrics.tails.fetch_add(1, Ordering::Relaxed);
        TailGauge(app.clone())
    }
}

impl Drop for TailGauge {
    fn drop(&mut self) {
        self.0.metrics.tails.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The peer of an HTTP connection, for `into_make_service_with_connect_info::<Peer>()`
/// over a plain or a TLS listener.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// The axum middleware around every HTTP request: request info for the
/// context, and the duration by route and status.
pub async fn track_http(
    axum::extract::State(app): axum::extract::State<Arc<crate::AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let remote = req
        .extensions()
        .get::<axum::extract::ConnectInfo<Peer>>()
        .map(|c| c.0.0);
    let info = RequestInfo {
        protocol: "http",
        route: route.clone(),
        remote,
    };
    let response = REQUEST.scope(info, next.run(req)).await;
    app.metrics.request_done(
        "http",
        route,
        response.status().as_u16().to_string(),
        started,
    );
    response
}

/// The tower layer around every gRPC call: request info for the context,
/// and the duration by method and code. The code is read from the
/// response headers, where tonic puts it for every refused call; a call
/// whose headers carry none answered OK (a stream that fails after its
/// first message is counted as OK, timed to its headers).
#[derive(Clone)]
pub struct GrpcLayer(pub Arc<crate::AppState>);

impl<S> tower::Layer<S> for GrpcLayer {
    type Service = GrpcObserve<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcObserve {
            inner,
            app: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcObserve<S> {
    inner: S,
    app: Arc<crate::AppState>,
}

impl<S, B, RB> tower::Service<axum::http::Request<B>> for GrpcObserve<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<RB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let route = req.uri().path().to_string();
        let remote = req
            .extensions()
            .get::<axum::extract::ConnectInfo<Peer>>()
            .map(|c| c.0.0);
        let info = RequestInfo {
            protocol: "grpc",
            route: route.clone(),
            remote,
        };
        // The clone that was made ready is the one called (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let app = self.app.clone();
        Box::pin(async move {
            let result = REQUEST.scope(info, inner.call(req)).await;
            if let Ok(response) = &result {
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32);
                app.metrics
                    .request_done("grpc", route, format!("{code:?}"), started);
            }
            result
        })
    }
}
