//! Statistics and quota. A reader sees its own tenant's; an admin of every
//! tenant (`--tenant '*'`) sees them all.

use super::{Context, Role, ServiceError, blocking, limits_for};
use crate::AppState;
use skald_model::{TenantId, Timestamp};
use std::sync::Arc;

/// What one tenant holds.
#[derive(Debug, Default, Clone)]
pub struct TenantStatistics {
    pub tenant: String,
    pub streams: u64,
    pub entries: u64,
    pub bytes_raw: u64,
    pub bytes_stored: u64,
    /// Raw over stored bytes of the segments (0: none yet).
    pub compression_ratio: f64,
    pub segments: u64,
    /// Bytes of the tenant's segments on disk (what `retention_max_bytes`
    /// bounds).
    pub segment_bytes: u64,
    pub oldest_entry_ns: i64,
    pub newest_entry_ns: i64,
}

fn tenant_stats(app: &AppState, tenant: &TenantId) -> TenantStatistics {
    let st = app.store.tenant_stats(tenant);
    let streams = app
        .store
        .streams(tenant, &[], Timestamp::MIN, Timestamp::MAX);
    TenantStatistics {
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
        segment_bytes: st.segment_bytes,
        oldest_entry_ns: streams.iter().map(|s| s.min_ts.0).min().unwrap_or(0),
        newest_entry_ns: streams.iter().map(|s| s.max_ts.0).max().unwrap_or(0),
    }
}

/// Statistics of `only` (which the caller must be allowed to read), or
/// of every tenant the caller may see: all of them for a global admin,
/// the request's own tenants otherwise.
pub async fn statistics(
    app: &Arc<AppState>,
    ctx: &Context,
    only: Option<TenantId>,
) -> Result<Vec<TenantStatistics>, ServiceError> {
    let tenants: Option<Vec<TenantId>> = match only {
        Some(t) => {
            ctx.principal.authorize(&t, Role::Read)?;
            Some(vec![t])
        }
        None if ctx.principal.is_global_admin() => None,
        None => {
            ctx.authorize(Role::Read)?;
            Some(ctx.tenants.clone())
        }
    };
    let app = app.clone();
    blocking(move || {
        let tenants = tenants.unwrap_or_else(|| app.store.tenants());
        Ok(tenants.iter().map(|t| tenant_stats(&app, t)).collect())
    })
    .await
}

/// Server-wide metrics, when they are not open: a global admin only.
pub fn authorize_metrics(ctx: &Context) -> Result<(), ServiceError> {
    if ctx.principal.is_global_admin() {
        return Ok(());
    }
    Err(ServiceError::new(
        super::ErrorCode::PermissionDenied,
        "permission denied: /metrics needs an admin token for every tenant (--tenant '*')",
    ))
}

/// The tenant's limits and what it uses of them.
pub struct Quota {
    pub tenant: TenantId,
    pub usage: TenantStatistics,
    pub max_push_body_bytes: u64,
    pub max_query_limit: u64,
    pub max_query_length_hours: u64,
}

pub async fn quota(app: &Arc<AppState>, ctx: &Context) -> Result<Quota, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    let app = app.clone();
    blocking(move || {
        let limits = limits_for(&app, &tenant);
        Ok(Quota {
            usage: tenant_stats(&app, &tenant),
            max_push_body_bytes: app.config.max_push_body_bytes as u64,
            max_query_limit: limits.max_entries as u64,
            max_query_length_hours: limits.max_length.map_or(0, |d| d.as_secs() / 3600),
            tenant,
        })
    })
    .await
}
