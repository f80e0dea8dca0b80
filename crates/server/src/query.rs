//! `/loki/api/v1/query_range` and `/loki/api/v1/query` for log queries.

use crate::params::{HOUR_NS, Params};
use crate::{ApiError, AppState, blocking, tenant};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use skald_logql::{Expr, Stage};
use skald_model::{Label, Timestamp};
use skald_pipeline::LineFilterChain;
use skald_query::{Direction, LogQuery, LogResult, QueryStats};
use std::collections::BTreeMap;
use std::sync::Arc;

const DEFAULT_LIMIT: usize = 100;

pub async fn query_range(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(HOUR_NS)?;
    run(app, &headers, &params, start, end).await
}

/// Instant queries. A log query reads the hour before `time` (Loki 2's
/// behaviour; Loki 3 refuses log queries here).
pub async fn query(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::from_request(raw.as_deref(), &body);
    let end = params.time("time")?.unwrap_or_else(Timestamp::now);
    let start = end.saturating_sub(HOUR_NS);
    // `time` is inclusive for an instant query.
    run(app, &headers, &params, start, end.saturating_add(1)).await
}

async fn run(
    app: Arc<AppState>,
    headers: &HeaderMap,
    params: &Params,
    start: Timestamp,
    end: Timestamp,
) -> Result<Response, ApiError> {
    let tenant = tenant(headers)?;
    let text = params
        .get("query")
        .ok_or_else(|| ApiError::bad_request("missing parameter \"query\""))?
        .to_string();
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid parameter \"limit\": {v:?} is not a non-negative integer"
            ))
        })?,
    };
    if limit > app.config.max_query_limit {
        return Err(ApiError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {})",
            app.config.max_query_limit
        )));
    }
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
    let max_hours = app.config.max_query_length_hours;
    if max_hours > 0 && (end.0 - start.0) as i128 > max_hours as i128 * HOUR_NS as i128 {
        return Err(ApiError::bad_request(format!(
            "the query time range exceeds the limit (query length: {}h, limit: {max_hours}h)",
            (end.0 - start.0) / HOUR_NS
        )));
    }
    let expr = skald_logql::parse_expr(&text).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Expr::Log(log) = expr else {
        return Err(ApiError::bad_request(
            "metric queries are not supported yet; send a log query such as {app=\"api\"} |= \"error\"",
        ));
    };
    let mut filters = Vec::new();
    for stage in &log.pipeline {
        match stage {
            Stage::LineFilter(f) => filters.push(f.clone()),
            #[allow(unreachable_patterns)]
            other => {
                return Err(ApiError::bad_request(format!(
                    "pipeline stage `{other}` is not supported yet; line filters are"
                )));
            }
        }
    }
    let chain = LineFilterChain::new(&filters).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let categorize = headers
        .get("x-loki-response-encoding-flags")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "categorize-labels"));
    let store = app.store.clone();
    let body = blocking(move || {
        let q = LogQuery {
            tenant: &tenant,
            selector: &log.selector,
            filters: &chain,
            start,
            end,
            limit,
            direction,
        };
        let result = skald_query::run_log_query(&store, &q)?;
        Ok(encode_streams(&result, categorize))
    })
    .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response())
}

#[derive(Serialize)]
struct StreamOut<'a> {
    stream: BTreeMap<&'a str, &'a str>,
    values: Vec<ValueOut<'a>>,
}

struct ValueOut<'a> {
    ts: i64,
    line: &'a str,
    /// Present with categorize-labels.
    metadata: Option<&'a [Label]>,
}

impl Serialize for ValueOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(if self.metadata.is_some() { 3 } else { 2 }))?;
        seq.serialize_element(&self.ts.to_string())?;
        seq.serialize_element(self.line)?;
        if let Some(meta) = self.metadata {
            let mut cat = BTreeMap::new();
            if !meta.is_empty() {
                let m: BTreeMap<&str, &str> = meta
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str()))
                    .collect();
                cat.insert("structuredMetadata", m);
            }
            seq.serialize_element(&cat)?;
        }
        seq.end()
    }
}

/// Loki's `streams` result. Without categorize-labels, an entry's
/// structured metadata joins its stream labels, so entries with different
/// metadata land in different result streams, as in Loki.
fn encode_streams(result: &LogResult, categorize: bool) -> Vec<u8> {
    let mut out: Vec<StreamOut<'_>> = Vec::new();
    for s in &result.streams {
        let base: BTreeMap<&str, &str> = s
            .labels
            .labels()
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        if categorize || s.entries.iter().all(|e| e.metadata.is_empty()) {
            out.push(StreamOut {
                stream: base,
                values: s
                    .entries
                    .iter()
                    .map(|e| ValueOut {
                        ts: e.ts.0,
                        line: &e.line,
                        metadata: categorize.then_some(e.metadata.as_slice()),
                    })
                    .collect(),
            });
            continue;
        }
        let mut groups: Vec<StreamOut<'_>> = Vec::new();
        for e in &s.entries {
            let mut labels = base.clone();
            for m in &e.metadata {
                labels.insert(m.name.as_str(), m.value.as_str());
            }
            let value = ValueOut {
                ts: e.ts.0,
                line: &e.line,
                metadata: None,
            };
            match groups.iter_mut().find(|g| g.stream == labels) {
                Some(g) => g.values.push(value),
                None => groups.push(StreamOut {
                    stream: labels,
                    values: vec![value],
                }),
            }
        }
        out.extend(groups);
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
