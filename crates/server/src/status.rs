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
    if let Some(o) = app.store.object_stats() {
        for (name, kind, help, value) in [
            (
                "skald_object_store_get_requests_total",
                "counter",
                "GET requests for segment data (opening and reading segments).",
                o.gets,
            ),
            (
                "skald_object_store_get_bytes_total",
                "counter",
                "Bytes fetched from the object store.",
                o.get_bytes,
            ),
            (
                "skald_object_store_put_requests_total",
                "counter",
                "Objects uploaded (whole or in parts).",
                o.puts,
            ),
            (
                "skald_object_store_put_bytes_total",
                "counter",
                "Bytes uploaded to the object store.",
                o.put_bytes,
            ),
            (
                "skald_object_cache_hits_total",
                "counter",
                "Segment reads served by the local cache of footers, indexes and blocks.",
                o.cache.hits,
            ),
            (
                "skald_object_cache_misses_total",
                "counter",
                "Segment reads the local cache could not serve.",
                o.cache.misses,
            ),
            (
                "skald_object_cache_bytes",
                "gauge",
                "Bytes held by the local cache.",
                o.cache.bytes,
            ),
        ] {
            metric(name, kind, help, value);
        }
    }
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
        "skald_tails_live",
        "gauge",
        "Live tails subscribed now (websocket and gRPC).",
        app.store.live_tails() as u64,
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
    metric(
        "skald_audit_write_failures_total",
        "counter",
        "Audit records that could not be written (file or audit tenant).",
        app.audit
            .failures
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    if let Some((free, total)) = disk_space(&app.store.config().data_dir) {
        metric(
            "skald_disk_free_bytes",
            "gauge",
            "Bytes free for the server on the data directory's filesystem.",
            free,
        );
        metric(
            "skald_disk_total_bytes",
            "gauge",
            "Size of the data directory's filesystem.",
            total,
        );
    }
    if let Some(index) = &app.analysis {
        crate::analysis::render_metrics(&index.counters(), &mut metric);
    }
    let _ = writeln!(
        out,
        "# HELP skald_wal_fsync_duration_seconds How long each WAL fsync took.\n# TYPE skald_wal_fsync_duration_seconds histogram"
    );
    app.store
        .wal_fsync_histogram()
        .render(&mut out, "skald_wal_fsync_duration_seconds", "");
    let active: Vec<_> = app
        .store
        .tenants()
        .into_iter()
        .map(|t| {
            let n = app.store.limit_usage(&t).active_streams;
            (t, n)
        })
        .collect();
    app.metrics.render(&mut out, &active);
    if let Some(ruler) = &app.ruler {
        ruler.render_metrics(&mut out);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

/// Free (for an unprivileged writer) and total bytes of the filesystem
/// holding `dir`.
fn disk_space(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
}
