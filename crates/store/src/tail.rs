//! Live tail: entries handed to subscribers as they become durable.
//!
//! The commit thread publishes every group it has made durable (after the
//! WAL append and fsync, after it is applied to the head). Each subscriber
//! owns a bounded queue; publishing never waits: when a queue is full, the
//! entries that do not fit are counted as dropped, per stream, and the
//! subscriber reports them (Loki's `dropped_entries`). Memory per
//! subscriber is bounded by its capacity in entries *and* in bytes (lines
//! and metadata: a queue of 10,000 lines of 256 KiB would otherwise hold
//! 2.5 GB); ingest never waits for a reader.
//!
//! Subscribers filter on tenant and stream selector here, so entries of
//! other streams are never copied; line filters and pipelines are the
//! subscriber's business (`skald-server`).
//!
//! Not here: history before the subscription (the caller runs a query),
//! network formats.

use crate::record::StreamBatch;
use parking_lot::Mutex;
use skald_model::{Entry, LabelSet, Matcher, TenantId, Timestamp};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// Called after entries (or drops) were queued, to wake the reader. Must
/// not block: it runs on the commit thread.
pub type Waker = Box<dyn Fn() + Send + Sync>;

/// One entry delivered to a subscriber, with its stream.
#[derive(Debug, Clone)]
pub struct TailEntry {
    pub labels: Arc<LabelSet>,
    pub entry: Entry,
}

/// Entries of one stream that did not fit in a subscriber's queue.
#[derive(Debug, Clone)]
pub struct Dropped {
    pub labels: Arc<LabelSet>,
    /// Timestamp of the first entry dropped.
    pub first_ts: Timestamp,
    pub count: u64,
}

/// What a subscriber takes from its queue at once.
#[derive(Debug, Default)]
pub struct TailBatch {
    pub entries: Vec<TailEntry>,
    pub dropped: Vec<Dropped>,
}

impl TailBatch {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.dropped.is_empty()
    }
}

struct Queue {
    tenant: TenantId,
    matchers: Vec<Matcher>,
    capacity: usize,
    capacity_bytes: usize,
    inner: Mutex<Inner>,
    waker: Waker,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<TailEntry>,
    /// Bytes of the queued entries (see [`entry_bytes`]).
    bytes: usize,
    dropped: Vec<Dropped>,
}

/// What a queued entry costs, roughly: its line, its metadata and the
/// fixed part of the entry.
fn entry_bytes(e: &Entry) -> usize {
    e.line.len()
        + e.metadata
            .iter()
            .map(|l| l.name.len() + l.value.len())
            .sum::<usize>()
        + std::mem::size_of::<TailEntry>()
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    queue: Arc<Queue>,
}

impl Subscription {
    /// Everything queued since the last call (possibly nothing).
    pub fn drain(&self) -> TailBatch {
        let mut inner = self.queue.inner.lock();
        inner.bytes = 0;
        TailBatch {
            entries: inner.entries.drain(..).collect(),
            dropped: std::mem::take(&mut inner.dropped),
        }
    }
}

/// Every live subscription of a store.
#[derive(Default)]
pub(crate) struct Broadcaster {
    queues: Mutex<Vec<Weak<Queue>>>,
    /// Live subscriptions, read without the lock on every commit.
    live: Arc<AtomicUsize>,
}

impl Broadcaster {
    /// Subscriptions still held by someone.
    pub fn live(&self) -> usize {
        let queues = self.queues.lock();
        queues.iter().filter(|q| q.strong_count() > 0).count()
    }

    pub fn has_subscribers(&self) -> bool {
        self.live.load(Ordering::Relaxed) > 0
    }

    pub fn subscribe(
        &self,
        tenant: TenantId,
        matchers: Vec<Matcher>,
        capacity: usize,
        capacity_bytes: usize,
        waker: Waker,
    ) -> Subscription {
        let queue = Arc::new(Queue {
            tenant,
            matchers,
            capacity: capacity.max(1),
            capacity_bytes: capacity_bytes.max(1),
            inner: Mutex::new(Inner::default()),
            waker,
        });
        let mut queues = self.queues.lock();
        queues.retain(|q| q.strong_count() > 0);
        queues.push(Arc::downgrade(&queue));
        self.live.store(queues.len(), Ordering::Relaxed);
        Subscription { queue }
    }

    /// Hands durable entries of `tenant` to every matching subscriber.
    /// Never blocks on a subscriber.
    pub fn publish(&self, tenant: &TenantId, streams: &[StreamBatch]) {
        let queues: Vec<Arc<Queue>> = {
            let mut list = self.queues.lock();
            list.retain(|q| q.strong_count() > 0);
            self.live.store(list.len(), Ordering::Relaxed);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for q in queues.iter().filter(|q| &q.tenant == tenant) {
            let mut woke = false;
            for s in streams {
                if s.entries.is_empty() || !q.matchers.iter().all(|m| m.matches(&s.labels)) {
                    continue;
                }
                let labels = Arc::new(s.labels.clone());
                let mut inner = q.inner.lock();
                let room = q.capacity.saturating_sub(inner.entries.len());
                // Entries that fit both bounds, in order; the rest drop.
                let mut fit = 0;
                let mut bytes = inner.bytes;
                for e in s.entries.iter().take(room) {
                    let b = entry_bytes(e);
                    if bytes + b > q.capacity_bytes {
                        break;
                    }
                    bytes += b;
                    fit += 1;
                }
                inner.bytes = bytes;
                let (fit, over) = s.entries.split_at(fit);
                inner.entries.extend(fit.iter().map(|e| TailEntry {
                    labels: labels.clone(),
                    entry: e.clone(),
                }));
                if !over.is_empty() {
                    let first_ts = over.iter().map(|e| e.ts).min().unwrap_or_default();
                    match inner.dropped.iter_mut().find(|d| d.labels == labels) {
                        Some(d) => d.count += over.len() as u64,
                        None => inner.dropped.push(Dropped {
                            labels,
                            first_ts,
                            count: over.len() as u64,
                        }),
                    }
                }
                woke = true;
            }
            if woke {
                (q.waker)();
            }
        }
    }
}
