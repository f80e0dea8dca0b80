//! Query RPCs: log queries, metric queries, and query statistics.
//!
//! Log queries run through `skald_query::run_log_query`, the engine the
//! HTTP API uses; [`parse_log_query`] and [`run_logs`] are the one place
//! this module meets the engine's interface, shared with tail and export.

use super::{blocking, invalid, labels_out, proto, range, tenant};
use crate::AppState;
use skald_logql::{Expr, Stage};
use skald_model::{Entry, LabelSet, Matcher, TenantId, Timestamp};
use skald_pipeline::Pipeline;
use skald_query::{Direction, LogQuery, QueryStats};
use skald_store::{Source, Store};
use std::sync::Arc;
use tonic::{Request, Response, Status};

const HOUR_NS: i64 = 3_600_000_000_000;
const DEFAULT_LIMIT: u32 = 100;

/// A parsed log query: the selector and its pipeline stages.
pub(crate) struct ParsedLogQuery {
    pub selector: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

impl ParsedLogQuery {
    /// The whole pipeline, for callers that run it themselves (tail).
    pub fn pipeline(&self, field: &str) -> Result<Pipeline, Status> {
        Pipeline::new(&self.stages).map_err(|e| invalid(field, e))
    }
}

pub(crate) fn parse_log_query(field: &str, text: &str) -> Result<ParsedLogQuery, Status> {
    if text.trim().is_empty() {
        return Err(invalid(field, "required"));
    }
    match skald_logql::parse_expr(text).map_err(|e| invalid(field, e))? {
        Expr::Log(l) => Ok(ParsedLogQuery {
            selector: l.selector,
            stages: l.pipeline,
        }),
        _ => Err(invalid(
            field,
            "a log query is required here, such as {app=\"api\"} |= \"error\"; metric queries go to QueryRange",
        )),
    }
}

/// A log query's answer: streams (labels as the pipeline left them) with
/// their entries in the query's direction.
pub(crate) struct Logs {
    pub streams: Vec<(LabelSet, Vec<Entry>)>,
    pub stats: QueryStats,
    pub warnings: Vec<String>,
}

/// Runs a log query on the blocking pool.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_logs(
    store: Arc<Store>,
    tenant: TenantId,
    field: &str,
    parsed: &ParsedLogQuery,
    start: Timestamp,
    end: Timestamp,
    limit: usize,
    direction: Direction,
    admitted: Option<crate::admission::Admitted>,
) -> Result<Logs, Status> {
    let pipeline = parsed.pipeline(field)?;
    let selector = parsed.selector.clone();
    blocking(move || {
        let run = |q: &LogQuery<'_>| skald_query::run_log_query(&store, q).map_err(query_status);
        // Admitted queries run under their permit and cancel token.
        let run = |q: &LogQuery<'_>| match admitted {
            Some(a) => a.run(|| run(q)),
            None => run(q),
        };
        let q = LogQuery {
            tenant: &tenant,
            selector: &selector,
            pipeline: &pipeline,
            start,
            end,
            limit,
            direction,
            interval: 0,
        };
        let r = run(&q)?;
        let streams = r
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
            .collect();
        Ok(Logs {
            streams,
            stats: r.stats,
            warnings: r.warnings,
        })
    })
    .await
}

/// The status of a failed log query.
fn query_status(e: skald_query::QueryError) -> Status {
    match e {
        skald_query::QueryError::Timeout(m) => Status::deadline_exceeded(m),
        skald_query::QueryError::Cancelled => Status::cancelled(e.to_string()),
        other => Status::invalid_argument(other.to_string()),
    }
}

pub(crate) fn check_limit(app: &AppState, field: &str, limit: u32) -> Result<usize, Status> {
    let limit = if limit == 0 { DEFAULT_LIMIT } else { limit } as usize;
    if limit > app.config.max_query_limit {
        return Err(Status::resource_exhausted(format!(
            "{field}: {limit} is over the server's max_query_limit ({})",
            app.config.max_query_limit
        )));
    }
    Ok(limit)
}

fn check_length(app: &AppState, start: Timestamp, end: Timestamp) -> Result<(), Status> {
    let max_hours = app.config.max_query_length_hours;
    if max_hours > 0 && (end.0 as i128 - start.0 as i128) > max_hours as i128 * HOUR_NS as i128 {
        return Err(Status::resource_exhausted(format!(
            "start_ns: the query spans {}h; the server's limit is {max_hours}h",
            (end.0 as i128 - start.0 as i128) / HOUR_NS as i128
        )));
    }
    Ok(())
}

/// Refuses a query that would read more than the server's
/// `max_query_bytes_read`, estimated from the index; hands the query back.
async fn check_bytes(
    app: &Arc<AppState>,
    tenant: &TenantId,
    expr: Expr,
    start: Timestamp,
    end: Timestamp,
) -> Result<Expr, Status> {
    let limit = app.config.max_query_bytes_read;
    if limit == 0 {
        return Ok(expr);
    }
    let store = app.store.clone();
    let tenant = tenant.clone();
    blocking(move || {
        let bytes = skald_query::bytes_to_read(&store, &tenant, &expr, start, end);
        skald_query::check_bytes_to_read(bytes, limit)
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        Ok(expr)
    })
    .await
}

pub(crate) fn stats_out(s: &QueryStats) -> proto::QueryStatistics {
    proto::QueryStatistics {
        exec_time_seconds: s.exec_time_secs,
        streams: s.streams,
        chunks_referenced: s.chunks_ref,
        chunks_skipped: s.chunks_skipped,
        chunks_read: s.chunks_read + s.head_blocks_read,
        bytes_processed: s.total_bytes(),
        lines_processed: s.total_lines(),
        compressed_bytes: s.compressed_bytes,
        entries_returned: s.entries_returned,
    }
}

pub(crate) fn streams_out(result: &Logs) -> Vec<proto::Stream> {
    result
        .streams
        .iter()
        .map(|(labels, entries)| proto::Stream {
            labels: labels_out(labels),
            entries: entries.iter().map(super::entry_out).collect(),
        })
        .collect()
}

pub(super) async fn query_logs(
    app: &Arc<AppState>,
    req: Request<proto::QueryLogsRequest>,
) -> Result<Response<proto::QueryLogsResponse>, Status> {
    let tenant = tenant(&req)?;
    let req = req.into_inner();
    let parsed = parse_log_query("query", &req.query)?;
    let (start, end) = range(req.start_ns, req.end_ns, Some(HOUR_NS))?;
    check_length(app, start, end)?;
    let limit = check_limit(app, "limit", req.limit)?;
    let direction = match req.direction() {
        proto::Direction::Backward => Direction::Backward,
        proto::Direction::Forward => Direction::Forward,
    };
    let log = skald_logql::LogExpr {
        selector: parsed.selector.clone(),
        pipeline: parsed.stages.clone(),
    };
    let expr = check_bytes(app, &tenant, Expr::Log(log), start, end).await?;
    let estimate = {
        let (store, tenant) = (app.store.clone(), tenant.clone());
        move || skald_query::bytes_to_read(&store, &tenant, &expr, start, end)
    };
    let (admitted, guard) = crate::admission::admit(app, &tenant, estimate)
        .await
        .map_err(super::status_of)?;
    let result = run_logs(
        app.store.clone(),
        tenant,
        "query",
        &parsed,
        start,
        end,
        limit,
        direction,
        Some(admitted),
    )
    .await?;
    guard.disarm();
    Ok(Response::new(proto::QueryLogsResponse {
        streams: streams_out(&result),
        stats: Some(stats_out(&result.stats)),
        warnings: result.warnings,
    }))
}

pub(super) async fn query_range(
    app: &Arc<AppState>,
    req: Request<proto::QueryRangeRequest>,
) -> Result<Response<proto::QueryRangeResponse>, Status> {
    let tenant = tenant(&req)?;
    let req = req.into_inner();
    if req.query.trim().is_empty() {
        return Err(invalid("query", "required"));
    }
    let expr = skald_logql::parse_expr(&req.query).map_err(|e| invalid("query", e))?;
    if matches!(expr, Expr::Log(_)) {
        return Err(invalid(
            "query",
            "a metric query is required here, such as sum(rate({app=\"api\"}[5m])); log queries go to QueryLogs",
        ));
    }
    let (start, end) = range(req.start_ns, req.end_ns, Some(HOUR_NS))?;
    check_length(app, start, end)?;
    let step = match req.step_ns {
        0 => ((end.0 - start.0) / 250).max(1_000_000_000),
        s if s < 0 => return Err(invalid("step_ns", "must be positive")),
        s => s,
    };
    if (end.0 - start.0) / step > 11_000 {
        return Err(Status::resource_exhausted(
            "step_ns: more than 11,000 points per series; use a larger step",
        ));
    }
    let expr = check_bytes(app, &tenant, expr, start, end).await?;
    let store = app.store.clone();
    let max_series = app.config.max_query_series;
    let estimate = {
        let (store, tenant, expr) = (store.clone(), tenant.clone(), expr.clone());
        move || skald_query::bytes_to_read(&store, &tenant, &expr, start, end)
    };
    let (admitted, guard) = crate::admission::admit(app, &tenant, estimate)
        .await
        .map_err(super::status_of)?;
    let result = blocking(move || {
        admitted.run(|| {
            let q = skald_query::MetricQuery {
                tenant: &tenant,
                expr: &expr,
                start,
                end,
                step,
                limits: skald_query::MetricLimits {
                    max_series,
                    ..Default::default()
                },
            };
            skald_query::run_metric_query(&store, &q).map_err(|e| match e {
                skald_query::QueryError::Limit(m) => Status::resource_exhausted(m),
                e @ (skald_query::QueryError::Timeout(_) | skald_query::QueryError::Cancelled) => {
                    query_status(e)
                }
                other => Status::invalid_argument(format!("query: {other}")),
            })
        })
    })
    .await?;
    guard.disarm();
    let samples = |points: Vec<(i64, f64)>| {
        points
            .into_iter()
            .map(|(t, v)| proto::Sample {
                timestamp_ns: t,
                value: v,
            })
            .collect()
    };
    let series = match result.output {
        skald_query::MetricOutput::Scalar(points) => vec![proto::Series {
            labels: Vec::new(),
            samples: samples(points),
        }],
        skald_query::MetricOutput::Matrix(all) => all
            .into_iter()
            .map(|s| proto::Series {
                labels: s
                    .labels
                    .into_iter()
                    .map(|l| proto::Label {
                        name: l.name,
                        value: l.value,
                    })
                    .collect(),
                samples: samples(s.points),
            })
            .collect(),
    };
    Ok(Response::new(proto::QueryRangeResponse {
        series,
        stats: Some(stats_out(&result.stats)),
        warnings: result.warnings,
    }))
}

pub(super) async fn query_stats(
    app: &Arc<AppState>,
    req: Request<proto::QueryStatsRequest>,
) -> Result<Response<proto::QueryStatsResponse>, Status> {
    let tenant = tenant(&req)?;
    let req = req.into_inner();
    let parsed = parse_log_query("query", &req.query)?;
    let (start, end) = range(req.start_ns, req.end_ns, Some(HOUR_NS))?;
    let store = app.store.clone();
    let selector = parsed.selector.clone();
    let t = tenant.clone();
    let mut out = blocking(move || {
        let snap = store.snapshot(&t, &selector, start, end);
        let mut out = proto::QueryStatsResponse {
            streams: snap.streams.len() as u64,
            ..Default::default()
        };
        for s in &snap.streams {
            for src in &s.sources {
                out.chunks += 1;
                match src {
                    Source::Head(b) => {
                        out.entries += b.len() as u64;
                        out.bytes += b.raw_bytes() as u64;
                    }
                    Source::Chunk(c) => {
                        let meta = c.segment.chunk(c.at);
                        out.entries += meta.entries as u64;
                        out.bytes += meta.raw_bytes;
                    }
                }
            }
        }
        Ok(out)
    })
    .await?;
    if req.run_limit > 0 {
        let limit = check_limit(app, "run_limit", req.run_limit)?;
        let result = run_logs(
            app.store.clone(),
            tenant,
            "query",
            &parsed,
            start,
            end,
            limit,
            Direction::Backward,
            None,
        )
        .await?;
        out.run = Some(stats_out(&result.stats));
    }
    Ok(Response::new(out))
}
