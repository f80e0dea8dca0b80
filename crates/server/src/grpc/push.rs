//! Push RPCs: one entry, a batch, a client stream, a simple message.
//!
//! All go through the store's `push`, the HTTP push's path: the same label
//! and line limits, partial acceptance, durability before the answer.
//! Streams whose labels do not parse are rejected and counted, like the
//! HTTP push's refused streams.

use super::{context, invalid, proto};
use crate::AppState;
use crate::service::push::{MAX_REPORTED, PushStream, RefusedLabels};
use crate::service::{Context, ErrorCode, ServiceError};
use skald_model::{Entry, Label, LabelSet, Timestamp};
use skald_store::PushOutcome;
use std::sync::Arc;
use tonic::{Request, Response, Status};

fn entry_in(e: proto::Entry, now: Timestamp) -> Entry {
    Entry {
        ts: if e.timestamp_ns == 0 {
            now
        } else {
            Timestamp(e.timestamp_ns)
        },
        line: e.line,
        metadata: e
            .structured_metadata
            .into_iter()
            .map(|l| Label::new(l.name, l.value))
            .collect(),
    }
}

/// Turns proto streams into the service's; labels that do not parse are
/// refused there, named by their index.
fn streams_in(streams: Vec<proto::Stream>) -> Vec<PushStream> {
    let now = Timestamp::now();
    streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let shown = s
                .labels
                .iter()
                .map(|l| format!("{}={:?}", l.name, l.value))
                .collect::<Vec<_>>()
                .join(", ");
            let labels = LabelSet::new(
                s.labels
                    .into_iter()
                    .map(|l| Label::new(l.name, l.value))
                    .collect(),
            )
            .map_err(|e| RefusedLabels {
                shown: format!("{{{shown}}}"),
                reason: format!("streams[{i}].labels: {e}"),
            });
            PushStream {
                labels,
                entries: s.entries.into_iter().map(|e| entry_in(e, now)).collect(),
            }
        })
        .collect()
}

async fn store(
    app: &Arc<AppState>,
    ctx: &Context,
    streams: Vec<proto::Stream>,
) -> Result<PushOutcome, Status> {
    let mut outcome = crate::service::push::push(app, ctx, streams_in(streams), None).await?;
    if let Some(reason) = outcome.rate_limit_reason.take() {
        // As the HTTP push's 429: the client backs off and retries.
        return Err(ServiceError::new(
            ErrorCode::RateLimited,
            format!(
                "{reason} ({} entries refused by rate or stream limits, {} stored)",
                outcome.rate_limited,
                outcome.accepted + outcome.duplicates
            ),
        )
        .into());
    }
    Ok(outcome)
}

fn add(total: &mut proto::PushResponse, o: PushOutcome) {
    total.accepted += o.accepted;
    total.accepted_bytes += o.accepted_bytes;
    total.duplicates += o.duplicates;
    for r in o.rejected {
        total.rejected += r.entries;
        if total.rejections.len() < MAX_REPORTED {
            total.rejections.push(proto::Rejection {
                stream: r.stream,
                reason: r.reason,
                entries: r.entries,
            });
        }
    }
}

pub(super) async fn push_log(
    app: &Arc<AppState>,
    req: Request<proto::PushLogRequest>,
) -> Result<Response<proto::PushResponse>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    if req.labels.is_empty() {
        return Err(invalid("labels", "at least one label is required"));
    }
    let entry = req.entry.ok_or_else(|| invalid("entry", "required"))?;
    // Checked here so a single bad stream is an error, not a count.
    super::labels_in("labels", req.labels.clone())?;
    let stream = proto::Stream {
        labels: req.labels,
        entries: vec![entry],
    };
    let mut out = proto::PushResponse::default();
    add(&mut out, store(app, &ctx, vec![stream]).await?);
    Ok(Response::new(out))
}

pub(super) async fn push_log_batch(
    app: &Arc<AppState>,
    req: Request<proto::PushLogBatchRequest>,
) -> Result<Response<proto::PushResponse>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    let mut out = proto::PushResponse::default();
    add(&mut out, store(app, &ctx, req.streams).await?);
    Ok(Response::new(out))
}

/// Stores each message before reading the next, so the client is held
/// back by HTTP/2 flow control when the store is slower than it, and
/// everything received before a broken stream is stored.
pub(super) async fn push_log_stream(
    app: &Arc<AppState>,
    req: Request<tonic::Streaming<proto::PushLogBatchRequest>>,
) -> Result<Response<proto::PushResponse>, Status> {
    let ctx = context(app, &req)?;
    ctx.authorize(crate::service::Role::Push)?;
    // What the body reserved of the push budget as it arrived: given back
    // after each stored message, so a long stream does not pile it up.
    let hold = req.extensions().get::<crate::listen::BodyHold>().cloned();
    let mut incoming = req.into_inner();
    let mut out = proto::PushResponse::default();
    loop {
        let msg = match incoming.message().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                // What was received is stored; the client learns how much
                // only if it can still read the answer.
                tracing::info!(error = %e, messages = out.messages, accepted = out.accepted, "push stream broken");
                return Err(Status::aborted(format!(
                    "push stream broken after {} messages ({} entries stored): {e}",
                    out.messages, out.accepted
                )));
            }
        };
        out.messages += 1;
        add(&mut out, store(app, &ctx, msg.streams).await?);
        if let Some(h) = &hold {
            h.release();
        }
    }
    Ok(Response::new(out))
}

pub(super) async fn push_simple_log(
    app: &Arc<AppState>,
    req: Request<proto::PushSimpleLogRequest>,
) -> Result<Response<proto::PushResponse>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    if req.message.is_empty() {
        return Err(invalid("message", "required"));
    }
    if req.service.is_empty() {
        return Err(invalid("service", "required"));
    }
    let mut labels = vec![proto::Label {
        name: "service".into(),
        value: req.service,
    }];
    if !req.level.is_empty() {
        labels.push(proto::Label {
            name: "level".into(),
            value: req.level,
        });
    }
    for (name, value) in req.labels {
        if name == "service" || name == "level" {
            return Err(invalid(
                &format!("labels[{name:?}]"),
                "set it with the field of that name",
            ));
        }
        labels.push(proto::Label { name, value });
    }
    super::labels_in("labels", labels.clone())?;
    let mut fields: Vec<proto::Label> = req
        .fields
        .into_iter()
        .map(|(name, value)| proto::Label { name, value })
        .collect();
    fields.sort_by(|a, b| a.name.cmp(&b.name));
    let stream = proto::Stream {
        labels,
        entries: vec![proto::Entry {
            timestamp_ns: req.timestamp_ns,
            line: req.message,
            structured_metadata: fields,
        }],
    };
    let mut out = proto::PushResponse::default();
    add(&mut out, store(app, &ctx, vec![stream]).await?);
    Ok(Response::new(out))
}
