//! Deletion: tombstones that hide entries from reads at once and drop them
//! from disk when compaction rewrites their segments.
//!
//! A tombstone names a tenant, a stream selector, an inclusive time range
//! and optionally a line predicate (the compiled line filters of a delete
//! request; the store only calls it). Reads apply tombstones to their
//! snapshot: a source wholly covered is left out, a source partly covered
//! is read, filtered and handed on as an in-memory block. Index answers
//! (labels, series, streams) leave out streams whose every entry is
//! covered. Compaction drops covered entries for good, but only once a
//! tombstone is past its `physical_after` time: until then it can be
//! withdrawn and the data comes back.
//!
//! A tombstone is retired once a retention pass (see `crate::retention`)
//! has rewritten every segment holding covered entries and the head holds
//! none: the data is gone, and reads need not filter any more.
//!
//! Not here: persistence and the request API (the server owns the list of
//! delete requests and registers them here at start).

use crate::{HeadBlock, Snapshot, Source, StreamInfo};
use parking_lot::RwLock;
use skald_model::{Entry, LabelSet, Matcher, TenantId, Timestamp};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A delete request as the catalog keeps it (Loki's `/loki/api/v1/delete`;
/// the server compiles its query into a [`Tombstone`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeleteRequest {
    pub request_id: String,
    pub tenant: String,
    pub query: String,
    /// Inclusive, ns.
    pub start_ns: i64,
    /// Inclusive, ns.
    pub end_ns: i64,
    pub created_ns: i64,
}

/// Decides whether a line is deleted (true) by a line-filtered request.
pub type LinePredicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Entries to hide and eventually drop.
pub struct Tombstone {
    pub id: String,
    pub tenant: TenantId,
    pub matchers: Vec<Matcher>,
    /// Inclusive.
    pub start: Timestamp,
    /// Inclusive.
    pub end: Timestamp,
    /// None: every entry of matching streams in the range.
    pub lines: Option<LinePredicate>,
    /// Compaction drops covered entries only after this time.
    pub physical_after: Timestamp,
    /// Set once a compaction has dropped entries for it.
    pub applied: AtomicBool,
}

impl std::fmt::Debug for Tombstone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tombstone")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("lines", &self.lines.is_some())
            .finish()
    }
}

impl Tombstone {
    fn selects(&self, labels: &LabelSet) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    fn covers(&self, e: &Entry) -> bool {
        e.ts >= self.start && e.ts <= self.end && self.lines.as_ref().is_none_or(|p| p(&e.line))
    }

    pub(crate) fn selects_labels(&self, labels: &LabelSet) -> bool {
        self.selects(labels)
    }

    pub(crate) fn covers_entry(&self, e: &Entry) -> bool {
        self.covers(e)
    }

    /// Whether entries of a stream with these labels in `[min, max]` may be
    /// covered.
    pub(crate) fn overlaps(&self, labels: &LabelSet, min: Timestamp, max: Timestamp) -> bool {
        self.start <= max && min <= self.end && self.selects(labels)
    }

    /// Every entry in `[min, max]` is covered, whatever its line.
    fn covers_span(&self, min: Timestamp, max: Timestamp) -> bool {
        self.lines.is_none() && self.start <= min && max <= self.end
    }
}

#[derive(Default)]
pub(crate) struct Tombstones {
    list: RwLock<Vec<Arc<Tombstone>>>,
    /// (tenant, id) of tombstones retired since the store opened.
    retired: RwLock<Vec<(TenantId, String)>>,
}

impl Tombstones {
    pub fn add(&self, t: Tombstone) {
        let mut list = self.list.write();
        list.retain(|o| !(o.tenant == t.tenant && o.id == t.id));
        list.push(Arc::new(t));
    }

    pub fn remove(&self, tenant: &TenantId, id: &str) -> bool {
        let mut list = self.list.write();
        let before = list.len();
        list.retain(|o| !(&o.tenant == tenant && o.id == id));
        list.len() != before
    }

    /// Takes out a tombstone whose entries are gone from every segment and
    /// the head: reads stop filtering for it. Remembered, so
    /// [`Tombstones::is_retired`] can tell a retired request from an
    /// unknown one.
    pub fn retire(&self, tenant: &TenantId, id: &str) {
        if self.remove(tenant, id) {
            self.retired.write().push((tenant.clone(), id.to_string()));
        }
    }

    pub fn is_retired(&self, tenant: &TenantId, id: &str) -> bool {
        self.retired
            .read()
            .iter()
            .any(|(t, i)| t == tenant && i == id)
    }

    pub fn applied(&self, tenant: &TenantId, id: &str) -> Option<bool> {
        self.list
            .read()
            .iter()
            .find(|o| &o.tenant == tenant && o.id == id)
            .map(|o| o.applied.load(Ordering::Relaxed))
    }

    pub fn of(&self, tenant: &TenantId) -> Vec<Arc<Tombstone>> {
        self.list
            .read()
            .iter()
            .filter(|t| &t.tenant == tenant)
            .cloned()
            .collect()
    }

    /// Whether the index should leave this stream out.
    pub fn hides(list: &[Arc<Tombstone>], info: &StreamInfo) -> bool {
        list.iter()
            .any(|t| t.selects(&info.labels) && t.covers_span(info.min_ts, info.max_ts))
    }
}

/// Applies the tenant's tombstones to a snapshot taken without them.
pub(crate) fn apply_to_snapshot(list: &[Arc<Tombstone>], snap: &mut Snapshot) {
    if list.is_empty() {
        return;
    }
    for stream in &mut snap.streams {
        let relevant: Vec<&Arc<Tombstone>> =
            list.iter().filter(|t| t.selects(&stream.labels)).collect();
        if relevant.is_empty() {
            continue;
        }
        let mut kept = Vec::with_capacity(stream.sources.len());
        for src in stream.sources.drain(..) {
            let (min, max) = (src.min_ts(), src.max_ts());
            let touching: Vec<&&Arc<Tombstone>> = relevant
                .iter()
                .filter(|t| t.start <= max && min <= t.end)
                .collect();
            if touching.is_empty() {
                kept.push(src);
                continue;
            }
            if touching.iter().any(|t| t.covers_span(min, max)) {
                continue;
            }
            let entries = match crate::Store::read_source(&src) {
                Ok(e) => e,
                Err(e) => {
                    // The query reads it again and reports the error.
                    tracing::warn!(error = %e, "could not apply a delete to an unreadable chunk");
                    kept.push(src);
                    continue;
                }
            };
            let mut block = HeadBlock::new();
            for e in entries {
                if !touching.iter().any(|t| t.covers(&e)) {
                    block.push(&e);
                }
            }
            if !block.is_empty() {
                kept.push(Source::Head(Arc::new(block.sorted())));
            }
        }
        stream.sources = kept;
    }
    snap.streams.retain(|s| !s.sources.is_empty());
}

/// Drops the entries of one stream that tombstones past their
/// `physical_after` time cover (compaction).
pub(crate) fn drop_deleted(
    tombstones: &Tombstones,
    tenant: &TenantId,
    labels: &LabelSet,
    mut entries: Vec<Entry>,
) -> Vec<Entry> {
    let now = Timestamp::now();
    let list: Vec<Arc<Tombstone>> = tombstones
        .of(tenant)
        .into_iter()
        .filter(|t| t.physical_after <= now && t.selects(labels))
        .collect();
    if list.is_empty() {
        return entries;
    }
    let before = entries.len();
    entries.retain(|e| !list.iter().any(|t| t.covers(e)));
    if entries.len() != before {
        for t in &list {
            t.applied.store(true, Ordering::Relaxed);
        }
    }
    entries
}
