//! The compaction thread: merges a tenant's small segments into bigger ones.
//!
//! Each flush writes one segment per tenant holding whatever the head had:
//! with many streams, each stream gets a small chunk per flush, which
//! compresses worse than a big one (zstd has less context) and costs an
//! index entry, a filter and a read per flush at query time. Compaction
//! rewrites groups of segments so that each stream's entries lie in full
//! blocks, in time order, with exact duplicates removed.
//!
//! Policy (size-tiered, as LSM trees do): a segment's tier is
//! `floor(log_fan_in(disk bytes / compact_base_bytes))`; when a tier holds
//! `compact_fan_in` segments, the oldest `compact_fan_in` of them are
//! merged into one segment of the next tier, unless the output would pass
//! `compact_max_segment_bytes`. Every segment is so rewritten about
//! `log_fan_in(size / base)` times in its life.
//!
//! Outputs of tier 2 and up (data that has settled and is rarely rewritten
//! again) are compressed at `settled_zstd_level`, lower tiers at the flush
//! level: ingest-time work stays cheap, long-term bytes small.
//!
//! Crash safety: the output is written under a temporary name; before it
//! is published in the segment store, a sidecar `<output id>.replaces`
//! listing the input ids is stored durably. The catalog, on load, deletes the
//! inputs named by a sidecar whose output exists and drops sidecars whose
//! output does not (see [`crate::catalog`]). The output replaces its inputs
//! in the catalog under one write lock, so a query sees either, never both;
//! queries still reading an input keep its open file (an object store's
//! inputs are deleted too: reads of a deleted input then fail and are
//! reported, so keep such queries short or delay deletes, see
//! `docs/architecture.md`).

use crate::catalog::CatalogError;
use crate::segment::{NewSegment, Segment};
use crate::{Shared, StoreError};
use skald_model::{Entry, LabelSet, StreamId, TenantId, Timestamp};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Raw bytes of a stream's entries gathered before they are written out as
/// one run of blocks: bounds compaction memory per stream.
const MERGE_RUN_BYTES: usize = 8 << 20;

/// Outputs of this tier and up are written at `settled_zstd_level`.
const SETTLED_TIER: u32 = 2;

/// How often the thread looks for work when no flush wakes it.
const IDLE_CHECK: Duration = Duration::from_secs(60);

/// How often segments out of the catalog are checked for queries still
/// reading them (object storage only).
const RETIRED_CHECK: Duration = Duration::from_secs(1);

/// How often the thread looks for work over a shared catalog.
const SHARED_CHECK: Duration = Duration::from_secs(5);

/// A chunk of an input: the input's position and the chunk's place in it.
type InputChunk = (usize, (usize, usize));

/// Runs until `wake` is disconnected (the store closing).
pub(crate) fn run(shared: Arc<Shared>, wake: Receiver<()>) {
    lower_priority(10);
    // Segments whose data could not be read: never picked again.
    let mut broken: HashSet<u64> = HashSet::new();
    let retention_every = Duration::from_secs(shared.config.retention_interval_secs.max(1));
    let mut last_retention: Option<Instant> = None;
    loop {
        // Segments waiting for their last query come back sooner.
        let mut idle = match shared.retired.is_empty() {
            true => IDLE_CHECK.min(retention_every),
            false => RETIRED_CHECK,
        };
        if shared.catalog.shared() {
            // Other nodes' flushes wake no thread here.
            idle = idle.min(SHARED_CHECK);
        }
        match wake.recv_timeout(idle) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if let Err(e) = crate::segment::reap(&shared) {
            tracing::warn!(error = %e, "could not delete a replaced or expired segment; trying again later");
        }
        if !shared.config.role.compact {
            // Another node of the cluster compacts (--target).
            continue;
        }
        if last_retention.is_none_or(|t| t.elapsed() >= retention_every)
            && retention_due(&shared, retention_every)
        {
            last_retention = Some(Instant::now());
            let _one_at_a_time = shared.compacting.lock();
            if let Err(e) = crate::retention::run_pass(&shared) {
                shared
                    .counters
                    .compaction_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "retention pass failed; it runs again at the next interval");
            }
            if let Err(e) = crate::orphans::sweep(&shared) {
                tracing::warn!(error = %e, "could not look for orphan segment objects; trying again at the next interval");
            }
        }
        // Tenants another node holds the lease of, this round.
        let mut busy: HashSet<TenantId> = HashSet::new();
        loop {
            if shared.closing.load(Ordering::Relaxed) {
                return;
            }
            let _one_at_a_time = shared.compacting.lock();
            let Some((tenant, inputs)) = pick(&shared, &broken, &busy) else {
                break;
            };
            let _lease = match TenantLease::take(&shared, &tenant) {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    busy.insert(tenant);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "could not take the compaction lease; trying again later");
                    break;
                }
            };
            match compact(&shared, &tenant, &inputs) {
                Ok(()) => {}
                Err(e) => {
                    shared
                        .counters
                        .compaction_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(tenant = %tenant, error = %e, "compaction failed; the input segments stay as they are");
                    // A read error names a bad input; a write error (disk
                    // full) would repeat at once: either way, leave these
                    // inputs alone until restart.
                    broken.extend(inputs.iter().map(|s| s.id));
                }
            }
        }
    }
}

/// Whether this process runs the retention pass now (one process per
/// interval across a shared catalog).
fn retention_due(shared: &Shared, every: Duration) -> bool {
    match shared.catalog.retention_due(every) {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "could not ask the catalog whether retention is due; trying again later");
            false
        }
    }
}

/// The catalog's lease on a tenant's compaction and retention, released
/// when dropped (the local catalog's is free: the store's `compacting`
/// lock already keeps its one compactor alone).
pub(crate) struct TenantLease<'a> {
    shared: &'a Shared,
    tenant: TenantId,
}

impl<'a> TenantLease<'a> {
    /// The lease, or None while another process holds it.
    pub fn take(shared: &'a Shared, tenant: &TenantId) -> Result<Option<Self>, StoreError> {
        if !shared.catalog.lease_tenant(tenant)? {
            return Ok(None);
        }
        Ok(Some(TenantLease {
            shared,
            tenant: tenant.clone(),
        }))
    }
}

impl Drop for TenantLease<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.shared.catalog.release_tenant(&self.tenant) {
            tracing::warn!(tenant = %self.tenant, error = %e, "could not release the compaction lease; it expires by itself");
        }
    }
}

/// Compaction and other background work: ingest, flushes and queries come
/// first when the CPUs are busy. On Linux a thread has its own nice value,
/// and `setpriority(PRIO_PROCESS, 0, ..)` sets the calling thread's.
pub(crate) fn lower_priority(nice: i32) {
    // SAFETY: setpriority reads no memory of ours; failure only leaves the
    // priority as it was.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower a background thread's priority");
    }
}

/// The tier of a segment of `bytes` bytes.
fn tier(bytes: u64, base: u64, fan_in: u64) -> u32 {
    let mut t = 0;
    let mut limit = base.max(1).saturating_mul(fan_in);
    while bytes >= limit && limit < u64::MAX {
        t += 1;
        limit = limit.saturating_mul(fan_in);
    }
    t
}

/// The next group of segments to merge, if any: the lowest tier first.
pub(crate) fn plan(
    segs: &[(u64, u64)],
    base: u64,
    fan_in: usize,
    max_bytes: u64,
) -> Option<Vec<u64>> {
    if fan_in < 2 {
        return None;
    }
    let mut tiers: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for &(id, bytes) in segs {
        if bytes < max_bytes {
            tiers
                .entry(tier(bytes, base, fan_in as u64))
                .or_default()
                .push((id, bytes));
        }
    }
    for (_, mut group) in tiers {
        if group.len() < fan_in {
            continue;
        }
        group.sort_unstable();
        let chosen = &group[..fan_in];
        if chosen.iter().map(|&(_, b)| b).sum::<u64>() <= max_bytes {
            return Some(chosen.iter().map(|&(id, _)| id).collect());
        }
    }
    None
}

/// Whether any tenant has segments the policy would merge.
pub(crate) fn plan_exists(state: &crate::State, config: &crate::StoreConfig) -> bool {
    state.catalog.segments.values().any(|segs| {
        let candidates: Vec<(u64, u64)> = segs.iter().map(|s| (s.id, s.disk_bytes)).collect();
        plan(
            &candidates,
            config.compact_base_bytes,
            config.compact_fan_in,
            config.compact_max_segment_bytes,
        )
        .is_some()
    })
}

pub(crate) fn pick(
    shared: &Shared,
    broken: &HashSet<u64>,
    busy: &HashSet<TenantId>,
) -> Option<(TenantId, Vec<Arc<Segment>>)> {
    let config = &shared.config;
    let state = shared.state.read();
    let mut tenants: Vec<&TenantId> = state
        .catalog
        .segments
        .keys()
        .filter(|t| !busy.contains(*t))
        .collect();
    tenants.sort();
    for tenant in tenants {
        let segs = &state.catalog.segments[tenant];
        let candidates: Vec<(u64, u64)> = segs
            .iter()
            .filter(|s| !broken.contains(&s.id))
            .map(|s| (s.id, s.disk_bytes))
            .collect();
        if let Some(ids) = plan(
            &candidates,
            config.compact_base_bytes,
            config.compact_fan_in,
            config.compact_max_segment_bytes,
        ) {
            let chosen = segs
                .iter()
                .filter(|s| ids.contains(&s.id))
                .cloned()
                .collect();
            return Some((tenant.clone(), chosen));
        }
    }
    None
}

/// Merges `inputs` (segments of `tenant`) into one new segment. The caller
/// holds `shared.compacting` from [`pick`] to here, and the tenant's
/// [`TenantLease`]. Inputs another node replaced meanwhile are left alone:
/// under a shared catalog the view is brought up to date first, and a
/// replacement that loses a race anyway (a lease that expired) is dropped.
pub(crate) fn compact(
    shared: &Shared,
    tenant: &TenantId,
    inputs: &[Arc<Segment>],
) -> Result<(), StoreError> {
    if shared.catalog.shared() {
        crate::refresh_view(shared)?;
    }
    {
        // Another compaction may have taken some inputs since they were
        // picked.
        let state = shared.state.read();
        let live = state.catalog.segments.get(tenant);
        let all_live = inputs
            .iter()
            .all(|i| live.is_some_and(|segs| segs.iter().any(|s| s.id == i.id)));
        if !all_live {
            return Ok(());
        }
    }
    let started = Instant::now();
    let config = &shared.config;
    let out_bytes_guess: u64 = inputs.iter().map(|s| s.disk_bytes).sum();
    let out_tier = tier(
        out_bytes_guess,
        config.compact_base_bytes,
        config.compact_fan_in.max(2) as u64,
    );
    let level = if out_tier >= SETTLED_TIER {
        config.settled_zstd_level
    } else {
        config.zstd_level
    };
    let mut output = NewSegment::create(shared, tenant, level)?;

    // Every stream of every input, in stream id order, with its chunks.
    let mut streams: BTreeMap<StreamId, (LabelSet, Vec<InputChunk>)> = BTreeMap::new();
    for (n, seg) in inputs.iter().enumerate() {
        for (labels, sid, _, _) in seg.streams() {
            let entry = streams
                .entry(sid)
                .or_insert_with(|| (labels.clone(), Vec::new()));
            for at in seg.chunks_of(sid, Timestamp::MIN, Timestamp::MAX) {
                entry.1.push((n, at));
            }
        }
    }
    let mut run: Vec<Entry> = Vec::new();
    let mut dropped = 0u64;
    for (labels, mut chunks) in streams.into_values() {
        if shared.closing.load(Ordering::Relaxed) {
            // The unfinished output's temporary file goes with it.
            return Ok(());
        }
        chunks.sort_by_key(|&(n, at)| inputs[n].chunk(at).min_ts);
        run.clear();
        let mut run_bytes = 0usize;
        let mut run_max = Timestamp::MIN;
        for (n, at) in chunks {
            let meta = inputs[n].chunk(at);
            // Cut the run only where the next chunk starts after everything
            // in it, so each written run is in time order.
            if run_bytes >= MERGE_RUN_BYTES && meta.min_ts > run_max {
                dropped += write_run(output.writer(), &labels, &mut run)?;
                run_bytes = 0;
            }
            let entries = inputs[n].read_chunk(at)?;
            let entries = crate::delete::drop_deleted(&shared.tombstones, tenant, &labels, entries);
            run_bytes += entries.iter().map(Entry::size).sum::<usize>();
            run_max = run_max.max(meta.max_ts);
            run.extend(entries);
        }
        dropped += write_run(output.writer(), &labels, &mut run)?;
    }

    let output = match output.replace(shared, tenant, inputs) {
        Ok(output) => output,
        Err(StoreError::Catalog(CatalogError::Conflict(why))) => {
            // Another node's output stands; this view catches up.
            tracing::info!(tenant = %tenant, reason = %why, "compaction lost a race; its output was dropped");
            return crate::refresh_view(shared);
        }
        Err(e) => return Err(e),
    };
    let (in_bytes, out_bytes) = (
        inputs.iter().map(|s| s.disk_bytes).sum::<u64>(),
        output.disk_bytes,
    );
    shared.counters.compactions.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(
        tenant = %tenant,
        inputs = inputs.len(),
        in_bytes,
        out_bytes,
        duplicates_dropped = dropped,
        took_ms = started.elapsed().as_millis() as u64,
        "compacted segments"
    );
    Ok(())
}

/// Sorts `run` by time (stably), drops exact duplicates, writes it and
/// empties it. Returns the number of duplicates dropped.
fn write_run(
    writer: &mut skald_chunk::SegmentWriter,
    labels: &LabelSet,
    run: &mut Vec<Entry>,
) -> Result<u64, StoreError> {
    run.sort_by_key(|e| e.ts);
    let before = run.len();
    dedup_equal_timestamps(run);
    writer.add_chunk(labels, run)?;
    let dropped = (before - run.len()) as u64;
    run.clear();
    Ok(dropped)
}

/// Removes entries equal to an earlier one with the same timestamp. `run`
/// is sorted by timestamp.
pub(crate) fn dedup_equal_timestamps(run: &mut Vec<Entry>) {
    let mut out = 0;
    let mut group_start = 0;
    for i in 0..run.len() {
        if i > 0 && run[i].ts != run[out - 1].ts {
            group_start = out;
        }
        let duplicate = run[group_start..out]
            .iter()
            .any(|e| e.line == run[i].line && e.metadata == run[i].metadata);
        if !duplicate {
            run.swap(out, i);
            out += 1;
        }
    }
    run.truncate(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn tiers_grow_by_fan_in() {
        assert_eq!(tier(0, 8 * MB, 4), 0);
        assert_eq!(tier(31 * MB, 8 * MB, 4), 0);
        assert_eq!(tier(32 * MB, 8 * MB, 4), 1);
        assert_eq!(tier(127 * MB, 8 * MB, 4), 1);
        assert_eq!(tier(128 * MB, 8 * MB, 4), 2);
        assert_eq!(tier(u64::MAX, 8 * MB, 4), 20);
    }

    #[test]
    fn plan_merges_the_oldest_of_a_full_tier() {
        let segs = [
            (1, 10 * MB),
            (2, 12 * MB),
            (3, 40 * MB),
            (4, 9 * MB),
            (5, 11 * MB),
            (6, 2 * MB),
        ];
        assert_eq!(plan(&segs, 8 * MB, 4, 1 << 40), Some(vec![1, 2, 4, 5]));
        // Three small ones are not enough.
        assert_eq!(plan(&segs[..4], 8 * MB, 4, 1 << 40), None);
        // Nothing past the size cap, and no output past it.
        assert_eq!(plan(&segs, 8 * MB, 4, 11 * MB), None);
        assert_eq!(plan(&segs, 8 * MB, 4, 30 * MB), None);
        // Disabled.
        assert_eq!(plan(&segs, 8 * MB, 0, 1 << 40), None);
    }

    #[test]
    fn dedup_keeps_first_of_each_equal_entry() {
        let e = |ts: i64, line: &str| Entry {
            ts: Timestamp(ts),
            line: line.into(),
            metadata: Vec::new(),
        };
        let mut run = vec![
            e(1, "a"),
            e(1, "b"),
            e(1, "a"),
            e(2, "a"),
            e(2, "a"),
            e(3, "c"),
            e(3, "b"),
            e(3, "c"),
        ];
        dedup_equal_timestamps(&mut run);
        let got: Vec<(i64, &str)> = run.iter().map(|e| (e.ts.0, e.line.as_str())).collect();
        assert_eq!(got, vec![(1, "a"), (1, "b"), (2, "a"), (3, "c"), (3, "b")]);
    }
}
