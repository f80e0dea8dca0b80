//! Push: streams of entries into the store, with partial acceptance.
//!
//! Every valid stream and entry is stored; refused streams (labels that do
//! not parse, or what the store's validation refuses) come back as
//! rejections, each naming the stream and why. [`report`] is the one text
//! of a partial refusal.

use super::{Context, Role, ServiceError, blocking};
use crate::AppState;
use skald_model::{Entry, LabelSet};
use skald_store::{PushOutcome, Rejection, StreamBatch};
use std::sync::Arc;

/// Rejections listed in an answer (HTTP's message, gRPC's list) before
/// "and N more".
pub const MAX_REPORTED: usize = 10;

/// One stream of a push, its labels parsed by the adapter (or why not).
pub struct PushStream {
    pub labels: Result<LabelSet, RefusedLabels>,
    pub entries: Vec<Entry>,
}

/// Labels that did not parse: as the client sent them, and why.
pub struct RefusedLabels {
    pub shown: String,
    pub reason: String,
}

/// Stores the streams for the context's tenant (role `push`).
pub async fn push(
    app: &Arc<AppState>,
    ctx: &Context,
    streams: Vec<PushStream>,
) -> Result<PushOutcome, ServiceError> {
    let tenant = ctx.tenant_for(Role::Push)?;
    let store = app.store.clone();
    let app = app.clone();
    blocking(move || {
        let mut rejected = Vec::new();
        let mut batches = Vec::with_capacity(streams.len());
        for (i, s) in streams.into_iter().enumerate() {
            match s.labels {
                Ok(labels) => batches.push(StreamBatch {
                    labels,
                    entries: s.entries,
                }),
                Err(r) => rejected.push(Rejection {
                    stream: format!("#{i} {}", truncate(&r.shown, 200)),
                    reason: r.reason,
                    entries: s.entries.len() as u64,
                }),
            }
        }
        let refused: u64 = rejected.iter().map(|r: &Rejection| r.entries).sum();
        app.refused_entries
            .fetch_add(refused, std::sync::atomic::Ordering::Relaxed);
        let mut outcome = store.push(&tenant, batches)?;
        rejected.append(&mut outcome.rejected);
        outcome.rejected = rejected;
        Ok(outcome)
    })
    .await
}

/// The message of a partly refused push: how much was refused and stored,
/// then the first [`MAX_REPORTED`] refused streams and why. `None` when
/// nothing was refused.
pub fn report(outcome: &PushOutcome) -> Option<String> {
    if outcome.rejected.is_empty() {
        return None;
    }
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
    Some(msg)
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
