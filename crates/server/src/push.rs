//! `POST /loki/api/v1/push`: Loki's push, in JSON or protobuf+snappy, plain
//! or gzip/deflate/snappy encoded.
//!
//! Partial acceptance, as Loki does it: every valid stream and entry of a
//! request is stored; if anything was refused the answer is 400 naming each
//! refused stream and why (and how many entries were stored), so a client
//! that retries on 4xx cannot duplicate what was stored, and a client that
//! reports 4xx tells its user what to fix. A body that cannot be decoded at
//! all stores nothing.

use crate::service::push::{PushStream, RefusedLabels, refusal};
use crate::service::{Context, Role};
use crate::{ApiError, AppState, blocking};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use skald_model::LabelSet;
use std::sync::Arc;

/// The body of a push, or the error a client can act on: a body over
/// `max_push_body_bytes` is a 413 naming that setting (rather than the
/// HTTP library's bare "length limit exceeded").
pub(crate) fn push_body(
    app: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "push body is larger than the limit of {} bytes as received (max_push_body_bytes)",
                app.config.max_push_body_bytes
            ))
        } else {
            ApiError::bad_request(format!("could not read the push body: {}", r.body_text()))
        }
    })
}

pub async fn push(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = push_body(&app, body)?;
    let ctx = Context::from_http(&app, &headers)?;
    // Before decoding: a refused caller costs no decompression.
    ctx.authorize(Role::Push)?;
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
    // Held until the push is stored: what it inflated stays counted
    // against the budget all pushes share.
    let mut held = crate::service::push::reservation(&app);
    let (streams, held) = blocking(move || {
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
        let streams = request
            .streams
            .into_iter()
            .map(|s| {
                let labels = match s.labels {
                    skald_wire::StreamLabels::Selector(text) => {
                        LabelSet::parse(&text).map_err(|e| (text, e))
                    }
                    skald_wire::StreamLabels::Pairs(pairs) => {
                        let shown = format!("{pairs:?}");
                        LabelSet::new(pairs).map_err(|e| (shown, e))
                    }
                };
                PushStream {
                    labels: labels.map_err(|(shown, e)| RefusedLabels {
                        shown,
                        reason: e.to_string(),
                    }),
                    entries: s.entries,
                }
            })
            .collect::<Vec<_>>();
        Ok((streams, held))
    })
    .await?;
    let outcome = crate::service::push::push(&app, &ctx, streams, Some(held)).await?;
    match refusal(&outcome) {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(e) => Err(e),
    }
}
