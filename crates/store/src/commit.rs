//! The commit thread: the single writer of the WAL and the head.
//!
//! It takes pushes from a bounded channel in groups, checks each entry
//! against its stream's out-of-order window, appends the accepted ones to
//! the WAL, makes the group durable with one fsync, applies it to the head
//! and acknowledges every push of the group. Being the only writer makes
//! the WAL's order the head's order, and the out-of-order check exact.
//!
//! It also decides when the head is flushed (size, age, request) and holds
//! pushes back while a flush is behind (the bound on memory).

use crate::head::FlushingHead;
use crate::record::{self, StreamBatch};
use crate::{PushOutcome, Rejection, Shared, State, StoreError};
use skald_model::{Limits, TenantId, Timestamp};
use skald_wal::Wal;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

pub(crate) enum Command {
    Push {
        tenant: TenantId,
        streams: Vec<StreamBatch>,
        reply: SyncSender<Result<PushOutcome, StoreError>>,
    },
    /// Start a flush of everything; replies with the flush number to wait
    /// for.
    Flush {
        reply: SyncSender<u64>,
    },
    Shutdown {
        reply: SyncSender<()>,
    },
}

/// A flush for the flush thread: the head taken at a WAL rotation; WAL
/// files before `wal_seq` hold nothing else.
pub(crate) struct FlushJob {
    pub head: Arc<FlushingHead>,
    pub wal_seq: u64,
    pub number: u64,
}

/// Checks the tenant's limits that need no state: label counts and sizes,
/// line size (cut to size with `max_line_size_truncate`), timestamps too
/// old or too new. Messages are Loki's. Returns what passes and the
/// outcome so far.
pub(crate) fn validate(
    limits: &Limits,
    streams: Vec<StreamBatch>,
    now: Timestamp,
) -> (Vec<StreamBatch>, PushOutcome) {
    let mut outcome = PushOutcome::default();
    let nanos = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let oldest = if limits.reject_old_samples {
        now.saturating_sub(nanos(limits.reject_old_samples_max_age))
    } else {
        Timestamp::MIN
    };
    let newest = now.saturating_add(nanos(limits.creation_grace_period));
    let max_line = usize::try_from(limits.max_line_size).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(streams.len());
    for mut s in streams {
        let reject_all = |reason: String, outcome: &mut PushOutcome, s: &StreamBatch| {
            outcome.rejected.push(Rejection {
                stream: s.labels.to_string(),
                reason,
                entries: s.entries.len() as u64,
            });
        };
        if let Some(l) = s.labels.labels().iter().find(|l| l.name.starts_with("__")) {
            // Prometheus's convention, and the gRPC contract: such names
            // are the system's own (`__error__`, `__name__`).
            let reason = format!(
                "label name {:?} is reserved: names starting with __ are for internal use",
                l.name
            );
            reject_all(reason, &mut outcome, &s);
            continue;
        }
        if s.labels.len() > limits.max_label_names_per_series {
            let reason = format!(
                "entry for stream '{}' has {} label names; limit {} (max_label_names_per_series)",
                s.labels,
                s.labels.len(),
                limits.max_label_names_per_series
            );
            reject_all(reason, &mut outcome, &s);
            continue;
        }
        if let Some(l) = s
            .labels
            .labels()
            .iter()
            .find(|l| l.name.len() > limits.max_label_name_length)
        {
            let reason = format!(
                "stream '{}' has label name too long: '{}' ({} bytes; max_label_name_length {})",
                crate::limits::shorten(&s.labels.to_string(), 256),
                crate::limits::shorten(&l.name, 64),
                l.name.len(),
                limits.max_label_name_length
            );
            reject_all(reason, &mut outcome, &s);
            continue;
        }
        if let Some(l) = s
            .labels
            .labels()
            .iter()
            .find(|l| l.value.len() > limits.max_label_value_length)
        {
            let reason = format!(
                "stream '{}' has label value too long: '{}' (label {}, {} bytes; max_label_value_length {})",
                crate::limits::shorten(&s.labels.to_string(), 256),
                crate::limits::shorten(&l.value, 64),
                l.name,
                l.value.len(),
                limits.max_label_value_length
            );
            reject_all(reason, &mut outcome, &s);
            continue;
        }
        let mut problems: Vec<(String, u64)> = Vec::new();
        let mut note = |reason: String| match problems.iter_mut().find(|(r, _)| r == &reason) {
            Some((_, n)) => *n += 1,
            None => problems.push((reason, 1)),
        };
        let stream = s.labels.to_string();
        s.entries.retain_mut(|e| {
            if max_line > 0 && e.line.len() > max_line {
                if limits.max_line_size_truncate {
                    let mut end = max_line;
                    while !e.line.is_char_boundary(end) {
                        end -= 1;
                    }
                    e.line.truncate(end);
                } else {
                    note(format!(
                        "max entry size '{max_line}' bytes exceeded for stream '{stream}' while adding an entry with length '{}' bytes (max_line_size)",
                        e.line.len(),
                    ));
                    return false;
                }
            }
            if e.ts < oldest {
                note(format!(
                    "entry for stream '{stream}' has timestamp too old: {}, oldest acceptable timestamp is: {} (reject_old_samples_max_age {})",
                    skald_model::format_rfc3339_nanos(e.ts),
                    skald_model::format_rfc3339_nanos(oldest),
                    crate::limits::show(limits.reject_old_samples_max_age),
                ));
                return false;
            }
            if e.ts > newest {
                note(format!(
                    "entry for stream '{stream}' has timestamp too new: {} (creation_grace_period {})",
                    skald_model::format_rfc3339_nanos(e.ts),
                    crate::limits::show(limits.creation_grace_period),
                ));
                return false;
            }
            true
        });
        for (reason, entries) in problems {
            outcome.rejected.push(Rejection {
                stream: s.labels.to_string(),
                reason,
                entries,
            });
        }
        out.push(s);
    }
    (out, outcome)
}

/// Applies accepted streams to the head and the index (no checks: used for
/// WAL replay and after the WAL append). Returns (entries, bytes,
/// duplicates).
pub(crate) fn apply(
    state: &mut State,
    tenant: &TenantId,
    streams: &[StreamBatch],
) -> (u64, u64, u64) {
    let (mut entries, mut bytes, mut dups) = (0u64, 0u64, 0u64);
    let index = match state.index.get_mut(tenant) {
        Some(i) => i,
        None => state.index.entry(tenant.clone()).or_default(),
    };
    for s in streams {
        if s.entries.is_empty() {
            continue;
        }
        let id = s.labels.stream_id();
        let min = s.entries.iter().map(|e| e.ts).min().unwrap_or_default();
        let max = s.entries.iter().map(|e| e.ts).max().unwrap_or_default();
        index.observe(&s.labels, id, min, max);
        let head = state.head.stream_mut(tenant, &s.labels, id);
        for e in &s.entries {
            match head.push(e) {
                Some(size) => {
                    entries += 1;
                    bytes += size as u64;
                }
                None => dups += 1,
            }
        }
    }
    state.head.bytes += bytes as usize;
    state.head.entries += entries;
    (entries, bytes, dups)
}

struct Pending {
    tenant: TenantId,
    streams: Vec<StreamBatch>,
    outcome: PushOutcome,
    reply: SyncSender<Result<PushOutcome, StoreError>>,
}

pub(crate) fn run(
    shared: Arc<Shared>,
    mut wal: Wal,
    commands: Receiver<Command>,
    jobs: SyncSender<FlushJob>,
) {
    let config = &shared.config;
    let interval = Duration::from_millis(config.fsync_interval_ms.max(1));
    let mut last_sync = Instant::now();
    let mut unsynced = false;
    let mut buf = Vec::new();
    let mut shutdown: Option<SyncSender<()>> = None;
    let mut flush_waiters: Vec<SyncSender<u64>> = Vec::new();
    let mut flush_requested = false;

    loop {
        let first = match commands.recv_timeout(Duration::from_millis(200).min(interval)) {
            Ok(c) => Some(c),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                shutdown_and_exit(&shared, &mut wal, &jobs, None);
                return;
            }
        };
        let mut group: Vec<Pending> = Vec::new();
        let mut group_bytes = 0usize;
        let mut next = first;
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Push {
                    tenant,
                    streams,
                    reply,
                } => {
                    group_bytes += streams
                        .iter()
                        .flat_map(|s| &s.entries)
                        .map(|e| e.line.len() + 16)
                        .sum::<usize>();
                    group.push(Pending {
                        tenant,
                        streams,
                        outcome: PushOutcome::default(),
                        reply,
                    });
                }
                Command::Flush { reply } => {
                    flush_requested = true;
                    flush_waiters.push(reply);
                }
                Command::Shutdown { reply } => {
                    shutdown = Some(reply);
                    break;
                }
            }
            if group_bytes >= config.max_commit_group_bytes {
                break;
            }
            next = commands.try_recv().ok();
        }

        if !group.is_empty() {
            wait_for_room(&shared);
            if let Err(e) = commit_group(&shared, &mut wal, &mut group, &mut buf, &mut unsynced) {
                let msg = e.to_string();
                tracing::error!(error = %msg, "wal append failed; pushes refused");
                for p in group {
                    let _ = p.reply.send(Err(StoreError::WriteFailed(msg.clone())));
                }
            } else {
                for p in group {
                    let _ = p.reply.send(Ok(p.outcome));
                }
            }
        }
        if unsynced && last_sync.elapsed() >= interval {
            let syncing = Instant::now();
            match wal.sync() {
                Ok(()) => {
                    shared.counters.wal_fsync.observe(syncing.elapsed());
                    unsynced = false;
                    last_sync = Instant::now();
                    shared.counters.wal_syncs.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::error!(error = %e, "wal fsync failed"),
            }
        }

        if let Some(reply) = shutdown.take() {
            shutdown_and_exit(&shared, &mut wal, &jobs, Some(reply));
            return;
        }

        let due = {
            let state = shared.state.read();
            state.flushing.is_none()
                && !state.head.is_empty()
                && (flush_requested
                    || state.head.bytes >= config.flush_bytes
                    || state
                        .head_since
                        .is_some_and(|t| t.elapsed() >= config.max_chunk_age()))
        };
        if due {
            flush_requested = false;
            match start_flush(&shared, &mut wal, &jobs) {
                Ok(number) => {
                    for w in flush_waiters.drain(..) {
                        let _ = w.send(number);
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not start a flush"),
            }
        } else if flush_requested && shared.state.read().head.is_empty() {
            // Nothing in the head: the request is answered by whatever
            // flush is running (or none).
            flush_requested = false;
            let state = shared.state.read();
            let target = state.flushes_started;
            drop(state);
            for w in flush_waiters.drain(..) {
                let _ = w.send(target);
            }
        }
    }
}

/// Holds pushes while the head is over its bound and a flush is running
/// (not once the store is closing: shutdown must not wait on a flush that
/// may never succeed).
fn wait_for_room(shared: &Shared) {
    let mut guard = shared.flushed_lock.lock();
    loop {
        {
            let state = shared.state.read();
            if state.head.bytes < shared.config.max_head_bytes
                || state.flushing.is_none()
                || shared.closing.load(Ordering::Relaxed)
            {
                return;
            }
        }
        shared
            .flushed
            .wait_for(&mut guard, Duration::from_millis(50));
    }
}

fn commit_group(
    shared: &Shared,
    wal: &mut Wal,
    group: &mut [Pending],
    buf: &mut Vec<u8>,
    unsynced: &mut bool,
) -> Result<(), StoreError> {
    let window = shared.config.out_of_order_window();
    // Newest timestamp per stream as this group goes, so later pushes of
    // the group see earlier ones.
    let mut newest: HashMap<(TenantId, skald_model::StreamId), Timestamp> = HashMap::new();
    {
        let state = shared.state.read();
        for p in group.iter_mut() {
            let index = state.index.get(&p.tenant);
            for s in &mut p.streams {
                let id = s.labels.stream_id();
                let key = (p.tenant.clone(), id);
                let mut max = *newest.entry(key.clone()).or_insert_with(|| {
                    index
                        .and_then(|i| i.get(id))
                        .map_or(Timestamp::MIN, |i| i.max_ts)
                });
                let mut too_old = 0u64;
                let mut oldest_ok = Timestamp::MIN;
                s.entries.retain(|e| {
                    oldest_ok = max.saturating_sub(window);
                    if max != Timestamp::MIN && e.ts < oldest_ok {
                        too_old += 1;
                        return false;
                    }
                    max = max.max(e.ts);
                    true
                });
                newest.insert(key, max);
                if too_old > 0 {
                    p.outcome.rejected.push(Rejection {
                        stream: s.labels.to_string(),
                        reason: format!(
                            "entry too far behind, oldest acceptable timestamp is {oldest_ok}"
                        ),
                        entries: too_old,
                    });
                }
            }
            p.streams.retain(|s| !s.entries.is_empty());
        }
    }
    // A failure from here to the sync leaves nothing behind: the WAL cuts
    // itself back to the previous group (or refuses until it can), and the
    // head is only touched once the group is durable. The whole group is
    // refused, so nothing refused is ever stored.
    for p in group.iter() {
        if p.streams.is_empty() {
            continue;
        }
        buf.clear();
        record::encode(&p.tenant, &p.streams, buf);
        wal.append(buf)?;
    }
    match shared.config.fsync {
        crate::FsyncMode::Always => {
            let syncing = Instant::now();
            wal.sync()?;
            shared.counters.wal_fsync.observe(syncing.elapsed());
            shared.counters.wal_syncs.fetch_add(1, Ordering::Relaxed);
        }
        crate::FsyncMode::Interval => {
            wal.flush_to_os()?;
            *unsynced = true;
        }
    }
    // The group is durable: from here on it is acknowledged whatever
    // happens. A rotation that fails (no room for a new file) is retried
    // after the next group.
    if let Err(e) = wal.rotate_if_full() {
        tracing::warn!(error = %e, "could not start a new wal file; appending to the current one");
    }
    // The head copies the lines; the batches themselves go on to live
    // tail subscribers and the commit hook once the group is in the head
    // (it is durable already), and are freed outside the lock otherwise.
    let mut applied = Vec::with_capacity(group.len());
    let mut state = shared.state.write();
    if state.head.is_empty() {
        state.head_since = Some(Instant::now());
    }
    for p in group.iter_mut() {
        let streams = std::mem::take(&mut p.streams);
        let (entries, bytes, dups) = apply(&mut state, &p.tenant, &streams);
        applied.push((p.tenant.clone(), streams));
        p.outcome.accepted += entries;
        p.outcome.accepted_bytes += bytes;
        p.outcome.duplicates += dups;
        shared
            .counters
            .entries_accepted
            .fetch_add(entries, Ordering::Relaxed);
        shared
            .counters
            .bytes_accepted
            .fetch_add(bytes, Ordering::Relaxed);
        shared
            .counters
            .duplicates
            .fetch_add(dups, Ordering::Relaxed);
    }
    if state.head.is_empty() {
        state.head_since = None;
    }
    drop(state);
    if !shared.tail.has_subscribers() && shared.commit_hook.get().is_none() {
        return Ok(());
    }
    for (tenant, streams) in applied {
        shared.tail.publish(&tenant, &streams);
        if let Some(hook) = shared.commit_hook.get() {
            hook(&tenant, streams);
        }
    }
    Ok(())
}

/// Rotates the WAL and hands the whole head to the flush thread.
fn start_flush(
    shared: &Shared,
    wal: &mut Wal,
    jobs: &SyncSender<FlushJob>,
) -> Result<u64, StoreError> {
    wal.rotate()?;
    let wal_seq = wal.current_seq();
    let mut state = shared.state.write();
    let head = Arc::new(FlushingHead::take(&mut state.head));
    state.head_since = None;
    state.flushing = Some(head.clone());
    state.flushes_started += 1;
    let number = state.flushes_started;
    drop(state);
    jobs.send(FlushJob {
        head,
        wal_seq,
        number,
    })
    .map_err(|_| StoreError::ShuttingDown)?;
    Ok(number)
}

fn shutdown_and_exit(
    shared: &Shared,
    wal: &mut Wal,
    jobs: &SyncSender<FlushJob>,
    reply: Option<SyncSender<()>>,
) {
    if let Err(e) = wal.sync() {
        tracing::error!(error = %e, "wal fsync at shutdown failed");
    }
    // Let a running flush finish, then flush what is left. A flush that
    // fails while closing is given up at once by the flush thread (a full
    // disk would never let it finish): the WAL holds everything and is
    // replayed at the next start. The deadline bounds a flush that is
    // merely slow.
    let deadline = Instant::now() + Duration::from_secs(60);
    let abandoned =
        |s: &State| s.flushing.is_none() || shared.flush_abandoned.load(Ordering::Relaxed);
    if !wait_until(shared, deadline, abandoned) {
        tracing::error!("flush still running at shutdown; the wal keeps the entries");
    } else if shared.flush_abandoned.load(Ordering::Relaxed) {
        tracing::error!("no final flush: flushes fail; the wal keeps the entries");
    } else if !shared.state.read().head.is_empty() {
        match start_flush(shared, wal, jobs) {
            Ok(n) => {
                let done = |s: &State| {
                    s.flushes_done >= n || shared.flush_abandoned.load(Ordering::Relaxed)
                };
                if !wait_until(shared, deadline, done)
                    || shared.flush_abandoned.load(Ordering::Relaxed)
                {
                    tracing::error!("final flush did not finish; the wal keeps the entries");
                }
            }
            Err(e) => tracing::error!(error = %e, "final flush failed; the wal keeps the entries"),
        }
    }
    if let Some(r) = reply {
        let _ = r.send(());
    }
}

fn wait_until(shared: &Shared, deadline: Instant, done: impl Fn(&State) -> bool) -> bool {
    let mut guard = shared.flushed_lock.lock();
    while !done(&shared.state.read()) {
        if Instant::now() >= deadline {
            return false;
        }
        shared
            .flushed
            .wait_for(&mut guard, Duration::from_millis(50));
    }
    true
}
