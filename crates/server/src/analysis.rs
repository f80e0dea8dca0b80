//! Log analysis over HTTP: `GET /loki/api/v1/patterns` in Loki 3's shape,
//! and Skald's own `GET /skald/api/v1/errors` (error groups),
//! `/skald/api/v1/anomalies` and `/skald/api/v1/analyze` (the report of
//! `skald analyze`), adapters over `crate::service::analysis`, fed by the
//! pattern index that mines every durable group at ingest
//! (`skald_analysis::index`).
//!
//! [`attach`] opens the index in `<data dir>/analysis` and installs the
//! store's commit hook; handlers read it for the request's tenant only.
//!
//! Not here: the mining itself (`skald-analysis`), detected fields and
//! labels (`/loki/api/v1/detected_*`).

use crate::params::Params;
use crate::query::step;
use crate::service::Context;
use crate::service::analysis::{self as service, AnalysisRange, AnalyzeRequest};
use crate::service::query::{HOUR_NS, parse_log_query};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};
use skald_analysis::anomaly::Anomaly;
use skald_analysis::groups::ErrorGroup;
use skald_analysis::index::{IndexConfig, IndexCounters, PatternIndex};
use skald_model::Matcher;
use skald_store::Store;
use std::sync::Arc;

/// Opens the pattern index beside the store's data and has the store hand
/// it every durable group; `None` when mining is off.
pub fn attach(store: &Store, config: &IndexConfig) -> std::io::Result<Option<Arc<PatternIndex>>> {
    if !config.enabled {
        return Ok(None);
    }
    let index = Arc::new(PatternIndex::open(
        store.config().data_dir.join("analysis"),
        config.clone(),
    )?);
    let fed = index.clone();
    store.on_commit(Box::new(move |tenant, streams| {
        let group = streams.into_iter().map(|s| (s.labels, s.entries)).collect();
        fed.offer(tenant.clone(), group);
    }));
    Ok(Some(index))
}

/// The streams and range of an analysis request: `query` (a selector or
/// a log query, its pipeline ignored), `start`, `end` or `since`, `step`.
fn range(params: &Params) -> Result<AnalysisRange, ApiError> {
    let selector = params.query_selector()?;
    range_of(params, selector)
}

fn range_of(params: &Params, selector: Vec<Matcher>) -> Result<AnalysisRange, ApiError> {
    let (start, end) = params.range(HOUR_NS)?;
    let step = params
        .get("step")
        .map(|_| step(params, start, end))
        .transpose()?;
    Ok(AnalysisRange {
        selector,
        start,
        end,
        step,
    })
}

/// The pattern miner's counters, for `/metrics`.
pub fn render_metrics(c: &IndexCounters, metric: &mut impl FnMut(&str, &str, &str, u64)) {
    for (name, help, value) in [
        (
            "skald_patterns_mined_lines_total",
            "Lines given a pattern at ingest.",
            c.mined_lines,
        ),
        (
            "skald_patterns_sampled_lines_total",
            "Lines counted through a mined neighbour while the miner was behind (sampled, not shed).",
            c.sampled_lines,
        ),
        (
            "skald_patterns_shed_lines_total",
            "Lines not mined because the miner was behind (ingest never waits for it).",
            c.shed_lines,
        ),
        (
            "skald_patterns_evicted_total",
            "Rare patterns evicted to keep a stream's miner within max_patterns_per_stream.",
            c.patterns_evicted,
        ),
        (
            "skald_patterns_records_written_total",
            "Pattern and error-group count records written to the analysis files.",
            c.records_written,
        ),
        (
            "skald_patterns_records_skipped_total",
            "Analysis file records skipped when read (cut by a crash or unreadable).",
            c.records_skipped,
        ),
    ] {
        metric(name, "counter", help, value);
    }
}

/// A request's context and parameters.
fn request(
    app: &AppState,
    headers: &HeaderMap,
    raw: Option<&str>,
    body: &Bytes,
) -> Result<(Context, Params), ApiError> {
    Ok((
        Context::from_http(app, headers)?,
        Params::from_request(raw, body),
    ))
}

/// `GET /loki/api/v1/patterns?query&start&end&step`.
pub async fn patterns(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (ctx, params) = request(&app, &headers, raw.as_deref(), &body)?;
    let series = service::patterns(&app, &ctx, range(&params)?).await?;
    let data: Vec<Value> = series
        .into_iter()
        .map(|s| json!({"pattern": s.pattern, "level": s.level, "samples": s.samples}))
        .collect();
    Ok(Json(json!({"status": "success", "data": data})))
}

pub(crate) fn group_json(g: &ErrorGroup) -> Value {
    json!({
        "fingerprint": g.fingerprint,
        "category": g.category,
        "exception": g.exception,
        "frame": g.frame,
        "pattern": g.pattern,
        "count": g.count,
        "firstSeen": g.first_seen,
        "lastSeen": g.last_seen,
        "new": g.new,
        "samples": g.samples,
        "examples": g.examples,
        "streams": g.streams.iter().map(|(labels, count)| json!({"labels": labels, "count": count})).collect::<Vec<_>>(),
    })
}

pub(crate) fn anomaly_json(a: &Anomaly) -> Value {
    json!({
        "kind": a.kind.as_str(),
        "labels": a.labels,
        "pattern": a.pattern,
        "start": a.start,
        "end": a.end,
        "score": a.score,
        "observed": a.observed,
        "baseline": {
            "median": a.baseline.median,
            "mad": a.baseline.mad,
            "source": a.baseline.source.as_str(),
            "windows": a.baseline.windows,
        },
        "evidence": a.evidence,
    })
}

/// `GET /skald/api/v1/errors?query&start&end&step&examples`: error groups
/// of the selected streams (every stream of the tenant without `query`),
/// most lines first.
pub async fn errors(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (ctx, params) = request(&app, &headers, raw.as_deref(), &body)?;
    let examples = match params.get("examples") {
        None => 3,
        Some(v) => v.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid parameter \"examples\": {v:?} is not a count"
            ))
        })?,
    };
    let selector = match params.get("query") {
        Some(_) => params.query_selector()?,
        None => Vec::new(),
    };
    let groups = service::error_groups(&app, &ctx, range_of(&params, selector)?, examples).await?;
    let data: Vec<Value> = groups.iter().map(group_json).collect();
    Ok(Json(json!({"status": "success", "data": data})))
}

/// `GET /skald/api/v1/anomalies?query&start&end&step`: anomalies of the
/// selected streams in whole windows of `step` (rounded up to a width
/// that divides a day).
pub async fn anomalies(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (ctx, params) = request(&app, &headers, raw.as_deref(), &body)?;
    let found = service::anomalies(&app, &ctx, range(&params)?).await?;
    let d = &found.detection;
    Ok(Json(json!({"status": "success", "data": {
        "window": found.window_secs,
        "windowsJudged": d.windows_judged,
        "windowsAnomalous": d.windows_anomalous,
        "anomalies": d.anomalies.iter().map(anomaly_json).collect::<Vec<_>>(),
    }})))
}

/// `GET /skald/api/v1/analyze?query&start&end&max_lines&top`: the
/// analysis report of a log query (`skald analyze`).
pub async fn analyze(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (ctx, params) = request(&app, &headers, raw.as_deref(), &body)?;
    let (start, end) = params.range(HOUR_NS)?;
    let text = params
        .get("query")
        .ok_or_else(|| ApiError::bad_request("missing parameter \"query\""))?;
    let count = |name: &str| -> Result<Option<usize>, ApiError> {
        params
            .get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid parameter {name:?}: {v:?} is not a count"
                    ))
                })
            })
            .transpose()
    };
    let req = AnalyzeRequest {
        query: parse_log_query("query", text)?,
        start,
        end,
        max_lines: count("max_lines")?,
        top_patterns: count("top")?,
    };
    let a = service::analyze(&app, &ctx, req).await?;
    let r = &a.report;
    Ok(Json(json!({"status": "success", "data": {
        "start": start.0.div_euclid(1_000_000_000),
        "end": end.0.div_euclid(1_000_000_000),
        "lines": r.lines,
        "truncated": a.truncated,
        "streams": r.streams,
        "patternsTotal": r.patterns_total,
        "levels": r.levels,
        "errorLines": r.error_lines,
        "errorRate": r.error_rate,
        "anomalyCount": r.anomalies.len(),
        "anomalyRate": r.anomaly_rate,
        "anomalyWindow": a.window_secs,
        "patterns": r.patterns,
        "errorGroups": r.error_groups.iter().map(group_json).collect::<Vec<_>>(),
        "hourly": r.hourly,
        "anomalies": r.anomalies.iter().map(anomaly_json).collect::<Vec<_>>(),
    }})))
}
