//! Push: streams of entries into the store, with partial acceptance.
//!
//! Every valid stream and entry is stored; refused streams (labels that do
//! not parse, or what the store's validation refuses) come back as
//! rejections, each naming the stream and why. [`report`] is the one text
//! of a partial refusal, [`refusal`] its error (429 when a rate or stream
//! limit refused entries).
//!
//! Every push path ends in [`store_batches`]: discovery (service name,
//! level, the tenant's settings) runs on the batches before the store.
//! A push decoded from a compressed body holds its reservation of the
//! decompression budget (`crate::admission`) until it is stored.

use super::{Context, ErrorCode, Role, ServiceError, blocking};
use crate::AppState;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use skald_model::{Entry, LabelSet, TenantId};
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

/// The decompression budget's reservation for one push body: decode
/// within it, then hand it to [`push`], which releases it once stored.
pub fn reservation(app: &AppState) -> skald_wire::Reservation {
    app.admission.push_budget(&app.config).start()
}

/// Stores the streams for the context's tenant (role `push`). `held`:
/// what decoding them reserved of the decompression budget, released
/// when they are stored.
pub async fn push(
    app: &Arc<AppState>,
    ctx: &Context,
    streams: Vec<PushStream>,
    held: Option<skald_wire::Reservation>,
) -> Result<PushOutcome, ServiceError> {
    let tenant = ctx.tenant_for(Role::Push)?;
    let app = app.clone();
    blocking(move || {
        let _held_until_stored = held;
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
        app.metrics.refused(&tenant, "invalid_labels", refused);
        let mut outcome = store_batches(&app, &tenant, batches)?;
        rejected.append(&mut outcome.rejected);
        outcome.rejected = rejected;
        Ok(outcome)
    })
    .await
}

/// Stores an OTLP logs request for the context's tenant (role `push`):
/// mapped by the tenant's `otlp_config`, then as any push. `held` as for
/// [`push`].
pub async fn push_otlp(
    app: &Arc<AppState>,
    ctx: &Context,
    req: ExportLogsServiceRequest,
    held: Option<skald_wire::Reservation>,
) -> Result<PushOutcome, ServiceError> {
    let tenant = ctx.tenant_for(Role::Push)?;
    let app = app.clone();
    blocking(move || {
        let _held_until_stored = held;
        let rules = app
            .ingest
            .for_tenant(&tenant)
            .otlp_config
            .rules()
            .map_err(|e| ServiceError::internal(format!("otlp_config: {e}")))?;
        let (batches, _) = crate::otlp::map_request(req, &rules, skald_model::Timestamp::now())
            .map_err(|e| ServiceError::bad_request(e.0))?;
        store_batches(&app, &tenant, batches)
    })
    .await
}

/// The end of every push path: discovery on the batches, then the store.
/// Blocking.
pub(crate) fn store_batches(
    app: &AppState,
    tenant: &TenantId,
    mut batches: Vec<StreamBatch>,
) -> Result<PushOutcome, ServiceError> {
    crate::discovery::apply(&app.ingest.for_tenant(tenant), &mut batches);
    let outcome = app.store.push(tenant, batches)?;
    app.metrics
        .ingested(tenant, outcome.accepted, outcome.accepted_bytes);
    for r in &outcome.rejected {
        app.metrics
            .refused(tenant, discard_reason(&r.reason), r.entries);
    }
    Ok(outcome)
}

/// The reason of a refusal as Loki names it in its discarded-samples
/// metric, from the store's message (the limit's key it names).
pub fn discard_reason(message: &str) -> &'static str {
    const REASONS: [(&str, &str); 10] = [
        ("ingestion rate limit exceeded", "rate_limited"),
        ("per stream rate limit exceeded", "per_stream_rate_limit"),
        ("maximum active stream limit exceeded", "stream_limit"),
        ("(max_line_size)", "line_too_long"),
        ("(max_label_names_per_series)", "max_label_names_per_series"),
        ("label name too long", "label_name_too_long"),
        ("label value too long", "label_value_too_long"),
        ("timestamp too old", "greater_than_max_sample_age"),
        ("timestamp too new", "too_far_in_future"),
        ("too far behind", "out_of_order"),
    ];
    REASONS
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map_or("invalid", |(_, reason)| reason)
}

/// The refusal of a push refused in part or whole (`None` when nothing
/// was): RATE_LIMITED (429) when a rate or stream limit refused entries,
/// Loki's answer, so clients back off and retry instead of dropping the
/// batch; INVALID_ARGUMENT (400) otherwise.
pub fn refusal(outcome: &PushOutcome) -> Option<ServiceError> {
    let message = report(outcome)?;
    Some(if outcome.rate_limited > 0 {
        ServiceError::new(ErrorCode::RateLimited, message)
    } else {
        ServiceError::bad_request(message)
    })
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
