//! The protocol-neutral service layer: every operation of Skald's APIs,
//! once, for both the HTTP (axum) and the gRPC (tonic) adapters.
//!
//! An operation takes a [`Context`] (who is asking, for which tenant) and
//! a typed request, and answers a typed result or one [`ServiceError`]
//! `{ code, message }`. [`ErrorCode::statuses`] is the single `match` that
//! turns a code into an HTTP status and a gRPC code; adapters never choose
//! a status themselves. Authentication, authorisation, limits and audit
//! ([`audit`]) happen here, so no endpoint can forget them.
//!
//! Modules follow the operations: [`push`], [`query`] (log and metric
//! queries, the limits and defaults they share), [`labels`] (names,
//! values, series, index statistics), [`streams`] (listing, details),
//! [`tail`], [`export`], [`delete`], [`admin`] (statistics, quota),
//! [`analysis`] (patterns, error groups, anomalies, the report).
//!
//! # Adding an endpoint
//!
//! 1. Write the operation here, in the module of its noun (or a new one):
//!    `pub async fn op(app: &Arc<AppState>, ctx: &Context, req: OpRequest)
//!    -> Result<OpResult, ServiceError>`. Its first line is
//!    `ctx.authorize(Role::…)?` (or [`Context::tenant_for`], which
//!    authorises and hands back the one tenant the call is for); run store
//!    and query work through [`blocking`]; refuse with
//!    `ServiceError::new(ErrorCode::…, "field: why")`.
//! 2. Per-tenant limit values come from [`limits_for`]: the tenant's own
//!    limits under the server's ceilings.
//! 3. In the adapter, build the context from the request
//!    (`Context::from_http(&app, &headers)` or
//!    `Context::from_grpc(&app, request.metadata())`), parse the wire
//!    format into the typed request, call the operation, encode the result.
//!    Errors convert with `?` (`ServiceError` is the HTTP `ApiError`, and
//!    `From<ServiceError> for tonic::Status` exists).
//!
//! Not here: wire formats (JSON shapes, protobuf messages) — those stay in
//! the adapters (`crate::grpc`, the HTTP handler modules).

pub mod admin;
pub mod analysis;
pub mod audit;
pub mod auth;
pub mod cluster;
pub mod delete;
pub mod export;
pub mod labels;
pub mod push;
pub mod query;
pub mod streams;
pub mod tail;

pub use auth::{Credentials, Principal, Role};

use crate::AppState;
use axum::http::StatusCode;
use skald_model::TenantId;
use std::sync::Arc;
use std::time::Duration;

/// What went wrong, in terms a client can act on. One code, one HTTP
/// status, one gRPC code ([`ErrorCode::statuses`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed or names something impossible.
    InvalidArgument,
    /// A query asks for more than the tenant's limits allow (Loki answers
    /// these 400; gRPC clients retry with a smaller request).
    LimitExceeded,
    /// The body is larger than the server accepts.
    TooLarge,
    /// The content type or encoding is not one we decode.
    Unsupported,
    /// The tenant is over a rate or count limit; retry later.
    RateLimited,
    /// No or unknown credentials.
    Unauthenticated,
    /// Credentials valid, but not for this tenant or operation.
    PermissionDenied,
    /// The thing asked for does not exist (for this tenant).
    NotFound,
    /// The request cannot be done in the current state.
    FailedPrecondition,
    /// The server is shutting down or not ready.
    Unavailable,
    /// The operation ran out of its time (a query's `query_timeout_secs`).
    DeadlineExceeded,
    /// The client went away before the answer (nginx's 499).
    Cancelled,
    /// A fault of the server; the message says where to look.
    Internal,
}

impl ErrorCode {
    /// The one mapping from an error code to an HTTP status and a gRPC code.
    pub fn statuses(self) -> (StatusCode, tonic::Code) {
        use tonic::Code as G;
        match self {
            ErrorCode::InvalidArgument => (StatusCode::BAD_REQUEST, G::InvalidArgument),
            ErrorCode::LimitExceeded => (StatusCode::BAD_REQUEST, G::ResourceExhausted),
            ErrorCode::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, G::ResourceExhausted),
            ErrorCode::Unsupported => (StatusCode::UNSUPPORTED_MEDIA_TYPE, G::InvalidArgument),
            ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, G::ResourceExhausted),
            ErrorCode::Unauthenticated => (StatusCode::UNAUTHORIZED, G::Unauthenticated),
            ErrorCode::PermissionDenied => (StatusCode::FORBIDDEN, G::PermissionDenied),
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, G::NotFound),
            ErrorCode::FailedPrecondition => (StatusCode::BAD_REQUEST, G::FailedPrecondition),
            ErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, G::Unavailable),
            ErrorCode::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, G::DeadlineExceeded),
            ErrorCode::Cancelled => (
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                G::Cancelled,
            ),
            ErrorCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, G::Internal),
        }
    }

    pub fn http_status(self) -> StatusCode {
        self.statuses().0
    }

    pub fn grpc_code(self) -> tonic::Code {
        self.statuses().1
    }
}

/// The one error every operation answers.
#[derive(Debug, Clone)]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServiceError {}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// INVALID_ARGUMENT naming the field.
    pub fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidArgument, format!("{field}: {why}"))
    }

    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LimitExceeded, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unsupported, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl From<skald_store::StoreError> for ServiceError {
    fn from(e: skald_store::StoreError) -> Self {
        match e {
            skald_store::StoreError::ShuttingDown => {
                ServiceError::unavailable("the server is shutting down")
            }
            e @ skald_store::StoreError::NotIngesting(_) => {
                ServiceError::new(ErrorCode::FailedPrecondition, e.to_string())
            }
            other => {
                tracing::error!(error = %other, "store error");
                ServiceError::internal("the server could not store the push; see its log")
            }
        }
    }
}

impl From<skald_query::QueryError> for ServiceError {
    fn from(e: skald_query::QueryError) -> Self {
        match e {
            skald_query::QueryError::Limit(m) => ServiceError::limit(m),
            skald_query::QueryError::Timeout(m) => {
                ServiceError::new(ErrorCode::DeadlineExceeded, m)
            }
            skald_query::QueryError::Busy(m) => ServiceError::unavailable(m),
            // Nobody reads the answer: the client went away.
            skald_query::QueryError::Cancelled => {
                ServiceError::new(ErrorCode::Cancelled, e.to_string())
            }
            other => ServiceError::bad_request(other.to_string()),
        }
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        tonic::Status::new(e.code.grpc_code(), e.message)
    }
}

/// Who is asking, and for which tenant(s): built once per request by the
/// adapter from its credentials and `X-Scope-OrgID`, then passed to every
/// operation.
#[derive(Clone)]
pub struct Context {
    pub principal: Principal,
    /// The tenants the request names (`X-Scope-OrgID: a|b`), or the
    /// token's tenant when it names none.
    pub tenants: Vec<TenantId>,
    /// Where the request came from, and where its audit records go.
    pub(crate) request: Arc<RequestMeta>,
}

/// The request a context belongs to, for its audit records.
pub(crate) struct RequestMeta {
    pub protocol: &'static str,
    pub route: String,
    pub remote: Option<std::net::SocketAddr>,
    pub audit: Arc<audit::Audit>,
    /// Set once an audited operation runs: its record covers a refusal.
    pub audited: std::sync::atomic::AtomicBool,
}

impl RequestMeta {
    fn new(app: &AppState, protocol: &'static str) -> Arc<RequestMeta> {
        let info = crate::observe::RequestInfo::current().unwrap_or_default();
        Arc::new(RequestMeta {
            protocol,
            route: info.route,
            remote: info.remote,
            audit: app.audit.clone(),
            audited: Default::default(),
        })
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("principal", &self.principal)
            .field("tenants", &self.tenants)
            .finish()
    }
}

impl Context {
    /// The context of an HTTP request.
    pub fn from_http(
        app: &AppState,
        headers: &axum::http::HeaderMap,
    ) -> Result<Self, ServiceError> {
        let text = |name: &str| -> Result<Option<String>, ServiceError> {
            headers
                .get(name)
                .map(|v| {
                    v.to_str()
                        .map(|s| s.trim().to_string())
                        .map_err(|_| ServiceError::bad_request(format!("{name} is not valid text")))
                })
                .transpose()
        };
        let creds = Credentials {
            authorization: text("authorization")?,
            org_id: text("x-scope-orgid")?,
        };
        auth::context(app, creds, "X-Scope-OrgID", RequestMeta::new(app, "http"))
    }

    /// The context of a gRPC call (the same headers as metadata).
    pub fn from_grpc(
        app: &AppState,
        meta: &tonic::metadata::MetadataMap,
    ) -> Result<Self, ServiceError> {
        let text = |name: &str| -> Result<Option<String>, ServiceError> {
            meta.get(name)
                .map(|v| {
                    v.to_str()
                        .map(|s| s.trim().to_string())
                        .map_err(|_| ServiceError::invalid(name, "not valid text"))
                })
                .transpose()
        };
        let creds = Credentials {
            authorization: text("authorization")?,
            org_id: text("x-scope-orgid")?,
        };
        auth::context(app, creds, "x-scope-orgid", RequestMeta::new(app, "grpc"))
    }

    /// Refuses the request unless the principal holds `role` for every
    /// tenant the request names.
    pub fn authorize(&self, role: Role) -> Result<(), ServiceError> {
        for t in &self.tenants {
            if let Err(e) = self.principal.authorize(t, role) {
                if !self
                    .request
                    .audited
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    audit::refused_authorization(self, &e);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Authorises `role` for every tenant of the request and answers them
    /// (one, or several for a multi-tenant read `a|b`).
    pub fn tenants_for(&self, role: Role) -> Result<Vec<TenantId>, ServiceError> {
        self.authorize(role)?;
        Ok(self.tenants.clone())
    }

    /// Authorises `role` and answers the one tenant of the request;
    /// refuses a multi-tenant request (operations that read several
    /// tenants at once take [`Context::tenants`] instead).
    pub fn tenant_for(&self, role: Role) -> Result<TenantId, ServiceError> {
        self.authorize(role)?;
        match self.tenants.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(ServiceError::bad_request(
                "this operation takes a single tenant; multi-tenant requests (a|b) are not supported here",
            )),
        }
    }
}

/// The query limits of one tenant (see [`limits_for`]). `None` and 0
/// mean no limit where the field says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantQueryLimits {
    /// Largest `limit` of a log query (`max_entries_limit_per_query`).
    pub max_entries: usize,
    /// Longest range of a query (`max_query_length`).
    pub max_length: Option<Duration>,
    /// How far back a query may reach (`max_query_lookback`).
    pub max_lookback: Option<Duration>,
    /// Most series of a metric query (`max_query_series`; 0: none).
    pub max_series: usize,
    /// Most bytes a query may read, estimated (`max_query_bytes_read`; 0:
    /// none).
    pub max_bytes_read: u64,
    /// How long a query may run (`query_timeout`).
    pub timeout: Option<Duration>,
    /// Memory a query may hold (`max_query_memory`; 0: none).
    pub max_memory: u64,
    /// Queries of the tenant running at once (`max_concurrent_queries`;
    /// 0: none).
    pub max_concurrent: usize,
    /// Export jobs of the tenant at once (`max_export_jobs`).
    pub max_export_jobs: usize,
}

/// The query limits of `tenant`: its own limits (`[limits]` merged with
/// `[tenants.<id>]`, as reloaded on a running server) under the server's
/// ceilings of `[http]` (`max_query_limit`, `max_query_length_hours`,
/// `max_query_series`, `max_query_bytes_read`, `max_query_memory`,
/// `query_timeout_secs`, `max_export_jobs`): the smaller of the two applies, a 0 on either side
/// meaning "no limit" from that side.
pub fn limits_for(app: &AppState, tenant: &TenantId) -> TenantQueryLimits {
    let own = app.store.limits(tenant);
    let server = &app.config;
    let smaller = |a: u64, b: u64| match (a, b) {
        (0, b) => b,
        (a, 0) => a,
        (a, b) => a.min(b),
    };
    let min_duration = |own: Duration, server_secs: u64| {
        let server = (server_secs > 0).then(|| Duration::from_secs(server_secs));
        match (own.is_zero(), server) {
            (true, server) => server,
            (false, None) => Some(own),
            (false, Some(server)) => Some(own.min(server)),
        }
    };
    TenantQueryLimits {
        max_entries: smaller(
            own.max_entries_limit_per_query as u64,
            server.max_query_limit as u64,
        ) as usize,
        max_length: min_duration(own.max_query_length, server.max_query_length_hours * 3600),
        max_lookback: (!own.max_query_lookback.is_zero()).then_some(own.max_query_lookback),
        max_series: smaller(own.max_query_series as u64, server.max_query_series as u64) as usize,
        max_bytes_read: smaller(own.max_query_bytes_read, server.max_query_bytes_read),
        timeout: min_duration(own.query_timeout, server.query_timeout_secs),
        max_memory: smaller(own.max_query_memory, server.max_query_memory),
        max_concurrent: own.max_concurrent_queries,
        max_export_jobs: smaller(own.max_export_jobs as u64, server.max_export_jobs as u64)
            as usize,
    }
}

/// Runs blocking work (store, query, files) off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::internal(format!("internal error: {e}")))?
}
