//! Delete requests (role `admin`): create, list, cancel. The requests
//! themselves, their persistence and tombstones are `crate::delete`.

use super::{Context, Role, ServiceError, blocking};
use crate::AppState;
use crate::delete::DeleteRequest;
use skald_model::Timestamp;
use std::sync::Arc;

/// Records a delete request for the tenant's entries matching `query`
/// (a selector with optional line filters) in `[start, end]`.
pub async fn create(
    app: &Arc<AppState>,
    ctx: &Context,
    query: String,
    start: Timestamp,
    end: Timestamp,
) -> Result<DeleteRequest, ServiceError> {
    let params = serde_json::json!({ "start_ns": start.0, "end_ns": end.0 });
    ctx.audited("delete", query.clone(), params, async {
        let tenant = ctx.tenant_for(Role::Admin)?;
        let deletes = app.deletes.clone();
        blocking(move || deletes.create(&tenant, &query, start, end)).await
    })
    .await
}

/// The tenant's delete requests and their status.
pub fn list(
    app: &Arc<AppState>,
    ctx: &Context,
) -> Result<Vec<(DeleteRequest, &'static str)>, ServiceError> {
    let tenant = ctx.tenant_for(Role::Admin)?;
    Ok(app.deletes.list(&tenant))
}

/// Withdraws one of the tenant's requests still in its cancel period.
pub async fn cancel(app: &Arc<AppState>, ctx: &Context, id: String) -> Result<(), ServiceError> {
    let params = serde_json::Value::Null;
    ctx.audited("delete.cancel", id.clone(), params, async {
        let tenant = ctx.tenant_for(Role::Admin)?;
        let deletes = app.deletes.clone();
        blocking(move || deletes.cancel(&tenant, &id)).await
    })
    .await
}
