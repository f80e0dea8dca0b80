//! The internal endpoint of a cluster: `GET /skald/internal/v1/heads`
//! (`query` a stream selector, none for every stream, `start`, `end` in ns; `entries=bounds` for
//! only the oldest and newest entry of each stream, what label and series
//! answers need), the head entries of this node, as JSON:
//!
//! ```text
//! {"streams": [{"labels": "{app=\"api\"}",
//!               "entries": [["<ns>", "<line>", [["<name>", "<value>"], ...]], ...]}]}
//! ```
//!
//! `GET /skald/internal/v1/tail` (`query` a stream selector) streams what
//! this node makes durable from the moment it answers, as lines of JSON
//! (one per batch, in the same shape, with `"dropped": [["<labels>",
//! "<first ns>", <count>], ...]` for entries its bounded queue could not
//! hold, and `{}` every few seconds when there is nothing, so a vanished
//! peer is noticed on both sides): a live tail on a query node follows
//! every ingest node through it.
//!
//! A thin adapter over `service::cluster`; the client is `skald`'s
//! (`crates/cli/src/cluster.rs`), which decodes it with [`decode`] and
//! [`decode_tail`].

use crate::params::{Params, stream_selector};
use crate::service::{Context, cluster};
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use skald_model::{Entry, Label, LabelSet, Timestamp};
use std::sync::Arc;
use tokio::sync::Notify;

/// The `query` parameter: a stream selector; none, every stream.
fn selector_param(params: &Params) -> Result<Vec<skald_model::Matcher>, ApiError> {
    match params.get("query").filter(|q| !q.is_empty()) {
        Some(q) => Ok(stream_selector(q, false)?),
        None => Ok(Vec::new()),
    }
}

/// The endpoint's path.
pub const HEADS_PATH: &str = "/skald/internal/v1/heads";
/// The live tail endpoint's path.
pub const TAIL_PATH: &str = "/skald/internal/v1/tail";
/// How often the tail endpoint writes `{}` when it has nothing to send.
pub const TAIL_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(5);

fn streams_json(streams: Vec<(LabelSet, Vec<Entry>)>) -> Vec<Value> {
    streams
        .into_iter()
        .map(|(labels, entries)| {
            let entries: Vec<Value> = entries
                .into_iter()
                .map(|e| {
                    let meta: Vec<[String; 2]> =
                        e.metadata.into_iter().map(|l| [l.name, l.value]).collect();
                    json!([e.ts.0.to_string(), e.line, meta])
                })
                .collect();
            json!({"labels": labels.to_string(), "entries": entries})
        })
        .collect()
}

pub async fn heads(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &Bytes::new());
    // No selector: every stream (label and series answers over all).
    let selector = selector_param(&params)?;
    let start = params.time("start")?.unwrap_or(Timestamp(0));
    let end = params.time("end")?.unwrap_or(Timestamp::MAX);
    let bounds_only = params.get("entries") == Some("bounds");
    let mut streams = cluster::heads(&app, &ctx, selector, start, end).await?;
    if bounds_only {
        for (_, entries) in &mut streams {
            if entries.len() > 2 {
                let newest = entries.pop().expect("more than two");
                entries.truncate(1);
                entries.push(newest);
            }
        }
    }
    Ok(Json(json!({ "streams": streams_json(streams) })))
}

pub async fn tail(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &Bytes::new());
    let selector = selector_param(&params)?;
    let notify = Arc::new(Notify::new());
    let waker = {
        let notify = notify.clone();
        Box::new(move || notify.notify_one())
    };
    // Subscribed before the answer starts: the asking node knows that
    // from the response's headers on, nothing is missed.
    let sub = cluster::follow(&app, &ctx, selector, waker)?;
    // Two lines in flight at most: a peer that reads slowly makes this
    // task wait, and the subscription's bounded queue count drops.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(2);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::timeout(TAIL_KEEPALIVE, notify.notified()) => {}
                _ = tx.closed() => return,
            }
            if tx.send(Ok(tail_line(&sub))).await.is_err() {
                return;
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response())
}

/// What `sub` holds now, as one line of the tail endpoint.
fn tail_line(sub: &skald_store::Subscription) -> Bytes {
    let batch = sub.drain();
    let mut by_stream: std::collections::BTreeMap<LabelSet, Vec<Entry>> = Default::default();
    for te in batch.entries {
        by_stream
            .entry((*te.labels).clone())
            .or_default()
            .push(te.entry);
    }
    let mut line = json!({});
    if !by_stream.is_empty() {
        line["streams"] = Value::Array(streams_json(by_stream.into_iter().collect()));
    }
    if !batch.dropped.is_empty() {
        line["dropped"] = batch
            .dropped
            .iter()
            .map(|d| json!([d.labels.to_string(), d.first_ts.0.to_string(), d.count]))
            .collect();
    }
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// One line of the tail endpoint: its streams and its dropped counts
/// (labels, first timestamp, count).
pub type TailLine = (Vec<(LabelSet, Vec<Entry>)>, Vec<(LabelSet, Timestamp, u64)>);

/// Decodes one line of the tail endpoint.
pub fn decode_tail(line: &[u8]) -> Result<TailLine, String> {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Line {
        dropped: Vec<(String, String, u64)>,
    }
    let streams = decode(line)?;
    let parsed: Line = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let dropped = parsed
        .dropped
        .into_iter()
        .map(|(labels, ts, count)| {
            let labels = LabelSet::parse(&labels).map_err(|e| e.to_string())?;
            let ts = ts.parse().map_err(|_| format!("bad timestamp {ts:?}"))?;
            Ok((labels, Timestamp(ts), count))
        })
        .collect::<Result<_, String>>()?;
    Ok((streams, dropped))
}

/// Decodes the endpoint's answer.
pub fn decode(body: &[u8]) -> Result<Vec<(LabelSet, Vec<Entry>)>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        streams: Vec<Stream>,
    }
    #[derive(serde::Deserialize)]
    struct Stream {
        labels: String,
        entries: Vec<WireEntry>,
    }
    /// (ns as a string, line, metadata name/value pairs).
    type WireEntry = (String, String, Vec<(String, String)>);
    let answer: Answer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    answer
        .streams
        .into_iter()
        .map(|s| {
            let labels = LabelSet::parse(&s.labels).map_err(|e| e.to_string())?;
            let entries = s
                .entries
                .into_iter()
                .map(|(ts, line, meta)| {
                    Ok(Entry {
                        ts: Timestamp(ts.parse().map_err(|_| format!("bad timestamp {ts:?}"))?),
                        line,
                        metadata: meta.into_iter().map(|(n, v)| Label::new(n, v)).collect(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok((labels, entries))
        })
        .collect()
}
