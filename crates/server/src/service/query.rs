//! Log and metric queries, and the defaults and limits every reading
//! operation shares: the default window, the default and maximum entry
//! limit, the longest range, the most points, the bytes-read estimate.
//!
//! Queries are admitted first (`crate::admission`): a slot of their lane,
//! a deadline, and a guard that cancels the query when the request's
//! future is dropped (the client went away).

use super::{Context, Role, ServiceError, blocking, limits_for};
use crate::AppState;
use skald_logql::{Expr, LogExpr, Stage};
use skald_model::{Entry, LabelSet, Matcher, TenantId, Timestamp};
use skald_pipeline::Pipeline;
use skald_query::{Direction, LogQuery, LogResult, MetricLimits, MetricQuery, MetricResult};
use std::sync::Arc;

pub const SECOND_NS: i64 = 1_000_000_000;
pub const HOUR_NS: i64 = 3600 * SECOND_NS;
/// The window of a query without a start (Loki's `since` default).
pub const DEFAULT_SINCE_NS: i64 = HOUR_NS;
/// Loki's default window for the label APIs.
pub const LABELS_SINCE_NS: i64 = 6 * HOUR_NS;
/// Entries a log query returns when it names no limit.
pub const DEFAULT_LIMIT: usize = 100;
/// Loki's cap on the points of one series in a range query.
pub const MAX_POINTS: i64 = 11_000;

/// A parsed log query: the selector and its pipeline stages.
pub struct ParsedLogQuery {
    pub selector: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

impl ParsedLogQuery {
    /// The whole pipeline, for callers that run it themselves (tail).
    pub fn pipeline(&self, field: &str) -> Result<Pipeline, ServiceError> {
        Pipeline::new(&self.stages).map_err(|e| ServiceError::invalid(field, e))
    }

    pub fn expr(&self) -> Expr {
        Expr::Log(LogExpr {
            selector: self.selector.clone(),
            pipeline: self.stages.clone(),
        })
    }
}

/// Parses any LogQL query; `field` names the parameter in errors.
pub fn parse(field: &str, text: &str) -> Result<Expr, ServiceError> {
    if text.trim().is_empty() {
        return Err(ServiceError::bad_request(format!(
            "missing parameter {field:?}"
        )));
    }
    skald_logql::parse_expr(text).map_err(|e| ServiceError::bad_request(e.to_string()))
}

/// Parses a log query (a selector and a pipeline), refusing metric queries.
pub fn parse_log_query(field: &str, text: &str) -> Result<ParsedLogQuery, ServiceError> {
    if text.trim().is_empty() {
        return Err(ServiceError::invalid(field, "required"));
    }
    match skald_logql::parse_expr(text).map_err(|e| ServiceError::invalid(field, e))? {
        Expr::Log(l) => Ok(ParsedLogQuery {
            selector: l.selector,
            stages: l.pipeline,
        }),
        _ => Err(ServiceError::invalid(
            field,
            "a log query is required here, such as {app=\"api\"} |= \"error\"; metric queries go to QueryRange",
        )),
    }
}

/// The entry limit asked for (`None`: the default), checked against the
/// tenant's `max_entries_limit_per_query`.
pub fn entry_limit(
    app: &AppState,
    tenant: &TenantId,
    asked: Option<usize>,
) -> Result<usize, ServiceError> {
    let limit = asked.unwrap_or(DEFAULT_LIMIT);
    let max = limits_for(app, tenant).max_query_limit;
    if limit > max {
        return Err(ServiceError::limit(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {max})"
        )));
    }
    Ok(limit)
}

/// Refuses a range longer than the tenant's `max_query_length`.
pub fn check_length(
    app: &AppState,
    tenant: &TenantId,
    start: Timestamp,
    end: Timestamp,
) -> Result<(), ServiceError> {
    let max_hours = limits_for(app, tenant).max_query_length_hours;
    let span = end.0 as i128 - start.0 as i128;
    if max_hours > 0 && span > max_hours as i128 * HOUR_NS as i128 {
        return Err(ServiceError::limit(format!(
            "the query time range exceeds the limit (query length: {}h, limit: {max_hours}h)",
            span / HOUR_NS as i128
        )));
    }
    Ok(())
}

/// Refuses a step giving more than [`MAX_POINTS`] points per series.
pub fn check_points(start: Timestamp, end: Timestamp, step: i64) -> Result<(), ServiceError> {
    if step <= 0 {
        return Err(ServiceError::invalid("step", "must be positive"));
    }
    if end.0.saturating_sub(start.0) / step >= MAX_POINTS {
        return Err(ServiceError::limit(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    Ok(())
}

/// Refuses (on the blocking pool) a query the index says would read more
/// than the tenant's `max_query_bytes_read`.
fn check_bytes(
    app: &AppState,
    tenant: &TenantId,
    expr: &Expr,
    start: Timestamp,
    end: Timestamp,
) -> Result<(), ServiceError> {
    let limit = limits_for(app, tenant).max_query_bytes_read;
    if limit == 0 {
        return Ok(());
    }
    let bytes = match expr {
        Expr::Log(log) => skald_query::log_bytes_to_read(&app.store, tenant, log, start, end),
        other => skald_query::bytes_to_read(&app.store, tenant, other, start, end),
    };
    skald_query::check_bytes_to_read(bytes, limit)?;
    Ok(())
}

/// A log query.
pub struct LogRequest {
    pub query: ParsedLogQuery,
    pub start: Timestamp,
    pub end: Timestamp,
    /// `None`: [`DEFAULT_LIMIT`].
    pub limit: Option<usize>,
    pub direction: Direction,
    /// Loki's `interval`: at most one entry per interval (0: all).
    pub interval: i64,
}

/// Runs a log query for the context's tenant (role `read`).
pub async fn logs(
    app: &Arc<AppState>,
    ctx: &Context,
    req: LogRequest,
) -> Result<LogResult, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    let limit = entry_limit(app, &tenant, req.limit)?;
    check_length(app, &tenant, req.start, req.end)?;
    admitted_logs(app, tenant, req, limit).await
}

/// Runs an authorised log query of up to `limit` entries (checked by the
/// caller) under admission: a slot, a deadline, cancelled when dropped.
pub(crate) async fn admitted_logs(
    app: &Arc<AppState>,
    tenant: TenantId,
    req: LogRequest,
    limit: usize,
) -> Result<LogResult, ServiceError> {
    let estimate = {
        let (store, tenant, expr) = (app.store.clone(), tenant.clone(), req.query.expr());
        move || match &expr {
            Expr::Log(log) => {
                skald_query::log_bytes_to_read(&store, &tenant, log, req.start, req.end)
            }
            other => skald_query::bytes_to_read(&store, &tenant, other, req.start, req.end),
        }
    };
    let (admitted, guard) = crate::admission::admit(app, &tenant, estimate).await?;
    let result = run_logs(
        app,
        tenant,
        &req.query,
        req.start,
        req.end,
        limit,
        req.direction,
        req.interval,
        true,
        Some(admitted),
    )
    .await;
    guard.disarm();
    result
}

/// Runs a log query already authorised (tail history, export chunks);
/// `check_bytes` applies the bytes-read limit; an admitted query runs
/// under its slot and cancel token.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_logs(
    app: &Arc<AppState>,
    tenant: TenantId,
    query: &ParsedLogQuery,
    start: Timestamp,
    end: Timestamp,
    limit: usize,
    direction: Direction,
    interval: i64,
    check_bytes_read: bool,
    admitted: Option<crate::admission::Admitted>,
) -> Result<LogResult, ServiceError> {
    let pipeline = query.pipeline("query")?;
    let selector = query.selector.clone();
    let expr = check_bytes_read.then(|| query.expr());
    let app = app.clone();
    blocking(move || {
        let run = || {
            if let Some(expr) = &expr {
                check_bytes(&app, &tenant, expr, start, end)?;
            }
            let q = LogQuery {
                tenant: &tenant,
                selector: &selector,
                pipeline: &pipeline,
                start,
                end,
                limit,
                direction,
                interval,
            };
            Ok(skald_query::run_log_query(&app.store, &q)?)
        };
        match admitted {
            Some(a) => a.run(run),
            None => run(),
        }
    })
    .await
}

/// A log result as plain streams of entries (labels as the pipeline left
/// them), for the gRPC answers, tail and export.
pub fn plain_streams(result: LogResult) -> Vec<(LabelSet, Vec<Entry>)> {
    result
        .streams
        .into_iter()
        .map(|s| {
            let entries = s
                .entries
                .into_iter()
                .map(|e| Entry {
                    ts: e.ts,
                    line: e.line,
                    metadata: e.metadata,
                })
                .collect();
            (s.labels, entries)
        })
        .collect()
}

/// A metric query over `[start, end]` every `step` (instant: one point).
pub struct MetricRequest {
    pub expr: Expr,
    pub start: Timestamp,
    pub end: Timestamp,
    pub step: i64,
}

/// Runs a metric query for the context's tenant (role `read`).
pub async fn metric(
    app: &Arc<AppState>,
    ctx: &Context,
    req: MetricRequest,
) -> Result<MetricResult, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    if matches!(req.expr, Expr::Log(_)) {
        return Err(ServiceError::invalid(
            "query",
            "a metric query is required here, such as sum(rate({app=\"api\"}[5m])); log queries go to QueryLogs",
        ));
    }
    check_length(app, &tenant, req.start, req.end)?;
    check_points(req.start, req.end, req.step)?;
    let estimate = {
        let (store, tenant, expr) = (app.store.clone(), tenant.clone(), req.expr.clone());
        move || skald_query::bytes_to_read(&store, &tenant, &expr, req.start, req.end)
    };
    let (admitted, guard) = crate::admission::admit(app, &tenant, estimate).await?;
    let app = app.clone();
    let result = blocking(move || admitted.run(|| metric_admitted(&app, &tenant, &req))).await;
    guard.disarm();
    result
}

/// The body of an admitted metric query, on the blocking pool.
fn metric_admitted(
    app: &AppState,
    tenant: &TenantId,
    req: &MetricRequest,
) -> Result<MetricResult, ServiceError> {
    check_bytes(app, tenant, &req.expr, req.start, req.end)?;
    let q = MetricQuery {
        tenant,
        expr: &req.expr,
        start: req.start,
        end: req.end,
        step: req.step,
        limits: MetricLimits {
            max_series: limits_for(app, tenant).max_query_series,
            ..MetricLimits::default()
        },
    };
    Ok(skald_query::run_metric_query(&app.store, &q)?)
}

/// Canonical form of a query (role `read`: it reveals nothing, but the
/// API is a reader's).
pub fn format(ctx: &Context, text: &str) -> Result<String, ServiceError> {
    ctx.authorize(Role::Read)?;
    Ok(parse("query", text)?.to_string())
}

/// What a selector covers, from the index (gRPC `QueryStats`, HTTP
/// `index/stats`): streams, chunks (or head blocks), entries, raw bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Coverage {
    pub streams: u64,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

pub async fn coverage(
    app: &Arc<AppState>,
    ctx: &Context,
    selector: Vec<Matcher>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Coverage, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    let store = app.store.clone();
    blocking(move || {
        let snap = store.snapshot(&tenant, &selector, start, end);
        let mut out = Coverage {
            streams: snap.streams.len() as u64,
            ..Default::default()
        };
        for s in &snap.streams {
            for src in &s.sources {
                let (e, b) = src.size();
                out.chunks += 1;
                out.entries += e;
                out.bytes += b;
            }
        }
        Ok(out)
    })
    .await
}
