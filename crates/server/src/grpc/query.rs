//! Query RPCs: log queries, metric queries, and query statistics.
//!
//! Log queries run through `skald_query::run_log_query`, the engine the
//! HTTP API uses; [`parse_log_query`] and [`run_logs`] are the one place
//! this module meets the engine's interface, shared with tail and export.

use super::{context, invalid, labels_out, proto, range};
use crate::AppState;
use crate::service::Role;
use crate::service::query::{
    DEFAULT_SINCE_NS, LogRequest, MetricRequest, entry_limit, parse_log_query, plain_streams,
    run_logs,
};
use skald_model::{Entry, LabelSet};
use skald_query::{Direction, QueryStats};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// A request's limit field: 0 means the default.
fn limit_in(limit: u32) -> Option<usize> {
    (limit != 0).then_some(limit as usize)
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

pub(crate) fn streams_out(streams: &[(LabelSet, Vec<Entry>)]) -> Vec<proto::Stream> {
    streams
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
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    let query = parse_log_query("query", &req.query)?;
    let (start, end) = range(req.start_ns, req.end_ns, Some(DEFAULT_SINCE_NS))?;
    let direction = match req.direction() {
        proto::Direction::Backward => Direction::Backward,
        proto::Direction::Forward => Direction::Forward,
    };
    let request = LogRequest {
        query,
        start,
        end,
        limit: limit_in(req.limit),
        direction,
        interval: 0,
    };
    let result = crate::service::query::logs(app, &ctx, request).await?;
    let stats = stats_out(&result.stats);
    let warnings = result.warnings.clone();
    Ok(Response::new(proto::QueryLogsResponse {
        streams: streams_out(&plain_streams(result)),
        stats: Some(stats),
        warnings,
    }))
}

pub(super) async fn query_range(
    app: &Arc<AppState>,
    req: Request<proto::QueryRangeRequest>,
) -> Result<Response<proto::QueryRangeResponse>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    if req.query.trim().is_empty() {
        return Err(invalid("query", "required"));
    }
    let expr = skald_logql::parse_expr(&req.query).map_err(|e| invalid("query", e))?;
    let (start, end) = range(req.start_ns, req.end_ns, Some(DEFAULT_SINCE_NS))?;
    let step = match req.step_ns {
        0 => ((end.0 - start.0) / 250).max(1_000_000_000),
        s if s < 0 => return Err(invalid("step_ns", "must be positive")),
        s => s,
    };
    let request = MetricRequest {
        expr,
        start,
        end,
        step,
    };
    let result = crate::service::query::metric(app, &ctx, request).await?;
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
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    let parsed = parse_log_query("query", &req.query)?;
    let (start, end) = range(req.start_ns, req.end_ns, Some(DEFAULT_SINCE_NS))?;
    let c = crate::service::query::coverage(app, &ctx, parsed.selector.clone(), start, end).await?;
    let mut out = proto::QueryStatsResponse {
        streams: c.streams,
        chunks: c.chunks,
        entries: c.entries,
        bytes: c.bytes,
        ..Default::default()
    };
    if req.run_limit > 0 {
        let tenant = ctx.tenant_for(Role::Read)?;
        let limit = entry_limit(app, &tenant, limit_in(req.run_limit))?;
        let result = run_logs(
            app,
            tenant,
            &parsed,
            start,
            end,
            limit,
            Direction::Backward,
            0,
            false,
            None,
        )
        .await?;
        out.run = Some(stats_out(&result.stats));
    }
    Ok(Response::new(out))
}
