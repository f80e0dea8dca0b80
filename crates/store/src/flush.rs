//! The flush thread: turns a head taken by the commit thread into one
//! segment per tenant, publishes them in the catalog, and truncates the WAL.
//!
//! Order matters for crash safety: segments are complete and durable in
//! the segment store (a local file written under a temporary name,
//! fsynced and renamed; an object uploaded whole), then they replace the flushed
//! head in the catalog under one lock (queries see either, never both or
//! neither), then the marker `wal-flushed` records the first WAL file still
//! needed, and only then are older WAL files deleted. A crash between any
//! two steps loses nothing; at worst entries are replayed that a segment
//! also holds, and reads drop such exact duplicates.

use crate::commit::FlushJob;
use crate::head::HeadBlock;
use crate::segment::{NewSegment, Segment};
use crate::{Shared, StoreError};
use skald_model::{Entry, TenantId};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

pub(crate) fn run(shared: Arc<Shared>, jobs: Receiver<FlushJob>, wake_compactor: SyncSender<()>) {
    while let Ok(job) = jobs.recv() {
        let mut delay = Duration::from_millis(500);
        loop {
            match flush(&shared, &job) {
                Ok(()) => {
                    let _ = wake_compactor.try_send(());
                    break;
                }
                Err(e) if shared.closing.load(Ordering::Relaxed) => {
                    // Retrying could hold the shutdown for minutes (a full
                    // disk); the WAL keeps the entries for the next start.
                    shared.counters.flush_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "flush failed while shutting down; giving up, the wal keeps the entries");
                    shared.flush_abandoned.store(true, Ordering::Relaxed);
                    shared.flushed.notify_all();
                    break;
                }
                Err(e) => {
                    shared.counters.flush_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, retry_in = ?delay, "flush failed; the head and wal keep the entries");
                    sleep_unless_closing(&shared, delay);
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
        // The flushed head's blocks are freed with the job (unless a query
        // still holds some): give their pages back now, not at the next
        // allocation of the same size.
        drop(job);
        crate::alloc::trim();
    }
}

/// Sleeps for `delay`, or less if the store starts closing meanwhile.
fn sleep_unless_closing(shared: &Shared, delay: Duration) {
    let until = Instant::now() + delay;
    while !shared.closing.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

fn flush(shared: &Shared, job: &FlushJob) -> Result<(), StoreError> {
    let started = Instant::now();
    let config = &shared.config;
    let mut written: Vec<(TenantId, Arc<Segment>)> = Vec::new();
    let mut tenants: Vec<&TenantId> = job.head.tenants.keys().collect();
    tenants.sort();
    for tenant in tenants {
        let streams = &job.head.tenants[tenant];
        let mut segment = NewSegment::create(shared, tenant, config.zstd_level)?;
        let mut order: Vec<_> = streams.values().collect();
        order.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, blocks) in order {
            let entries = merge_blocks(blocks);
            if !entries.is_empty() {
                segment.writer().add_chunk(labels, &entries)?;
            }
        }
        written.push((tenant.clone(), segment.publish(shared, tenant)?));
    }

    {
        let mut state = shared.state.write();
        for (tenant, seg) in written {
            state.catalog.publish(&tenant, seg);
        }
        state.flushing = None;
        state.flushes_done = job.number;
    }
    shared.counters.flushes.fetch_add(1, Ordering::Relaxed);
    shared.flushed.notify_all();

    write_marker(&config.flushed_marker(), job.wal_seq)?;
    skald_wal::remove_files_before(&config.wal_dir(), job.wal_seq)?;
    tracing::debug!(
        bytes = job.head.bytes,
        took_ms = started.elapsed().as_millis() as u64,
        "flushed the head"
    );
    Ok(())
}

/// The entries of a stream's blocks in time order; entries with equal
/// timestamps keep their arrival order.
fn merge_blocks(blocks: &[Arc<HeadBlock>]) -> Vec<Entry> {
    let n = blocks.iter().map(|b| b.len()).sum();
    let mut out = Vec::with_capacity(n);
    for b in blocks {
        out.extend(b.entries());
    }
    out.sort_by_key(|e| e.ts);
    out
}

/// The first WAL file whose records may not all be in segments.
pub(crate) fn read_marker(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_marker(path: &Path, seq: u64) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        writeln!(f, "{seq}").map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}
