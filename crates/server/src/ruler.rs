//! The ruler's HTTP API and the evaluator it runs rules with.
//!
//! Loki's ruler API, per tenant, with YAML bodies as lokitool and
//! cortextool send and read them: `GET /loki/api/v1/rules` (every
//! namespace), `GET|POST|DELETE /loki/api/v1/rules/{namespace}` (POST
//! takes one group) and `GET|DELETE /loki/api/v1/rules/{namespace}/{group}`,
//! also under `/api/prom/rules`. Prometheus' read API, which Grafana
//! uses: `GET /prometheus/api/v1/rules` (`?type=alert|record`) and
//! `GET /prometheus/api/v1/alerts`, in JSON.
//!
//! [`StoreEvaluator`] is the ruler's [`skald_ruler::Evaluator`]: an
//! instant metric query over the store, with the API's query limits.
//!
//! Not here: the rules themselves, scheduling, notifications
//! (`skald-ruler`).

use crate::service::{Context, Role};
use crate::{ApiError, AppState, ServerConfig, blocking};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use skald_logql::Expr;
use skald_model::{TenantId, Timestamp};
use skald_query::{MetricLimits, MetricOutput, MetricQuery};
use skald_ruler::analysis::EventKind;
use skald_ruler::{Ruler, RulerError};
use skald_store::Store;
use std::sync::Arc;

/// Instant queries over the store for the ruler, and the analysis events
/// of the pattern index for its built-in analysis rules.
pub struct StoreEvaluator {
    store: Arc<Store>,
    config: ServerConfig,
    analysis: Option<Arc<skald_analysis::index::PatternIndex>>,
}

impl StoreEvaluator {
    pub fn new(store: Arc<Store>, config: ServerConfig) -> StoreEvaluator {
        StoreEvaluator {
            store,
            config,
            analysis: None,
        }
    }

    /// Answers analysis events from `index` (pattern mining is on).
    pub fn with_analysis(
        mut self,
        index: Option<Arc<skald_analysis::index::PatternIndex>>,
    ) -> StoreEvaluator {
        self.analysis = index;
        self
    }
}

impl skald_ruler::Evaluator for StoreEvaluator {
    fn instant(
        &self,
        tenant: &TenantId,
        expr: &Expr,
        at: Timestamp,
    ) -> Result<Vec<skald_ruler::Sample>, String> {
        let max_bytes = self.config.max_query_bytes_read;
        if max_bytes > 0 {
            let bytes = skald_query::bytes_to_read(&self.store, tenant, expr, at, at);
            skald_query::check_bytes_to_read(bytes, max_bytes).map_err(|e| e.to_string())?;
        }
        let q = MetricQuery {
            tenant,
            expr,
            start: at,
            end: at,
            step: 1_000_000_000,
            limits: MetricLimits {
                max_series: self.config.max_query_series,
                max_range_bytes: match self.config.max_query_memory {
                    0 => usize::MAX,
                    n => usize::try_from(n).unwrap_or(usize::MAX),
                },
                ..MetricLimits::default()
            },
        };
        let result = skald_query::run_metric_query(&self.store, &q).map_err(|e| e.to_string())?;
        Ok(match result.output {
            MetricOutput::Scalar(points) => points
                .first()
                .map(|&(_, value)| skald_ruler::Sample {
                    labels: Vec::new(),
                    value,
                })
                .into_iter()
                .collect(),
            MetricOutput::Matrix(series) => series
                .into_iter()
                .filter_map(|s| {
                    let &(_, value) = s.points.first()?;
                    Some(skald_ruler::Sample {
                        labels: s.labels,
                        value,
                    })
                })
                .collect(),
        })
    }

    fn analysis_events(
        &self,
        tenant: &TenantId,
        source: &skald_ruler::analysis::AnalysisSource,
        at: Timestamp,
    ) -> Result<Vec<skald_ruler::analysis::Event>, String> {
        let index = self
            .analysis
            .as_ref()
            .ok_or("pattern mining is off on this server ([http.analysis] enabled = false)")?;
        match source.kind {
            EventKind::NewErrorGroup => crate::analysis_alerts::new_error_groups(
                index,
                &self.config.analysis,
                tenant,
                source,
                at,
            ),
            EventKind::Anomaly => {
                crate::analysis_alerts::anomalies(index, &self.config.analysis, tenant, source, at)
            }
        }
    }
}

impl From<RulerError> for ApiError {
    fn from(e: RulerError) -> Self {
        match e {
            RulerError::Invalid(_) | RulerError::BadRequest(_) => {
                ApiError::bad_request(e.to_string())
            }
            RulerError::NotFound(m) => ApiError::not_found(m),
            other => {
                tracing::error!(error = %other, "ruler error");
                ApiError::internal("the ruler could not complete the request; see the server log")
            }
        }
    }
}

fn ruler(app: &AppState) -> Result<Ruler, ApiError> {
    app.ruler.clone().ok_or_else(|| {
        ApiError::new(
            crate::service::ErrorCode::Unavailable,
            "the ruler is not running on this server",
        )
    })
}

fn yaml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], body).into_response()
}

/// What Cortex and Loki answer a successful change with.
fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "success", "data": null, "errorType": "", "error": ""})),
    )
        .into_response()
}

/// `GET /loki/api/v1/rules`: every namespace of the tenant, as YAML.
pub async fn list(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (r, t) = (ruler(&app)?, tenant(&app, &headers, Role::Read)?);
    let all = blocking(move || Ok(r.namespaces(&t)?)).await?;
    if all.is_empty() {
        return Err(RulerError::NotFound("no rule groups found".into()).into());
    }
    Ok(yaml(skald_ruler::rules::to_yaml(&all)))
}

/// `GET /loki/api/v1/rules/{namespace}`.
pub async fn get_namespace(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let (r, t) = (ruler(&app)?, tenant(&app, &headers, Role::Read)?);
    let groups = blocking(move || {
        let groups = r.namespace(&t, &ns)?;
        Ok(std::collections::BTreeMap::from([(ns, groups)]))
    })
    .await?;
    Ok(yaml(skald_ruler::rules::to_yaml(&groups)))
}

/// `POST /loki/api/v1/rules/{namespace}`: one group (YAML); replaces the
/// group of the same name. Refused whole if any rule is invalid.
pub async fn set_group(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (r, t) = (ruler(&app)?, tenant(&app, &headers, Role::Admin)?);
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the rule group is not valid UTF-8"))?;
    blocking(move || Ok(r.set_group(&t, &ns, &text)?)).await?;
    Ok(accepted())
}

/// `DELETE /loki/api/v1/rules/{namespace}`.
pub async fn delete_namespace(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let (r, t) = (ruler(&app)?, tenant(&app, &headers, Role::Admin)?);
    blocking(move || Ok(r.delete_namespace(&t, &ns)?)).await?;
    Ok(accepted())
}

/// `GET /loki/api/v1/rules/{namespace}/{group}`.
pub async fn get_group(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (r, t) = (ruler(&app)?, tenant(&app, &headers, Role::Read)?);
    let group = blocking(move || Ok(r.group(&t, &ns, &name)?)).await?;
    Ok(yaml(group.to_yaml()))
}

/// `DELETE /loki/api/v1/rules/{namespace}/{group}`.
pub async fn delete_group(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (r, t) = (ruler(&app)?, tenant(&app, &headers, Role::Admin)?);
    blocking(move || Ok(r.delete_group(&t, &ns, &name)?)).await?;
    Ok(accepted())
}

/// `GET /prometheus/api/v1/rules`: the running groups, with their rules'
/// health and alerts; `type=alert` or `type=record` keeps one kind.
pub async fn prometheus_rules(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (r, t) = (ruler(&app)?, tenant(&app, &headers, Role::Read)?);
    let params = crate::params::Params::from_request(raw.as_deref(), &Bytes::new());
    let kind = match params.get("type") {
        None | Some("") => None,
        Some("alert") => Some(true),
        Some("record") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid parameter \"type\": {other:?}; expected \"alert\" or \"record\""
            )));
        }
    };
    let mut groups = r.rule_groups(&t);
    if let Some(alerting) = kind {
        for g in &mut groups {
            g.rules.retain(|rule| {
                matches!(rule, skald_ruler::status::RuleStatus::Alerting { .. }) == alerting
            });
        }
        groups.retain(|g| !g.rules.is_empty());
    }
    Ok(axum::Json(json!({"status": "success", "data": {"groups": groups}})).into_response())
}

/// `GET /prometheus/api/v1/alerts`: pending and firing alerts.
pub async fn prometheus_alerts(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (r, t) = (ruler(&app)?, tenant(&app, &headers, Role::Read)?);
    let alerts = r.alerts(&t);
    Ok(axum::Json(json!({"status": "success", "data": {"alerts": alerts}})).into_response())
}

/// The request's one tenant, once its credentials allow `role` there:
/// reading rules and alerts needs a read token, changing them an admin one.
fn tenant(app: &AppState, headers: &HeaderMap, role: Role) -> Result<TenantId, ApiError> {
    Context::from_http(app, headers)?.tenant_for(role)
}
