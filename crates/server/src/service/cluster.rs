//! What the nodes of a cluster ask each other: an ingest node's head
//! entries, for a query node to add to its answer (see
//! `skald_store::cluster`), and what it makes durable from now on, for a
//! live tail on another node. Authorised as a read of the tenant, like any
//! query: the asking node sends its `--cluster-token` (a token valid for
//! every tenant, which only an admin token may be) when authentication is
//! on.

use super::{Context, Role, ServiceError, blocking};
use crate::AppState;
use skald_model::{Entry, LabelSet, Matcher, Timestamp};
use skald_store::Subscription;
use std::sync::Arc;

/// This node's head entries of the context's tenant, for the streams
/// `selector` matches, in `[start, end)`.
pub async fn heads(
    app: &Arc<AppState>,
    ctx: &Context,
    selector: Vec<Matcher>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<(LabelSet, Vec<Entry>)>, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    let store = app.store.clone();
    blocking(move || Ok(store.head_streams(&tenant, &selector, start, end))).await
}

/// A subscription to what this node (alone: not the nodes it follows
/// itself) makes durable for the context's tenant's streams `selector`
/// matches, with a tail's bounds (`tail_queue_bytes`); `waker` as
/// [`skald_store::Store::subscribe`]'s.
pub fn follow(
    app: &Arc<AppState>,
    ctx: &Context,
    selector: Vec<Matcher>,
    waker: skald_store::tail::Waker,
) -> Result<Subscription, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    Ok(app.store.subscribe_local(
        &tenant,
        &selector,
        crate::tail::QUEUE_ENTRIES,
        app.config.tail_queue_bytes,
        waker,
    ))
}
