//! Analysis RPCs: `ListPatterns`, `ListErrorGroups`, `ListAnomalies`,
//! `AnalyzeLogs`, over `crate::service::analysis`.

use super::{context, invalid, labels_out, proto, range};
use crate::AppState;
use crate::params::stream_selector;
use crate::service::analysis::{self as service, AnalysisRange, AnalyzeRequest};
use crate::service::query::{DEFAULT_SINCE_NS, parse_log_query};
use skald_analysis::anomaly::Anomaly;
use skald_analysis::groups::ErrorGroup;
use skald_model::LabelSet;
use std::sync::Arc;
use tonic::{Request, Response, Status};

const SECOND_NS: i64 = 1_000_000_000;

/// The selector, range and step of an analysis request.
fn analysis_range(
    query: &str,
    start_ns: i64,
    end_ns: i64,
    step_ns: i64,
    step_field: &str,
) -> Result<AnalysisRange, Status> {
    if query.trim().is_empty() {
        return Err(invalid("query", "required"));
    }
    let selector = stream_selector(query, true).map_err(|e| invalid("query", e))?;
    let (start, end) = range(start_ns, end_ns, Some(DEFAULT_SINCE_NS))?;
    let step = match step_ns {
        0 => None,
        s if s < 0 => return Err(invalid(step_field, "must be positive")),
        s => Some(s),
    };
    Ok(AnalysisRange {
        selector,
        start,
        end,
        step,
    })
}

fn samples_out(samples: &[(i64, u64)]) -> Vec<proto::PatternSample> {
    samples
        .iter()
        .map(|&(secs, count)| proto::PatternSample {
            timestamp_ns: secs * SECOND_NS,
            count,
        })
        .collect()
}

/// Labels as the index stores them (Loki's text) to the wire.
fn labels_text_out(text: &str) -> Vec<proto::Label> {
    LabelSet::parse(text)
        .map(|l| labels_out(&l))
        .unwrap_or_default()
}

pub(crate) fn group_out(g: ErrorGroup) -> proto::ErrorGroup {
    proto::ErrorGroup {
        fingerprint: g.fingerprint,
        category: g.category,
        exception: g.exception.unwrap_or_default(),
        frame: g.frame.unwrap_or_default(),
        pattern: g.pattern,
        count: g.count,
        first_seen_ns: g.first_seen * SECOND_NS,
        last_seen_ns: g.last_seen * SECOND_NS,
        is_new: g.new,
        samples: samples_out(&g.samples),
        examples: g.examples,
        streams: g
            .streams
            .iter()
            .map(|(labels, count)| proto::StreamCount {
                labels: labels_text_out(labels),
                count: *count,
            })
            .collect(),
    }
}

pub(crate) fn anomaly_out(a: Anomaly) -> proto::Anomaly {
    proto::Anomaly {
        kind: a.kind.as_str().to_owned(),
        labels: labels_text_out(&a.labels),
        pattern: a.pattern.unwrap_or_default(),
        start_ns: a.start * SECOND_NS,
        end_ns: a.end * SECOND_NS,
        score: a.score,
        observed: a.observed,
        baseline: Some(proto::AnomalyBaseline {
            median: a.baseline.median,
            mad: a.baseline.mad,
            source: a.baseline.source.as_str().to_owned(),
            windows: a.baseline.windows as u32,
        }),
        evidence: a.evidence,
    }
}

pub(super) async fn list_patterns(
    app: &Arc<AppState>,
    req: Request<proto::ListPatternsRequest>,
) -> Result<Response<proto::ListPatternsResponse>, Status> {
    let ctx = context(app, &req)?;
    let r = req.into_inner();
    let range = analysis_range(&r.query, r.start_ns, r.end_ns, r.step_ns, "step_ns")?;
    let series = service::patterns(app, &ctx, range).await?;
    Ok(Response::new(proto::ListPatternsResponse {
        patterns: series
            .into_iter()
            .map(|s| proto::LogPattern {
                count: s.total(),
                samples: samples_out(&s.samples),
                pattern: s.pattern,
                level: s.level,
            })
            .collect(),
    }))
}

pub(super) async fn list_error_groups(
    app: &Arc<AppState>,
    req: Request<proto::ListErrorGroupsRequest>,
) -> Result<Response<proto::ListErrorGroupsResponse>, Status> {
    let ctx = context(app, &req)?;
    let r = req.into_inner();
    let range = analysis_range(&r.query, r.start_ns, r.end_ns, r.step_ns, "step_ns")?;
    let examples = match r.examples {
        0 => 3,
        n => n as usize,
    };
    let groups = service::error_groups(app, &ctx, range, examples).await?;
    Ok(Response::new(proto::ListErrorGroupsResponse {
        groups: groups.into_iter().map(group_out).collect(),
    }))
}

pub(super) async fn list_anomalies(
    app: &Arc<AppState>,
    req: Request<proto::ListAnomaliesRequest>,
) -> Result<Response<proto::ListAnomaliesResponse>, Status> {
    let ctx = context(app, &req)?;
    let r = req.into_inner();
    let range = analysis_range(&r.query, r.start_ns, r.end_ns, r.window_ns, "window_ns")?;
    let found = service::anomalies(app, &ctx, range).await?;
    let d = found.detection;
    Ok(Response::new(proto::ListAnomaliesResponse {
        anomalies: d.anomalies.into_iter().map(anomaly_out).collect(),
        window_ns: found.window_secs * SECOND_NS,
        windows_judged: d.windows_judged,
        windows_anomalous: d.windows_anomalous,
    }))
}

pub(super) async fn analyze_logs(
    app: &Arc<AppState>,
    req: Request<proto::AnalyzeLogsRequest>,
) -> Result<Response<proto::AnalyzeLogsResponse>, Status> {
    let ctx = context(app, &req)?;
    let r = req.into_inner();
    let query = parse_log_query("query", &r.query)?;
    let (start, end) = range(r.start_ns, r.end_ns, Some(DEFAULT_SINCE_NS))?;
    let optional = |n: u32| (n != 0).then_some(n as usize);
    let a = service::analyze(
        app,
        &ctx,
        AnalyzeRequest {
            query,
            start,
            end,
            max_lines: optional(r.max_lines),
            top_patterns: optional(r.top_patterns),
        },
    )
    .await?;
    let report = a.report;
    Ok(Response::new(proto::AnalyzeLogsResponse {
        lines: report.lines,
        truncated: a.truncated,
        streams: report.streams,
        patterns_total: report.patterns_total,
        levels: report
            .levels
            .into_iter()
            .map(|(level, lines)| proto::LevelCount { level, lines })
            .collect(),
        error_lines: report.error_lines,
        error_rate: report.error_rate,
        anomaly_count: report.anomalies.len() as u64,
        anomaly_rate: report.anomaly_rate,
        patterns: report
            .patterns
            .into_iter()
            .map(|p| proto::PatternSummary {
                pattern: p.pattern,
                level: p.level,
                count: p.count,
                share: p.share,
                numbers: p
                    .numbers
                    .into_iter()
                    .map(|n| proto::NumberStats {
                        name: n.name,
                        unit: n.unit,
                        count: n.count,
                        p50: n.p50,
                        p95: n.p95,
                        p99: n.p99,
                    })
                    .collect(),
            })
            .collect(),
        error_groups: report.error_groups.into_iter().map(group_out).collect(),
        hourly: report
            .hourly
            .into_iter()
            .map(|h| proto::HourCount {
                start_ns: h.start * SECOND_NS,
                lines: h.lines,
                errors: h.errors,
            })
            .collect(),
        anomalies: report.anomalies.into_iter().map(anomaly_out).collect(),
    }))
}
