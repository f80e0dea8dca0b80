//! Skald's network interfaces over the store and the query engine.
//!
//! [`service`] holds every operation once, protocol-neutral: typed
//! requests in, typed results or one `ServiceError` out, with
//! authentication and authorisation. Two thin adapters sit on it: Grafana
//! Loki's HTTP API (push, queries, labels, series, tail, delete, index
//! statistics, readiness, metrics), built as an axum [`Router`] by [`app`]
//! so tests can drive it without a socket, and the gRPC API ([`grpc`]).
//! Adapters parse the wire format into the typed request, build the
//! request's [`service::Context`], call the operation and encode the
//! answer; errors become statuses in one place
//! ([`service::ErrorCode::statuses`]).
//!
//! The listeners themselves are the binary's; [`tls`] gives them TLS.
//!
//! Not here: storage, query evaluation, configuration files (the `skald`
//! binary loads those and hands over a [`ServerConfig`]).

pub mod admission;
pub mod analysis;
mod analysis_alerts;
pub mod cluster;
mod delete;
pub mod discovery;
mod drilldown;
mod error;
mod export;
pub mod grpc;
mod labels;
pub mod listen;
pub mod observe;
pub mod otlp;
mod params;
pub mod priority;
mod push;
mod query;
pub mod ruler;
pub mod service;
mod status;
mod tail;
pub mod tls;
mod volume;

pub use delete::Deletes;
pub use discovery::IngestConfig;
pub use error::ApiError;
pub use export::Exports;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use skald_store::Store;
use std::sync::Arc;
use std::time::Instant;

/// How the HTTP API behaves (what a request may ask for).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest push body accepted, as received (413 above).
    pub max_push_body_bytes: usize,
    /// Largest push body once decompressed (413 above).
    pub max_push_decompressed_bytes: usize,
    /// Highest `limit` a log query may ask for (Loki's
    /// `max_entries_limit_per_query`).
    pub max_query_limit: usize,
    /// Longest time range a query may span, in hours (0: no limit).
    pub max_query_length_hours: u64,
    /// Most series a metric query may return (Loki's `max_query_series`).
    pub max_query_series: usize,
    /// Most bytes of lines a query may read, estimated from the index
    /// before it runs (Loki's `max_query_bytes_read`; 0: no limit). Not
    /// applied to log queries without filters or parsers, which stop at
    /// their limit.
    pub max_query_bytes_read: u64,
    /// Most bytes of entries (lines and structured metadata, as the
    /// pipeline formats them) a log query may hold for its answer; more
    /// fails the query naming this limit.
    pub max_response_bytes: usize,
    /// Bytes of entries all log queries hold at once for their answers
    /// (past a small part of each that is always allowed); a query that
    /// finds them spent fails with 503 naming this limit.
    pub max_inflight_response_bytes: usize,
    /// Memory one query may hold for its working sets: the series of a
    /// metric query and their per-interval values (past it, the range is
    /// evaluated in shorter parts; a single step that does not fit fails
    /// the query), and the entries a log query keeps. 0: no limit. The
    /// default is a sixteenth of the machine's memory, between 64 MiB and
    /// 256 MiB ([`default_query_memory`]).
    pub max_query_memory: u64,
    /// Pattern mining at ingest (`[http.analysis]`).
    pub analysis: skald_analysis::index::IndexConfig,
    /// How long a query may run before it is stopped (504 / gRPC
    /// DEADLINE_EXCEEDED; 0: no limit). See `admission`.
    pub query_timeout_secs: u64,
    /// Expensive queries (more than `cheap_query_bytes` to read) running
    /// at once; more wait for a slot.
    pub max_concurrent_queries: usize,
    /// Queries waiting for a slot at once; more are refused with 429.
    pub max_queued_queries: usize,
    /// How long a query waits for a slot before it is refused with 503.
    pub query_queue_wait_ms: u64,
    /// A query estimated (from the index) to read at most this many bytes
    /// is cheap: it does not queue behind expensive ones.
    pub cheap_query_bytes: u64,
    /// How much lower than the rest of the server queries run, in nice
    /// steps (0 to 19; 0: the same), so they yield the CPU to ingest
    /// (see `priority`).
    pub query_nice: i32,
    /// Bytes of entries a live tail's queue holds (lines and metadata)
    /// before entries are dropped and reported as `dropped_entries`.
    pub tail_queue_bytes: usize,
    /// A live tail whose client reads nothing for this long is ended, with
    /// the reason in the websocket close frame or the gRPC status.
    pub tail_max_stall_secs: u64,
    /// Decompressed bytes all pushes in flight may hold together; a push
    /// that finds them spent waits `push_budget_wait_ms`, then gets 503.
    pub max_inflight_decompressed_bytes: usize,
    pub push_budget_wait_ms: u64,
    /// Export jobs a tenant may run at once (Loki-style `max_export_jobs`;
    /// per-tenant limits override it).
    pub max_export_jobs: usize,
    /// How long a finished export job (its status and its file) is kept,
    /// in hours.
    pub export_retention_hours: u64,
}

/// The default `max_query_memory`: a sixteenth of the machine's memory
/// (`MemTotal` of `/proc/meminfo`), between 64 MiB and 256 MiB; 256 MiB
/// where the total cannot be read.
pub fn default_query_memory() -> u64 {
    const MIN: u64 = 64 << 20;
    const MAX: u64 = 256 << 20;
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    total.map_or(MAX, |t| (t / 16).clamp(MIN, MAX))
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_push_body_bytes: 64 * 1024 * 1024,
            max_push_decompressed_bytes: 256 * 1024 * 1024,
            max_query_limit: 5000,
            max_query_length_hours: 30 * 24 + 1,
            max_query_series: 500,
            max_query_bytes_read: 0,
            max_response_bytes: 32 * 1024 * 1024,
            max_inflight_response_bytes: 128 * 1024 * 1024,
            max_query_memory: default_query_memory(),
            analysis: Default::default(),
            query_timeout_secs: 120,
            max_concurrent_queries: 4,
            max_queued_queries: 64,
            query_queue_wait_ms: 10_000,
            cheap_query_bytes: 16 * 1024 * 1024,
            query_nice: 0,
            tail_queue_bytes: 4 * 1024 * 1024,
            tail_max_stall_secs: 30,
            max_inflight_decompressed_bytes: 256 * 1024 * 1024,
            push_budget_wait_ms: 2_000,
            max_export_jobs: 4,
            export_retention_hours: 7 * 24,
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub store: Arc<Store>,
    pub config: ServerConfig,
    pub started: Instant,
    /// Delete requests (persisted; applied by the store).
    pub deletes: Arc<Deletes>,
    /// Background export jobs.
    pub exports: Exports,
    /// Per-tenant ingest settings: discovery and the OTLP mapping.
    pub ingest: IngestConfig,
    /// The pattern index, when mining is on.
    pub analysis: Option<Arc<skald_analysis::index::PatternIndex>>,
    /// Query slots and queue (see `admission`).
    pub admission: admission::Admission,
    /// Tokens and whether they are required.
    pub auth: service::auth::Auth,
    /// Entries refused before they reach the store (labels that do not
    /// parse), counted with the store's refusals in /metrics.
    pub refused_entries: std::sync::atomic::AtomicU64,
    /// Alerting and recording rules (`None`: not running here).
    pub ruler: Option<skald_ruler::Ruler>,
    /// Where audit records go (`[audit]`; the default writes none).
    pub audit: Arc<service::audit::Audit>,
    /// Request durations and per-tenant figures for /metrics.
    pub metrics: observe::Metrics,
}

impl AppState {
    /// The state over an open store: loads its delete requests and export
    /// jobs from the data directory.
    pub fn open(
        store: Arc<Store>,
        config: ServerConfig,
        auth: service::auth::AuthConfig,
    ) -> Result<Arc<AppState>, String> {
        Ok(Arc::new(AppState::build(store, config, auth)?))
    }

    /// As [`AppState::open`], unwrapped, for a caller that sets more
    /// fields (ingest settings, the pattern index) by struct update.
    pub fn build(
        store: Arc<Store>,
        config: ServerConfig,
        auth: service::auth::AuthConfig,
    ) -> Result<AppState, String> {
        let data_dir = store.config().data_dir.clone();
        let retention = std::time::Duration::from_secs(config.export_retention_hours * 3600);
        Ok(AppState {
            deletes: Arc::new(
                Deletes::open(store.clone())
                    .map_err(|e| format!("loading delete requests: {e}"))?,
            ),
            exports: Exports::open(&data_dir, retention)
                .map_err(|e| format!("loading export jobs: {e}"))?
                .share_through(store.catalog()),
            auth: service::auth::Auth::new(&data_dir, store.catalog(), auth)
                .map_err(|e| format!("loading tokens: {e}"))?,
            refused_entries: Default::default(),
            store,
            config,
            started: Instant::now(),
            ingest: Default::default(),
            analysis: None,
            admission: Default::default(),
            ruler: None,
            audit: Default::default(),
            metrics: Default::default(),
        })
    }
}

/// The HTTP API.
pub fn app(state: Arc<AppState>) -> Router {
    let body_limit = state.config.max_push_body_bytes;
    Router::new()
        .route(
            "/loki/api/v1/push",
            post(push::push).layer(axum::extract::DefaultBodyLimit::max(body_limit)),
        )
        .route(
            "/api/prom/push",
            post(push::push).layer(axum::extract::DefaultBodyLimit::max(body_limit)),
        )
        .route(
            "/loki/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route("/loki/api/v1/query", get(query::query).post(query::query))
        .route(
            "/loki/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/loki/api/v1/labels",
            get(labels::names).post(labels::names),
        )
        .route("/loki/api/v1/label", get(labels::names))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(labels::values).post(labels::values),
        )
        .route(
            "/loki/api/v1/series",
            get(labels::series).post(labels::series),
        )
        .route("/loki/api/v1/tail", get(tail::tail))
        .route(
            "/loki/api/v1/delete",
            post(delete::create)
                .put(delete::create)
                .get(delete::list)
                .delete(delete::cancel),
        )
        .route(
            "/loki/api/v1/index/stats",
            get(volume::stats).post(volume::stats),
        )
        .route(
            "/loki/api/v1/index/volume",
            get(volume::volume).post(volume::volume),
        )
        .route(
            "/loki/api/v1/index/volume_range",
            get(volume::volume_range).post(volume::volume_range),
        )
        .route(
            "/otlp/v1/logs",
            post(otlp::push).layer(axum::extract::DefaultBodyLimit::max(body_limit)),
        )
        .route(
            "/loki/api/v1/detected_labels",
            get(drilldown::detected_labels).post(drilldown::detected_labels),
        )
        .route(
            "/loki/api/v1/detected_fields",
            get(drilldown::detected_fields).post(drilldown::detected_fields),
        )
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(drilldown::detected_field_values).post(drilldown::detected_field_values),
        )
        .route(
            "/loki/api/v1/patterns",
            get(analysis::patterns).post(analysis::patterns),
        )
        .route(
            "/skald/api/v1/errors",
            get(analysis::errors).post(analysis::errors),
        )
        .route(
            "/skald/api/v1/anomalies",
            get(analysis::anomalies).post(analysis::anomalies),
        )
        .route(
            "/skald/api/v1/analyze",
            get(analysis::analyze).post(analysis::analyze),
        )
        .route("/loki/api/v1/rules", get(ruler::list))
        .route(
            "/loki/api/v1/rules/{namespace}",
            get(ruler::get_namespace)
                .post(ruler::set_group)
                .delete(ruler::delete_namespace),
        )
        .route(
            "/loki/api/v1/rules/{namespace}/{group}",
            get(ruler::get_group).delete(ruler::delete_group),
        )
        .route("/api/prom/rules", get(ruler::list))
        .route(
            "/api/prom/rules/{namespace}",
            get(ruler::get_namespace)
                .post(ruler::set_group)
                .delete(ruler::delete_namespace),
        )
        .route(
            "/api/prom/rules/{namespace}/{group}",
            get(ruler::get_group).delete(ruler::delete_group),
        )
        .route("/prometheus/api/v1/rules", get(ruler::prometheus_rules))
        .route("/prometheus/api/v1/alerts", get(ruler::prometheus_alerts))
        .route(cluster::HEADS_PATH, get(cluster::heads))
        .route(cluster::TAIL_PATH, get(cluster::tail))
        .route("/ready", get(status::ready))
        .route("/loki/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/metrics", get(status::metrics))
        // The web UI answers only what no route above took.
        .fallback(skald_ui::serve)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::track_http,
        ))
        .with_state(state)
}

pub(crate) use service::blocking;
