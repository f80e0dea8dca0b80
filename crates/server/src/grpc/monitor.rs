//! Monitoring RPCs: statistics, the caller's quota, health.

use super::{blocking, proto, tenant};
use crate::AppState;
use skald_model::{TenantId, Timestamp};
use std::sync::Arc;
use tonic::{Request, Response, Status};

fn tenant_stats(app: &AppState, tenant: &TenantId) -> proto::TenantStatistics {
    let st = app.store.tenant_stats(tenant);
    let streams = app
        .store
        .streams(tenant, &[], Timestamp::MIN, Timestamp::MAX);
    let oldest = streams.iter().map(|s| s.min_ts.0).min().unwrap_or(0);
    let newest = streams.iter().map(|s| s.max_ts.0).max().unwrap_or(0);
    proto::TenantStatistics {
        tenant: tenant.to_string(),
        streams: st.streams,
        entries: st.segment_entries + st.head_entries,
        bytes_raw: st.segment_raw_bytes + st.head_bytes,
        bytes_stored: st.segment_bytes + st.head_bytes,
        compression_ratio: if st.segment_bytes > 0 {
            st.segment_raw_bytes as f64 / st.segment_bytes as f64
        } else {
            0.0
        },
        segments: st.segments,
        oldest_entry_ns: oldest,
        newest_entry_ns: newest,
        limits: limit_rows(app, tenant, st.segment_bytes),
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
    let req = req.into_inner();
    let only = if req.tenant.is_empty() {
        None
    } else {
        Some(TenantId::new(&req.tenant).map_err(|e| super::invalid("tenant", e))?)
    };
    let app = app.clone();
    let out = blocking(move || {
        let tenants = match only {
            Some(t) => vec![t],
            None => app.store.tenants(),
        };
        let per: Vec<proto::TenantStatistics> =
            tenants.iter().map(|t| tenant_stats(&app, t)).collect();
        let mut total = proto::TenantStatistics {
            tenant: String::new(),
            ..Default::default()
        };
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
        let c = app.store.counters();
        let uptime = app.started.elapsed().as_secs_f64().max(1e-3);
        Ok(proto::GetStatisticsResponse {
            tenants: per,
            total: Some(total),
            ingestion_entries_per_second: c.entries_accepted as f64 / uptime,
            ingestion_bytes_per_second: c.bytes_accepted as f64 / uptime,
            entries_rejected: c.entries_rejected,
            uptime_seconds: uptime as u64,
        })
    })
    .await?;
    Ok(Response::new(out))
}

pub(super) async fn get_user_quota(
    app: &Arc<AppState>,
    req: Request<proto::GetUserQuotaRequest>,
) -> Result<Response<proto::GetUserQuotaResponse>, Status> {
    let tenant = tenant(&req)?;
    let app = app.clone();
    let out = blocking(move || {
        let limits = app.store.limits(&tenant);
        let usage = tenant_stats(&app, &tenant);
        Ok(proto::GetUserQuotaResponse {
            tenant: tenant.to_string(),
            max_line_bytes: limits.max_line_size,
            max_label_names_per_series: limits.max_label_names_per_series as u64,
            max_label_name_length: limits.max_label_name_length as u64,
            max_label_value_length: limits.max_label_value_length as u64,
            max_push_body_bytes: app.config.max_push_body_bytes as u64,
            max_query_limit: (app.config.max_query_limit as u64)
                .min(limits.max_entries_limit_per_query as u64),
            max_query_length_hours: app.config.max_query_length_hours,
            reject_old_samples_max_age_secs: if limits.reject_old_samples {
                limits.reject_old_samples_max_age.as_secs()
            } else {
                0
            },
            streams: usage.streams,
            entries: usage.entries,
            bytes_stored: usage.bytes_stored,
            limits: usage.limits,
        })
    })
    .await?;
    Ok(Response::new(out))
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
