//! The label APIs: names, values of one name, and series, over a time
//! range (Loki's default for these: the last six hours).

use crate::params::{HOUR_NS, Params};
use crate::{ApiError, AppState, tenant};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};
use skald_logql::Expr;
use skald_model::Matcher;
use std::collections::BTreeMap;
use std::sync::Arc;

const DEFAULT_SINCE: i64 = 6 * HOUR_NS;

fn selector(text: &str) -> Result<Vec<Matcher>, ApiError> {
    match skald_logql::parse_expr(text).map_err(|e| ApiError::bad_request(e.to_string()))? {
        Expr::Log(l) if l.pipeline.is_empty() => Ok(l.selector),
        _ => Err(ApiError::bad_request(format!(
            "{text:?} is not a stream selector; expected something like {{app=\"api\"}}"
        ))),
    }
}

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
            let m = selector(q)?;
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
        Some(q) => selector(q)?,
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
        .map(selector)
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
