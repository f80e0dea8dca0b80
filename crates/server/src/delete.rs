//! Delete requests: Loki's `/loki/api/v1/delete` (create, list, cancel)
//! and the gRPC `DeleteStream`.
//!
//! A request is a stream selector with optional line filters and an
//! inclusive time range. It is recorded in the store's catalog before it
//! is acknowledged (the local catalog's `<data_dir>/delete_requests.json`,
//! a small JSON list replaced atomically; or PostgreSQL, where every node
//! sees it: [`Deletes::sync`] picks up other nodes' requests and
//! cancellations), and registered with the store as a tombstone:
//! matching entries vanish from queries, labels, series and statistics at
//! once, and compaction drops them from disk once the request is older
//! than [`CANCEL_PERIOD_NS`]. Until then it is `received` and can be
//! cancelled, which brings the data back.
//!
//! Not here: the tombstone mechanics (`skald_store::delete`).

use crate::params::Params;
use crate::service::Context;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use skald_logql::{Expr, Stage};
use skald_model::{TenantId, Timestamp};
use skald_pipeline::LineFilterChain;
use skald_store::Store;
use skald_store::delete::{LinePredicate, Tombstone};
use std::sync::{Arc, Mutex};

/// How long a request can be cancelled; compaction drops data after it.
pub const CANCEL_PERIOD_NS: i64 = 10 * 60 * 1_000_000_000;

pub use skald_store::delete::DeleteRequest;

/// Every delete request of the server.
pub struct Deletes {
    store: Arc<Store>,
    requests: Mutex<Vec<DeleteRequest>>,
}

fn compile(query: &str) -> Result<(Vec<skald_model::Matcher>, Option<LinePredicate>), String> {
    let expr = skald_logql::parse_expr(query).map_err(|e| e.to_string())?;
    let Expr::Log(log) = expr else {
        return Err("a stream selector with optional line filters is required".into());
    };
    let mut filters = Vec::new();
    for stage in &log.pipeline {
        match stage {
            Stage::LineFilter(f) => filters.push(f.clone()),
            #[allow(unreachable_patterns)]
            other => {
                return Err(format!(
                    "only line filters may follow the selector in a delete query, not `{other}`"
                ));
            }
        }
    }
    let lines: Option<LinePredicate> = if filters.is_empty() {
        None
    } else {
        let chain = LineFilterChain::new(&filters).map_err(|e| e.to_string())?;
        Some(Arc::new(move |line: &str| chain.matches(line.as_bytes())))
    };
    Ok((log.selector, lines))
}

impl Deletes {
    /// Loads the persisted requests and registers them with the store.
    pub fn open(store: Arc<Store>) -> Result<Deletes, String> {
        let d = Deletes {
            store,
            requests: Mutex::new(Vec::new()),
        };
        d.sync()?;
        Ok(d)
    }

    /// Reads the requests from the catalog: registers those this server
    /// does not know yet (another node's) and withdraws those no longer
    /// there (cancelled on another node).
    pub fn sync(&self) -> Result<(), String> {
        let requests = self
            .store
            .catalog()
            .delete_requests()
            .map_err(|e| e.to_string())?;
        let mut known = self.requests.lock().unwrap();
        let same = |a: &DeleteRequest, b: &DeleteRequest| {
            a.tenant == b.tenant && a.request_id == b.request_id
        };
        for old in known.iter() {
            if !requests.iter().any(|r| same(r, old))
                && let Ok(tenant) = TenantId::new(&old.tenant)
            {
                self.store.remove_tombstone(&tenant, &old.request_id);
            }
        }
        for r in &requests {
            if known.iter().any(|k| same(k, r)) {
                continue;
            }
            if let Err(e) = self.register(r) {
                tracing::error!(request = %r.request_id, error = %e, "ignoring a delete request that no longer compiles");
            }
        }
        *known = requests;
        Ok(())
    }

    fn register(&self, r: &DeleteRequest) -> Result<(), String> {
        let tenant = TenantId::new(&r.tenant).map_err(|e| e.to_string())?;
        let (matchers, lines) = compile(&r.query)?;
        self.store.add_tombstone(Tombstone {
            id: r.request_id.clone(),
            tenant,
            matchers,
            start: Timestamp(r.start_ns),
            end: Timestamp(r.end_ns),
            lines,
            physical_after: Timestamp(r.created_ns.saturating_add(CANCEL_PERIOD_NS)),
            applied: Default::default(),
        });
        Ok(())
    }

    /// Maps a catalog error to the client's answer (details in the log).
    fn catalog_error(e: skald_store::CatalogError) -> ApiError {
        tracing::error!(error = %e, "recording delete requests");
        ApiError::internal("the server could not record the delete request; see its log")
    }

    /// Records and applies a request. `end` defaults to now.
    pub fn create(
        &self,
        tenant: &TenantId,
        query: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<DeleteRequest, ApiError> {
        if query.trim().is_empty() {
            return Err(ApiError::bad_request("query: required"));
        }
        compile(query).map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
        if start > end {
            return Err(ApiError::bad_request("start: after end"));
        }
        let created = Timestamp::now();
        let id = xxhash_rust::xxh3::xxh3_64(
            format!(
                "{tenant}\u{0}{query}\u{0}{}\u{0}{}\u{0}{}",
                start.0, end.0, created.0
            )
            .as_bytes(),
        );
        let r = DeleteRequest {
            request_id: format!("{id:016x}"),
            tenant: tenant.to_string(),
            query: query.to_string(),
            start_ns: start.0,
            end_ns: end.0,
            created_ns: created.0,
        };
        let mut list = self.requests.lock().unwrap();
        self.store
            .catalog()
            .add_delete_request(&r)
            .map_err(Self::catalog_error)?;
        list.push(r.clone());
        drop(list);
        self.register(&r).map_err(ApiError::bad_request)?;
        Ok(r)
    }

    pub fn list(&self, tenant: &TenantId) -> Vec<(DeleteRequest, &'static str)> {
        let now = Timestamp::now().0;
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.tenant == tenant.as_str())
            .map(|r| {
                let status = if now >= r.created_ns.saturating_add(CANCEL_PERIOD_NS) {
                    "processed"
                } else {
                    "received"
                };
                (r.clone(), status)
            })
            .collect()
    }

    /// Withdraws a request still within its cancel period.
    pub fn cancel(&self, tenant: &TenantId, id: &str) -> Result<(), ApiError> {
        let mut list = self.requests.lock().unwrap();
        let Some(pos) = list
            .iter()
            .position(|r| r.tenant == tenant.as_str() && r.request_id == id)
        else {
            return Err(ApiError::not_found(format!(
                "request_id: no delete request {id:?}"
            )));
        };
        if Timestamp::now().0 >= list[pos].created_ns.saturating_add(CANCEL_PERIOD_NS) {
            return Err(ApiError::bad_request(format!(
                "request_id: delete request {id} is past its cancel period and is being processed"
            )));
        }
        self.store
            .catalog()
            .remove_delete_request(tenant, id)
            .map_err(Self::catalog_error)?;
        list.remove(pos);
        self.store.remove_tombstone(tenant, id);
        Ok(())
    }
}

/// A time as Loki's delete API writes it (Prometheus' `model.Time`): Unix
/// seconds at millisecond precision, a JSON integer when whole
/// (`1591616227`), else with the fraction (`1591616227.5`). logcli reads
/// `start_time` and `end_time` into integers, so whole seconds must not
/// gain a `.0`.
fn secs(ns: i64) -> Value {
    let ms = ns.div_euclid(1_000_000);
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// `POST /loki/api/v1/delete`: `query`, `start` (default: the epoch), `end`
/// (default: now). Answers 204.
pub async fn create(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let query = params
        .get("query")
        .ok_or_else(|| ApiError::bad_request("missing parameter \"query\""))?
        .to_string();
    let start = params.time("start")?.unwrap_or(Timestamp(0));
    let end = params.time("end")?.unwrap_or_else(Timestamp::now);
    crate::service::delete::create(&app, &ctx, query, start, end).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /loki/api/v1/delete`: the tenant's requests, as Loki lists them.
pub async fn list(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let out: Vec<Value> = crate::service::delete::list(&app, &ctx)?
        .into_iter()
        .map(|(r, status)| {
            json!({
                "request_id": r.request_id,
                "start_time": secs(r.start_ns),
                "end_time": secs(r.end_ns),
                "query": r.query,
                "status": status,
                "created_at": secs(r.created_ns),
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `DELETE /loki/api/v1/delete?request_id=...`: cancels a pending request.
pub async fn cancel(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &Bytes::new());
    let id = params
        .get("request_id")
        .ok_or_else(|| ApiError::bad_request("missing parameter \"request_id\""))?
        .to_string();
    crate::service::delete::cancel(&app, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
