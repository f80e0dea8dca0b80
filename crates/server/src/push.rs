//! `POST /loki/api/v1/push`: Loki's push, in JSON or protobuf+snappy, plain
//! or gzip/deflate/snappy encoded.
//!
//! Partial acceptance, as Loki does it: every valid stream and entry of a
//! request is stored; if anything was refused the answer is 400 naming each
//! refused stream and why (and how many entries were stored), so a client
//! that retries on 4xx cannot duplicate what was stored, and a client that
//! reports 4xx tells its user what to fix. A body that cannot be decoded at
//! all stores nothing.

use crate::{ApiError, AppState, blocking, tenant};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use skald_model::LabelSet;
use skald_store::{Rejection, StreamBatch};
use std::sync::Arc;

/// Problems listed in one 400 answer before "and N more".
const MAX_REPORTED: usize = 10;

pub async fn push(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let header_str = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header_str(header::CONTENT_TYPE);
    let content_encoding = header_str(header::CONTENT_ENCODING);
    let limits = skald_wire::DecodeLimits {
        max_decompressed_bytes: app.config.max_push_decompressed_bytes,
        ..Default::default()
    };
    let store = app.store.clone();
    let ingest = app.ingest.for_tenant(&tenant);
    let budget = app.admission.push_budget(&app.config);
    let outcome = blocking(move || {
        // Held until the push is stored: what it inflated stays counted
        // against the budget all pushes share.
        let mut held = budget.start();
        let request = skald_wire::decode_push_within(
            content_type.as_deref(),
            content_encoding.as_deref(),
            &body,
            &limits,
            &mut held,
        )
        .map_err(|e| match e.kind() {
            skald_wire::WireErrorKind::TooLarge => ApiError::too_large(e.to_string()),
            skald_wire::WireErrorKind::Unsupported => ApiError::unsupported(e.to_string()),
            skald_wire::WireErrorKind::Busy => ApiError::unavailable(e.to_string()),
            _ => ApiError::bad_request(e.to_string()),
        })?;
        let mut rejected = Vec::new();
        let mut batches = Vec::with_capacity(request.streams.len());
        for (i, s) in request.streams.into_iter().enumerate() {
            let labels = match s.labels {
                skald_wire::StreamLabels::Selector(text) => {
                    LabelSet::parse(&text).map_err(|e| (text, e))
                }
                skald_wire::StreamLabels::Pairs(pairs) => {
                    let shown = format!("{pairs:?}");
                    LabelSet::new(pairs).map_err(|e| (shown, e))
                }
            };
            match labels {
                Ok(labels) => batches.push(StreamBatch {
                    labels,
                    entries: s.entries,
                }),
                Err((shown, e)) => rejected.push(Rejection {
                    stream: format!("#{i} {}", truncate(&shown, 200)),
                    reason: e.to_string(),
                    entries: s.entries.len() as u64,
                }),
            }
        }
        crate::discovery::apply(&ingest, &mut batches);
        let mut outcome = store.push(&tenant, batches)?;
        rejected.append(&mut outcome.rejected);
        outcome.rejected = rejected;
        Ok(outcome)
    })
    .await?;

    if outcome.rejected.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Err(rejection_error(&outcome))
}

/// The 400 message of a push that was refused in part or whole: how many
/// entries were refused and stored, and why, stream by stream.
pub(crate) fn rejection_message(outcome: &skald_store::PushOutcome) -> String {
    let refused: u64 = outcome.rejected.iter().map(|r| r.entries).sum();
    let mut msg = format!(
        "{refused} entries refused, {} stored:",
        outcome.accepted + outcome.duplicates
    );
    for r in outcome.rejected.iter().take(MAX_REPORTED) {
        msg.push_str(&format!(
            "\nstream {}: {} ({} entries)",
            r.stream, r.reason, r.entries
        ));
    }
    if outcome.rejected.len() > MAX_REPORTED {
        msg.push_str(&format!(
            "\n(and {} more)",
            outcome.rejected.len() - MAX_REPORTED
        ));
    }
    msg
}

/// The refusal of a push refused in part or whole: 429 when a rate or
/// stream limit refused entries (Loki's answer, so clients back off and
/// retry instead of dropping the batch), 400 otherwise.
pub(crate) fn rejection_error(outcome: &skald_store::PushOutcome) -> ApiError {
    let message = rejection_message(outcome);
    if outcome.rate_limited > 0 {
        return ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message,
        };
    }
    ApiError::bad_request(message)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
