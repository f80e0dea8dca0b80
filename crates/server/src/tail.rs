//! Live tail, shared by `GET /loki/api/v1/tail` (websocket) and the gRPC
//! `TailLogs`.
//!
//! A tail subscribes to the store first (so nothing stored after the
//! history query is missed), sends up to `limit` entries from `start` as
//! history, then forwards what the store publishes as entries become
//! durable, through the query's whole pipeline. Entries the history
//! already held are not sent twice. In a cluster the subscription also
//! follows every other ingest node (`skald_store::cluster::PeerHeads::follow`),
//! so a tail on any node sees what any node is pushed.
//!
//! Memory stays bounded at every step: the store's queue per tail holds at
//! most [`QUEUE_ENTRIES`] entries and counts the rest as dropped (ingest
//! never waits for a tail); between this task and the connection sits a
//! channel of a few messages. A client that reads too slowly fills that
//! channel, this task waits, and the store's queue overflows into
//! dropped-entry counts, which the client receives as Loki's
//! `dropped_entries`.
//!
//! The websocket message format is Loki's:
//! `{"streams":[{"stream":{...},"values":[["<ns>","line"]]}],"dropped_entries":[{"labels":{...},"timestamp":"<ns>"}]}`.

use crate::params::Params;
use crate::service::query::{
    ParsedLogQuery, keep_newest_or_oldest, pick_tenants, plain_streams, run_logs, with_tenant_label,
};
use crate::service::tail::TailParams;
use crate::service::{Context, ServiceError};
use crate::{ApiError, AppState};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use skald_model::{Entry, LabelSet, TenantId, Timestamp};
use skald_query::Direction;
use skald_store::Subscription;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Entries a tail's store queue holds before counting drops (bytes are
/// bounded too: `tail_queue_bytes`).
pub const QUEUE_ENTRIES: usize = 10_000;
/// Live tails ended because their client stopped reading.
pub static TAILS_DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Messages between the tail task and its connection.
const CHANNEL_MESSAGES: usize = 4;
/// Loki's limit on `delay_for`.
pub const MAX_DELAY_SECS: u64 = 5;
/// How long a tail waits for the other ingest nodes to start forwarding
/// their entries (an unreachable one is skipped, and retried).
const FOLLOW_WAIT: Duration = Duration::from_secs(3);

/// What a tail asks for, parsed.
pub struct TailRequest {
    /// One tenant, or several (`a|b`): then every stream sent carries its
    /// tenant's `__tenant_id__`, as a multi-tenant query's do.
    pub tenants: Vec<TenantId>,
    pub query: ParsedLogQuery,
    pub limit: usize,
    pub start: Timestamp,
    pub delay: Duration,
}

/// Entries of one stream dropped for a slow reader.
pub struct DroppedOut {
    pub labels: LabelSet,
    pub first_ts: Timestamp,
    pub count: u64,
}

/// One message to the client.
#[derive(Default)]
pub struct TailMessage {
    pub streams: Vec<(LabelSet, Vec<Entry>)>,
    pub dropped: Vec<DroppedOut>,
}

/// A running tail: its messages, and why it ended if the server ended it.
pub struct Tail {
    pub messages: mpsc::Receiver<Result<TailMessage, String>>,
    /// Set before `messages` closes when the tail was dropped for a client
    /// that did not read.
    pub ended: Arc<std::sync::OnceLock<String>>,
    /// How long a send to the client may wait.
    pub max_stall: Duration,
}

impl Tail {
    /// Records that the client stopped reading; returns the reason.
    pub fn drop_slow(ended: &std::sync::OnceLock<String>, max_stall: Duration) -> String {
        let reason = format!(
            "slow reader: nothing read for {}s (tail_max_stall_secs)",
            max_stall.as_secs()
        );
        // Both ends may notice; the tail is counted once.
        let mut first = false;
        let reason = ended
            .get_or_init(|| {
                first = true;
                reason
            })
            .clone();
        if first {
            TAILS_DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(%reason, "tail dropped");
        }
        reason
    }
}

/// Starts a tail; messages arrive on the receiver until it is dropped.
/// Errors in the query come back before anything starts.
pub async fn start(app: Arc<AppState>, req: TailRequest) -> Result<Tail, ServiceError> {
    let pipeline = Arc::new(req.query.pipeline("query")?);
    let notify = Arc::new(Notify::new());
    let multi = req.tenants.len() > 1;
    // The label a stream of `tenant` is sent with.
    let labelled = move |labels: &LabelSet, tenant: &TenantId| {
        if multi {
            with_tenant_label(labels, tenant)
        } else {
            labels.clone()
        }
    };
    let (tenants, selector) = pick_tenants(&req.tenants, &req.query.selector);
    let query = ParsedLogQuery {
        selector,
        stages: req.query.stages.clone(),
    };
    let subs: Vec<(TenantId, Subscription)> = tenants
        .iter()
        .map(|tenant| {
            let notify = notify.clone();
            let sub = app.store.subscribe(
                tenant,
                &query.selector,
                QUEUE_ENTRIES,
                app.config.tail_queue_bytes,
                Box::new(move || notify.notify_one()),
            );
            (tenant.clone(), sub)
        })
        .collect();
    // On a node that follows other ingest nodes, their entries reach the
    // subscriptions once each node answered: the history query starts
    // after that, so nothing falls between the two.
    let subs = tokio::task::spawn_blocking(move || {
        for (_, sub) in &subs {
            sub.wait_following(FOLLOW_WAIT);
        }
        subs
    })
    .await
    .map_err(|e| ServiceError::internal(format!("tail: {e}")))?;
    let max_stall = Duration::from_secs(app.config.tail_max_stall_secs.max(1));
    let ended: Arc<std::sync::OnceLock<String>> = Arc::default();
    let history = if req.limit > 0 {
        let end = Timestamp::now().saturating_add(1);
        let start = req.start.min(end);
        let mut merged: Option<skald_query::LogResult> = None;
        for tenant in &tenants {
            let mut r = run_logs(
                &app,
                tenant.clone(),
                &query,
                start,
                end,
                req.limit,
                Direction::Backward,
                0,
                false,
                None,
            )
            .await?;
            for s in &mut r.streams {
                s.labels = labelled(&s.labels, tenant);
            }
            match &mut merged {
                None => merged = Some(r),
                Some(m) => m.streams.append(&mut r.streams),
            }
        }
        let mut streams = match merged {
            Some(mut r) => {
                keep_newest_or_oldest(&mut r, req.limit);
                plain_streams(r)
            }
            None => Vec::new(),
        };
        for (_, entries) in &mut streams {
            entries.reverse();
        }
        streams
    } else {
        Vec::new()
    };
    let (tx, rx) = mpsc::channel(CHANNEL_MESSAGES);
    let tail = Tail {
        messages: rx,
        ended: ended.clone(),
        max_stall,
    };
    let open = crate::observe::TailGauge::open(&app);
    tokio::spawn(async move {
        let _counted_while_running = open;
        let seen: HashSet<(LabelSet, i64, String)> = history
            .iter()
            .flat_map(|(l, es)| es.iter().map(move |e| (l.clone(), e.ts.0, e.line.clone())))
            .collect();
        if tx
            .send(Ok(TailMessage {
                streams: history,
                dropped: Vec::new(),
            }))
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::select! {
                _ = notify.notified() => {}
                _ = tx.closed() => return,
            }
            if !req.delay.is_zero() {
                tokio::time::sleep(req.delay).await;
            }
            let mut by_stream: BTreeMap<LabelSet, Vec<Entry>> = BTreeMap::new();
            let mut dropped = Vec::new();
            for (tenant, sub) in &subs {
                let batch = sub.drain();
                if batch.is_empty() {
                    continue;
                }
                let mut processor = pipeline.processor();
                for te in batch.entries {
                    let labels: &LabelSet = &te.labels;
                    if !seen.is_empty()
                        && seen.contains(&(
                            labelled(labels, tenant),
                            te.entry.ts.0,
                            te.entry.line.clone(),
                        ))
                    {
                        continue;
                    }
                    let Some(p) = processor.process(
                        te.entry.ts.0,
                        &te.entry.line,
                        labels.labels(),
                        &te.entry.metadata,
                    ) else {
                        continue;
                    };
                    let out_labels = if p.labels_changed {
                        p.label_set().unwrap_or_else(|| labels.clone())
                    } else {
                        labels.clone()
                    };
                    let out_labels = labelled(&out_labels, tenant);
                    let line = p.line.to_string();
                    by_stream.entry(out_labels).or_default().push(Entry {
                        ts: te.entry.ts,
                        line,
                        metadata: te.entry.metadata.clone(),
                    });
                }
                dropped.extend(batch.dropped.into_iter().map(|d| DroppedOut {
                    labels: labelled(&d.labels, tenant),
                    first_ts: d.first_ts,
                    count: d.count,
                }));
            }
            let msg = TailMessage {
                streams: by_stream.into_iter().collect(),
                dropped,
            };
            if msg.streams.is_empty() && msg.dropped.is_empty() {
                continue;
            }
            // A client that reads nothing fills the channel; its queue in
            // the store is bounded, but the tail itself is ended too.
            match tokio::time::timeout(max_stall, tx.send(Ok(msg))).await {
                Ok(Ok(())) => {}
                Ok(Err(_gone)) => return,
                Err(_stalled) => {
                    Tail::drop_slow(&ended, max_stall);
                    return;
                }
            }
        }
    });
    Ok(tail)
}

fn labels_json(ls: &LabelSet) -> BTreeMap<&str, &str> {
    ls.labels()
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

/// Loki's websocket message.
pub fn message_json(m: &TailMessage) -> Value {
    let streams: Vec<Value> = m
        .streams
        .iter()
        .map(|(labels, entries)| {
            json!({
                "stream": labels_json(labels),
                "values": entries
                    .iter()
                    .map(|e| json!([e.ts.0.to_string(), e.line]))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut out = json!({ "streams": streams });
    if !m.dropped.is_empty() {
        out["dropped_entries"] = m
            .dropped
            .iter()
            .map(|d| {
                json!({
                    "labels": labels_json(&d.labels),
                    "timestamp": d.first_ts.0.to_string(),
                    "count": d.count,
                })
            })
            .collect();
    }
    out
}

/// The websocket subprotocol a browser offers to pass credentials (see
/// [`subprotocol_credentials`]); the upgrade answers with it.
pub const WS_PROTOCOL: &str = "skald.tail";
const WS_BEARER_PREFIX: &str = "skald.bearer.";
const WS_TENANT_PREFIX: &str = "skald.tenant.";

/// A browser cannot set headers on a websocket, so a page offers its
/// credentials as subprotocols (as Kubernetes' API server takes a bearer
/// token): [`WS_PROTOCOL`], `skald.bearer.<token>` and
/// `skald.tenant.<tenant>`, both values base64url without padding. They
/// become the `Authorization` and `X-Scope-OrgID` headers the request does
/// not already carry (headers win).
pub fn subprotocol_credentials(headers: &HeaderMap) -> Result<HeaderMap, ApiError> {
    use base64::Engine as _;
    let mut out = headers.clone();
    let offered = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    for protocol in offered {
        let (name, value, encoded) = if let Some(v) = protocol.strip_prefix(WS_BEARER_PREFIX) {
            ("authorization", "Bearer ", v)
        } else if let Some(v) = protocol.strip_prefix(WS_TENANT_PREFIX) {
            ("x-scope-orgid", "", v)
        } else {
            continue;
        };
        if headers.contains_key(name) {
            continue;
        }
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|text| format!("{value}{text}").parse().ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "websocket subprotocol {}...: not base64url text",
                    &protocol[..protocol.len() - encoded.len()]
                ))
            })?;
        out.insert(name, decoded);
    }
    Ok(out)
}

/// `GET /loki/api/v1/tail`: `query`, `delay_for` (seconds, at most 5),
/// `limit` (history entries, default 100), `start` (default an hour ago).
/// The websocket upgrade carries the same credentials as any request, as
/// headers or, from a browser, as subprotocols ([`subprotocol_credentials`]).
pub async fn tail(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Credentials first: an unauthenticated caller learns nothing more.
    let headers = subprotocol_credentials(&headers)?;
    let ctx = Context::from_http(&app, &headers)?;
    let ws = match ws {
        Ok(ws) => ws.protocols([WS_PROTOCOL]),
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let params = Params::from_request(raw.as_deref(), &bytes::Bytes::new());
    let query = params
        .get("query")
        .ok_or_else(|| ApiError::bad_request("missing parameter \"query\""))?
        .to_string();
    let limit = params
        .get("limit")
        .map(|v| {
            v.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid parameter \"limit\": {v:?}")))
        })
        .transpose()?;
    let delay_secs = match params.get("delay_for") {
        None => 0,
        Some(v) => v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("invalid parameter \"delay_for\": {v:?}"))
        })?,
    };
    let p = TailParams {
        query,
        limit,
        start: params.time("start")?,
        delay_secs,
    };
    let tail = crate::service::tail::start(&app, &ctx, p).await?;
    Ok(ws.on_upgrade(move |socket| forward(socket, tail)))
}

async fn forward(mut socket: WebSocket, tail: Tail) {
    let Tail {
        messages: mut rx,
        ended,
        max_stall,
    } = tail;
    // Sends under the stall bound: a client that does not read is not
    // waited for.
    let close = |reason: String| {
        Message::Close(Some(axum::extract::ws::CloseFrame {
            // 1008: policy violation.
            code: 1008,
            reason: reason.into(),
        }))
    };
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else {
                    if let Some(reason) = ended.get() {
                        let bye = socket.send(close(reason.clone()));
                        let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
                    }
                    return;
                };
                let text = match msg {
                    Ok(m) => message_json(&m).to_string(),
                    Err(e) => {
                        let _ = socket.send(Message::Close(None)).await;
                        tracing::info!(error = %e, "tail ended");
                        return;
                    }
                };
                match tokio::time::timeout(max_stall, socket.send(Message::Text(text.into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_stalled) => {
                        let reason = Tail::drop_slow(&ended, max_stall);
                        let bye = socket.send(close(reason));
                        let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
                        return;
                    }
                }
            }
            incoming = socket.recv() => {
                match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod subprotocol_tests {
    use super::*;

    fn offered(protocols: &str, extra: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("sec-websocket-protocol", protocols.parse().unwrap());
        for (k, v) in extra {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn subprotocols_become_credentials_unless_headers_say_otherwise() {
        // "s3cret/+=" and "blue|green" in base64url.
        let h = offered(
            "skald.tail, skald.bearer.czNjcmV0Lys9, skald.tenant.Ymx1ZXxncmVlbg",
            &[],
        );
        let out = subprotocol_credentials(&h).unwrap();
        assert_eq!(out["authorization"], "Bearer s3cret/+=");
        assert_eq!(out["x-scope-orgid"], "blue|green");
        let h = offered(
            "skald.tail, skald.bearer.czNjcmV0Lys9, skald.tenant.Ymx1ZXxncmVlbg",
            &[("authorization", "Bearer header"), ("x-scope-orgid", "red")],
        );
        let out = subprotocol_credentials(&h).unwrap();
        assert_eq!(out["authorization"], "Bearer header");
        assert_eq!(out["x-scope-orgid"], "red");
        // Other subprotocols are none of ours.
        let out = subprotocol_credentials(&offered("chat, skald.tail", &[])).unwrap();
        assert!(!out.contains_key("authorization"));
    }

    #[test]
    fn a_bad_encoding_is_refused_with_a_reason() {
        let err =
            subprotocol_credentials(&offered("skald.tail, skald.bearer.!!", &[])).unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("skald.bearer."), "{text}");
        assert!(!text.contains("!!"), "the value is not echoed: {text}");
    }
}
