//! The push pipeline: [`Client`], its queue and its two background threads.
//!
//! ```text
//! send ──► queue (bounded, backpressure) ──► batcher thread ──► spool ──► sender thread ──► HTTP
//!          entries                           seals batches      memory     retries, in order
//!                                            encodes them       or disk
//! ```
//!
//! Why std threads rather than tokio tasks: the client must work from any
//! code, async or not, and from a `tracing` layer that may run outside any
//! runtime; `send` takes a short lock and never needs an executor. Two
//! threads let encoding (CPU) overlap with sending (network), and the disk
//! queue's file I/O is synchronous anyway. The blocking HTTP client is
//! created, used and dropped only on the sender thread, so the client is
//! safe to create and drop inside an async runtime.
//!
//! Memory is bounded everywhere: the queue by entries and bytes, the spool
//! by a few batches (memory) or `max_bytes` (disk); when the spool is full
//! the batcher waits, the queue fills, and the backpressure mode decides.
//!
//! Progress is counted, not tracked per entry: entries are accepted,
//! batched and resolved (delivered, failed or evicted) in FIFO order, so
//! "everything sent before this call is resolved" is `resolved >= accepted
//! at the call`. That is what [`Client::flush`] waits for.

use crate::config::{Backpressure, Config};
use crate::disk::DiskQueue;
use crate::encode::{self, Batch};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::retry::{Backoff, Disposition, classify_status};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

thread_local! {
    static CLIENT_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is one of the client's own (the tracing layer
/// ignores events there, so the client never logs about itself in a loop).
pub(crate) fn on_client_thread() -> bool {
    CLIENT_THREAD.with(|c| c.get())
}

/// A snapshot of the client's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Entries accepted by `send` (including those later evicted), plus any
    /// found in the disk queue at start.
    pub accepted: u64,
    /// Entries the server acknowledged.
    pub delivered: u64,
    /// Entries refused by `send` because the queue was full (`DropNew`).
    pub dropped_new: u64,
    /// Entries evicted to make room (`DropOldest`): from the in-memory
    /// queue, and whole segments from a full disk queue.
    pub dropped_oldest: u64,
    /// Entries given up on: rejected by the server, retries exhausted, a
    /// disk error, or still in memory when `close` timed out.
    pub failed: u64,
    /// Entries in the in-memory queue now.
    pub queued: u64,
    /// Entries in sealed batches not yet delivered (memory or disk).
    pub spooled: u64,
    /// Bytes of those batches.
    pub spooled_bytes: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    /// Entries that left the queue: batched into the spool or evicted.
    taken: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped_new: AtomicU64,
    dropped_oldest: AtomicU64,
    resolved: AtomicU64,
}

struct QueueState {
    entries: VecDeque<Entry>,
    bytes: usize,
    closed: bool,
    flush_epoch: u64,
    /// Set by the waiting batcher: wake it when the queue holds this many
    /// entries (0: it is not waiting) ...
    wake_entries: usize,
    /// ... or this many bytes.
    wake_bytes: usize,
}

enum Store {
    Memory(VecDeque<Batch>),
    Disk(DiskQueue),
}

struct SpoolState {
    store: Store,
    input_closed: bool,
}

struct Shared {
    config: Config,
    queue: Mutex<QueueState>,
    batcher_wake: Condvar,
    room: Condvar,
    spool: Mutex<SpoolState>,
    spool_changed: Condvar,
    counters: Counters,
    progress: Mutex<()>,
    progress_changed: Condvar,
    last_error: Mutex<Option<Error>>,
    abort: AtomicBool,
    sender_done: AtomicBool,
}

/// A Loki push client. Cheap to clone; the background threads stop when the
/// last clone is closed or dropped (dropping waits up to
/// [`Config::drop_timeout`] to deliver what is queued).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    threads: Mutex<Option<(JoinHandle<()>, JoinHandle<()>)>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let timeout = self.shared.config.drop_timeout;
        let _ = close(&self.shared, &self.threads, timeout);
    }
}

impl Client {
    /// Validates `config`, opens the disk queue if configured (reporting any
    /// damage found through `on_error`) and starts the background threads.
    pub fn new(config: Config) -> Result<Client> {
        config.validate()?;
        let http = build_http(&config)?;
        let mut warnings = Vec::new();
        let store = match &config.disk_queue {
            None => Store::Memory(VecDeque::new()),
            Some(disk) => {
                let (queue, recovery) = DiskQueue::open(disk)?;
                warnings = recovery.warnings;
                Store::Disk(queue)
            }
        };
        let backlog = match &store {
            Store::Disk(q) => q.pending_entries(),
            Store::Memory(_) => 0,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(QueueState {
                entries: VecDeque::with_capacity(config.queue.max_entries.min(1 << 16)),
                bytes: 0,
                closed: false,
                flush_epoch: 0,
                wake_entries: 0,
                wake_bytes: 0,
            }),
            config,
            batcher_wake: Condvar::new(),
            room: Condvar::new(),
            spool: Mutex::new(SpoolState {
                store,
                input_closed: false,
            }),
            spool_changed: Condvar::new(),
            counters: Counters::default(),
            progress: Mutex::new(()),
            progress_changed: Condvar::new(),
            last_error: Mutex::new(None),
            abort: AtomicBool::new(false),
            sender_done: AtomicBool::new(false),
        });
        shared.counters.accepted.store(backlog, Ordering::Relaxed);
        shared.counters.taken.store(backlog, Ordering::Relaxed);
        for warning in warnings {
            shared.report(warning);
        }
        let batcher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("skald-client-batcher".into())
                .spawn(move || {
                    CLIENT_THREAD.with(|c| c.set(true));
                    run_batcher(&shared);
                })
                .map_err(|e| Error::Config(format!("cannot start a thread: {e}")))?
        };
        let sender = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("skald-client-sender".into())
                .spawn(move || {
                    CLIENT_THREAD.with(|c| c.set(true));
                    run_sender(&shared, &http);
                    // The blocking HTTP client is dropped here, off any
                    // async runtime.
                    drop(http);
                    shared.sender_done.store(true, Ordering::Release);
                    shared.notify_progress();
                })
                .map_err(|e| Error::Config(format!("cannot start a thread: {e}")))?
        };
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                threads: Mutex::new(Some((batcher, sender))),
            }),
        })
    }

    /// Queues one entry. Never waits for the network; waits for room only
    /// in [`Backpressure::Block`] mode.
    pub fn send(&self, entry: Entry) -> Result<()> {
        let shared = &self.inner.shared;
        let mut queue = shared.queue.lock();
        shared.enqueue(&mut queue, entry)
    }

    /// Queues many entries under one lock. Stops at the first refusal
    /// (closed, or full in `DropNew` mode) and returns it; entries before it
    /// are queued.
    pub fn send_batch(&self, entries: impl IntoIterator<Item = Entry>) -> Result<()> {
        let shared = &self.inner.shared;
        let mut queue = shared.queue.lock();
        for entry in entries {
            shared.enqueue(&mut queue, entry)?;
        }
        Ok(())
    }

    /// Seals the partial batch and waits until every entry sent before this
    /// call is resolved (delivered, or failed and reported), or `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let shared = &self.inner.shared;
        let target = shared.counters.accepted.load(Ordering::Acquire);
        shared.request_flush();
        shared.wait_for(&shared.counters.resolved, target, Instant::now() + timeout)
    }

    /// Seals the partial batch and waits until every entry sent before this
    /// call is in the spool — on disk, with a disk queue, where it survives
    /// a crash — or `timeout`. It does not wait for the server.
    pub fn sync(&self, timeout: Duration) -> Result<()> {
        let shared = &self.inner.shared;
        let target = shared.counters.accepted.load(Ordering::Acquire);
        shared.request_flush();
        shared.wait_for(&shared.counters.taken, target, Instant::now() + timeout)
    }

    /// Stops accepting entries, delivers what is queued until `timeout`,
    /// then stops the threads. With a disk queue, what is not delivered stays
    /// on disk for the next client. Idempotent; clones see it closed too.
    pub fn close(&self, timeout: Duration) -> Result<()> {
        close(&self.inner.shared, &self.inner.threads, timeout)
    }

    /// The most recent asynchronous error, if any.
    pub fn last_error(&self) -> Option<Error> {
        self.inner.shared.last_error.lock().clone()
    }

    /// Takes the most recent asynchronous error, leaving none.
    pub fn take_last_error(&self) -> Option<Error> {
        self.inner.shared.last_error.lock().take()
    }

    pub fn stats(&self) -> Stats {
        let shared = &self.inner.shared;
        let c = &shared.counters;
        let queued = shared.queue.lock().entries.len() as u64;
        let (spooled, spooled_bytes) = match &shared.spool.lock().store {
            Store::Memory(batches) => (
                batches.iter().map(|b| u64::from(b.entries)).sum(),
                batches.iter().map(|b| b.body.len() as u64).sum(),
            ),
            Store::Disk(q) => (q.pending_entries(), q.pending_bytes()),
        };
        Stats {
            accepted: c.accepted.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped_new: c.dropped_new.load(Ordering::Relaxed),
            dropped_oldest: c.dropped_oldest.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            queued,
            spooled,
            spooled_bytes,
        }
    }
}

fn close(
    shared: &Arc<Shared>,
    threads: &Mutex<Option<(JoinHandle<()>, JoinHandle<()>)>>,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    {
        let mut queue = shared.queue.lock();
        queue.closed = true;
        shared.batcher_wake.notify_all();
        shared.room.notify_all();
    }
    let target = shared.counters.accepted.load(Ordering::Acquire);
    let delivered = shared.wait_for(&shared.counters.resolved, target, deadline);
    shared.abort.store(true, Ordering::Release);
    {
        let _spool = shared.spool.lock();
        shared.spool_changed.notify_all();
    }
    shared.notify_progress();
    let Some((batcher, sender)) = threads.lock().take() else {
        return delivered;
    };
    // The batcher never waits on the network: with a disk queue it writes
    // what is left in memory to disk, otherwise it drops it.
    let _ = batcher.join();
    {
        let mut spool = shared.spool.lock();
        spool.input_closed = true;
        shared.spool_changed.notify_all();
    }
    // The sender may be inside one HTTP request; wait for it until the
    // deadline (but briefly at least), then let it finish on its own.
    let grace = deadline.max(Instant::now() + Duration::from_millis(100));
    let mut progress = shared.progress.lock();
    while !shared.sender_done.load(Ordering::Acquire) {
        if shared
            .progress_changed
            .wait_until(&mut progress, grace)
            .timed_out()
        {
            break;
        }
    }
    drop(progress);
    if shared.sender_done.load(Ordering::Acquire) {
        let _ = sender.join();
        // Both threads are gone: let the next client have the directory
        // even while clones of this one are still alive.
        if let Store::Disk(q) = &mut shared.spool.lock().store {
            q.release();
        }
    }
    delivered
}

impl Shared {
    fn enqueue(
        &self,
        queue: &mut parking_lot::MutexGuard<'_, QueueState>,
        entry: Entry,
    ) -> Result<()> {
        if queue.closed {
            return Err(Error::Closed);
        }
        let size = entry.size();
        let limits = &self.config.queue;
        loop {
            let full = queue.entries.len() >= limits.max_entries
                || (queue.bytes + size > limits.max_bytes && !queue.entries.is_empty());
            if !full {
                break;
            }
            match limits.backpressure {
                Backpressure::Block => {
                    self.room.wait(queue);
                    if queue.closed {
                        return Err(Error::Closed);
                    }
                }
                Backpressure::DropNew => {
                    self.counters.dropped_new.fetch_add(1, Ordering::Relaxed);
                    return Err(Error::QueueFull);
                }
                Backpressure::DropOldest => {
                    if let Some(old) = queue.entries.pop_front() {
                        queue.bytes -= old.size();
                        self.counters.dropped_oldest.fetch_add(1, Ordering::Relaxed);
                        self.counters.taken.fetch_add(1, Ordering::Relaxed);
                        self.counters.resolved.fetch_add(1, Ordering::Release);
                    }
                }
            }
        }
        queue.bytes += size;
        queue.entries.push_back(entry);
        self.counters.accepted.fetch_add(1, Ordering::Release);
        if queue.wake_entries != 0
            && (queue.entries.len() >= queue.wake_entries || queue.bytes >= queue.wake_bytes)
        {
            queue.wake_entries = 0;
            self.batcher_wake.notify_one();
        }
        Ok(())
    }

    fn request_flush(&self) {
        let mut queue = self.queue.lock();
        queue.flush_epoch += 1;
        self.batcher_wake.notify_one();
    }

    fn notify_progress(&self) {
        let _guard = self.progress.lock();
        self.progress_changed.notify_all();
    }

    /// Waits until `counter >= target`; fails at `deadline`, or at once if
    /// the sender has stopped.
    fn wait_for(&self, counter: &AtomicU64, target: u64, deadline: Instant) -> Result<()> {
        let mut guard = self.progress.lock();
        loop {
            let now = counter.load(Ordering::Acquire);
            if now >= target {
                return Ok(());
            }
            let stopped = self.sender_done.load(Ordering::Acquire);
            if stopped
                || self
                    .progress_changed
                    .wait_until(&mut guard, deadline)
                    .timed_out()
            {
                let now = counter.load(Ordering::Acquire);
                if now >= target {
                    return Ok(());
                }
                return Err(Error::Timeout {
                    pending: target - now,
                });
            }
        }
    }

    fn report(&self, error: Error) {
        *self.last_error.lock() = Some(error.clone());
        if let Some(callback) = &self.config.on_error {
            // A panicking callback must not take the delivery thread down.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(&error)));
        }
    }

    /// Entries shed from a full disk queue: already taken from the memory
    /// queue, now resolved as dropped.
    fn count_dropped_oldest(&self, entries: u64) {
        if entries == 0 {
            return;
        }
        self.counters
            .dropped_oldest
            .fetch_add(entries, Ordering::Relaxed);
        self.counters.resolved.fetch_add(entries, Ordering::Release);
        self.notify_progress();
    }

    fn resolve_failed(&self, entries: u64) {
        self.counters.failed.fetch_add(entries, Ordering::Relaxed);
        self.counters.resolved.fetch_add(entries, Ordering::Release);
        self.notify_progress();
    }

    /// Puts a sealed batch into the spool, waiting for room. On abort (or a
    /// disk error) the batch is dropped and counted as failed.
    fn spool_batch(&self, batch: Batch) {
        let entries = u64::from(batch.entries);
        let mut spool = self.spool.lock();
        let outcome = loop {
            let shed_oldest = self.config.queue.backpressure == Backpressure::DropOldest;
            let has_room = match &mut spool.store {
                Store::Memory(batches) => batches.len() < self.config.queue.max_pending_batches,
                Store::Disk(q) if shed_oldest && !q.has_room(&batch) => {
                    // A full disk under DropOldest: the newest logs matter
                    // more than the oldest, as in the memory queue.
                    match q.shed_oldest(&batch) {
                        Ok(dropped) => self.count_dropped_oldest(dropped),
                        Err(error) => self.report(error),
                    }
                    q.has_room(&batch)
                }
                Store::Disk(q) => q.has_room(&batch),
            };
            let disk = matches!(spool.store, Store::Disk(_));
            // After an abort the disk still takes what fits: that is the
            // point of having it.
            if has_room && (disk || !self.abort.load(Ordering::Acquire)) {
                break match &mut spool.store {
                    Store::Memory(batches) => {
                        batches.push_back(batch);
                        Ok(())
                    }
                    Store::Disk(q) => q.append(&batch).map_err(Some),
                };
            }
            if self.abort.load(Ordering::Acquire) {
                break Err(None);
            }
            self.spool_changed.wait(&mut spool);
        };
        self.spool_changed.notify_all();
        drop(spool);
        self.counters.taken.fetch_add(entries, Ordering::Release);
        match outcome {
            Ok(()) => self.notify_progress(),
            Err(error) => {
                if let Some(error) = error {
                    self.report(error);
                }
                self.resolve_failed(entries);
            }
        }
    }
}

fn run_batcher(shared: &Shared) {
    let limits = &shared.config.batch;
    let mut batch: Vec<Entry> = Vec::with_capacity(limits.max_entries.min(1 << 16));
    let mut bytes = 0usize;
    let mut started: Option<Instant> = None;
    let mut seen_flush = 0u64;
    loop {
        let mut queue = shared.queue.lock();
        let exit = loop {
            let mut moved = false;
            while batch.len() < limits.max_entries && bytes < limits.max_bytes {
                let Some(entry) = queue.entries.pop_front() else {
                    break;
                };
                let size = entry.size();
                queue.bytes -= size;
                bytes += size;
                batch.push(entry);
                moved = true;
            }
            if moved {
                shared.room.notify_all();
                started.get_or_insert_with(Instant::now);
            }
            let full = batch.len() >= limits.max_entries || bytes >= limits.max_bytes;
            let flushing = queue.flush_epoch != seen_flush;
            if flushing {
                seen_flush = queue.flush_epoch;
            }
            let closing = queue.closed && queue.entries.is_empty();
            let expired = started.is_some_and(|t| t.elapsed() >= limits.max_wait);
            if !batch.is_empty() && (full || flushing || closing || expired) {
                break false;
            }
            if closing {
                break true;
            }
            if flushing {
                // Nothing to seal: the flush waiter only needs the counters.
                shared.notify_progress();
                continue;
            }
            queue.wake_entries = limits.max_entries - batch.len();
            queue.wake_bytes = limits.max_bytes - bytes;
            if batch.is_empty() {
                queue.wake_entries = 1;
            }
            match started {
                Some(t) => {
                    shared
                        .batcher_wake
                        .wait_until(&mut queue, t + limits.max_wait);
                }
                None => shared.batcher_wake.wait(&mut queue),
            }
            queue.wake_entries = 0;
        };
        drop(queue);
        if exit {
            return;
        }
        let entries = std::mem::replace(
            &mut batch,
            Vec::with_capacity(limits.max_entries.min(1 << 16)),
        );
        bytes = 0;
        started = None;
        shared.spool_batch(encode::encode(entries, shared.config.encoding));
    }
}

/// Takes the next batch, waiting for one. `None` when the spool is closed
/// and empty, or on abort.
fn next_batch(shared: &Shared) -> Option<Batch> {
    let mut spool = shared.spool.lock();
    loop {
        if shared.abort.load(Ordering::Acquire) && !matches!(spool.store, Store::Memory(_)) {
            return None;
        }
        let input_closed = spool.input_closed;
        let next = match &mut spool.store {
            Store::Memory(batches) => Ok(batches.pop_front()),
            Store::Disk(q) => q.front(),
        };
        match next {
            Ok(Some(batch)) => {
                shared.spool_changed.notify_all();
                return Some(batch);
            }
            Ok(None) if input_closed => return None,
            Ok(None) => shared.spool_changed.wait(&mut spool),
            Err(error) => {
                drop(spool);
                shared.report(error);
                spool = shared.spool.lock();
            }
        }
    }
}

/// Removes the batch just handled from a disk queue.
fn ack(shared: &Shared) {
    let mut spool = shared.spool.lock();
    if let Store::Disk(q) = &mut spool.store
        && let Err(error) = q.pop_front()
    {
        drop(spool);
        shared.report(error);
        return;
    }
    shared.spool_changed.notify_all();
}

fn run_sender(shared: &Shared, http: &reqwest::blocking::Client) {
    let disk = shared.config.disk_queue.is_some();
    while let Some(batch) = next_batch(shared) {
        let entries = u64::from(batch.entries);
        match deliver(shared, http, &batch) {
            Outcome::Delivered => {
                if disk {
                    ack(shared);
                }
                shared
                    .counters
                    .delivered
                    .fetch_add(entries, Ordering::Relaxed);
                shared
                    .counters
                    .resolved
                    .fetch_add(entries, Ordering::Release);
                shared.notify_progress();
            }
            Outcome::Dropped => {
                if disk {
                    ack(shared);
                }
                shared.resolve_failed(entries);
            }
            Outcome::Aborted => {
                if !disk {
                    shared.resolve_failed(entries);
                }
            }
        }
    }
    // Batches left in memory after an abort are lost; count them.
    let mut spool = shared.spool.lock();
    if let Store::Memory(batches) = &mut spool.store {
        let lost: u64 = batches.drain(..).map(|b| u64::from(b.entries)).sum();
        drop(spool);
        if lost > 0 {
            shared.resolve_failed(lost);
        }
    }
}

enum Outcome {
    Delivered,
    Dropped,
    Aborted,
}

fn deliver(shared: &Shared, http: &reqwest::blocking::Client, batch: &Batch) -> Outcome {
    let config = &shared.config;
    let unlimited = config.disk_queue.is_some();
    let mut backoff = Backoff::new(&config.retry);
    loop {
        if shared.abort.load(Ordering::Acquire) {
            return Outcome::Aborted;
        }
        let (disposition, cause) = match post(config, http, batch) {
            Ok((status, retry_after, body)) => {
                let disposition =
                    classify_status(status, retry_after.as_deref(), SystemTime::now());
                (disposition, Error::Status { status, body })
            }
            Err(error) => (Disposition::Retry { after: None }, error),
        };
        let entries = u64::from(batch.entries);
        let after = match disposition {
            Disposition::Done => return Outcome::Delivered,
            Disposition::Fail => {
                let (status, body) = match cause {
                    Error::Status { status, body } => (status, body),
                    other => (0, other.to_string()),
                };
                shared.report(Error::Rejected {
                    status,
                    entries,
                    body,
                });
                return Outcome::Dropped;
            }
            Disposition::Retry { after } => after,
        };
        let exhausted = !unlimited
            && config
                .retry
                .max_retries
                .is_some_and(|max| backoff.attempts() >= max);
        if exhausted {
            shared.report(Error::RetriesExhausted {
                attempts: backoff.attempts() + 1,
                entries,
                cause: Box::new(cause),
            });
            return Outcome::Dropped;
        }
        let delay = backoff.next_delay(after);
        shared.report(Error::Retrying {
            attempt: backoff.attempts(),
            retry_in: delay,
            cause: Box::new(cause),
        });
        let until = Instant::now() + delay;
        let mut guard = shared.progress.lock();
        while !shared.abort.load(Ordering::Acquire) {
            if shared
                .progress_changed
                .wait_until(&mut guard, until)
                .timed_out()
            {
                break;
            }
        }
    }
}

/// Largest part of an error body kept for reports.
const MAX_ERROR_BODY: u64 = 1024;

type Answer = (u16, Option<String>, String);

fn post(config: &Config, http: &reqwest::blocking::Client, batch: &Batch) -> Result<Answer> {
    let mut request = http
        .post(config.endpoint.path("/loki/api/v1/push"))
        .header(reqwest::header::CONTENT_TYPE, batch.kind.content_type())
        .body(batch.body.clone());
    if let Some(encoding) = batch.kind.content_encoding() {
        request = request.header(reqwest::header::CONTENT_ENCODING, encoding);
    }
    request = crate::http::authorize_blocking(request, &config.endpoint);
    let response = request
        .send()
        .map_err(|e| Error::Network(crate::http::error_chain(&e)))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = String::new();
    if !(200..=299).contains(&status) {
        let mut bytes = Vec::new();
        let _ = response.take(MAX_ERROR_BODY).read_to_end(&mut bytes);
        body = String::from_utf8_lossy(&bytes).trim().to_string();
    }
    Ok((status, retry_after, body))
}

fn build_http(config: &Config) -> Result<reqwest::blocking::Client> {
    // Building the blocking client starts its own runtime thread; building
    // it here (on the caller's thread) surfaces configuration errors from
    // `Client::new`. It is moved to and dropped on the sender thread.
    let endpoint = config.endpoint.clone();
    std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .timeout(endpoint.request_timeout)
            .default_headers(crate::http::default_headers(&endpoint)?)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
    })
    .join()
    .unwrap_or_else(|_| Err(Error::Config("building the HTTP client panicked".into())))
}
