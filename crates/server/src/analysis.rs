//! Log analysis over HTTP: `GET /loki/api/v1/patterns` in Loki 3's shape,
//! fed by the pattern index that mines every durable group at ingest
//! (`skald_analysis::index`).
//!
//! [`attach`] opens the index in `<data dir>/analysis` and installs the
//! store's commit hook; handlers read it for the request's tenant only.
//!
//! Not here: the mining itself (`skald-analysis`), detected fields and
//! labels (`/loki/api/v1/detected_*`).

use crate::params::Params;
use crate::query::step;
use crate::service::query::HOUR_NS;
use crate::service::query::check_length;
use crate::service::{Context, Role};
use crate::{ApiError, AppState, blocking};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};
use skald_analysis::index::{IndexConfig, PatternIndex, PatternQuery};
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

fn index(app: &AppState) -> Result<Arc<PatternIndex>, ApiError> {
    app.analysis
        .clone()
        .ok_or_else(|| ApiError::unavailable("pattern mining is off (http.analysis.enabled)"))
}

/// `GET /loki/api/v1/patterns?query&start&end&step`.
pub async fn patterns(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tenant = Context::from_http(&app, &headers)?.tenant_for(Role::Read)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(HOUR_NS)?;
    check_length(&app, &tenant, start, end)?;
    let matchers = params.query_selector()?;
    let step_ns = step(&params, start, end)?;
    let index = index(&app)?;
    let series = blocking(move || {
        let secs = |ns: i64| ns.div_euclid(1_000_000_000);
        index
            .query(&PatternQuery {
                tenant: &tenant,
                matchers: &matchers,
                start: secs(start.0),
                end: secs(end.0) + 1,
                step: secs(step_ns).max(1),
            })
            .map_err(|e| ApiError::internal(format!("reading patterns: {e}")))
    })
    .await?;
    let data: Vec<Value> = series
        .into_iter()
        .map(|s| json!({"pattern": s.pattern, "level": s.level, "samples": s.samples}))
        .collect();
    Ok(Json(json!({"status": "success", "data": data})))
}
