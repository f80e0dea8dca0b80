//! Label and stream RPCs: label names and values, label validation,
//! stream listing and details, deletion.

use super::{context, invalid, labels_out, proto, range};
use crate::AppState;
use crate::service::query::{LABELS_SINCE_NS, parse_log_query};
use crate::service::streams::id_text;
use skald_model::{Matcher, StreamId, TenantId, Timestamp, is_valid_label_name};
use std::sync::Arc;
use tonic::{Request, Response, Status};

fn selector(field: &str, text: &str) -> Result<Vec<Matcher>, Status> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let q = parse_log_query(field, text)?;
    if !q.stages.is_empty() {
        return Err(invalid(
            field,
            "a stream selector without pipeline stages is required",
        ));
    }
    Ok(q.selector)
}

pub(super) async fn get_labels(
    app: &Arc<AppState>,
    req: Request<proto::GetLabelsRequest>,
) -> Result<Response<proto::GetLabelsResponse>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    let (start, end) = range(req.start_ns, req.end_ns, Some(LABELS_SINCE_NS))?;
    let matchers = selector("query", &req.query)?;
    let names = crate::service::labels::names(app, &ctx, Some(matchers), start, end).await?;
    Ok(Response::new(proto::GetLabelsResponse { names }))
}

pub(super) async fn get_label_values(
    app: &Arc<AppState>,
    req: Request<proto::GetLabelValuesRequest>,
) -> Result<Response<proto::GetLabelValuesResponse>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    let (start, end) = range(req.start_ns, req.end_ns, Some(LABELS_SINCE_NS))?;
    let matchers = selector("query", &req.query)?;
    let values = crate::service::labels::values(app, &ctx, req.name, matchers, start, end).await?;
    Ok(Response::new(proto::GetLabelValuesResponse { values }))
}

/// Why a value looks like it has one value per event (seed guidance: such
/// things belong in the line or structured metadata, not in labels).
fn high_cardinality(value: &str) -> Option<&'static str> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    let is_uuid = v.len() == 36
        && v.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if is_uuid {
        return Some("looks like a UUID");
    }
    if v.parse::<std::net::IpAddr>().is_ok() {
        return Some("looks like an IP address");
    }
    if v.len() >= 3
        && v.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        && v.chars().any(|c| c.is_ascii_digit())
    {
        return Some("looks numeric (an id, a count or a timestamp)");
    }
    if v.len() >= 16 && v.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some("looks like a hash or a trace id");
    }
    None
}

pub(super) async fn validate_labels(
    app: &Arc<AppState>,
    req: Request<proto::ValidateLabelsRequest>,
) -> Result<Response<proto::ValidateLabelsResponse>, Status> {
    use proto::label_problem::Severity;
    // Any valid credentials: validation reads no tenant's data, only the
    // limits of the request's tenant.
    let ctx = context(app, &req)?;
    let limits = app.store.limits(
        &ctx.tenants
            .first()
            .cloned()
            .unwrap_or_else(TenantId::default_tenant),
    );
    let req = req.into_inner();
    let mut problems = Vec::new();
    let mut problem = |name: &str, severity: Severity, code: &str, message: String| {
        problems.push(proto::LabelProblem {
            name: name.to_string(),
            severity: severity as i32,
            code: code.to_string(),
            message,
        });
    };
    if req.labels.is_empty() {
        problem(
            "",
            Severity::Error,
            "no_labels",
            "a stream needs at least one label".into(),
        );
    }
    if req.labels.len() > limits.max_label_names_per_series {
        problem(
            "",
            Severity::Error,
            "too_many_labels",
            format!(
                "{} labels; the limit is {}",
                req.labels.len(),
                limits.max_label_names_per_series
            ),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for l in &req.labels {
        if !seen.insert(l.name.as_str()) {
            problem(
                &l.name,
                Severity::Error,
                "duplicate_name",
                "the name appears more than once".into(),
            );
        }
        if l.name.starts_with("__") {
            problem(
                &l.name,
                Severity::Error,
                "reserved_name",
                "names starting with __ are reserved for internal use".into(),
            );
        } else if !is_valid_label_name(&l.name) {
            problem(
                &l.name,
                Severity::Error,
                "invalid_name",
                "a name must match [a-zA-Z_][a-zA-Z0-9_]*".into(),
            );
        }
        if l.name.len() > limits.max_label_name_length {
            problem(
                &l.name,
                Severity::Error,
                "name_too_long",
                format!(
                    "{} bytes; the limit is {}",
                    l.name.len(),
                    limits.max_label_name_length
                ),
            );
        }
        if l.value.len() > limits.max_label_value_length {
            problem(
                &l.name,
                Severity::Error,
                "value_too_long",
                format!(
                    "{} bytes; the limit is {}",
                    l.value.len(),
                    limits.max_label_value_length
                ),
            );
        }
        if l.value.is_empty() {
            problem(
                &l.name,
                Severity::Warning,
                "empty_value",
                "an empty value is the same as no label".into(),
            );
        }
        if let Some(why) = high_cardinality(&l.value) {
            problem(
                &l.name,
                Severity::Warning,
                "high_cardinality",
                format!(
                    "the value {why}: one stream per value multiplies streams; put it in the line or in structured metadata"
                ),
            );
        }
    }
    let valid = !problems
        .iter()
        .any(|p| p.severity == Severity::Error as i32);
    let normalized = if valid {
        super::labels_in("labels", req.labels)
            .map(|ls| ls.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Response::new(proto::ValidateLabelsResponse {
        valid,
        problems,
        normalized,
    }))
}

pub(super) async fn list_streams(
    app: &Arc<AppState>,
    req: Request<proto::ListStreamsRequest>,
) -> Result<Response<proto::ListStreamsResponse>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    let matchers = selector("selector", &req.selector)?;
    let start = if req.start_ns == 0 {
        Timestamp::MIN
    } else {
        Timestamp(req.start_ns)
    };
    let end = if req.end_ns == 0 {
        Timestamp::MAX
    } else {
        Timestamp(req.end_ns)
    };
    let page = match req.page_size {
        0 => 100,
        n if n > 1000 => return Err(invalid("page_size", "at most 1000")),
        n => n as usize,
    };
    let offset = if req.page_token.is_empty() {
        0
    } else {
        req.page_token
            .parse::<usize>()
            .map_err(|_| invalid("page_token", "not a token this server issued"))?
    };
    let streams = crate::service::streams::list(app, &ctx, matchers, start, end).await?;
    let total = streams.len();
    let next = offset.saturating_add(page);
    let out = streams
        .iter()
        .skip(offset)
        .take(page)
        .map(|s| proto::StreamSummary {
            labels: labels_out(&s.labels),
            stream_id: id_text(s.id),
            first_entry_ns: s.first.0,
            last_entry_ns: s.last.0,
        })
        .collect();
    Ok(Response::new(proto::ListStreamsResponse {
        streams: out,
        next_page_token: if next < total {
            next.to_string()
        } else {
            String::new()
        },
        total: total as u64,
    }))
}

pub(super) async fn get_stream_info(
    app: &Arc<AppState>,
    req: Request<proto::GetStreamInfoRequest>,
) -> Result<Response<proto::StreamInfo>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    let wanted: StreamId = if !req.labels.is_empty() {
        super::labels_in("labels", req.labels)?.stream_id()
    } else if !req.stream_id.is_empty() {
        u64::from_str_radix(&req.stream_id, 16)
            .map(StreamId)
            .map_err(|_| invalid("stream_id", "16 hex digits expected"))?
    } else {
        return Err(invalid("labels", "labels or stream_id is required"));
    };
    let d = crate::service::streams::details(app, &ctx, wanted).await?;
    Ok(Response::new(proto::StreamInfo {
        labels: labels_out(&d.summary.labels),
        stream_id: id_text(d.summary.id),
        first_entry_ns: d.summary.first.0,
        last_entry_ns: d.summary.last.0,
        chunks: d.chunks,
        entries: d.entries,
        bytes: d.bytes,
    }))
}

pub(super) async fn delete_stream(
    app: &Arc<AppState>,
    req: Request<proto::DeleteStreamRequest>,
) -> Result<Response<proto::DeleteStreamResponse>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    if req.query.trim().is_empty() {
        return Err(invalid("query", "required"));
    }
    let start = Timestamp(req.start_ns);
    let end = if req.end_ns == 0 {
        Timestamp::now()
    } else {
        Timestamp(req.end_ns)
    };
    let r = crate::service::delete::create(app, &ctx, req.query, start, end).await?;
    Ok(Response::new(proto::DeleteStreamResponse {
        request_id: r.request_id,
        status: "received".into(),
    }))
}
