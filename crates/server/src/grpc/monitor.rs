//! Monitoring RPCs: statistics, the caller's quota, health.

use super::{context, proto};
use crate::AppState;
use crate::service::admin::TenantStatistics;
use skald_model::TenantId;
use std::sync::Arc;
use tonic::{Request, Response, Status};

fn stats_out(t: &TenantStatistics) -> proto::TenantStatistics {
    proto::TenantStatistics {
        tenant: t.tenant.clone(),
        streams: t.streams,
        entries: t.entries,
        bytes_raw: t.bytes_raw,
        bytes_stored: t.bytes_stored,
        compression_ratio: t.compression_ratio,
        segments: t.segments,
        oldest_entry_ns: t.oldest_entry_ns,
        newest_entry_ns: t.newest_entry_ns,
    }
}

pub(super) async fn get_statistics(
    app: &Arc<AppState>,
    req: Request<proto::GetStatisticsRequest>,
) -> Result<Response<proto::GetStatisticsResponse>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    let only = if req.tenant.is_empty() {
        None
    } else {
        Some(TenantId::new(&req.tenant).map_err(|e| super::invalid("tenant", e))?)
    };
    let per: Vec<proto::TenantStatistics> = crate::service::admin::statistics(app, &ctx, only)
        .await?
        .iter()
        .map(stats_out)
        .collect();
    let mut total = proto::TenantStatistics::default();
    let mut raw_segments = 0f64;
    let mut disk_segments = 0f64;
    for t in &per {
        total.streams += t.streams;
        total.entries += t.entries;
        total.bytes_raw += t.bytes_raw;
        total.bytes_stored += t.bytes_stored;
        total.segments += t.segments;
        if t.compression_ratio > 0.0 {
            let disk = t.bytes_stored as f64;
            disk_segments += disk;
            raw_segments += t.compression_ratio * disk;
        }
        if t.oldest_entry_ns != 0
            && (total.oldest_entry_ns == 0 || t.oldest_entry_ns < total.oldest_entry_ns)
        {
            total.oldest_entry_ns = t.oldest_entry_ns;
        }
        total.newest_entry_ns = total.newest_entry_ns.max(t.newest_entry_ns);
    }
    if disk_segments > 0.0 {
        total.compression_ratio = raw_segments / disk_segments;
    }
    // Server-wide rates reveal no tenant's data, but only a global admin
    // sees them beside the totals of every tenant.
    let c = app.store.counters();
    let uptime = app.started.elapsed().as_secs_f64().max(1e-3);
    let global = ctx.principal.is_global_admin();
    Ok(Response::new(proto::GetStatisticsResponse {
        tenants: per,
        total: Some(total),
        ingestion_entries_per_second: if global {
            c.entries_accepted as f64 / uptime
        } else {
            0.0
        },
        ingestion_bytes_per_second: if global {
            c.bytes_accepted as f64 / uptime
        } else {
            0.0
        },
        entries_rejected: if global { c.entries_rejected } else { 0 },
        uptime_seconds: uptime as u64,
    }))
}

pub(super) async fn get_user_quota(
    app: &Arc<AppState>,
    req: Request<proto::GetUserQuotaRequest>,
) -> Result<Response<proto::GetUserQuotaResponse>, Status> {
    let ctx = context(app, &req)?;
    let q = crate::service::admin::quota(app, &ctx).await?;
    let limits = &app.store.config().limits;
    Ok(Response::new(proto::GetUserQuotaResponse {
        tenant: q.tenant.to_string(),
        max_line_bytes: limits.max_line_size as u64,
        max_label_names_per_series: limits.max_label_names_per_series as u64,
        max_label_name_length: limits.max_label_name_length as u64,
        max_label_value_length: limits.max_label_value_length as u64,
        max_push_body_bytes: q.max_push_body_bytes,
        max_query_limit: q.max_query_limit,
        max_query_length_hours: q.max_query_length_hours,
        reject_old_samples_max_age_secs: limits.reject_old_samples_max_age_secs,
        streams: q.usage.streams,
        entries: q.usage.entries,
        bytes_stored: q.usage.bytes_stored,
    }))
}

pub(super) async fn health_check(
    app: &Arc<AppState>,
    _req: Request<proto::HealthCheckRequest>,
) -> Result<Response<proto::HealthCheckResponse>, Status> {
    use proto::health_check_response::ServingStatus;
    let c = app.store.counters();
    let mut problems = Vec::new();
    if c.corrupt_files > 0 {
        problems.push(format!("{} unreadable segment files", c.corrupt_files));
    }
    if c.flush_errors > 0 {
        problems.push(format!("{} failed flushes", c.flush_errors));
    }
    Ok(Response::new(proto::HealthCheckResponse {
        status: ServingStatus::Serving as i32,
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_seconds: app.started.elapsed().as_secs(),
        storage_status: if problems.is_empty() {
            "ok".into()
        } else {
            problems.join("; ")
        },
        corrupt_files: c.corrupt_files,
        head_bytes: c.head_bytes,
    }))
}
