//! Retention and physical deletion, run by the compaction thread.
//!
//! A pass over each tenant's segments:
//!
//! - **Time retention**: each stream keeps entries for its period
//!   (`retention_stream` rule or the tenant's `retention_period`, see
//!   `Limits::retention_for`). A segment whose every chunk is past its
//!   stream's cut-off is deleted whole; one with some expired chunks or
//!   entries is rewritten without them.
//! - **Deletes**: a segment holding entries of a tombstone past its
//!   `physical_after` time is rewritten without them. Once a pass finds no
//!   covered entry left in any segment or in the head, the tombstone is
//!   retired: reads stop filtering for it.
//! - **Size**: while a tenant's segments take more than
//!   `retention_max_bytes` on disk, the segment with the oldest data is
//!   deleted (never the newest one: a budget smaller than one segment keeps
//!   that segment). The unit is a segment, so `compact_max_segment_bytes`
//!   bounds how much one step frees.
//!
//! Crash safety is compaction's: a rewrite writes its output under a
//! temporary name, then stores a `<output>.replaces` sidecar naming the
//! input, then publishes the output; the catalog, on load, finishes or
//! forgets a half-done rewrite (see [`crate::catalog`]). A whole-segment
//! deletion is one delete in the segment store after the catalog no
//! longer lists the segment. Either way a crash leaves each entry exactly once or (when
//! expired or deleted) not at all.
//!
//! After a pass changed a tenant's segments its label index is rebuilt, so
//! labels, series and stream lists forget streams with no entry left.
//!
//! Not here: the merge policy (`compact`), the delete API (the server).

use crate::delete::Tombstone;
use crate::index::TenantIndex;
use crate::segment::{NewSegment, Segment};
use crate::{Shared, StoreError};
use skald_model::{Entry, Limits, TenantId, Timestamp};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What one pass reclaimed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_deleted: u64,
    pub segments_rewritten: u64,
    /// Disk bytes freed (inputs minus outputs).
    pub bytes_reclaimed: u64,
    /// Entries dropped for being past their retention or over the size
    /// budget.
    pub entries_expired: u64,
    /// Entries dropped for a delete request.
    pub entries_deleted: u64,
    pub tombstones_retired: u64,
}

impl RetentionReport {
    fn add(&mut self, o: &RetentionReport) {
        self.segments_deleted += o.segments_deleted;
        self.segments_rewritten += o.segments_rewritten;
        self.bytes_reclaimed += o.bytes_reclaimed;
        self.entries_expired += o.entries_expired;
        self.entries_deleted += o.entries_deleted;
        self.tombstones_retired += o.tombstones_retired;
    }

    pub fn is_empty(&self) -> bool {
        self == &RetentionReport::default()
    }
}

/// Runs one pass over every tenant. The caller holds `shared.compacting`.
pub(crate) fn run_pass(shared: &Shared) -> Result<RetentionReport, StoreError> {
    if shared.catalog.shared() {
        // Work on what other nodes published and left, not a stale view.
        crate::refresh_view(shared)?;
    }
    let tenants: Vec<TenantId> = {
        let state = shared.state.read();
        let mut t: Vec<TenantId> = state.catalog.segments.keys().cloned().collect();
        t.extend(state.index.keys().cloned());
        t.sort();
        t.dedup();
        t
    };
    let mut total = RetentionReport::default();
    for tenant in tenants {
        if shared.closing.load(Ordering::Relaxed) {
            break;
        }
        // Another node sharing the catalog may be working on it.
        let Some(_lease) = crate::compact::TenantLease::take(shared, &tenant)? else {
            continue;
        };
        let report = tenant_pass(shared, &tenant)?;
        if !report.is_empty() {
            tracing::info!(
                tenant = %tenant,
                segments_deleted = report.segments_deleted,
                segments_rewritten = report.segments_rewritten,
                bytes_reclaimed = report.bytes_reclaimed,
                entries_expired = report.entries_expired,
                entries_deleted = report.entries_deleted,
                tombstones_retired = report.tombstones_retired,
                "retention and deletes applied"
            );
        }
        total.add(&report);
    }
    let c = &shared.counters;
    c.retention_segments_deleted
        .fetch_add(total.segments_deleted, Ordering::Relaxed);
    c.retention_segments_rewritten
        .fetch_add(total.segments_rewritten, Ordering::Relaxed);
    c.retention_bytes_reclaimed
        .fetch_add(total.bytes_reclaimed, Ordering::Relaxed);
    c.retention_entries_expired
        .fetch_add(total.entries_expired, Ordering::Relaxed);
    c.deleted_entries_dropped
        .fetch_add(total.entries_deleted, Ordering::Relaxed);
    c.tombstones_retired
        .fetch_add(total.tombstones_retired, Ordering::Relaxed);
    Ok(total)
}

/// What to do with one segment.
enum Plan {
    Keep,
    Delete,
    Rewrite,
}

fn tenant_pass(shared: &Shared, tenant: &TenantId) -> Result<RetentionReport, StoreError> {
    let now = Timestamp::now();
    let limits = shared.limiter.limits(tenant);
    let tombstones: Vec<Arc<Tombstone>> = shared
        .tombstones
        .of(tenant)
        .into_iter()
        .filter(|t| t.physical_after <= now)
        .collect();
    let segments: Vec<Arc<Segment>> = {
        let state = shared.state.read();
        state
            .catalog
            .segments
            .get(tenant)
            .cloned()
            .unwrap_or_default()
    };
    // Segments this pass saw or wrote: none holds a covered entry after it.
    let mut seen: HashSet<u64> = segments.iter().map(|s| s.id).collect();
    let mut report = RetentionReport::default();
    for seg in &segments {
        match plan(seg, &limits, &tombstones, now) {
            Plan::Keep => {}
            Plan::Delete => {
                report.entries_expired += seg.summary().entries;
                delete_segment(shared, tenant, seg)?;
                report.segments_deleted += 1;
                report.bytes_reclaimed += seg.disk_bytes;
            }
            Plan::Rewrite => {
                let (r, output) = rewrite(shared, tenant, seg, &limits, &tombstones, now)?;
                seen.extend(output);
                report.add(&r);
            }
        }
    }
    report.add(&size_retention(shared, tenant, &limits)?);
    report.tombstones_retired = retire(shared, tenant, &tombstones, &seen);
    if report.segments_deleted + report.segments_rewritten > 0 {
        rebuild_index(shared, tenant);
    }
    Ok(report)
}

/// The oldest timestamp a stream keeps (MIN: keeps everything).
fn cutoff(limits: &Limits, labels: &skald_model::LabelSet, now: Timestamp) -> Timestamp {
    match limits.retention_for(labels) {
        Some(period) => now.saturating_sub(i64::try_from(period.as_nanos()).unwrap_or(i64::MAX)),
        None => Timestamp::MIN,
    }
}

fn plan(seg: &Segment, limits: &Limits, tombstones: &[Arc<Tombstone>], now: Timestamp) -> Plan {
    let mut all_expired = true;
    let mut some_expired = false;
    let mut touched = false;
    for (labels, id, _, _) in seg.streams() {
        let cut = cutoff(limits, labels, now);
        for at in seg.chunks_of(id, Timestamp::MIN, Timestamp::MAX) {
            let c = seg.chunk(at);
            if c.max_ts < cut {
                some_expired = true;
            } else {
                all_expired = false;
                if c.min_ts < cut {
                    some_expired = true;
                }
            }
            if tombstones
                .iter()
                .any(|t| t.overlaps(labels, c.min_ts, c.max_ts))
            {
                touched = true;
            }
        }
    }
    if all_expired {
        Plan::Delete
    } else if some_expired || touched {
        Plan::Rewrite
    } else {
        Plan::Keep
    }
}

fn delete_segment(
    shared: &Shared,
    tenant: &TenantId,
    seg: &Arc<Segment>,
) -> Result<(), StoreError> {
    crate::segment::delete(shared, tenant, seg)
}

/// Writes `seg` again without expired and deleted entries, and swaps it in;
/// returns the output's id (None: nothing was left).
fn rewrite(
    shared: &Shared,
    tenant: &TenantId,
    seg: &Arc<Segment>,
    limits: &Limits,
    tombstones: &[Arc<Tombstone>],
    now: Timestamp,
) -> Result<(RetentionReport, Option<u64>), StoreError> {
    let mut output = NewSegment::create(shared, tenant, shared.config.settled_zstd_level)?;
    let mut report = RetentionReport {
        segments_rewritten: 1,
        ..Default::default()
    };
    let mut kept_any = false;
    for (labels, sid, _, _) in seg.streams() {
        let cut = cutoff(limits, labels, now);
        let relevant: Vec<&Arc<Tombstone>> = tombstones
            .iter()
            .filter(|t| t.selects_labels(labels))
            .collect();
        let mut kept: Vec<Entry> = Vec::new();
        for at in seg.chunks_of(sid, Timestamp::MIN, Timestamp::MAX) {
            let c = seg.chunk(at);
            if c.max_ts < cut {
                report.entries_expired += c.entries as u64;
                continue;
            }
            let entries = seg.read_chunk(at)?;
            for e in entries {
                if e.ts < cut {
                    report.entries_expired += 1;
                } else if relevant.iter().any(|t| t.covers_entry(&e)) {
                    report.entries_deleted += 1;
                } else {
                    kept.push(e);
                }
            }
        }
        if kept.is_empty() {
            continue;
        }
        kept.sort_by_key(|e| e.ts);
        output.writer().add_chunk(labels, &kept)?;
        kept_any = true;
    }
    if report.entries_deleted > 0 {
        for t in tombstones {
            t.applied.store(true, Ordering::Relaxed);
        }
    }
    if !kept_any {
        // Nothing left: no output (its temporary file goes with it); the
        // input goes as a whole-segment deletion.
        drop(output);
        delete_segment(shared, tenant, seg)?;
        report.segments_rewritten = 0;
        report.segments_deleted = 1;
        report.bytes_reclaimed = seg.disk_bytes;
        return Ok((report, None));
    }
    let output = output.replace(shared, tenant, std::slice::from_ref(seg))?;
    let (id, out_bytes) = (output.id, output.disk_bytes);
    report.bytes_reclaimed = seg.disk_bytes.saturating_sub(out_bytes);
    Ok((report, Some(id)))
}

/// Deletes the segments with the oldest data while the tenant's segments
/// take more than `retention_max_bytes`; the newest segment stays.
fn size_retention(
    shared: &Shared,
    tenant: &TenantId,
    limits: &Limits,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    if limits.retention_max_bytes == 0 {
        return Ok(report);
    }
    let mut segs: Vec<Arc<Segment>> = {
        let state = shared.state.read();
        state
            .catalog
            .segments
            .get(tenant)
            .cloned()
            .unwrap_or_default()
    };
    let mut total: u64 = segs.iter().map(|s| s.disk_bytes).sum();
    segs.sort_by_key(|s| (s.max_ts, s.id));
    let newest = segs.pop();
    for seg in segs {
        if total <= limits.retention_max_bytes {
            break;
        }
        delete_segment(shared, tenant, &seg)?;
        total -= seg.disk_bytes;
        report.segments_deleted += 1;
        report.bytes_reclaimed += seg.disk_bytes;
        report.entries_expired += seg.summary().entries;
    }
    if total > limits.retention_max_bytes && newest.is_some() {
        tracing::warn!(tenant = %tenant, bytes = total, retention_max_bytes = limits.retention_max_bytes, "the newest segment alone is over retention_max_bytes; it is kept");
    }
    Ok(report)
}

/// Retires tombstones with no covered entry left: none in a segment that
/// this pass did not see (written since) and none in the head. Returns how
/// many it retired.
fn retire(
    shared: &Shared,
    tenant: &TenantId,
    tombstones: &[Arc<Tombstone>],
    seen: &HashSet<u64>,
) -> u64 {
    let mut retired = 0;
    for t in tombstones {
        let state = shared.state.read();
        let newer_segment = state
            .catalog
            .segments
            .get(tenant)
            .into_iter()
            .flatten()
            .filter(|s| !seen.contains(&s.id))
            .any(|s| {
                s.streams()
                    .any(|(labels, _, min, max)| t.overlaps(labels, min, max))
            });
        if newer_segment {
            continue;
        }
        let head = state
            .head
            .tenants
            .get(tenant)
            .into_iter()
            .flatten()
            .any(|(_, s)| {
                t.selects_labels(&s.labels)
                    && s.blocks_in(Timestamp::MIN, Timestamp::MAX)
                        .iter()
                        .any(|b| b.entries().any(|e| t.covers_entry(&e)))
            });
        let flushing = state
            .flushing
            .as_ref()
            .and_then(|f| f.tenants.get(tenant))
            .into_iter()
            .flatten()
            .any(|(_, (labels, blocks))| {
                t.selects_labels(labels)
                    && blocks
                        .iter()
                        .any(|b| b.entries().any(|e| t.covers_entry(&e)))
            });
        drop(state);
        if head || flushing {
            continue;
        }
        shared.tombstones.retire(&t.tenant, &t.id);
        retired += 1;
    }
    retired
}

/// Rebuilds a tenant's label index from its segments and head, so streams
/// with nothing left are forgotten and time bounds shrink.
fn rebuild_index(shared: &Shared, tenant: &TenantId) {
    let mut state = shared.state.write();
    let mut index = TenantIndex::default();
    for seg in state.catalog.segments.get(tenant).into_iter().flatten() {
        for (labels, id, min, max) in seg.streams() {
            index.observe(labels, id, min, max);
        }
    }
    let mut observe_blocks = |labels: &skald_model::LabelSet, blocks: &[Arc<crate::HeadBlock>]| {
        let blocks: Vec<&Arc<crate::HeadBlock>> = blocks.iter().filter(|b| !b.is_empty()).collect();
        if let (Some(min), Some(max)) = (
            blocks.iter().map(|b| b.min_ts()).min(),
            blocks.iter().map(|b| b.max_ts()).max(),
        ) {
            index.observe(labels, labels.stream_id(), min, max);
        }
    };
    if let Some(f) = state.flushing.as_ref().and_then(|f| f.tenants.get(tenant)) {
        for (labels, blocks) in f.values() {
            observe_blocks(labels, blocks);
        }
    }
    if let Some(streams) = state.head.tenants.get(tenant) {
        for s in streams.values() {
            observe_blocks(&s.labels, &s.blocks_in(Timestamp::MIN, Timestamp::MAX));
        }
    }
    if index.len() == 0 {
        state.index.remove(tenant);
    } else {
        state.index.insert(tenant.clone(), index);
    }
}
