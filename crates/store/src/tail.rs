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
//! In a cluster, a subscription on a node that queries also receives what
//! the other ingest nodes make durable: [`crate::cluster::PeerHeads::follow`]
//! forwards their entries through a [`TailFeed`] into the same bounded
//! queue, and says when it has reached every node
//! ([`Subscription::wait_following`]), so a tail's history query that
//! starts after that misses nothing in between.
//!
//! Not here: history before the subscription (the caller runs a query),
//! network formats.

use crate::record::StreamBatch;
use parking_lot::{Condvar, Mutex};
use skald_model::{Entry, LabelSet, Matcher, TenantId, Timestamp};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

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
    /// Whether the other nodes are followed yet (see [`TailFeed::ready`]).
    following: Mutex<bool>,
    followed: Condvar,
}

impl Queue {
    /// Queues what fits of one stream's entries and counts the rest as
    /// dropped; true if anything changed (the reader is to be woken).
    fn offer(&self, labels: &Arc<LabelSet>, entries: &[Entry]) -> bool {
        if entries.is_empty() {
            return false;
        }
        let mut inner = self.inner.lock();
        let room = self.capacity.saturating_sub(inner.entries.len());
        // Entries that fit both bounds, in order; the rest drop.
        let mut fit = 0;
        let mut bytes = inner.bytes;
        for e in entries.iter().take(room) {
            let b = entry_bytes(e);
            if bytes + b > self.capacity_bytes {
                break;
            }
            bytes += b;
            fit += 1;
        }
        inner.bytes = bytes;
        let (fit, over) = entries.split_at(fit);
        inner.entries.extend(fit.iter().map(|e| TailEntry {
            labels: labels.clone(),
            entry: e.clone(),
        }));
        if !over.is_empty() {
            let first_ts = over.iter().map(|e| e.ts).min().unwrap_or_default();
            inner.count_dropped(labels, first_ts, over.len() as u64);
        }
        true
    }
}

impl Inner {
    fn count_dropped(&mut self, labels: &Arc<LabelSet>, first_ts: Timestamp, count: u64) {
        match self.dropped.iter_mut().find(|d| &d.labels == labels) {
            Some(d) => {
                d.count += count;
                d.first_ts = d.first_ts.min(first_ts);
            }
            None => self.dropped.push(Dropped {
                labels: labels.clone(),
                first_ts,
                count,
            }),
        }
    }
}

/// Hands entries from elsewhere (another node) to one subscription, with
/// the same bounds as local ones; inert once the subscription is dropped.
#[derive(Clone)]
pub struct TailFeed {
    queue: Weak<Queue>,
}

impl TailFeed {
    /// Queues one stream's entries (those over the queue's bounds are
    /// counted as dropped) and wakes the reader; false once the
    /// subscription is gone: then the caller stops feeding it.
    pub fn offer(&self, labels: LabelSet, entries: &[Entry]) -> bool {
        let Some(q) = self.queue.upgrade() else {
            return false;
        };
        if !q.matchers.iter().all(|m| m.matches(&labels)) {
            return true;
        }
        if q.offer(&Arc::new(labels), entries) {
            (q.waker)();
        }
        true
    }

    /// Entries another node dropped for this subscription (its own queue
    /// overflowed); false once the subscription is gone.
    pub fn dropped(&self, labels: LabelSet, first_ts: Timestamp, count: u64) -> bool {
        let Some(q) = self.queue.upgrade() else {
            return false;
        };
        q.inner
            .lock()
            .count_dropped(&Arc::new(labels), first_ts, count);
        (q.waker)();
        true
    }

    /// Whether the subscription is gone.
    pub fn closed(&self) -> bool {
        self.queue.strong_count() == 0
    }

    /// Every node is followed (or was tried): a reader waiting in
    /// [`Subscription::wait_following`] goes on.
    pub fn ready(&self) {
        if let Some(q) = self.queue.upgrade() {
            *q.following.lock() = true;
            q.followed.notify_all();
        }
    }
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
    /// A feed into this subscription's queue (see [`TailFeed`]).
    pub fn feed(&self) -> TailFeed {
        TailFeed {
            queue: Arc::downgrade(&self.queue),
        }
    }

    /// Marks the subscription as waiting for [`TailFeed::ready`].
    pub(crate) fn expect_following(&self) {
        *self.queue.following.lock() = false;
    }

    /// Waits, at most `timeout`, until the other nodes this subscription
    /// follows are reached (at once when it follows none). Blocks.
    pub fn wait_following(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut following = self.queue.following.lock();
        while !*following {
            if self
                .queue
                .followed
                .wait_until(&mut following, deadline)
                .timed_out()
            {
                return;
            }
        }
    }

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
            following: Mutex::new(true),
            followed: Condvar::new(),
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
                woke |= q.offer(&Arc::new(s.labels.clone()), &s.entries);
            }
            if woke {
                (q.waker)();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn entry(ts: i64, line: &str) -> Entry {
        Entry {
            ts: Timestamp(ts),
            line: line.into(),
            metadata: Vec::new(),
        }
    }

    #[test]
    fn a_feed_queues_within_the_bounds_counts_the_rest_and_ends_with_its_subscription() {
        let tails = Broadcaster::default();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        let app = Matcher::new("app", skald_model::MatchOp::Eq, "a").unwrap();
        let sub = tails.subscribe(
            TenantId::new("t").unwrap(),
            vec![app],
            2,
            1 << 20,
            Box::new(move || {
                w.fetch_add(1, Ordering::Relaxed);
            }),
        );
        let feed = sub.feed();
        let a = LabelSet::parse(r#"{app="a"}"#).unwrap();
        let b = LabelSet::parse(r#"{app="b"}"#).unwrap();
        let lines = [entry(1, "one"), entry(2, "two"), entry(3, "three")];
        assert!(feed.offer(a.clone(), &lines));
        // Another stream: not this subscription's, nothing queued.
        assert!(feed.offer(b, &lines));
        assert!(feed.dropped(a.clone(), Timestamp(0), 5));
        let batch = sub.drain();
        let got: Vec<&str> = batch
            .entries
            .iter()
            .map(|e| e.entry.line.as_str())
            .collect();
        assert_eq!(got, ["one", "two"]);
        assert_eq!(batch.dropped.len(), 1);
        assert_eq!(batch.dropped[0].count, 1 + 5);
        assert_eq!(batch.dropped[0].first_ts, Timestamp(0));
        assert_eq!(woken.load(Ordering::Relaxed), 2);

        // Waiting to follow ends at ready (or at the timeout).
        sub.expect_following();
        let started = Instant::now();
        sub.wait_following(Duration::from_millis(50));
        assert!(started.elapsed() >= Duration::from_millis(50));
        let ready = sub.feed();
        let waiter = std::thread::spawn(move || ready.ready());
        sub.wait_following(Duration::from_secs(30));
        waiter.join().unwrap();

        drop(sub);
        assert!(feed.closed());
        assert!(!feed.offer(a, &lines));
    }
}
