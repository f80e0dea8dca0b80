//! `GET /loki/api/v1/index/stats`, `/index/volume` and `/index/volume_range`:
//! what a selector covers, from the index and chunk metadata, without
//! reading lines (Grafana calls these for its query hints and the logs
//! volume histogram).
//!
//! Volumes are uncompressed bytes of lines and metadata. A segment chunk
//! counts whole when it overlaps the range, and in `volume_range` it is
//! attributed to the step of its first entry.

use crate::params::{HOUR_NS, Params};
use crate::{ApiError, AppState, blocking, tenant};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The labels a volume is grouped by.
type Group = Vec<(String, String)>;

pub async fn stats(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(HOUR_NS)?;
    let matchers = params.query_selector()?;
    let store = app.store.clone();
    let out = blocking(move || {
        let snap = store.snapshot(&tenant, &matchers, start, end);
        let (mut chunks, mut entries, mut bytes) = (0u64, 0u64, 0u64);
        for s in &snap.streams {
            for src in &s.sources {
                let (e, b) = src.size();
                chunks += 1;
                entries += e;
                bytes += b;
            }
        }
        Ok(json!({
            "streams": snap.streams.len(),
            "chunks": chunks,
            "entries": entries,
            "bytes": bytes,
        }))
    })
    .await?;
    Ok(Json(out))
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
    let tenant = tenant(&headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(HOUR_NS)?;
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
    let store = app.store.clone();
    let out = blocking(move || {
        let snap = store.snapshot(&tenant, &matchers, start, end);
        // group -> step index -> bytes
        let mut groups: BTreeMap<Group, BTreeMap<i64, u64>> = BTreeMap::new();
        for s in &snap.streams {
            let keys: Vec<Group> = if by_labels {
                s.labels
                    .labels()
                    .iter()
                    .filter(|l| targets.is_empty() || targets.contains(&l.name))
                    .map(|l| vec![(l.name.clone(), String::new())])
                    .collect()
            } else {
                vec![
                    s.labels
                        .labels()
                        .iter()
                        .filter(|l| targets.is_empty() || targets.contains(&l.name))
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                ]
            };
            for src in &s.sources {
                let (_, bytes) = src.size();
                let at = if ranged {
                    let t = src.min_ts().0.clamp(start.0, end.0);
                    start.0 + (t - start.0) / step * step
                } else {
                    end.0
                };
                for k in &keys {
                    *groups.entry(k.clone()).or_default().entry(at).or_default() += bytes;
                }
            }
        }
        let mut ranked: Vec<(u64, Group, BTreeMap<i64, u64>)> = groups
            .into_iter()
            .map(|(k, points)| (points.values().sum(), k, points))
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        ranked.truncate(limit);
        let secs = |ns: i64| ns as f64 / 1e9;
        let result: Vec<Value> = ranked
            .into_iter()
            .map(|(total, k, points)| {
                let metric: serde_json::Map<String, Value> =
                    k.into_iter().map(|(n, v)| (n, Value::String(v))).collect();
                if ranged {
                    json!({
                        "metric": metric,
                        "values": points
                            .into_iter()
                            .map(|(t, b)| json!([secs(t), b.to_string()]))
                            .collect::<Vec<_>>(),
                    })
                } else {
                    json!({"metric": metric, "value": [secs(end.0), total.to_string()]})
                }
            })
            .collect();
        Ok(json!({
            "status": "success",
            "data": {
                "resultType": if ranged { "matrix" } else { "vector" },
                "result": result,
            }
        }))
    })
    .await?;
    Ok(Json(out))
}
