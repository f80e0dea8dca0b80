//! Readiness, build information and Prometheus metrics.

use crate::service::Context;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use serde_json::json;
use std::fmt::Write;
use std::sync::Arc;

pub async fn ready() -> &'static str {
    "ready\n"
}

pub async fn buildinfo() -> impl IntoResponse {
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("SKALD_GIT_REVISION").unwrap_or("unknown"),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": ""
    }))
}

/// Prometheus metrics; with authentication on and `[auth] open_metrics =
/// false`, only for an admin of every tenant.
pub async fn metrics(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if !app.auth.config.metrics_open() {
        let ctx = Context::from_http(&app, &headers)?;
        crate::service::admin::authorize_metrics(&ctx)?;
    }
    let c = app.store.counters();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "skald_ingested_entries_total",
        "counter",
        "Entries stored.",
        c.entries_accepted,
    );
    metric(
        "skald_ingested_bytes_total",
        "counter",
        "Bytes of lines and metadata stored.",
        c.bytes_accepted,
    );
    metric(
        "skald_rejected_entries_total",
        "counter",
        "Entries refused by validation (labels, line size, age), at the edge or by the store.",
        c.entries_rejected
            + app
                .refused_entries
                .load(std::sync::atomic::Ordering::Relaxed),
    );
    metric(
        "skald_duplicate_entries_total",
        "counter",
        "Exact duplicates dropped at ingest.",
        c.duplicates,
    );
    metric(
        "skald_flushes_total",
        "counter",
        "Head flushes into segments.",
        c.flushes,
    );
    metric(
        "skald_flush_errors_total",
        "counter",
        "Failed flush attempts.",
        c.flush_errors,
    );
    metric(
        "skald_wal_syncs_total",
        "counter",
        "WAL fsyncs.",
        c.wal_syncs,
    );
    metric(
        "skald_compactions_total",
        "counter",
        "Segment compactions.",
        c.compactions,
    );
    metric(
        "skald_compaction_errors_total",
        "counter",
        "Failed compactions.",
        c.compaction_errors,
    );
    metric(
        "skald_compaction_pending",
        "gauge",
        "1 while a compaction runs or the policy asks for one.",
        u64::from(c.compaction_pending),
    );
    metric(
        "skald_head_bytes",
        "gauge",
        "Raw bytes in memory: the head and any head being flushed.",
        c.head_bytes,
    );
    metric(
        "skald_corrupt_files",
        "gauge",
        "Files that failed their checksums.",
        c.corrupt_files,
    );
    for (name, help, value) in [
        (
            "skald_retention_segments_deleted_total",
            "Segments deleted whole by retention (time or size).",
            c.retention_segments_deleted,
        ),
        (
            "skald_retention_segments_rewritten_total",
            "Segments rewritten without expired or deleted entries.",
            c.retention_segments_rewritten,
        ),
        (
            "skald_retention_bytes_reclaimed_total",
            "Disk bytes freed by retention and deletes.",
            c.retention_bytes_reclaimed,
        ),
        (
            "skald_retention_entries_expired_total",
            "Entries dropped from disk past their retention or size budget.",
            c.retention_entries_expired,
        ),
        (
            "skald_deleted_entries_dropped_total",
            "Entries dropped from disk for delete requests.",
            c.deleted_entries_dropped,
        ),
        (
            "skald_delete_tombstones_retired_total",
            "Delete requests whose entries are gone from disk and memory.",
            c.tombstones_retired,
        ),
    ] {
        metric(name, "counter", help, value);
    }
    metric(
        "skald_tails_dropped_total",
        "counter",
        "Live tails ended because their client did not read (tail_max_stall_secs).",
        crate::tail::TAILS_DROPPED.load(std::sync::atomic::Ordering::Relaxed),
    );
    metric(
        "skald_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        app.started.elapsed().as_secs(),
    );
    metric(
        "skald_auth_failures_total",
        "counter",
        "Requests refused for missing, invalid or expired credentials.",
        app.auth.failures.load(std::sync::atomic::Ordering::Relaxed),
    );
    if let Some(index) = &app.analysis {
        crate::analysis::render_metrics(&index.counters(), &mut metric);
    }
    if let Some(ruler) = &app.ruler {
        ruler.render_metrics(&mut out);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
