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
//! A thin adapter over `service::cluster`; the client is `skald`'s
//! (`crates/cli/src/cluster.rs`), which decodes it with [`decode`].

use crate::params::{Params, stream_selector};
use crate::service::{Context, cluster};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};
use skald_model::{Entry, Label, LabelSet, Timestamp};
use std::sync::Arc;

/// The endpoint's path.
pub const HEADS_PATH: &str = "/skald/internal/v1/heads";

pub async fn heads(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let ctx = Context::from_http(&app, &headers)?;
    let params = Params::from_request(raw.as_deref(), &Bytes::new());
    // No selector: every stream (label and series answers over all).
    let selector = match params.get("query").filter(|q| !q.is_empty()) {
        Some(q) => stream_selector(q, false)?,
        None => Vec::new(),
    };
    let start = params.time("start")?.unwrap_or(Timestamp(0));
    let end = params.time("end")?.unwrap_or(Timestamp::MAX);
    let bounds_only = params.get("entries") == Some("bounds");
    let streams = cluster::heads(&app, &ctx, selector, start, end).await?;
    let streams: Vec<Value> = streams
        .into_iter()
        .map(|(labels, mut entries)| {
            if bounds_only && entries.len() > 2 {
                let newest = entries.pop().expect("more than two");
                entries.truncate(1);
                entries.push(newest);
            }
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
        .collect();
    Ok(Json(json!({ "streams": streams })))
}

/// Decodes the endpoint's answer.
pub fn decode(body: &[u8]) -> Result<Vec<(LabelSet, Vec<Entry>)>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
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
