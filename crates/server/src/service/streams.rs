//! Streams: listing with their time spans, and one stream's details.

use super::{Context, Role, ServiceError, blocking};
use crate::AppState;
use skald_model::{LabelSet, MatchOp, Matcher, StreamId, Timestamp};
use skald_store::Source;
use std::sync::Arc;

/// One stream and the time span of its entries.
pub struct StreamSummary {
    pub labels: LabelSet,
    pub id: StreamId,
    pub first: Timestamp,
    pub last: Timestamp,
}

/// A stream's details: its span and what it holds.
pub struct StreamDetails {
    pub summary: StreamSummary,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// The tenant's streams matching `matchers` (all when empty), sorted by
/// labels.
pub async fn list(
    app: &Arc<AppState>,
    ctx: &Context,
    matchers: Vec<Matcher>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<StreamSummary>, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    let store = app.store.clone();
    let mut out: Vec<StreamSummary> = blocking(move || {
        Ok(store
            .streams(&tenant, &matchers, start, end)
            .into_iter()
            .map(|s| StreamSummary {
                labels: s.labels,
                id: s.id,
                first: s.min_ts,
                last: s.max_ts,
            })
            .collect())
    })
    .await?;
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// Text form of a stream id (16 hex digits).
pub fn id_text(id: StreamId) -> String {
    format!("{:016x}", id.0)
}

/// One stream of the tenant; another tenant's stream is not found.
pub async fn details(
    app: &Arc<AppState>,
    ctx: &Context,
    wanted: StreamId,
) -> Result<StreamDetails, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    let store = app.store.clone();
    blocking(move || {
        let Some(s) = store
            .streams(&tenant, &[], Timestamp::MIN, Timestamp::MAX)
            .into_iter()
            .find(|s| s.id == wanted)
        else {
            return Err(ServiceError::not_found(format!(
                "no stream {} for this tenant",
                id_text(wanted)
            )));
        };
        let matchers: Vec<Matcher> = s
            .labels
            .labels()
            .iter()
            .map(|l| Matcher::new(l.name.clone(), MatchOp::Eq, l.value.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| ServiceError::internal(e.to_string()))?;
        let snap = store.snapshot(&tenant, &matchers, Timestamp::MIN, Timestamp::MAX);
        let mut out = StreamDetails {
            summary: StreamSummary {
                labels: s.labels.clone(),
                id: s.id,
                first: s.min_ts,
                last: s.max_ts,
            },
            chunks: 0,
            entries: 0,
            bytes: 0,
        };
        for src in snap
            .streams
            .iter()
            .filter(|x| x.id == wanted)
            .flat_map(|x| &x.sources)
        {
            out.chunks += 1;
            match src {
                Source::Head(b) => {
                    out.entries += b.len() as u64;
                    out.bytes += b.raw_bytes() as u64;
                }
                Source::Chunk(c) => {
                    let m = c.segment.chunk(c.at);
                    out.entries += m.entries as u64;
                    out.bytes += m.raw_bytes;
                }
            }
        }
        Ok(out)
    })
    .await
}
