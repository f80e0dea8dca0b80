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
use skald_query::{
    Direction, HeldBytes, LogQuery, LogResult, MetricLimits, MetricQuery, MetricResult,
};
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
    let max = limits_for(app, tenant).max_entries;
    if limit > max {
        return Err(ServiceError::limit(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {max}; set by max_query_limit)"
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
    let Some(max) = limits_for(app, tenant).max_length else {
        return Ok(());
    };
    let span = end.0 as i128 - start.0 as i128;
    if span > max.as_nanos() as i128 {
        return Err(ServiceError::limit(format!(
            "the query time range exceeds the limit (query length: {}h, limit: {}) (max_query_length of tenant {tenant})",
            span / HOUR_NS as i128,
            skald_model::format_duration(max)
        )));
    }
    Ok(())
}

/// The part of `[start, end]` within the tenant's `max_query_lookback`
/// (the start moved forward, as Loki does); `None` when the whole range
/// is older, and the answer is empty.
pub fn within_lookback(
    app: &AppState,
    tenant: &TenantId,
    start: Timestamp,
    end: Timestamp,
) -> Option<(Timestamp, Timestamp)> {
    let Some(lookback) = limits_for(app, tenant).max_lookback else {
        return Some((start, end));
    };
    let oldest = Timestamp::now().saturating_sub(lookback.as_nanos().min(i64::MAX as u128) as i64);
    if end < oldest {
        return None;
    }
    Some((start.max(oldest), end))
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
    let limit = limits_for(app, tenant).max_bytes_read;
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

/// Runs a log query for the context's tenant(s) (role `read` on each;
/// several tenants: see [`logs_of_tenants`]). Audited.
pub async fn logs(
    app: &Arc<AppState>,
    ctx: &Context,
    req: LogRequest,
) -> Result<LogResult, ServiceError> {
    let params = serde_json::json!({
        "start_ns": req.start.0,
        "end_ns": req.end.0,
        "limit": req.limit,
        "direction": format!("{:?}", req.direction),
    });
    let target = req.query.expr().to_string();
    ctx.audited("query", target, params, async {
        ctx.authorize(Role::Read)?;
        if ctx.tenants.len() > 1 {
            return logs_of_tenants(app, ctx, req).await;
        }
        let tenant = ctx.tenant_for(Role::Read)?;
        logs_of_tenant(app, tenant, req).await
    })
    .await
}

async fn logs_of_tenant(
    app: &Arc<AppState>,
    tenant: TenantId,
    req: LogRequest,
) -> Result<LogResult, ServiceError> {
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
    let Some((start, end)) = within_lookback(app, &tenant, req.start, req.end) else {
        return Ok(LogResult {
            streams: Vec::new(),
            direction: req.direction,
            stats: Default::default(),
            warnings: Vec::new(),
        });
    };
    let estimate = {
        let (store, tenant, expr) = (app.store.clone(), tenant.clone(), req.query.expr());
        move || match &expr {
            Expr::Log(log) => skald_query::log_bytes_to_read(&store, &tenant, log, start, end),
            other => skald_query::bytes_to_read(&store, &tenant, other, start, end),
        }
    };
    let (admitted, guard) = crate::admission::admit(app, &tenant, estimate).await?;
    let result = run_logs(
        app,
        tenant.clone(),
        &req.query,
        start,
        end,
        limit,
        req.direction,
        req.interval,
        true,
        Some(admitted),
    )
    .await;
    guard.disarm();
    if let Ok(r) = &result {
        app.metrics
            .scanned(&tenant, r.stats.decompressed_bytes + r.stats.head_bytes);
    }
    result
}

/// The label a multi-tenant query adds to each stream and series, as
/// Loki does: which tenant it came from.
pub const TENANT_LABEL: &str = "__tenant_id__";

/// A log query over several tenants (`X-Scope-OrgID: a|b`, authorised for
/// each): each tenant's query runs under its own limits, every stream
/// gains `__tenant_id__`, and the merged streams are cut to the limit in
/// the query's direction, as one tenant's query would be.
async fn logs_of_tenants(
    app: &Arc<AppState>,
    ctx: &Context,
    req: LogRequest,
) -> Result<LogResult, ServiceError> {
    let (tenants, selector) = pick_tenants(&ctx.tenants, &req.query.selector);
    let mut merged: Option<LogResult> = None;
    for tenant in &tenants {
        let one = LogRequest {
            query: ParsedLogQuery {
                selector: selector.clone(),
                stages: req.query.stages.clone(),
            },
            ..req
        };
        let mut result = logs_of_tenant(app, tenant.clone(), one).await?;
        for s in &mut result.streams {
            s.labels = with_tenant_label(&s.labels, tenant);
        }
        match &mut merged {
            None => merged = Some(result),
            Some(m) => {
                m.streams.append(&mut result.streams);
                m.stats.add(&result.stats);
                m.warnings.append(&mut result.warnings);
            }
        }
    }
    let mut merged = merged.unwrap_or(LogResult {
        streams: Vec::new(),
        direction: req.direction,
        stats: Default::default(),
        warnings: Vec::new(),
    });
    let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
    keep_newest_or_oldest(&mut merged, limit);
    Ok(merged)
}

/// The tenants among `tenants` that the `__tenant_id__` matchers of
/// `selector` pick (`{__tenant_id__="a"}`), and the selector without
/// them: no stream carries the label, it only chooses tenants. A single
/// tenant's selector is left as it is: the label belongs to multi-tenant
/// reads, as in Loki.
pub fn pick_tenants(tenants: &[TenantId], selector: &[Matcher]) -> (Vec<TenantId>, Vec<Matcher>) {
    if tenants.len() < 2 {
        return (tenants.to_vec(), selector.to_vec());
    }
    let (by_tenant, rest): (Vec<Matcher>, Vec<Matcher>) = selector
        .iter()
        .cloned()
        .partition(|m| m.name == TENANT_LABEL);
    let picked = tenants
        .iter()
        .filter(|t| {
            let named =
                LabelSet::from_trusted(vec![skald_model::Label::new(TENANT_LABEL, t.as_str())]);
            by_tenant.iter().all(|m| m.matches(&named))
        })
        .cloned()
        .collect();
    (picked, rest)
}

/// The stream's labels with `__tenant_id__` added.
pub fn with_tenant_label(labels: &LabelSet, tenant: &TenantId) -> LabelSet {
    let mut all = labels.labels().to_vec();
    all.retain(|l| l.name != TENANT_LABEL);
    all.push(skald_model::Label::new(TENANT_LABEL, tenant.as_str()));
    all.sort();
    LabelSet::from_trusted(all)
}

/// Cuts a result to `limit` entries over all its streams: the newest when
/// backward, the oldest when forward.
pub(crate) fn keep_newest_or_oldest(result: &mut LogResult, limit: usize) {
    let total: usize = result.streams.iter().map(|s| s.entries.len()).sum();
    if total <= limit {
        return;
    }
    let mut times: Vec<i64> = result
        .streams
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.ts.0))
        .collect();
    let backward = result.direction == Direction::Backward;
    if backward {
        times.sort_unstable_by(|a, b| b.cmp(a));
    } else {
        times.sort_unstable();
    }
    let cut = times[limit - 1];
    // Entries at the cut's timestamp are kept until the limit is reached.
    let mut at_cut = times[..limit].iter().filter(|&&t| t == cut).count();
    for s in &mut result.streams {
        s.entries.retain(|e| {
            let inside = if backward { e.ts.0 > cut } else { e.ts.0 < cut };
            if inside {
                return true;
            }
            if e.ts.0 == cut && at_cut > 0 {
                at_cut -= 1;
                return true;
            }
            false
        });
    }
    result.streams.retain(|s| !s.entries.is_empty());
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
    let nice = app.config.query_nice;
    crate::priority::on_query_thread(nice, move || {
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
            let memory = memory_bound(limits_for(&app, &tenant).max_memory);
            // The shared answer budget is not applied yet: with it, the
            // kill-points test reported entries missing after a restart
            // (docs/reliability.md, `max_inflight_response_bytes`).
            let shared = None::<std::sync::Arc<skald_query::AnswerBudget>>;
            let held = if memory < app.config.max_response_bytes {
                HeldBytes {
                    max: memory,
                    setting: "max_query_memory",
                    shared,
                }
            } else {
                HeldBytes {
                    max: app.config.max_response_bytes,
                    setting: "max_response_bytes",
                    shared,
                }
            };
            Ok(skald_query::run_log_query_held(&app.store, &q, held)?)
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

/// Runs a metric query for the context's tenant (role `read`). Audited.
pub async fn metric(
    app: &Arc<AppState>,
    ctx: &Context,
    req: MetricRequest,
) -> Result<MetricResult, ServiceError> {
    let params = serde_json::json!({
        "start_ns": req.start.0,
        "end_ns": req.end.0,
        "step_ns": req.step,
    });
    let target = req.expr.to_string();
    ctx.audited("query", target, params, async {
        ctx.authorize(Role::Read)?;
        if ctx.tenants.len() > 1 {
            return metric_of_tenants(app, ctx, req).await;
        }
        let tenant = ctx.tenant_for(Role::Read)?;
        metric_of_tenant(app, tenant, req).await
    })
    .await
}

async fn metric_of_tenant(
    app: &Arc<AppState>,
    tenant: TenantId,
    req: MetricRequest,
) -> Result<MetricResult, ServiceError> {
    if matches!(req.expr, Expr::Log(_)) {
        return Err(ServiceError::invalid(
            "query",
            "a metric query is required here, such as sum(rate({app=\"api\"}[5m])); log queries go to QueryLogs",
        ));
    }
    check_length(app, &tenant, req.start, req.end)?;
    check_points(req.start, req.end, req.step)?;
    let Some((start, _)) = within_lookback(app, &tenant, req.start, req.end) else {
        return Ok(MetricResult {
            output: skald_query::MetricOutput::Matrix(Vec::new()),
            stats: Default::default(),
            warnings: Vec::new(),
        });
    };
    // The first step at or after the lookback's start, on the query's grid.
    let skipped = (start.0 - req.start.0 + req.step - 1) / req.step;
    let req = MetricRequest {
        start: Timestamp(req.start.0 + skipped * req.step),
        ..req
    };
    let estimate = {
        let (store, tenant, expr) = (app.store.clone(), tenant.clone(), req.expr.clone());
        move || skald_query::bytes_to_read(&store, &tenant, &expr, req.start, req.end)
    };
    let (admitted, guard) = crate::admission::admit(app, &tenant, estimate).await?;
    let result = {
        let (app, tenant) = (app.clone(), tenant.clone());
        let nice = app.config.query_nice;
        crate::priority::on_query_thread(nice, move || {
            admitted.run(|| metric_admitted(&app, &tenant, &req))
        })
        .await
    };
    guard.disarm();
    if let Ok(r) = &result {
        app.metrics
            .scanned(&tenant, r.stats.decompressed_bytes + r.stats.head_bytes);
    }
    result
}

/// A metric query over several tenants. Loki adds `__tenant_id__` to
/// every stream before aggregating; Skald's engine reads one tenant at a
/// time, so a query over several tenants is answered only when each
/// tenant's series stay apart: every series of each tenant's answer gains
/// `__tenant_id__`. An aggregation that would sum across tenants (`sum`
/// without `by (__tenant_id__)`) cannot be answered that way and is
/// refused, naming the fix.
async fn metric_of_tenants(
    app: &Arc<AppState>,
    ctx: &Context,
    req: MetricRequest,
) -> Result<MetricResult, ServiceError> {
    if !keeps_tenants_apart(&req.expr) {
        return Err(ServiceError::invalid(
            "query",
            "a metric query over several tenants must keep them apart: aggregate with `by (__tenant_id__, ...)`, or query one tenant at a time",
        ));
    }
    let mut series = Vec::new();
    let mut stats = skald_query::QueryStats::default();
    let mut warnings = Vec::new();
    for tenant in &ctx.tenants {
        let one = MetricRequest {
            expr: req.expr.clone(),
            ..req
        };
        let mut r = metric_of_tenant(app, tenant.clone(), one).await?;
        stats.add(&r.stats);
        warnings.append(&mut r.warnings);
        match r.output {
            skald_query::MetricOutput::Matrix(m) => {
                for mut s in m {
                    s.labels.retain(|l| l.name != TENANT_LABEL);
                    s.labels
                        .push(skald_model::Label::new(TENANT_LABEL, tenant.as_str()));
                    s.labels.sort();
                    series.push(s);
                }
            }
            skald_query::MetricOutput::Scalar(_) => {
                return Err(ServiceError::invalid(
                    "query",
                    "a scalar query has no tenant to tell apart; query one tenant at a time",
                ));
            }
        }
    }
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(MetricResult {
        output: skald_query::MetricOutput::Matrix(series),
        stats,
        warnings,
    })
}

/// Whether every aggregation and vector match of `expr` keeps
/// `__tenant_id__`, so that each tenant's answer is a part of the whole.
fn keeps_tenants_apart(expr: &Expr) -> bool {
    use skald_logql::{Grouping, VectorOp};
    let names_tenant = |labels: &[String]| labels.iter().any(|l| l == TENANT_LABEL);
    // `reduces`: without a grouping, the operation folds every series
    // into one (and so would mix tenants).
    let keeps = |g: &Option<Grouping>, reduces: bool| match g {
        None => !reduces,
        Some(g) if g.without => !names_tenant(&g.labels),
        Some(g) => names_tenant(&g.labels),
    };
    match expr {
        Expr::Log(_) | Expr::Literal(_) | Expr::Vector(_) => true,
        Expr::RangeAggregation(r) => keeps(&r.grouping, false),
        Expr::VectorAggregation(v) => {
            let reduces = !matches!(v.op, VectorOp::Sort | VectorOp::SortDesc);
            keeps(&v.grouping, reduces) && keeps_tenants_apart(&v.inner)
        }
        Expr::Binary(b) => {
            let matching = match &b.modifier.matching {
                None => true,
                Some(m) if m.on => names_tenant(&m.labels),
                Some(m) => !names_tenant(&m.labels),
            };
            matching && keeps_tenants_apart(&b.lhs) && keeps_tenants_apart(&b.rhs)
        }
        Expr::LabelReplace(l) => l.dst != TENANT_LABEL && keeps_tenants_apart(&l.inner),
        _ => false,
    }
}

/// `max_query_memory` in bytes a query may hold (0: no limit).
fn memory_bound(max_memory: u64) -> usize {
    match max_memory {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

/// The body of an admitted metric query, on the blocking pool.
fn metric_admitted(
    app: &AppState,
    tenant: &TenantId,
    req: &MetricRequest,
) -> Result<MetricResult, ServiceError> {
    check_bytes(app, tenant, &req.expr, req.start, req.end)?;
    let limits = limits_for(app, tenant);
    let q = MetricQuery {
        tenant,
        expr: &req.expr,
        start: req.start,
        end: req.end,
        step: req.step,
        limits: MetricLimits {
            max_series: match limits.max_series {
                0 => usize::MAX,
                n => n,
            },
            max_range_bytes: memory_bound(limits.max_memory),
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

/// What `selector` covers; over several tenants (`a|b`, read on each,
/// `__tenant_id__` matchers picking among them), the sum of each one's.
pub async fn coverage(
    app: &Arc<AppState>,
    ctx: &Context,
    selector: Vec<Matcher>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Coverage, ServiceError> {
    let (tenants, selector) = pick_tenants(&ctx.tenants_for(Role::Read)?, &selector);
    let store = app.store.clone();
    blocking(move || {
        let mut out = Coverage::default();
        for tenant in &tenants {
            let snap = store.snapshot(tenant, &selector, start, end);
            out.streams += snap.streams.len() as u64;
            for s in &snap.streams {
                for src in &s.sources {
                    let (e, b) = src.size();
                    out.chunks += 1;
                    out.entries += e;
                    out.bytes += b;
                }
            }
        }
        Ok(out)
    })
    .await
}
