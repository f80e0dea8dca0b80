//! OpenTelemetry logs in: `POST /otlp/v1/logs` (OTLP/HTTP, protobuf or
//! JSON, optionally gzip) and, through `grpc::otlp`, the OTLP gRPC
//! `LogsService/Export`. Both map an `ExportLogsServiceRequest` to streams
//! the way Loki 3 does ([`map_request`]) and store them through the push
//! path (same limits, partial acceptance, discovery).
//!
//! The mapping, per log record:
//! - resource attributes in Loki's default list ([`DEFAULT_INDEX_LABELS`])
//!   become stream labels, names with `.` (and any other character a label
//!   name cannot hold) turned into `_`; a stream without `service.name`
//!   gets `service_name="unknown_service"`;
//! - the other resource attributes, the scope's attributes, name and
//!   version, and the record's attributes become structured metadata
//!   (nested maps flattened with `_`, non-string values stringified);
//! - the body becomes the line (maps and arrays as JSON);
//! - `severity_text`, `severity_number`, `trace_id` and `span_id` (hex),
//!   `flags`, `observed_timestamp` and dropped counts become structured
//!   metadata when set; `detected_level` follows from the severity;
//! - the timestamp is `time_unix_nano`, else `observed_time_unix_nano`,
//!   else the time of arrival.
//!
//! [`OtlpConfig`] changes which attributes are labels, metadata or dropped,
//! per tenant, with Loki's `otlp_config` keys.
//!
//! Not here: the stores' limits (line size, label count, sample age are
//! applied by the store after mapping), the gRPC transport.

use crate::discovery::{SERVICE_NAME, UNKNOWN_SERVICE};
use crate::service::{Context, Role};
use crate::{ApiError, AppState, blocking};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde::{Deserialize, Serialize};
use skald_model::{Entry, Label, LabelSet, Timestamp};
use skald_store::StreamBatch;
use std::collections::HashMap;
use std::sync::Arc;

/// Resource attributes stored as stream labels unless configured otherwise
/// (Loki's `default_resource_attributes_as_index_labels`).
pub const DEFAULT_INDEX_LABELS: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// Deepest nesting of attribute maps flattened into names; deeper values
/// are kept as JSON text.
const MAX_FLATTEN_DEPTH: usize = 8;

/// Loki's per-tenant `otlp_config`: which attributes become stream labels,
/// structured metadata, or nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    pub resource_attributes: ResourceAttributesConfig,
    /// Actions for scope attributes (`structured_metadata` or `drop`).
    pub scope_attributes: Vec<AttributesConfig>,
    /// Actions for log record attributes (`index_label`,
    /// `structured_metadata` or `drop`).
    pub log_attributes: Vec<AttributesConfig>,
    /// Store `severity_text` as a stream label rather than metadata.
    pub severity_text_as_label: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceAttributesConfig {
    /// Forget [`DEFAULT_INDEX_LABELS`]; only `attributes_config` decides.
    pub ignore_defaults: bool,
    pub attributes_config: Vec<AttributesConfig>,
}

/// An action for the attributes named in `attributes` or matching `regex`
/// (anchored, as in Loki). The first matching entry of a list wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributesConfig {
    pub action: Action,
    #[serde(default)]
    pub attributes: Vec<String>,
    #[serde(default)]
    pub regex: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    IndexLabel,
    StructuredMetadata,
    Drop,
}

/// One compiled [`AttributesConfig`].
#[derive(Debug)]
struct Rule {
    action: Action,
    names: Vec<String>,
    regex: Option<regex::Regex>,
}

impl Rule {
    fn matches(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
            || self.regex.as_ref().is_some_and(|r| r.is_match(name))
    }
}

/// An [`OtlpConfig`] compiled for use.
#[derive(Debug)]
pub struct OtlpRules {
    resource: Vec<Rule>,
    scope: Vec<Rule>,
    log: Vec<Rule>,
    severity_text_as_label: bool,
}

fn compile(list: &[AttributesConfig], what: &str, index_ok: bool) -> Result<Vec<Rule>, String> {
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            if c.action == Action::IndexLabel && !index_ok {
                return Err(format!(
                    "{what}[{i}]: action index_label is not allowed here; use structured_metadata or drop"
                ));
            }
            if c.attributes.is_empty() && c.regex.is_none() {
                return Err(format!("{what}[{i}]: give attributes or regex"));
            }
            let regex = c
                .regex
                .as_deref()
                .map(|r| {
                    regex::RegexBuilder::new(&format!("^(?:{r})$"))
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| format!("{what}[{i}].regex: {e}"))
                })
                .transpose()?;
            Ok(Rule {
                action: c.action,
                names: c.attributes.clone(),
                regex,
            })
        })
        .collect()
}

impl OtlpConfig {
    /// Compiles the configuration, refusing bad regexes and actions.
    pub fn rules(&self) -> Result<OtlpRules, String> {
        let mut resource = Vec::new();
        if !self.resource_attributes.ignore_defaults {
            resource.push(Rule {
                action: Action::IndexLabel,
                names: DEFAULT_INDEX_LABELS.iter().map(|s| s.to_string()).collect(),
                regex: None,
            });
        }
        resource.extend(compile(
            &self.resource_attributes.attributes_config,
            "resource_attributes.attributes_config",
            true,
        )?);
        Ok(OtlpRules {
            resource,
            scope: compile(&self.scope_attributes, "scope_attributes", false)?,
            log: compile(&self.log_attributes, "log_attributes", true)?,
            severity_text_as_label: self.severity_text_as_label,
        })
    }
}

fn action_of(rules: &[Rule], name: &str) -> Action {
    rules
        .iter()
        .find(|r| r.matches(name))
        .map_or(Action::StructuredMetadata, |r| r.action)
}

/// Why a request could not be mapped (a 400 / INVALID_ARGUMENT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError(pub String);

/// A label or metadata name from an attribute key: every character a
/// label name cannot hold becomes `_`, and a leading digit gets a `_`
/// before it.
pub fn normalize_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 1);
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

/// An attribute value as text (OpenTelemetry's `AsString`): strings as
/// they are, numbers and booleans printed, bytes in base64, maps and arrays
/// as JSON.
pub fn value_text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(any_value::Value::StringValueStrindex(_)) => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => double_text(*d),
        Some(any_value::Value::BytesValue(b)) => base64_encode(b),
        Some(other) => json_of(Some(other), 0).to_string(),
    }
}

fn double_text(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        d.to_string()
    }
}

fn json_of(v: Option<&any_value::Value>, depth: usize) -> serde_json::Value {
    use serde_json::Value as J;
    // prost already bounds nesting at 100 while decoding; this keeps the
    // recursion bounded for values built in code too.
    if depth > 100 {
        return J::Null;
    }
    match v {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(J::Number)
            .unwrap_or_else(|| J::String(double_text(*d))),
        Some(any_value::Value::BytesValue(b)) => J::String(base64_encode(b)),
        Some(any_value::Value::ArrayValue(a)) => J::Array(
            a.values
                .iter()
                .map(|x| json_of(x.value.as_ref(), depth + 1))
                .collect(),
        ),
        // An index into a profiles dictionary, meaningless in logs.
        Some(any_value::Value::StringValueStrindex(_)) => J::Null,
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|x| {
                    (
                        x.key.clone(),
                        json_of(x.value.as_ref().and_then(|v| v.value.as_ref()), depth + 1),
                    )
                })
                .collect(),
        ),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Attributes as (normalised name, text) pairs: nested maps flattened into
/// `parent_child` names, like LogQL's `json` parser.
fn flatten(attrs: &[KeyValue], out: &mut Vec<(String, String, String)>) {
    fn walk(
        prefix: &str,
        raw_prefix: &str,
        attrs: &[KeyValue],
        depth: usize,
        out: &mut Vec<(String, String, String)>,
    ) {
        for kv in attrs {
            let name = if prefix.is_empty() {
                normalize_name(&kv.key)
            } else {
                format!("{prefix}_{}", normalize_name(&kv.key))
            };
            let raw = if raw_prefix.is_empty() {
                kv.key.clone()
            } else {
                format!("{raw_prefix}.{}", kv.key)
            };
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::KvlistValue(inner)) if depth < MAX_FLATTEN_DEPTH => {
                    walk(&name, &raw, &inner.values, depth + 1, out)
                }
                _ => out.push((raw, name, value_text(kv.value.as_ref()))),
            }
        }
    }
    walk("", "", attrs, 0, out);
}

/// Sorts attributes into labels and metadata by the first matching rule;
/// the raw (dotted) name is what rules match.
fn sort_attrs(
    attrs: &[KeyValue],
    rules: &[Rule],
    labels: &mut Vec<Label>,
    metadata: &mut Vec<Label>,
) {
    let mut flat = Vec::with_capacity(attrs.len());
    flatten(attrs, &mut flat);
    for (raw, name, value) in flat {
        match action_of(rules, &raw) {
            Action::IndexLabel => labels.push(Label::new(name, value)),
            Action::StructuredMetadata => metadata.push(Label::new(name, value)),
            Action::Drop => {}
        }
    }
}

/// Keeps the last pair of each name (record attributes override scope
/// ones, which override the resource's), in first-seen order.
fn dedup_last_wins(pairs: &mut Vec<Label>) {
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(pairs.len());
    let mut out: Vec<Label> = Vec::with_capacity(pairs.len());
    for l in pairs.drain(..) {
        match seen.get(&l.name) {
            Some(&i) => out[i].value = l.value,
            None => {
                seen.insert(l.name.clone(), out.len());
                out.push(l);
            }
        }
    }
    *pairs = out;
}

/// Counts of what a request held, for the answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    pub records: u64,
}

/// Maps a request to store batches, one per distinct label set, entries in
/// the order sent. Fails on ids of the wrong length and timestamps beyond
/// what Skald stores, naming the record.
pub fn map_request(
    req: ExportLogsServiceRequest,
    rules: &OtlpRules,
    now: Timestamp,
) -> Result<(Vec<StreamBatch>, Mapped), MappingError> {
    let mut streams: HashMap<Vec<Label>, usize> = HashMap::new();
    let mut batches: Vec<(Vec<Label>, Vec<Entry>)> = Vec::new();
    let mut mapped = Mapped::default();
    for (ri, rl) in req.resource_logs.into_iter().enumerate() {
        let mut res_labels = Vec::new();
        let mut res_meta = Vec::new();
        if let Some(resource) = &rl.resource {
            sort_attrs(
                &resource.attributes,
                &rules.resource,
                &mut res_labels,
                &mut res_meta,
            );
            if resource.dropped_attributes_count > 0 {
                res_meta.push(Label::new(
                    "resource_dropped_attributes_count",
                    resource.dropped_attributes_count.to_string(),
                ));
            }
        }
        if !res_labels.iter().any(|l| l.name == SERVICE_NAME) {
            res_labels.push(Label::new(SERVICE_NAME, UNKNOWN_SERVICE));
        }
        for (si, sl) in rl.scope_logs.into_iter().enumerate() {
            let mut scope_meta = Vec::new();
            if let Some(scope) = &sl.scope {
                let mut ignored = Vec::new();
                sort_attrs(
                    &scope.attributes,
                    &rules.scope,
                    &mut ignored,
                    &mut scope_meta,
                );
                if !scope.name.is_empty() {
                    scope_meta.push(Label::new("scope_name", scope.name.clone()));
                }
                if !scope.version.is_empty() {
                    scope_meta.push(Label::new("scope_version", scope.version.clone()));
                }
                if scope.dropped_attributes_count > 0 {
                    scope_meta.push(Label::new(
                        "scope_dropped_attributes_count",
                        scope.dropped_attributes_count.to_string(),
                    ));
                }
            }
            for (li, rec) in sl.log_records.into_iter().enumerate() {
                let at = || format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]");
                mapped.records += 1;
                let ts_of = |v: u64, field: &str| {
                    i64::try_from(v).map_err(|_| {
                        MappingError(format!("{}.{field}: {v} is beyond year 2262", at()))
                    })
                };
                let time = ts_of(rec.time_unix_nano, "timeUnixNano")?;
                let observed = ts_of(rec.observed_time_unix_nano, "observedTimeUnixNano")?;
                if !rec.trace_id.is_empty() && rec.trace_id.len() != 16 {
                    return Err(MappingError(format!(
                        "{}.traceId: must be 16 bytes, got {}",
                        at(),
                        rec.trace_id.len()
                    )));
                }
                if !rec.span_id.is_empty() && rec.span_id.len() != 8 {
                    return Err(MappingError(format!(
                        "{}.spanId: must be 8 bytes, got {}",
                        at(),
                        rec.span_id.len()
                    )));
                }
                let ts = match (time, observed) {
                    (t, _) if t > 0 => Timestamp(t),
                    (_, o) if o > 0 => Timestamp(o),
                    _ => now,
                };
                let mut labels = res_labels.clone();
                let mut meta = res_meta.clone();
                meta.extend(scope_meta.iter().cloned());
                sort_attrs(&rec.attributes, &rules.log, &mut labels, &mut meta);
                if time > 0 && observed > 0 {
                    meta.push(Label::new("observed_timestamp", observed.to_string()));
                }
                if rec.severity_number != 0 {
                    meta.push(Label::new(
                        crate::discovery::SEVERITY_NUMBER,
                        rec.severity_number.to_string(),
                    ));
                }
                if !rec.severity_text.is_empty() {
                    let l = Label::new("severity_text", rec.severity_text.clone());
                    if rules.severity_text_as_label {
                        labels.push(l);
                    } else {
                        meta.push(l);
                    }
                }
                if rec.dropped_attributes_count > 0 {
                    meta.push(Label::new(
                        "dropped_attributes_count",
                        rec.dropped_attributes_count.to_string(),
                    ));
                }
                if rec.flags != 0 {
                    meta.push(Label::new("flags", rec.flags.to_string()));
                }
                if !rec.trace_id.is_empty() {
                    meta.push(Label::new("trace_id", hex(&rec.trace_id)));
                }
                if !rec.span_id.is_empty() {
                    meta.push(Label::new("span_id", hex(&rec.span_id)));
                }
                if !rec.event_name.is_empty() {
                    meta.push(Label::new("event_name", rec.event_name.clone()));
                }
                dedup_last_wins(&mut meta);
                dedup_last_wins(&mut labels);
                // Labels that are also stream labels are not repeated.
                meta.retain(|m| !labels.iter().any(|l| l.name == m.name));
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                let entry = Entry {
                    ts,
                    line: value_text(rec.body.as_ref()),
                    metadata: meta,
                };
                match streams.get(&labels) {
                    Some(&i) => batches[i].1.push(entry),
                    None => {
                        streams.insert(labels.clone(), batches.len());
                        batches.push((labels, vec![entry]));
                    }
                }
            }
        }
    }
    let batches = batches
        .into_iter()
        .map(|(labels, entries)| StreamBatch {
            // Names are normalised, sorted and unique.
            labels: LabelSet::from_trusted(labels),
            entries,
        })
        .collect();
    Ok((batches, mapped))
}

/// The two OTLP/HTTP body encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn from_content_type(ct: Option<&str>) -> Result<Encoding, ApiError> {
        let media = ct.unwrap_or("").split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/json") {
            Ok(Encoding::Json)
        } else if media.eq_ignore_ascii_case("application/x-protobuf")
            || media.eq_ignore_ascii_case("application/protobuf")
        {
            Ok(Encoding::Protobuf)
        } else {
            Err(ApiError::unsupported(format!(
                "unsupported content type {media:?}: OTLP/HTTP takes application/x-protobuf or application/json"
            )))
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Decodes an OTLP/HTTP body (already decompressed).
pub fn decode(encoding: Encoding, body: &[u8]) -> Result<ExportLogsServiceRequest, ApiError> {
    match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body)
            .map_err(|e| ApiError::bad_request(format!("invalid OTLP protobuf body: {e}"))),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid OTLP JSON body: {e}"))),
    }
}

/// The messages of the OTLP logs schema that can repeat, for counting.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Request,
    ResourceLogs,
    Resource,
    ScopeLogs,
    Scope,
    Record,
    KeyValue,
    AnyValue,
    Array,
    KvList,
}

impl Kind {
    /// The message type of field `field`, when it is one to count.
    fn child(self, field: u64) -> Option<Kind> {
        use Kind::*;
        match (self, field) {
            (Request, 1) => Some(ResourceLogs),
            (ResourceLogs, 1) => Some(Resource),
            (ResourceLogs, 2) => Some(ScopeLogs),
            (Resource, 1) | (Scope, 3) | (Record, 6) | (KvList, 1) => Some(KeyValue),
            (ScopeLogs, 1) => Some(Scope),
            (ScopeLogs, 2) => Some(Record),
            (Record, 5) | (KeyValue, 2) | (Array, 1) => Some(AnyValue),
            (AnyValue, 5) => Some(Array),
            (AnyValue, 6) => Some(KvList),
            _ => None,
        }
    }
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Counts the messages of a protobuf request before it is decoded, so a
/// small body of many empty records (2 bytes each on the wire, a hundred
/// times that in memory) is refused rather than inflated. Malformed input
/// stops the count; the decoder then says what is wrong.
fn count_messages(mut buf: &[u8], kind: Kind, depth: usize, left: &mut usize) -> bool {
    if depth > 64 {
        return true;
    }
    while !buf.is_empty() {
        let Some(tag) = varint(&mut buf) else {
            return true;
        };
        let skip = match tag & 7 {
            0 => varint(&mut buf).map(|_| 0),
            1 => Some(8),
            5 => Some(4),
            2 => {
                let Some(len) = varint(&mut buf).and_then(|l| usize::try_from(l).ok()) else {
                    return true;
                };
                if len > buf.len() {
                    return true;
                }
                let (inner, rest) = buf.split_at(len);
                buf = rest;
                if let Some(child) = kind.child(tag >> 3) {
                    if *left == 0 {
                        return false;
                    }
                    *left -= 1;
                    if !count_messages(inner, child, depth + 1, left) {
                        return false;
                    }
                }
                Some(0)
            }
            _ => None,
        };
        match skip {
            Some(n) if n <= buf.len() => buf = &buf[n..],
            _ => return true,
        }
    }
    true
}

/// Counts the objects and arrays of a JSON body (outside strings), the
/// same bound for OTLP/JSON.
fn count_json_containers(body: &[u8]) -> usize {
    let (mut n, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => n += 1,
                _ => {}
            }
        }
    }
    n
}

/// Refuses bodies holding more messages than `max_items` (413).
pub fn check_items(encoding: Encoding, body: &[u8], max_items: usize) -> Result<(), ApiError> {
    let within = match encoding {
        Encoding::Protobuf => {
            let mut left = max_items;
            count_messages(body, Kind::Request, 0, &mut left)
        }
        Encoding::Json => count_json_containers(body) <= max_items,
    };
    if within {
        Ok(())
    } else {
        Err(ApiError::too_large(format!(
            "OTLP body holds more than the limit of {max_items} records, attributes and values"
        )))
    }
}

/// `POST /otlp/v1/logs`.
pub async fn push(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = crate::push::push_body(&app, body)?;
    let ctx = Context::from_http(&app, &headers)?;
    // Before decoding: a refused caller costs no decompression.
    ctx.authorize(Role::Push)?;
    let header_str = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let encoding = Encoding::from_content_type(header_str(header::CONTENT_TYPE).as_deref())?;
    let content_encoding = header_str(header::CONTENT_ENCODING);
    let max = app.config.max_push_decompressed_bytes;
    // Held until the push is stored, as for Loki's push.
    let mut held = crate::service::push::reservation(&app);
    let (req, held) = blocking(move || {
        let plain =
            skald_wire::decode_content_encoding(content_encoding.as_deref(), &body, max, &mut held)
                .map_err(|e| match e.kind() {
                    skald_wire::WireErrorKind::TooLarge => ApiError::too_large(e.to_string()),
                    skald_wire::WireErrorKind::Unsupported => ApiError::unsupported(e.to_string()),
                    skald_wire::WireErrorKind::Busy => ApiError::unavailable(e.to_string()),
                    _ => ApiError::bad_request(e.to_string()),
                })?;
        check_items(
            encoding,
            &plain,
            skald_wire::DecodeLimits::default().max_items,
        )?;
        Ok((decode(encoding, &plain)?, held))
    })
    .await?;
    let outcome = crate::service::push::push_otlp(&app, &ctx, req, Some(held)).await?;
    if let Some(e) = crate::service::push::refusal(&outcome) {
        return Err(e);
    }
    let answer = ExportLogsServiceResponse::default();
    let body = match encoding {
        Encoding::Protobuf => answer.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&answer).unwrap_or_else(|_| b"{}".to_vec()),
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn s(v: &str) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        })
    }

    fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v,
            ..Default::default()
        }
    }

    fn request(resource: Vec<KeyValue>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "my.lib".into(),
                        version: "1.2".into(),
                        attributes: vec![kv("scope.attr", s("x"))],
                        ..Default::default()
                    }),
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn meta(e: &Entry, name: &str) -> Option<String> {
        e.metadata
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.clone())
    }

    fn default_rules() -> OtlpRules {
        OtlpConfig::default().rules().unwrap()
    }

    #[test]
    fn resource_attributes_become_labels_and_the_rest_metadata() {
        let rec = LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            observed_time_unix_nano: 1_700_000_000_000_000_001,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: s("boom"),
            attributes: vec![
                kv(
                    "http.status_code",
                    Some(AnyValue {
                        value: Some(any_value::Value::IntValue(503)),
                    }),
                ),
                kv(
                    "user",
                    Some(AnyValue {
                        value: Some(any_value::Value::KvlistValue(KeyValueList {
                            values: vec![kv("id", s("u1"))],
                        })),
                    }),
                ),
            ],
            trace_id: vec![0xab; 16],
            span_id: vec![0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
            flags: 1,
            ..Default::default()
        };
        let req = request(
            vec![
                kv("service.name", s("checkout")),
                kv("k8s.namespace.name", s("shop")),
                kv("host.name", s("node-1")),
            ],
            vec![rec],
        );
        let (batches, mapped) = map_request(req, &default_rules(), Timestamp(5)).unwrap();
        assert_eq!(mapped.records, 1);
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(
            b.labels,
            LabelSet::parse(r#"{k8s_namespace_name="shop", service_name="checkout"}"#).unwrap()
        );
        let e = &b.entries[0];
        assert_eq!(e.line, "boom");
        assert_eq!(e.ts, Timestamp(1_700_000_000_000_000_000));
        assert_eq!(meta(e, "host_name").as_deref(), Some("node-1"));
        assert_eq!(meta(e, "scope_name").as_deref(), Some("my.lib"));
        assert_eq!(meta(e, "scope_version").as_deref(), Some("1.2"));
        assert_eq!(meta(e, "scope_attr").as_deref(), Some("x"));
        assert_eq!(meta(e, "http_status_code").as_deref(), Some("503"));
        assert_eq!(meta(e, "user_id").as_deref(), Some("u1"));
        assert_eq!(meta(e, "severity_text").as_deref(), Some("ERROR"));
        assert_eq!(meta(e, "severity_number").as_deref(), Some("17"));
        assert_eq!(
            meta(e, "trace_id").as_deref(),
            Some("abababababababababababababababab")
        );
        assert_eq!(meta(e, "span_id").as_deref(), Some("0102030405060708"));
        assert_eq!(meta(e, "flags").as_deref(), Some("1"));
        assert_eq!(
            meta(e, "observed_timestamp").as_deref(),
            Some("1700000000000000001")
        );
    }

    #[test]
    fn bodies_timestamps_and_missing_service_name() {
        let map_body = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![
                    kv(
                        "b",
                        Some(AnyValue {
                            value: Some(any_value::Value::ArrayValue(ArrayValue {
                                values: vec![
                                    AnyValue {
                                        value: Some(any_value::Value::IntValue(1)),
                                    },
                                    AnyValue {
                                        value: Some(any_value::Value::BoolValue(true)),
                                    },
                                ],
                            })),
                        }),
                    ),
                    kv("a", s("x")),
                ],
            })),
        };
        let records = vec![
            LogRecord {
                observed_time_unix_nano: 42,
                body: Some(map_body),
                ..Default::default()
            },
            LogRecord {
                body: Some(AnyValue {
                    value: Some(any_value::Value::DoubleValue(1.5)),
                }),
                ..Default::default()
            },
            LogRecord::default(),
        ];
        let (batches, _) =
            map_request(request(vec![], records), &default_rules(), Timestamp(7)).unwrap();
        assert_eq!(
            batches[0].labels,
            LabelSet::parse(r#"{service_name="unknown_service"}"#).unwrap()
        );
        let e = &batches[0].entries;
        assert_eq!(e[0].line, r#"{"a":"x","b":[1,true]}"#);
        assert_eq!(e[0].ts, Timestamp(42));
        assert_eq!(meta(&e[0], "observed_timestamp"), None);
        assert_eq!(e[1].line, "1.5");
        assert_eq!(e[1].ts, Timestamp(7));
        assert_eq!(e[2].line, "");
    }

    #[test]
    fn otlp_config_moves_and_drops_attributes() {
        let cfg: OtlpConfig = toml::from_str(
            r#"
            [resource_attributes]
            ignore_defaults = true
            attributes_config = [{ action = "index_label", regex = "service\\..*" }]
            [[scope_attributes]]
            action = "drop"
            attributes = ["scope.attr"]
            [[log_attributes]]
            action = "index_label"
            attributes = ["tier"]
            [[log_attributes]]
            action = "drop"
            regex = ".*"
            "#,
        )
        .unwrap();
        let rec = LogRecord {
            body: s("x"),
            attributes: vec![kv("tier", s("gold")), kv("secret", s("s"))],
            ..Default::default()
        };
        let req = request(
            vec![
                kv("service.name", s("a")),
                kv("service.group", s("g")),
                kv("k8s.pod.name", s("p")),
            ],
            vec![rec],
        );
        let (batches, _) = map_request(req, &cfg.rules().unwrap(), Timestamp(1)).unwrap();
        assert_eq!(
            batches[0].labels,
            LabelSet::parse(r#"{service_group="g", service_name="a", tier="gold"}"#).unwrap()
        );
        let e = &batches[0].entries[0];
        assert_eq!(meta(e, "k8s_pod_name").as_deref(), Some("p"));
        assert_eq!(meta(e, "scope_attr"), None);
        assert_eq!(meta(e, "secret"), None);
    }

    #[test]
    fn bad_configs_and_payloads_are_refused_with_a_reason() {
        let scope_index: OtlpConfig = toml::from_str(
            "[[scope_attributes]]\naction = \"index_label\"\nattributes = [\"a\"]\n",
        )
        .unwrap();
        assert!(scope_index.rules().unwrap_err().contains("not allowed"));
        let bad_regex: OtlpConfig =
            toml::from_str("[[log_attributes]]\naction = \"drop\"\nregex = \"(\"\n").unwrap();
        assert!(
            bad_regex
                .rules()
                .unwrap_err()
                .contains("log_attributes[0].regex")
        );
        assert!(toml::from_str::<OtlpConfig>("[[log_attributes]]\naction = \"keep\"\n").is_err());

        let short_trace = LogRecord {
            trace_id: vec![1, 2, 3],
            ..Default::default()
        };
        let err = map_request(
            request(vec![], vec![short_trace]),
            &default_rules(),
            Timestamp(1),
        )
        .unwrap_err();
        assert!(
            err.0.contains("logRecords[0].traceId: must be 16 bytes"),
            "{err:?}"
        );
        let far = LogRecord {
            time_unix_nano: u64::MAX,
            ..Default::default()
        };
        assert!(map_request(request(vec![], vec![far]), &default_rules(), Timestamp(1)).is_err());

        assert_eq!(
            decode(Encoding::Protobuf, b"\xff\xff\xff")
                .unwrap_err()
                .code
                .http_status(),
            StatusCode::BAD_REQUEST
        );
        let err = decode(Encoding::Json, br#"{"resourceLogs": 3}"#).unwrap_err();
        assert!(
            err.message.starts_with("invalid OTLP JSON body"),
            "{}",
            err.message
        );
        assert_eq!(
            Encoding::from_content_type(Some("text/plain"))
                .unwrap_err()
                .code
                .http_status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[test]
    fn json_uses_camel_case_and_hex_ids() {
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"svc"}}]},
          "scopeLogs":[{"scope":{"name":"s"},"logRecords":[{
            "timeUnixNano":"1700000000000000000","severityNumber":9,"severityText":"INFO",
            "body":{"stringValue":"hello"},
            "attributes":[{"key":"n","value":{"intValue":"7"}}],
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}"#;
        let req = decode(Encoding::Json, body).unwrap();
        let (batches, _) = map_request(req, &default_rules(), Timestamp(1)).unwrap();
        let e = &batches[0].entries[0];
        assert_eq!(e.line, "hello");
        assert_eq!(meta(e, "n").as_deref(), Some("7"));
        assert_eq!(
            meta(e, "trace_id").as_deref(),
            Some("5b8efff798038103d269b633813fc60c")
        );
        assert_eq!(meta(e, "span_id").as_deref(), Some("eee19b7ec3c1b174"));
    }

    #[test]
    fn bodies_of_too_many_messages_are_refused_before_decoding() {
        let records: Vec<LogRecord> = (0..50).map(|_| LogRecord::default()).collect();
        let body = request(vec![kv("a", s("b"))], records).encode_to_vec();
        // 1 resource logs, 1 resource, 1 attribute + its value, 1 scope logs,
        // 1 scope + 1 attribute + value, 50 records.
        assert!(check_items(Encoding::Protobuf, &body, 58).is_ok());
        let err = check_items(Encoding::Protobuf, &body, 57).unwrap_err();
        assert_eq!(err.code.http_status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Garbage is left for the decoder to describe.
        assert!(check_items(Encoding::Protobuf, b"\xff\xff", 1).is_ok());
        let json = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{},{"body":{"stringValue":"{[{["}}]}]}]}"#;
        assert!(check_items(Encoding::Json, json, 10).is_ok());
        assert!(check_items(Encoding::Json, json, 9).is_err());
    }

    #[test]
    fn names_and_values_are_normalised_as_loki_does() {
        assert_eq!(normalize_name("service.name"), "service_name");
        assert_eq!(normalize_name("k8s.pod-name"), "k8s_pod_name");
        assert_eq!(normalize_name("1st"), "_1st");
        assert_eq!(base64_encode(b"hi!?"), "aGkhPw==");
        assert_eq!(value_text(None), "");
        assert_eq!(
            value_text(Some(&AnyValue {
                value: Some(any_value::Value::DoubleValue(f64::INFINITY))
            })),
            "+Inf"
        );
    }
}
