//! Live tail (role `read`): checks the request, then hands it to
//! `crate::tail`, which runs it.

use super::query::{entry_limit, parse_log_query};
use super::{Context, Role, ServiceError};
use crate::AppState;
use crate::tail::{MAX_DELAY_SECS, Tail, TailRequest};
use skald_model::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// How far back a tail's history reaches when it names no start.
const DEFAULT_HISTORY_NS: i64 = super::query::HOUR_NS;

/// What a tail asks for, as the adapters parse it.
pub struct TailParams {
    pub query: String,
    /// History entries; `None`: the default limit.
    pub limit: Option<usize>,
    /// `None`: an hour ago.
    pub start: Option<Timestamp>,
    pub delay_secs: u64,
}

/// Starts a tail for the context's tenant (or tenants: `a|b`, read
/// granted on each, streams labelled with `__tenant_id__`); messages arrive on its
/// receiver until it is dropped. Its queues are bounded in entries and
/// bytes (`tail_queue_bytes`), and a client that stops reading for
/// `tail_max_stall_secs` ends it (the reason is in [`Tail::ended`]).
pub async fn start(
    app: &Arc<AppState>,
    ctx: &Context,
    p: TailParams,
) -> Result<Tail, ServiceError> {
    let params = serde_json::json!({
        "limit": p.limit,
        "start_ns": p.start.map(|t| t.0),
        "delay_secs": p.delay_secs,
    });
    let target = p.query.clone();
    ctx.audited("tail", target, params, start_audited(app, ctx, p))
        .await
}

async fn start_audited(
    app: &Arc<AppState>,
    ctx: &Context,
    p: TailParams,
) -> Result<Tail, ServiceError> {
    let tenants = ctx.tenants_for(Role::Read)?;
    let query = parse_log_query("query", &p.query)?;
    // Over several tenants, the smallest of their entry limits.
    let mut limit = usize::MAX;
    for tenant in &tenants {
        limit = limit.min(entry_limit(app, tenant, p.limit)?);
    }
    if p.delay_secs > MAX_DELAY_SECS {
        return Err(ServiceError::bad_request(format!(
            "delay_for can't be greater than {MAX_DELAY_SECS}"
        )));
    }
    let start = p
        .start
        .unwrap_or_else(|| Timestamp::now().saturating_sub(DEFAULT_HISTORY_NS));
    crate::tail::start(
        app.clone(),
        TailRequest {
            tenants,
            query,
            limit,
            start,
            delay: Duration::from_secs(p.delay_secs),
        },
    )
    .await
}
