//! Admission of queries: how many run at once, what waits and for how
//! long, and how long one may run.
//!
//! Two lanes of [`tokio::sync::Semaphore`] permits: a query whose bytes to
//! read (estimated from the index before it runs) are at most
//! `cheap_query_bytes` takes a permit of the *light* lane, any other one a
//! permit of the *heavy* lane (`max_concurrent_queries`). A handful of
//! expensive queries therefore fill the heavy lane and queue behind each
//! other, while a cheap query (one stream, a short range) still starts at
//! once. A query that finds its lane full waits up to `query_queue_wait`;
//! at most `max_queued_queries` wait at a time, more are refused at once
//! (429), and one that waited too long is refused with 503.
//!
//! An admitted query runs on the blocking pool (or, with `query_nice`
//! above 0, on a thread of its own at lower CPU priority: `crate::priority`) under a [`skald_query::CancelToken`]
//! whose deadline is `query_timeout`; the guard of that token lives in the
//! request's future, so a client that disconnects cancels the query, and
//! the permit is released only when the query has really stopped (it
//! moves into the task that runs it).
//!
//! Pushes are admitted by bytes instead: what they inflate is reserved in
//! one [`skald_wire::DecompressBudget`] for all of them.
//!
//! A tenant's own `max_concurrent_queries` (its limits) is a third
//! semaphore per tenant, taken first: one tenant's burst of queries waits
//! for its own slots instead of filling the lanes. Its `query_timeout`
//! (under the server's `query_timeout_secs`) is the deadline.

use crate::{ApiError, AppState, ServerConfig};
use skald_model::TenantId;
use skald_query::{CancelOnDrop, CancelToken};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The query limits that apply to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// How long a query may run (None: unbounded).
    pub timeout: Option<Duration>,
    /// Expensive queries running at once.
    pub max_concurrent: usize,
    /// Queries waiting for a permit at once, both lanes together.
    pub max_queued: usize,
    /// How long a query waits for a permit.
    pub queue_wait: Duration,
    /// At most this many estimated bytes to read: a cheap query.
    pub cheap_bytes: u64,
}

/// The admission limits for a query of a tenant: its timeout (the
/// tenant's `query_timeout` under the server's `query_timeout_secs`), the
/// server's lanes and queue.
pub fn limits_for(
    config: &ServerConfig,
    tenant: &crate::service::TenantQueryLimits,
) -> QueryLimits {
    QueryLimits {
        timeout: tenant.timeout,
        max_concurrent: config.max_concurrent_queries.max(1),
        max_queued: config.max_queued_queries,
        queue_wait: Duration::from_millis(config.query_queue_wait_ms),
        cheap_bytes: config.cheap_query_bytes,
    }
}

/// Cheap queries running at once: they are short by definition, the
/// bound only keeps a flood of them finite.
const LIGHT_PERMITS: usize = 64;

/// The server's query lanes and the decompression budget of pushes (built
/// on first use from the configuration).
#[derive(Default)]
pub struct Admission {
    lanes: OnceLock<Lanes>,
    waiting: AtomicUsize,
    push_budget: OnceLock<Arc<skald_wire::DecompressBudget>>,
    /// Each tenant's slots, with the limit they were made for (a reload
    /// that changes it replaces them; running queries keep their old
    /// permits until they end).
    tenants: Mutex<HashMap<TenantId, (usize, Arc<Semaphore>)>>,
}

struct Lanes {
    heavy: Arc<Semaphore>,
    light: Arc<Semaphore>,
}

impl Admission {
    /// The decompression budget every push shares (see
    /// [`skald_wire::budget`]): `max_inflight_decompressed_bytes`, waited
    /// for up to `push_budget_wait_ms`.
    pub fn push_budget(&self, config: &ServerConfig) -> Arc<skald_wire::DecompressBudget> {
        self.push_budget
            .get_or_init(|| {
                skald_wire::DecompressBudget::new(
                    config.max_inflight_decompressed_bytes,
                    Duration::from_millis(config.push_budget_wait_ms),
                )
            })
            .clone()
    }

    fn lanes(&self, limits: &QueryLimits) -> &Lanes {
        self.lanes.get_or_init(|| Lanes {
            heavy: Arc::new(Semaphore::new(limits.max_concurrent)),
            light: Arc::new(Semaphore::new(LIGHT_PERMITS)),
        })
    }

    /// Waits (as for a lane) for one of the tenant's `max` slots; `None`
    /// when the tenant has no limit of its own.
    async fn admit_tenant(
        &self,
        tenant: &TenantId,
        max: usize,
        limits: &QueryLimits,
    ) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        if max == 0 {
            return Ok(None);
        }
        let slots = {
            let mut map = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            let entry = map
                .entry(tenant.clone())
                .or_insert_with(|| (max, Arc::new(Semaphore::new(max))));
            if entry.0 != max {
                *entry = (max, Arc::new(Semaphore::new(max)));
            }
            entry.1.clone()
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Ok(Some(permit));
        }
        let _waiting = Waiting::enter(&self.waiting);
        let refused = || {
            ApiError::new(
                crate::service::ErrorCode::RateLimited,
                format!(
                    "too many queries of tenant {tenant} at once (max_concurrent_queries: {max}); retry later"
                ),
            )
        };
        if self.waiting.load(Ordering::SeqCst) > limits.max_queued {
            return Err(refused());
        }
        match tokio::time::timeout(limits.queue_wait, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            Ok(Err(_closed)) => Err(ApiError::unavailable("the server is shutting down")),
            Err(_elapsed) => Err(refused()),
        }
    }

    /// Waits for a permit of the query's lane, within the limits.
    async fn admit(
        &self,
        limits: &QueryLimits,
        cheap: bool,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        let lanes = self.lanes(limits);
        let lane = if cheap { &lanes.light } else { &lanes.heavy };
        if let Ok(permit) = lane.clone().try_acquire_owned() {
            return Ok(permit);
        }
        // Counted while waiting, also when the client goes meanwhile (the
        // future is dropped mid-wait).
        let _waiting = Waiting::enter(&self.waiting);
        if self.waiting.load(Ordering::SeqCst) > limits.max_queued {
            return Err(ApiError::new(
                crate::service::ErrorCode::RateLimited,
                format!(
                    "too many queries: {} expensive ones run (max_concurrent_queries) and {} wait (max_queued_queries); retry later",
                    limits.max_concurrent, limits.max_queued
                ),
            ));
        }
        let waited = tokio::time::timeout(limits.queue_wait, lane.clone().acquire_owned()).await;
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(ApiError::unavailable("the server is shutting down")),
            Err(_elapsed) => Err(ApiError::unavailable(format!(
                "the query waited {:?} (query_queue_wait_ms) for one of the {} slots for expensive queries (max_concurrent_queries); retry later",
                limits.queue_wait, limits.max_concurrent
            ))),
        }
    }
}

/// One query waiting for a permit, counted for as long as it exists.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A query let in: its permit (held until the query stops) and its
/// cancel token. Run it with [`Admitted::run`] on the blocking pool.
pub(crate) struct Admitted {
    permit: OwnedSemaphorePermit,
    /// The tenant's slot (`max_concurrent_queries` of its limits).
    _tenant: Option<OwnedSemaphorePermit>,
    token: CancelToken,
}

impl Admitted {
    /// Runs `work` under the query's token; the permit is released when
    /// it returns, however the query ended.
    pub(crate) fn run<T>(self, work: impl FnOnce() -> T) -> T {
        let _held_until_the_query_stops = (self.permit, self._tenant);
        self.token.scope(work)
    }
}

/// Admits a query for `tenant`: `estimate` (index only: bytes the query
/// would read) picks its lane. Returns the admission and the guard to
/// keep in the request's future: dropping it (the client went away)
/// cancels the query; disarm it once the query answered.
pub(crate) async fn admit(
    app: &Arc<AppState>,
    tenant: &TenantId,
    estimate: impl FnOnce() -> u64 + Send + 'static,
) -> Result<(Admitted, CancelOnDrop), ApiError> {
    let tenant_limits = crate::service::limits_for(app, tenant);
    let limits = limits_for(&app.config, &tenant_limits);
    let own = app
        .admission
        .admit_tenant(tenant, tenant_limits.max_concurrent, &limits)
        .await?;
    let bytes = crate::blocking(move || Ok(estimate())).await?;
    let permit = app
        .admission
        .admit(&limits, bytes <= limits.cheap_bytes)
        .await?;
    let token = CancelToken::new(limits.timeout);
    let guard = token.guard();
    Ok((
        Admitted {
            permit,
            _tenant: own,
            token,
        },
        guard,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> QueryLimits {
        QueryLimits {
            timeout: None,
            max_concurrent: 1,
            max_queued: 1,
            queue_wait: Duration::from_secs(60),
            cheap_bytes: 100,
        }
    }

    #[tokio::test]
    async fn a_full_heavy_lane_leaves_cheap_queries_running() {
        let admission = Admission::default();
        let l = limits();
        let _heavy = admission.admit(&l, false).await.unwrap();
        // Cheap queries are not behind it.
        let _cheap = admission.admit(&l, true).await.unwrap();
        // One expensive query may wait; a second one is refused at once,
        // naming the limits.
        let mut waiting = {
            let l = l.clone();
            let admission = &admission;
            Box::pin(async move { admission.admit(&l, false).await })
        };
        assert!(
            futures_poll_once(&mut waiting).await.is_none(),
            "the first one waits"
        );
        let err = admission.admit(&l, false).await.unwrap_err();
        assert_eq!(
            err.code.http_status(),
            axum::http::StatusCode::TOO_MANY_REQUESTS
        );
        assert!(
            err.message.contains("max_queued_queries"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("max_concurrent_queries"),
            "{}",
            err.message
        );
        // The waiting client goes away: its place in the queue is free.
        drop(waiting);
        assert_eq!(admission.waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn waiting_too_long_is_refused_naming_the_setting() {
        let admission = Admission::default();
        let l = QueryLimits {
            queue_wait: Duration::ZERO,
            ..limits()
        };
        let _heavy = admission.admit(&l, false).await.unwrap();
        let err = admission.admit(&l, false).await.unwrap_err();
        assert_eq!(
            err.code.http_status(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(
            err.message.contains("query_queue_wait_ms"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_tenant_at_its_own_limit_is_refused_naming_it_and_others_are_not_behind_it() {
        let admission = Admission::default();
        let l = QueryLimits {
            queue_wait: Duration::ZERO,
            ..limits()
        };
        let a = TenantId::new("a").unwrap();
        let held = admission.admit_tenant(&a, 1, &l).await.unwrap();
        assert!(held.is_some());
        let err = admission.admit_tenant(&a, 1, &l).await.unwrap_err();
        assert_eq!(
            err.code.http_status(),
            axum::http::StatusCode::TOO_MANY_REQUESTS
        );
        assert!(
            err.message.contains("max_concurrent_queries: 1") && err.message.contains(" a "),
            "{}",
            err.message
        );
        let b = TenantId::new("b").unwrap();
        assert!(admission.admit_tenant(&b, 1, &l).await.unwrap().is_some());
        // No limit of its own: no slot is taken.
        assert!(admission.admit_tenant(&a, 0, &l).await.unwrap().is_none());
        // Its slot back, the tenant runs again.
        drop(held);
        assert!(admission.admit_tenant(&a, 1, &l).await.unwrap().is_some());
    }

    /// Polls a future once: Some(output) if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *f).poll(cx) {
            std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await
    }
}
