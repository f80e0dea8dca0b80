//! Monitoring RPCs: statistics, the caller's quota, health.

use super::{context, proto};
use crate::AppState;
use crate::service::admin::TenantStatistics;
use skald_model::TenantId;
use std::sync::Arc;
use tonic::{Request, Response, Status};

fn stats_out(app: &AppState, t: &TenantStatistics) -> proto::TenantStatistics {
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
        limits: TenantId::new(&t.tenant)
            .map(|id| limit_rows(app, &id, t.segment_bytes))
            .unwrap_or_default(),
    }
}

/// Every limit of `tenant` under its Loki name, as the configuration file
/// writes it, with what the tenant uses of it where that is measured.
fn limit_rows(app: &AppState, tenant: &TenantId, disk_bytes: u64) -> Vec<proto::TenantLimit> {
    let limits = app.store.limits(tenant);
    let usage = app.store.limit_usage(tenant);
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(limits.as_ref()) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .map(|(name, value)| {
            let used = match name.as_str() {
                "ingestion_rate_mb" => format!("{} bytes/s", usage.ingestion_bytes_per_second),
                "ingestion_burst_size_mb" => {
                    format!("{} bytes available", usage.ingestion_burst_available)
                }
                "max_streams_per_user" | "max_global_streams_per_user" => {
                    format!("{} active streams", usage.active_streams)
                }
                "retention_max_bytes" => format!("{disk_bytes} bytes stored"),
                _ => String::new(),
            };
            let value = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            proto::TenantLimit {
                name,
                value,
                usage: used,
            }
        })
        .collect()
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
        .map(|t| stats_out(app, t))
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
    let limits = app.store.limits(&q.tenant);
    Ok(Response::new(proto::GetUserQuotaResponse {
        tenant: q.tenant.to_string(),
        max_line_bytes: limits.max_line_size,
        max_label_names_per_series: limits.max_label_names_per_series as u64,
        max_label_name_length: limits.max_label_name_length as u64,
        max_label_value_length: limits.max_label_value_length as u64,
        max_push_body_bytes: q.max_push_body_bytes,
        max_query_limit: q
            .max_query_limit
            .min(limits.max_entries_limit_per_query as u64),
        max_query_length_hours: q.max_query_length_hours,
        reject_old_samples_max_age_secs: if limits.reject_old_samples {
            limits.reject_old_samples_max_age.as_secs()
        } else {
            0
        },
        streams: q.usage.streams,
        entries: q.usage.entries,
        bytes_stored: q.usage.bytes_stored,
        limits: limit_rows(app, &q.tenant, q.usage.segment_bytes),
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
