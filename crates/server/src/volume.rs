//! `GET /loki/api/v1/index/stats`, `/index/volume` and `/index/volume_range`:
//! what a selector covers, from the index and chunk metadata, without
//! reading lines (Grafana calls these for its query hints and the logs
//! volume histogram).
//!
//! Volumes are uncompressed bytes of lines and metadata. A segment chunk
//! counts whole when it overlaps the range, and in `volume_range` it is
//! attributed to the step of its first entry.

use crate::params::Params;
use crate::service::Context;
use crate::service::labels::VolumeRequest;
use crate::service::query::{DEFAULT_SINCE_NS, coverage};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

pub async fn stats(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(DEFAULT_SINCE_NS)?;
    let matchers = params.query_selector()?;
    let c = coverage(&app, &ctx, matchers, start, end).await?;
    Ok(Json(json!({
        "streams": c.streams,
        "chunks": c.chunks,
        "entries": c.entries,
        "bytes": c.bytes,
    })))
}

pub async fn volume(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    run(app, headers, raw, body, false).await
}

pub async fn volume_range(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    run(app, headers, raw, body, true).await
}

async fn run(
    app: Arc<AppState>,
    headers: HeaderMap,
    raw: Option<String>,
    body: Bytes,
    ranged: bool,
) -> Result<Json<Value>, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(DEFAULT_SINCE_NS)?;
    let matchers = params.query_selector()?;
    let limit = match params.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid parameter \"limit\": {v:?}")))?,
    };
    let by_labels = match params.get("aggregateBy") {
        None | Some("series") => false,
        Some("labels") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid parameter \"aggregateBy\": {other:?}; expected series or labels"
            )));
        }
    };
    let targets: Vec<String> = match params.get("targetLabels") {
        Some(t) if !t.is_empty() => t.split(',').map(|s| s.trim().to_string()).collect(),
        _ => {
            let mut names: Vec<String> = matchers.iter().map(|m| m.name.clone()).collect();
            names.dedup();
            names
        }
    };
    let step = match params.duration("step")? {
        Some(s) if s > 0 => s,
        _ => ((end.0 - start.0) / 250).max(1_000_000_000),
    };
    let req = VolumeRequest {
        matchers,
        start,
        end,
        step: ranged.then_some(step),
        by_labels,
        targets,
        limit,
    };
    let ranked = crate::service::labels::volume(&app, &ctx, req).await?;
    let secs = |ns: i64| ns as f64 / 1e9;
    let result: Vec<Value> = ranked
        .into_iter()
        .map(|g| {
            let metric: serde_json::Map<String, Value> = g
                .labels
                .into_iter()
                .map(|(n, v)| (n, Value::String(v)))
                .collect();
            if ranged {
                json!({
                    "metric": metric,
                    "values": g.points
                        .into_iter()
                        .map(|(t, b)| json!([secs(t), b.to_string()]))
                        .collect::<Vec<_>>(),
                })
            } else {
                json!({"metric": metric, "value": [secs(end.0), g.total.to_string()]})
            }
        })
        .collect();
    Ok(Json(json!({
        "status": "success",
        "data": {
            "resultType": if ranged { "matrix" } else { "vector" },
            "result": result,
        }
    })))
}
