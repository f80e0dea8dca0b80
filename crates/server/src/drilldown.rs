//! What Grafana's Logs Drilldown asks besides queries, in Loki 3's shapes:
//!
//! - `GET /loki/api/v1/detected_labels?query&start&end` →
//!   `{"detectedLabels":[{"label","cardinality"}]}`: the stream labels of
//!   the matching streams worth grouping by (labels whose every value
//!   looks like an ID, a number or a UUID, are left out, except Loki's
//!   static `cluster`, `namespace`, `instance` and `pod`).
//! - `GET /loki/api/v1/detected_fields?query&start&end&line_limit&limit` →
//!   `{"fields":[{"label","type","cardinality","parsers","jsonPath"}],
//!   "limit"}`: fields found in the newest `line_limit` lines of the log
//!   query: structured metadata (`parsers: null`), JSON fields (with their
//!   path) and logfmt pairs, with a type that fits every value seen.
//! - `GET /loki/api/v1/detected_field/<name>/values` →
//!   `{"values":[…],"limit"}`; an unknown field gives an empty list.
//!
//! Not here: the queries themselves (`skald-query` runs the log query) and
//! the parsers' rules (field names come from LogQL's own `logfmt` stage
//! and the same name sanitising as its `json` stage).

use crate::params::{Params, stream_selector};
use crate::service::query::HOUR_NS;
use crate::service::query::check_length;
use crate::service::{Context, Role};
use crate::{ApiError, AppState, blocking};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use skald_logql::Expr;
use skald_model::{Label, TenantId, Timestamp};
use skald_pipeline::Pipeline;
use skald_query::{Direction, LogQuery, ResultEntry};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Lines read when `line_limit` is not given (Loki's default).
const DEFAULT_LINE_LIMIT: usize = 100;
/// Fields or values returned when `limit` is not given (Loki's default).
const DEFAULT_FIELD_LIMIT: usize = 1000;
/// Labels kept whatever their values look like.
const STATIC_LABELS: &[&str] = &["cluster", "namespace", "instance", "pod"];
/// Deepest JSON nesting walked for fields.
const MAX_JSON_DEPTH: usize = 32;
/// Error labels the parsers add; never fields.
const ERROR_LABELS: &[&str] = &["__error__", "__error_details__", "__preserve_error__"];

pub async fn detected_labels(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tenant = Context::from_http(&app, &headers)?.tenant_for(Role::Read)?;
    let params = Params::from_request(raw.as_deref(), &body);
    let (start, end) = params.range(HOUR_NS)?;
    check_length(&app, &tenant, start, end)?;
    let matchers = match params.get("query") {
        Some(q) => Some(stream_selector(q, true)?),
        None => None,
    };
    let store = app.store.clone();
    let labels = blocking(move || {
        let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        match matchers {
            Some(m) => {
                for series in store.series(&tenant, &[m], start, end) {
                    for l in series.into_labels() {
                        values.entry(l.name).or_default().insert(l.value);
                    }
                }
            }
            None => {
                for name in store.label_names(&tenant, start, end) {
                    let v = store.label_values(&tenant, &name, &[], start, end);
                    values.entry(name).or_default().extend(v);
                }
            }
        }
        Ok(values)
    })
    .await?;
    let detected: Vec<Value> = labels
        .iter()
        .filter(|(name, values)| {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            (STATIC_LABELS.contains(&name.as_str()) && !values.is_empty()) || !is_id_like(&values)
        })
        .map(|(name, values)| json!({"label": name, "cardinality": values.len()}))
        .collect();
    Ok(Json(json!({ "detectedLabels": detected })))
}

/// Whether a label's values are all identifiers (numbers or UUIDs), which
/// make poor groupings; two or fewer values of `0`/`1` are a flag, not IDs.
pub fn is_id_like(values: &[&str]) -> bool {
    if values.is_empty() {
        return true;
    }
    if values.len() <= 2 && values.iter().all(|v| *v == "0" || *v == "1") {
        return false;
    }
    values
        .iter()
        .all(|v| v.parse::<f64>().is_ok() || is_uuid(v))
}

fn is_uuid(v: &str) -> bool {
    let v = v
        .strip_prefix("urn:uuid:")
        .unwrap_or(v)
        .trim_start_matches('{')
        .trim_end_matches('}');
    let hex_only: String = v.chars().filter(|c| *c != '-').collect();
    let dashes_ok = match v.len() {
        36 => [8, 13, 18, 23].iter().all(|&i| v.as_bytes()[i] == b'-'),
        32 => !v.contains('-'),
        _ => false,
    };
    dashes_ok && hex_only.len() == 32 && hex_only.chars().all(|c| c.is_ascii_hexdigit())
}

/// One field seen in the lines, with what is known of it so far.
#[derive(Debug, Default)]
pub struct FieldStats {
    values: BTreeSet<String>,
    /// `json`, `logfmt`, or none for structured metadata.
    parsers: BTreeSet<&'static str>,
    json_path: Option<Vec<String>>,
    kind: Option<FieldType>,
}

/// The types Loki names for fields, from most to least specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Int,
    Float,
    Boolean,
    Duration,
    Bytes,
    String,
}

impl FieldType {
    /// The most specific type `value` fits, as Loki tries them: integer,
    /// float, boolean, Go duration, byte size, else string.
    pub fn of(value: &str) -> FieldType {
        if value.parse::<i64>().is_ok() {
            FieldType::Int
        } else if value.parse::<f64>().is_ok() {
            FieldType::Float
        } else if matches!(
            value,
            "1" | "t"
                | "T"
                | "TRUE"
                | "true"
                | "True"
                | "0"
                | "f"
                | "F"
                | "FALSE"
                | "false"
                | "False"
        ) {
            FieldType::Boolean
        } else if skald_pipeline::units::parse_duration(value).is_ok() {
            FieldType::Duration
        } else if skald_pipeline::units::parse_bytes(value).is_ok() {
            FieldType::Bytes
        } else {
            FieldType::String
        }
    }

    /// The type that fits values of both types (an int that is later a
    /// float is a float; anything else mixed is a string).
    fn join(self, other: FieldType) -> FieldType {
        match (self, other) {
            (a, b) if a == b => a,
            (FieldType::Int, FieldType::Float) | (FieldType::Float, FieldType::Int) => {
                FieldType::Float
            }
            _ => FieldType::String,
        }
    }
}

impl FieldStats {
    fn add(&mut self, value: &str) {
        let kind = FieldType::of(value);
        self.kind = Some(self.kind.map_or(kind, |k| k.join(kind)));
        self.values.insert(value.to_string());
    }
}

/// The fields of a set of result lines: structured metadata, labels the
/// query's own parsers extracted, and the fields of JSON or logfmt lines.
pub struct FieldScanner {
    logfmt: Pipeline,
    pub fields: BTreeMap<String, FieldStats>,
    limit: usize,
}

impl FieldScanner {
    pub fn new(limit: usize) -> FieldScanner {
        let stages = match skald_logql::parse_expr(r#"{_="_"} | logfmt"#) {
            Ok(Expr::Log(l)) => l.pipeline,
            _ => Vec::new(),
        };
        let logfmt = Pipeline::new(&stages).unwrap_or_else(|_| {
            Pipeline::new(&[]).unwrap_or_else(|_| unreachable!("an empty pipeline compiles"))
        });
        FieldScanner {
            logfmt,
            fields: BTreeMap::new(),
            limit,
        }
    }

    fn field(&mut self, name: &str) -> Option<&mut FieldStats> {
        if ERROR_LABELS.contains(&name) {
            return None;
        }
        if !self.fields.contains_key(name) && self.fields.len() >= self.limit {
            return None;
        }
        Some(self.fields.entry(name.to_string()).or_default())
    }

    pub fn scan(&mut self, e: &ResultEntry) {
        for l in &e.metadata {
            if let Some(f) = self.field(&l.name) {
                f.add(&l.value);
            }
        }
        for l in &e.parsed {
            if let Some(f) = self.field(&l.name) {
                f.add(&l.value);
            }
        }
        let trimmed = e.line.trim();
        if trimmed.starts_with('{')
            && let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(trimmed)
        {
            let mut found = Vec::new();
            json_fields(&obj, "", &mut Vec::new(), 0, &mut found);
            for (name, path, value) in found {
                if let Some(f) = self.field(&name) {
                    f.parsers.insert("json");
                    f.json_path = Some(path);
                    f.add(&value);
                }
            }
            return;
        }
        let mut pairs: Vec<Label> = Vec::new();
        {
            let mut p = self.logfmt.processor();
            if let Some(out) = p.process(e.ts.0, &e.line, &[], &[]) {
                pairs.extend(out.labels.iter().cloned());
            }
        }
        if pairs.iter().any(|l| l.name == "__error__") {
            return;
        }
        for l in pairs {
            if let Some(f) = self.field(&l.name) {
                f.parsers.insert("logfmt");
                f.add(&l.value);
            }
        }
    }

    /// The values of one field seen so far, at most `limit`.
    pub fn values_of(&self, name: &str, limit: usize) -> Vec<String> {
        self.fields
            .get(name)
            .map(|f| f.values.iter().take(limit).cloned().collect())
            .unwrap_or_default()
    }

    pub fn to_json(&self) -> Vec<Value> {
        self.fields
            .iter()
            .map(|(name, f)| {
                let parsers: Option<Vec<&str>> = if f.parsers.is_empty() {
                    None
                } else {
                    Some(f.parsers.iter().copied().collect())
                };
                let mut v = json!({
                    "label": name,
                    "type": f.kind.unwrap_or(FieldType::String),
                    "cardinality": f.values.len(),
                    "parsers": parsers,
                });
                if let Some(path) = &f.json_path {
                    v["jsonPath"] = json!(path);
                }
                v
            })
            .collect()
    }
}

/// Fields of a JSON object as LogQL's `json` stage names them: nested keys
/// joined with `_`, names sanitised; arrays are skipped, as there.
fn json_fields(
    obj: &serde_json::Map<String, Value>,
    prefix: &str,
    path: &mut Vec<String>,
    depth: usize,
    out: &mut Vec<(String, Vec<String>, String)>,
) {
    if depth > MAX_JSON_DEPTH {
        return;
    }
    for (key, value) in obj {
        let mut part = String::new();
        skald_pipeline::labels::sanitize_label_name(key, &mut part);
        let name = if prefix.is_empty() {
            part
        } else {
            format!("{prefix}_{part}")
        };
        path.push(key.clone());
        match value {
            Value::Object(inner) => json_fields(inner, &name, path, depth + 1, out),
            Value::String(s) => out.push((name, path.clone(), s.clone())),
            Value::Number(n) => out.push((name, path.clone(), n.to_string())),
            Value::Bool(b) => out.push((name, path.clone(), b.to_string())),
            Value::Array(_) | Value::Null => {}
        }
        path.pop();
    }
}

/// The log query, range and limits shared by the two field endpoints.
struct FieldsRequest {
    tenant: TenantId,
    log: skald_logql::LogExpr,
    start: Timestamp,
    end: Timestamp,
    line_limit: usize,
    limit: usize,
}

fn fields_request(
    app: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<FieldsRequest, ApiError> {
    let tenant = Context::from_http(app, headers)?.tenant_for(Role::Read)?;
    let (start, end) = params.range(HOUR_NS)?;
    check_length(app, &tenant, start, end)?;
    let text = params
        .get("query")
        .ok_or_else(|| ApiError::bad_request("missing parameter \"query\""))?;
    let log = match skald_logql::parse_expr(text)
        .map_err(|e| ApiError::bad_request(e.to_string()))?
    {
        Expr::Log(log) => log,
        _ => {
            return Err(ApiError::bad_request(format!(
                "{text:?} is not a log query; expected a stream selector such as {{app=\"api\"}}"
            )));
        }
    };
    let number = |name: &str, default: usize| -> Result<usize, ApiError> {
        match params.get(name) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid parameter {name:?}: {v:?} is not a non-negative integer"
                ))
            }),
        }
    };
    let line_limit = number("line_limit", DEFAULT_LINE_LIMIT)?;
    if line_limit > app.config.max_query_limit {
        return Err(ApiError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({line_limit} > {}; set by max_query_limit)",
            app.config.max_query_limit
        )));
    }
    let limit = match params.get("limit") {
        Some(_) => number("limit", DEFAULT_FIELD_LIMIT)?,
        None => number("field_limit", DEFAULT_FIELD_LIMIT)?,
    };
    Ok(FieldsRequest {
        tenant,
        log,
        start,
        end,
        line_limit,
        limit,
    })
}

/// Reads the newest `line_limit` lines of the query and scans their fields.
async fn scan(
    app: &Arc<AppState>,
    r: FieldsRequest,
    field_cap: usize,
) -> Result<FieldScanner, ApiError> {
    let store = app.store.clone();
    blocking(move || {
        let pipeline =
            Pipeline::new(&r.log.pipeline).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let q = LogQuery {
            tenant: &r.tenant,
            selector: &r.log.selector,
            pipeline: &pipeline,
            start: r.start,
            end: r.end,
            limit: r.line_limit,
            direction: Direction::Backward,
            interval: 0,
        };
        let result = skald_query::run_log_query(&store, &q)?;
        let mut scanner = FieldScanner::new(field_cap);
        for stream in &result.streams {
            for e in &stream.entries {
                scanner.scan(e);
            }
        }
        Ok(scanner)
    })
    .await
}

pub async fn detected_fields(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let params = Params::from_request(raw.as_deref(), &body);
    let r = fields_request(&app, &headers, &params)?;
    let limit = r.limit;
    let scanner = scan(&app, r, limit).await?;
    Ok(Json(json!({"fields": scanner.to_json(), "limit": limit})))
}

pub async fn detected_field_values(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let params = Params::from_request(raw.as_deref(), &body);
    let r = fields_request(&app, &headers, &params)?;
    let limit = r.limit;
    // Every field is tracked so the one asked for is never crowded out.
    let scanner = scan(&app, r, usize::MAX).await?;
    Ok(Json(
        json!({"values": scanner.values_of(&name, limit), "limit": limit}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &str, metadata: &[(&str, &str)]) -> ResultEntry {
        ResultEntry {
            ts: Timestamp(1),
            line: line.into(),
            stream: vec![Label::new("app", "a")],
            metadata: metadata.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
            parsed: Vec::new(),
        }
    }

    #[test]
    fn id_like_labels_are_left_out() {
        assert!(is_id_like(&["1", "2", "3"]));
        assert!(is_id_like(&["8f14e45f-ceea-467a-9af0-2b4b1b2a0d12"]));
        assert!(!is_id_like(&["0", "1"]));
        assert!(!is_id_like(&["api", "1"]));
        assert!(is_id_like(&[]));
    }

    #[test]
    fn types_are_inferred_as_loki_names_them() {
        assert_eq!(FieldType::of("42"), FieldType::Int);
        assert_eq!(FieldType::of("4.2"), FieldType::Float);
        assert_eq!(FieldType::of("true"), FieldType::Boolean);
        assert_eq!(FieldType::of("1.5s"), FieldType::Duration);
        assert_eq!(FieldType::of("10ms"), FieldType::Duration);
        assert_eq!(FieldType::of("12KB"), FieldType::Bytes);
        assert_eq!(FieldType::of("GET"), FieldType::String);
        assert_eq!(FieldType::Int.join(FieldType::Float), FieldType::Float);
        assert_eq!(FieldType::Int.join(FieldType::String), FieldType::String);
    }

    #[test]
    fn fields_come_from_metadata_json_and_logfmt() {
        let mut s = FieldScanner::new(100);
        s.scan(&entry(
            r#"{"status":200,"req":{"path":"/a","took":"1.5s"},"tags":[1]}"#,
            &[("trace_id", "abc")],
        ));
        s.scan(&entry(r#"{"status":404,"req":{"path":"/b"}}"#, &[]));
        s.scan(&entry("level=info size=12KB msg=\"hello world\"", &[]));
        s.scan(&entry("plain text line", &[]));
        let got = serde_json::to_value(s.to_json()).unwrap();
        let field = |name: &str| {
            got.as_array()
                .unwrap()
                .iter()
                .find(|f| f["label"] == name)
                .cloned()
                .unwrap_or(Value::Null)
        };
        assert_eq!(
            field("status"),
            json!({"label":"status","type":"int","cardinality":2,"parsers":["json"],"jsonPath":["status"]})
        );
        assert_eq!(field("req_path")["jsonPath"], json!(["req", "path"]));
        assert_eq!(field("req_took")["type"], "duration");
        assert_eq!(
            field("trace_id"),
            json!({"label":"trace_id","type":"string","cardinality":1,"parsers":null})
        );
        assert_eq!(field("size")["type"], "bytes");
        assert_eq!(field("size")["parsers"], json!(["logfmt"]));
        assert_eq!(field("msg")["type"], "string");
        assert_eq!(field("tags"), Value::Null);
        assert_eq!(s.values_of("status", 10), vec!["200", "404"]);
        assert!(s.values_of("nope", 10).is_empty());
    }

    #[test]
    fn the_field_limit_caps_new_fields() {
        let mut s = FieldScanner::new(1);
        s.scan(&entry("a=1 b=2", &[]));
        assert_eq!(s.fields.len(), 1);
    }
}
