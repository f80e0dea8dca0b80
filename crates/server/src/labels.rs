//! The label APIs: names, values of one name, and series, over a time
//! range (Loki's default for these: the last six hours).

use crate::params::{Params, stream_selector};
use crate::service::query::LABELS_SINCE_NS;
use crate::service::{Context, labels};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn names(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(LABELS_SINCE_NS)?;
    let selector = params
        .get("query")
        .map(|q| stream_selector(q, false))
        .transpose()?;
    let names = labels::names(&app, &ctx, selector, start, end).await?;
    Ok(Json(json!({"status": "success", "data": names})))
}

pub async fn values(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(LABELS_SINCE_NS)?;
    let matchers = match params.get("query") {
        Some(q) => stream_selector(q, false)?,
        None => Vec::new(),
    };
    let values = labels::values(&app, &ctx, name, matchers, start, end).await?;
    Ok(Json(json!({"status": "success", "data": values})))
}

pub async fn series(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(LABELS_SINCE_NS)?;
    let selectors = params
        .all("match[]")
        .chain(params.all("match"))
        .filter(|s| !s.is_empty())
        .map(|s| stream_selector(s, false))
        .collect::<Result<Vec<_>, _>>()?;
    let data: Vec<BTreeMap<String, String>> = labels::series(&app, &ctx, selectors, start, end)
        .await?
        .into_iter()
        .map(|ls| {
            ls.into_labels()
                .into_iter()
                .map(|l| (l.name, l.value))
                .collect()
        })
        .collect();
    Ok(Json(json!({"status": "success", "data": data})))
}
