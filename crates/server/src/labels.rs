//! The label APIs: names, values of one name, and series, over a time
//! range (Loki's default for these: the last six hours).

use crate::params::{HOUR_NS, Params, stream_selector};
use crate::{ApiError, AppState, tenant};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const DEFAULT_SINCE: i64 = 6 * HOUR_NS;

pub async fn names(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(DEFAULT_SINCE)?;
    let names = match params.get("query") {
        None => app.store.label_names(&tenant, start, end),
        Some(q) => {
            let m = stream_selector(q, false)?;
            let mut names: Vec<String> = app
                .store
                .series(&tenant, &[m], start, end)
                .iter()
                .flat_map(|ls| ls.labels().iter().map(|l| l.name.clone()))
                .collect();
            names.sort();
            names.dedup();
            names
        }
    };
    Ok(Json(json!({"status": "success", "data": names})))
}

pub async fn values(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(DEFAULT_SINCE)?;
    let matchers = match params.get("query") {
        Some(q) => stream_selector(q, false)?,
        None => Vec::new(),
    };
    let values = app
        .store
        .label_values(&tenant, &name, &matchers, start, end);
    Ok(Json(json!({"status": "success", "data": values})))
}

pub async fn series(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant(&headers)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(DEFAULT_SINCE)?;
    let selectors = params
        .all("match[]")
        .chain(params.all("match"))
        .filter(|s| !s.is_empty())
        .map(|s| stream_selector(s, false))
        .collect::<Result<Vec<_>, _>>()?;
    if selectors.is_empty() {
        return Err(ApiError::bad_request(
            "at least one match[] parameter with a stream selector is required",
        ));
    }
    let data: Vec<BTreeMap<String, String>> = app
        .store
        .series(&tenant, &selectors, start, end)
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
