//! `/loki/api/v1/query_range`, `/loki/api/v1/query` and
//! `/loki/api/v1/format_query`: log queries answer `streams`, metric
//! queries `matrix` (range), `vector` or `scalar` (instant), in Loki's JSON
//! shapes with its `stats`.

use crate::params::Params;
use crate::service::query::{DEFAULT_SINCE_NS, LogRequest, MetricRequest, SECOND_NS};
use crate::service::{Context, Role};
use crate::{ApiError, AppState};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use skald_logql::{Expr, LogExpr};
use skald_model::{Label, Timestamp};
use skald_query::{Direction, LogResult, MetricOutput, MetricResult, QueryStats};
use skald_wire::response::{MatrixSeries, Sample, VectorSample};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Points Loki aims for when `step` is not given.
const DEFAULT_POINTS: i64 = 250;

pub async fn query_range(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(DEFAULT_SINCE_NS)?;
    let expr = parse_query(&params)?;
    // The tenant's limits (length, entries, lookback) are the service's
    // to apply, per tenant of a multi-tenant read.
    ctx.authorize(Role::Read)?;
    match expr {
        Expr::Log(log) => {
            let interval = params.duration("interval")?.unwrap_or(0);
            run_log(app, &ctx, &headers, &params, log, start, end, interval).await
        }
        metric => {
            let step = step(&params, start, end)?;
            let q = MetricRequest {
                expr: metric,
                start,
                end,
                step,
            };
            run_metric(app, &ctx, q, false).await
        }
    }
}

/// Instant queries. A metric query is evaluated at `time`; a log query
/// reads the hour before it (Loki 2's behaviour; Loki 3 refuses log
/// queries here).
pub async fn query(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let at = params.time("time")?.unwrap_or_else(Timestamp::now);
    let expr = parse_query(&params)?;
    match expr {
        Expr::Log(log) => {
            let start = at.saturating_sub(DEFAULT_SINCE_NS);
            // `time` is inclusive for an instant query.
            run_log(
                app,
                &ctx,
                &headers,
                &params,
                log,
                start,
                at.saturating_add(1),
                0,
            )
            .await
        }
        metric => {
            let q = MetricRequest {
                expr: metric,
                start: at,
                end: at,
                step: SECOND_NS,
            };
            run_metric(app, &ctx, q, true).await
        }
    }
}

/// `GET /loki/api/v1/format_query?query=...`: the query in canonical form.
pub async fn format_query(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let text = params.get("query").unwrap_or_default();
    let formatted = crate::service::query::format(&ctx, text)?;
    let body = json!({"status": "success", "data": formatted});
    Ok(json_response(serde_json::to_vec(&body).unwrap_or_default()))
}

fn parse_query(params: &Params) -> Result<Expr, ApiError> {
    crate::service::query::parse("query", params.get("query").unwrap_or_default())
}

/// `step` as given (float seconds, `15s`, `15000ms`), or Loki's default:
/// the range over 250 points, rounded up to whole seconds, at least 1s.
pub(crate) fn step(params: &Params, start: Timestamp, end: Timestamp) -> Result<i64, ApiError> {
    let range = end.0.saturating_sub(start.0);
    let step = match params.get("step") {
        Some(v) => skald_wire::parse_step(v)
            .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
            .map_err(|e| ApiError::bad_request(format!("invalid parameter \"step\": {e}")))?,
        None => {
            let secs = (range as i128 + DEFAULT_POINTS as i128 * SECOND_NS as i128 - 1)
                / (DEFAULT_POINTS as i128 * SECOND_NS as i128);
            (secs.max(1) as i64).saturating_mul(SECOND_NS)
        }
    };
    crate::service::query::check_points(start, end, step)?;
    Ok(step)
}

#[allow(clippy::too_many_arguments)]
async fn run_log(
    app: Arc<AppState>,
    ctx: &Context,
    headers: &HeaderMap,
    params: &Params,
    log: LogExpr,
    start: Timestamp,
    end: Timestamp,
    interval: i64,
) -> Result<Response, ApiError> {
    let limit = match params.get("limit") {
        None => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid parameter \"limit\": {v:?} is not a non-negative integer"
            ))
        })?),
    };
    let direction = match params
        .get("direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("backward") => Direction::Backward,
        Some("forward") => Direction::Forward,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid parameter \"direction\": {other:?}; expected \"forward\" or \"backward\""
            )));
        }
    };
    let categorize = headers
        .get("x-loki-response-encoding-flags")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "categorize-labels"));
    let req = LogRequest {
        query: crate::service::query::ParsedLogQuery {
            selector: log.selector,
            stages: log.pipeline,
        },
        start,
        end,
        limit,
        direction,
        interval,
    };
    let result = crate::service::query::logs(&app, ctx, req).await?;
    Ok(json_response(encode_streams(&result, categorize)))
}

async fn run_metric(
    app: Arc<AppState>,
    ctx: &Context,
    m: MetricRequest,
    instant: bool,
) -> Result<Response, ApiError> {
    let result = crate::service::query::metric(&app, ctx, m).await?;
    Ok(json_response(encode_metric(&result, instant)))
}

fn json_response(body: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Loki's `matrix` (range queries), `vector` or `scalar` (instant).
fn encode_metric(result: &MetricResult, instant: bool) -> Vec<u8> {
    let sample = |(ts, value): (i64, f64)| Sample {
        ts: Timestamp(ts),
        value,
    };
    let (kind, value) = match (&result.output, instant) {
        (MetricOutput::Scalar(points), true) => {
            let s = points.first().copied().map(sample).unwrap_or_default();
            ("scalar", json!(s))
        }
        (MetricOutput::Scalar(points), false) => {
            let series = MatrixSeries {
                metric: Vec::new(),
                samples: points.iter().copied().map(sample).collect(),
            };
            ("matrix", json!([series]))
        }
        (MetricOutput::Matrix(series), true) => {
            let v: Vec<VectorSample> = series
                .iter()
                .filter_map(|s| {
                    Some(VectorSample {
                        metric: s.labels.clone(),
                        sample: sample(*s.points.first()?),
                    })
                })
                .collect();
            ("vector", json!(v))
        }
        (MetricOutput::Matrix(series), false) => {
            let m: Vec<MatrixSeries> = series
                .iter()
                .map(|s| MatrixSeries {
                    metric: s.labels.clone(),
                    samples: s.points.iter().copied().map(sample).collect(),
                })
                .collect();
            ("matrix", json!(m))
        }
    };
    let data = json!({
        "resultType": kind,
        "result": value,
        "stats": stats_json(&result.stats),
    });
    let mut body = json!({"status": "success", "data": data});
    if !result.warnings.is_empty() {
        body["warnings"] = json!(result.warnings);
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Serialize)]
struct StreamOut<'a> {
    stream: BTreeMap<&'a str, &'a str>,
    values: Vec<ValueOut<'a>>,
}

struct ValueOut<'a> {
    ts: i64,
    line: &'a str,
    /// Present with categorize-labels: structured metadata and parsed
    /// labels.
    categories: Option<(&'a [Label], &'a [Label])>,
}

fn label_map(labels: &[Label]) -> BTreeMap<&str, &str> {
    labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

impl Serialize for ValueOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(if self.categories.is_some() { 3 } else { 2 }))?;
        seq.serialize_element(&self.ts.to_string())?;
        seq.serialize_element(self.line)?;
        if let Some((metadata, parsed)) = self.categories {
            let mut cat = BTreeMap::new();
            if !metadata.is_empty() {
                cat.insert("structuredMetadata", label_map(metadata));
            }
            if !parsed.is_empty() {
                cat.insert("parsed", label_map(parsed));
            }
            seq.serialize_element(&cat)?;
        }
        seq.end()
    }
}

/// Loki's `streams` result. Without categorize-labels, a result stream's
/// labels are all the labels of its lines (stream labels, structured
/// metadata, parsed); with it, lines are grouped by their stream labels
/// and carry the other two categories beside them, as Loki 3 does.
fn encode_streams(result: &LogResult, categorize: bool) -> Vec<u8> {
    let mut out: Vec<StreamOut<'_>> = Vec::new();
    if categorize {
        let mut groups: BTreeMap<&[Label], Vec<ValueOut<'_>>> = BTreeMap::new();
        for s in &result.streams {
            for e in &s.entries {
                groups
                    .entry(e.stream.as_slice())
                    .or_default()
                    .push(ValueOut {
                        ts: e.ts.0,
                        line: &e.line,
                        categories: Some((&e.metadata, &e.parsed)),
                    });
            }
        }
        let backward = result.direction == Direction::Backward;
        for (labels, mut values) in groups {
            values.sort_by_key(|v| if backward { -v.ts } else { v.ts });
            out.push(StreamOut {
                stream: label_map(labels),
                values,
            });
        }
    } else {
        for s in &result.streams {
            out.push(StreamOut {
                stream: label_map(s.labels.labels()),
                values: s
                    .entries
                    .iter()
                    .map(|e| ValueOut {
                        ts: e.ts.0,
                        line: &e.line,
                        categories: None,
                    })
                    .collect(),
            });
        }
    }
    let mut data = json!({
        "resultType": "streams",
        "result": out,
        "stats": stats_json(&result.stats),
    });
    if categorize {
        data["encodingFlags"] = json!(["categorize-labels"]);
    }
    let mut body = json!({"status": "success", "data": data});
    if !result.warnings.is_empty() {
        body["warnings"] = json!(result.warnings);
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Loki's `stats` object, with the figures we have.
pub fn stats_json(s: &QueryStats) -> serde_json::Value {
    let secs = s.exec_time_secs.max(1e-9);
    json!({
        "summary": {
            "bytesProcessedPerSecond": (s.total_bytes() as f64 / secs) as u64,
            "linesProcessedPerSecond": (s.total_lines() as f64 / secs) as u64,
            "totalBytesProcessed": s.total_bytes(),
            "totalLinesProcessed": s.total_lines(),
            "execTime": s.exec_time_secs,
            "queueTime": 0,
            "subqueries": 0,
            "totalEntriesReturned": s.entries_returned,
            "splits": 0,
            "shards": 0,
            "totalPostFilterLines": s.entries_returned,
            "totalStructuredMetadataBytesProcessed": 0
        },
        "querier": {
            "store": {
                "totalChunksRef": s.chunks_ref,
                "totalChunksDownloaded": s.chunks_read,
                "chunksDownloadTime": 0,
                "queryReferencedStructuredMetadata": false,
                "chunk": {
                    "headChunkBytes": s.head_bytes,
                    "headChunkLines": s.head_lines,
                    "decompressedBytes": s.decompressed_bytes,
                    "decompressedLines": s.decompressed_lines,
                    "compressedBytes": s.compressed_bytes,
                    "totalDuplicates": s.duplicates,
                    "postFilterLines": s.entries_returned,
                    "headChunkStructuredMetadataBytes": 0,
                    "decompressedStructuredMetadataBytes": 0
                },
                "chunkRefsFetchTime": 0,
                "congestionControlLatency": 0,
                "pipelineWrapperFilteredLines": 0
            },
            "skald": {
                "chunksSkippedByFilters": s.chunks_skipped,
                "chunksNotNeeded": s.chunks_not_needed,
                "headBlocksRead": s.head_blocks_read
            }
        },
        "ingester": {
            "totalReached": 0,
            "totalChunksMatched": 0,
            "totalBatches": 0,
            "totalLinesSent": 0,
            "store": {"chunk": {"headChunkBytes": 0, "headChunkLines": 0, "decompressedBytes": 0, "decompressedLines": 0, "compressedBytes": 0, "totalDuplicates": 0}}
        },
        "cache": {}
    })
}
