//! The storage engine: durable ingest through the WAL into the head,
//! flushes of the head into immutable segments, the catalog of segments and
//! the label index, and consistent snapshots for queries.
//!
//! ```text
//! push -> validate -> commit thread: out-of-order check, WAL append,
//!         one fsync per group, apply to head, ack
//! head >= flush_bytes or older than max_chunk_age
//!      -> commit thread rotates the WAL and hands the whole head to the
//!         flush thread -> one segment per tenant -> catalog -> WAL files
//!         before the rotation deleted
//! ```
//!
//! The core is synchronous (threads and a `RwLock`); the server calls it
//! from blocking tasks. What a query needs is taken under a short read lock
//! as `Arc`s, so scanning never blocks ingest.
//!
//! Not here: query evaluation (`skald-query`), HTTP (`skald-server`),
//! byte formats (`skald-chunk`).

pub mod alloc;
pub mod catalog;
pub mod cluster;
mod commit;
mod compact;
mod config;
pub mod delete;
mod flush;
mod head;
pub mod histogram;
mod index;
pub mod limits;
pub mod low_priority;
mod orphans;
pub mod record;
pub mod retention;
pub mod scrub;
mod segment;
pub mod storage;
pub mod tail;

pub use catalog::{
    CatalogError, CatalogStore, CorruptFile, LocalCatalog, NodeRecord, PostgresCatalog,
    SegmentRecord,
};
pub use config::{FsyncMode, NodeRole, StoreConfig};
pub use head::HeadBlock;
pub use index::StreamInfo;
pub use limits::{LimitUsage, TenantLimits};
pub use record::StreamBatch;
pub use segment::Segment;
pub use tail::{Subscription, TailBatch, TailEntry, TailFeed};

use catalog::Catalog;
use commit::Command;
use head::{FlushingHead, Head};
use index::TenantIndex;
use parking_lot::{Condvar, Mutex, RwLock};
use skald_model::{Entry, LabelSet, Matcher, StreamId, TenantId, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("wal: {0}")]
    Wal(#[from] skald_wal::WalError),
    #[error("i/o on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("segment: {0}")]
    Segment(#[from] skald_chunk::ChunkError),
    #[error("the store is shutting down")]
    ShuttingDown,
    #[error("the store could not write its wal: {0}")]
    WriteFailed(String),
    #[error("this node does not take pushes (--target {0}); send them to an ingest node")]
    NotIngesting(&'static str),
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
}

/// Entries of a push that were not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The stream's labels, as `{a="b"}`.
    pub stream: String,
    pub reason: String,
    pub entries: u64,
}

/// What became of a push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOutcome {
    pub accepted: u64,
    pub accepted_bytes: u64,
    /// Exact duplicates of entries already stored, dropped as Loki does.
    pub duplicates: u64,
    pub rejected: Vec<Rejection>,
    /// Entries of `rejected` refused by a rate or active-stream limit
    /// (Loki answers those 429, the others 400).
    pub rate_limited: u64,
    /// The first of those refusals' reasons (Loki's message).
    pub rate_limit_reason: Option<String>,
}

/// Where a stream's entries in a time range are.
#[derive(Debug, Clone)]
pub enum Source {
    /// In memory, sorted.
    Head(Arc<HeadBlock>),
    /// A chunk of a segment.
    Chunk(ChunkRef),
}

/// The literals every line a query wants must contain (a pipeline's
/// `required()`: for each group, one of its alternatives), hashed once
/// for the block filters of every source the query considers.
#[derive(Debug, Clone, Default)]
pub struct RequiredLiterals(Vec<Vec<skald_chunk::FilterProbe>>);

impl RequiredLiterals {
    pub fn new(required: &[Vec<String>]) -> Self {
        RequiredLiterals(
            required
                .iter()
                .map(|alts| {
                    alts.iter()
                        .map(|lit| skald_chunk::FilterProbe::new(lit.as_bytes()))
                        .collect()
                })
                .collect(),
        )
    }

    /// Whether no block can be ruled out by these literals.
    pub fn is_empty(&self) -> bool {
        self.0
            .iter()
            .all(|alts| alts.iter().any(|p| !p.is_selective()))
    }
}

#[derive(Debug, Clone)]
pub struct ChunkRef {
    pub segment: Arc<Segment>,
    pub at: (usize, usize),
}

impl Source {
    pub fn min_ts(&self) -> Timestamp {
        match self {
            Source::Head(b) => b.min_ts(),
            Source::Chunk(c) => c.segment.chunk(c.at).min_ts,
        }
    }

    pub fn max_ts(&self) -> Timestamp {
        match self {
            Source::Head(b) => b.max_ts(),
            Source::Chunk(c) => c.segment.chunk(c.at).max_ts,
        }
    }

    /// Whether this source may hold a line with every required literal
    /// (one of each group's alternatives), by its block filter; `false`
    /// is certain. Head blocks that may still grow always answer `true`.
    pub fn may_hold(&self, required: &RequiredLiterals) -> bool {
        required.0.iter().all(|alternatives| {
            alternatives.iter().any(|probe| match self {
                Source::Head(b) => b.may_match(probe),
                Source::Chunk(c) => c.segment.may_match(c.at, probe),
            })
        })
    }

    /// The field columns of a segment chunk ([`skald_chunk::columns`]);
    /// `None` for head blocks, for chunks written before columns existed,
    /// and for columns that do not decode (they are an index: the block
    /// is then read, and reports any damage of its own).
    pub fn columns(
        &self,
        detail: skald_chunk::columns::ColumnDetail,
    ) -> Option<skald_chunk::columns::BlockColumns> {
        match self {
            Source::Head(_) => None,
            Source::Chunk(c) => c.segment.columns(c.at, detail).ok().flatten(),
        }
    }

    /// (entries, uncompressed bytes of lines and metadata), from metadata
    /// alone.
    pub fn size(&self) -> (u64, u64) {
        match self {
            Source::Head(b) => (b.len() as u64, b.raw_bytes() as u64),
            Source::Chunk(c) => {
                let m = c.segment.chunk(c.at);
                (m.entries as u64, m.raw_bytes)
            }
        }
    }
}

/// One selected stream and every place its entries may be.
#[derive(Debug, Clone)]
pub struct StreamSources {
    pub labels: LabelSet,
    pub id: StreamId,
    pub sources: Vec<Source>,
}

/// What a query reads: a consistent view taken at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub streams: Vec<StreamSources>,
    /// Files of this store that could not be read; a query reports them.
    pub corrupt: Vec<CorruptFile>,
}

/// Totals for one tenant.
#[derive(Debug, Clone, Default)]
pub struct TenantStats {
    pub streams: u64,
    pub segments: u64,
    pub segment_bytes: u64,
    pub segment_entries: u64,
    pub segment_raw_bytes: u64,
    pub head_entries: u64,
    pub head_bytes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub entries_accepted: AtomicU64,
    pub bytes_accepted: AtomicU64,
    pub entries_rejected: AtomicU64,
    pub duplicates: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_errors: AtomicU64,
    pub wal_syncs: AtomicU64,
    /// How long each WAL fsync took.
    pub wal_fsync: histogram::Histogram,
    pub compactions: AtomicU64,
    pub compaction_errors: AtomicU64,
    pub retention_segments_deleted: AtomicU64,
    pub retention_segments_rewritten: AtomicU64,
    pub retention_bytes_reclaimed: AtomicU64,
    pub retention_entries_expired: AtomicU64,
    pub deleted_entries_dropped: AtomicU64,
    pub tombstones_retired: AtomicU64,
}

pub(crate) struct State {
    pub head: Head,
    /// When the oldest entry now in the head arrived.
    pub head_since: Option<Instant>,
    pub flushing: Option<Arc<FlushingHead>>,
    pub catalog: Catalog,
    pub index: HashMap<TenantId, TenantIndex>,
    pub flushes_started: u64,
    pub flushes_done: u64,
}

pub(crate) struct Shared {
    pub config: StoreConfig,
    pub state: RwLock<State>,
    /// Signalled whenever a flush ends.
    pub flushed: Condvar,
    pub flushed_lock: Mutex<()>,
    pub counters: Counters,
    /// Set by [`Store::close`]: long background work stops early.
    pub closing: std::sync::atomic::AtomicBool,
    /// Set by the flush thread when a flush failed while closing and it
    /// gave up (the WAL keeps the entries): shutdown stops waiting.
    pub flush_abandoned: std::sync::atomic::AtomicBool,
    /// Held while a compaction picks and merges segments.
    pub compacting: Mutex<()>,
    /// Live tail subscribers, fed by the commit thread.
    pub tail: tail::Broadcaster,
    /// Deletes applied at read time and at compaction.
    pub tombstones: delete::Tombstones,
    /// Per-tenant limits and the ingest state they need.
    pub limiter: limits::Limiter,
    /// Rules that mask secrets in lines before anything is written.
    pub scrubber: RwLock<Arc<scrub::Scrubber>>,
    /// Called by the commit thread with each durable group (see
    /// [`Store::on_commit`]).
    pub commit_hook: std::sync::OnceLock<CommitHook>,
    /// Where segments live.
    pub segments: Arc<dyn storage::SegmentStore>,
    /// Where the list of segments is kept (this process's view of it is
    /// `state.catalog`).
    pub catalog: Arc<dyn CatalogStore>,
    /// Segments out of the catalog, deleted once no query holds them.
    pub retired: segment::Retired,
    /// Objects of the segment store without a catalog row, and when this
    /// process first saw each so (see `orphans.rs`).
    pub orphans_seen: Mutex<HashMap<String, Instant>>,
    /// When the view last caught up with a shared catalog.
    pub last_refresh: Mutex<Option<Instant>>,
    /// The other nodes' heads, asked by every snapshot (see [`cluster`]).
    pub peers: std::sync::OnceLock<Arc<dyn cluster::PeerHeads>>,
}

/// Receives each group of entries once durable and in the head, on the
/// commit thread: it must not block (hand the group to a bounded queue and
/// shed when it is full).
pub type CommitHook = Box<dyn Fn(&TenantId, Vec<StreamBatch>) + Send + Sync>;

/// Counters exposed for monitoring.
#[derive(Debug, Clone, Default)]
pub struct StoreCounters {
    pub entries_accepted: u64,
    pub bytes_accepted: u64,
    pub entries_rejected: u64,
    pub duplicates: u64,
    pub flushes: u64,
    pub flush_errors: u64,
    pub wal_syncs: u64,
    pub compactions: u64,
    pub compaction_errors: u64,
    /// A compaction runs, or the policy asks for one.
    pub compaction_pending: bool,
    pub head_bytes: u64,
    pub corrupt_files: u64,
    /// Retention and deletes (see [`retention`]).
    pub retention_segments_deleted: u64,
    pub retention_segments_rewritten: u64,
    pub retention_bytes_reclaimed: u64,
    pub retention_entries_expired: u64,
    pub deleted_entries_dropped: u64,
    pub tombstones_retired: u64,
}

/// An open store. Cheap to share behind an `Arc`; [`Store::close`] flushes.
pub struct Store {
    shared: Arc<Shared>,
    commands: mpsc::SyncSender<Command>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// A directory of this store's own, removed when it is dropped
    /// ([`Store::in_memory`]).
    scratch: Option<std::path::PathBuf>,
    /// Takes the state's lock for threads of lower priority.
    low_priority: low_priority::Helper,
}

impl Store {
    /// Opens (or creates) the store in `config.data_dir`: loads the catalog,
    /// replays the WAL into the head, and starts the commit and flush
    /// threads. Segments live in the data directory too.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let segments = Arc::new(storage::LocalDir::new(&config.data_dir));
        Store::open_with(config, segments)
    }

    /// A store for tests and embedding: segments in memory
    /// ([`storage::MemorySegments`]), the WAL and the catalog's small
    /// files (delete requests) in a private temporary directory removed
    /// when the store is dropped. Everything is gone with it.
    pub fn in_memory() -> Result<Store, StoreError> {
        static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let scratch = std::env::temp_dir().join(format!(
            "skald-in-memory-{}-{nanos:08x}-{}",
            std::process::id(),
            OPENED.fetch_add(1, Ordering::Relaxed)
        ));
        let config = StoreConfig {
            data_dir: scratch.clone(),
            ..StoreConfig::default()
        };
        let opened = Store::open_with(config, Arc::new(storage::MemorySegments::new()));
        match opened {
            Ok(mut store) => {
                store.scratch = Some(scratch);
                Ok(store)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&scratch);
                Err(e)
            }
        }
    }

    /// [`Store::open`] with segments in `segments` (object storage, or
    /// memory for tests); the WAL, the head and the staging of new segments
    /// stay in `config.data_dir`.
    pub fn open_with(
        config: StoreConfig,
        segments: Arc<dyn storage::SegmentStore>,
    ) -> Result<Store, StoreError> {
        let catalog = Arc::new(LocalCatalog::new(segments.clone(), &config.data_dir));
        Store::open_with_catalog(config, segments, catalog)
    }

    /// [`Store::open_with`] with the list of segments kept in `catalog`
    /// (PostgreSQL, shared by several nodes): this store then also learns,
    /// every [`CATALOG_REFRESH`], of the segments other nodes publish and
    /// remove.
    pub fn open_with_catalog(
        config: StoreConfig,
        segments: Arc<dyn storage::SegmentStore>,
        catalog: Arc<dyn CatalogStore>,
    ) -> Result<Store, StoreError> {
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(&config.data_dir).map_err(io(&config.data_dir))?;
        // Staged segments never published: the WAL still holds their entries.
        let staging = config.staging_dir();
        match std::fs::remove_dir_all(&staging) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&staging)(e));
            }
            _ => {}
        }
        if catalog.shared() {
            // Segments stored before this catalog listed them keep their
            // keys: new ids start after them.
            let stored = catalog::max_stored_id(&*segments)
                .map_err(|e| io(&segments.location("tenants"))(e))?;
            catalog.reserve_ids_through(stored)?;
        }
        let view = Catalog::load(&*segments, &*catalog)?;
        let mut index: HashMap<TenantId, TenantIndex> = HashMap::new();
        for (tenant, segs) in &view.segments {
            let idx = index.entry(tenant.clone()).or_default();
            for seg in segs {
                for (labels, id, min, max) in seg.streams() {
                    idx.observe(labels, id, min, max);
                }
            }
        }
        let mut state = State {
            head: Head::default(),
            head_since: None,
            flushing: None,
            catalog: view,
            index,
            flushes_started: 0,
            flushes_done: 0,
        };

        let flushed_before = flush::read_marker(&config.flushed_marker());
        let mut replay_errors = 0u64;
        let wal_options = skald_wal::WalOptions {
            quarantine_dir: Some(config.quarantine_dir().join("wal")),
            ..wal_options()
        };
        let (wal, report) = skald_wal::Wal::open(
            &config.wal_dir(),
            wal_options,
            |seq, payload| {
                if seq < flushed_before {
                    return;
                }
                match record::decode(payload) {
                    Ok((tenant, streams)) => {
                        commit::apply(&mut state, &tenant, &streams);
                    }
                    Err(e) => {
                        replay_errors += 1;
                        tracing::error!(wal_file = seq, error = %e, "skipping undecodable wal record");
                    }
                }
            },
        )?;
        for c in &report.corruptions {
            tracing::error!(
                path = %c.path.display(),
                offset = c.offset,
                reason = c.reason,
                skipped_bytes = c.skipped_bytes,
                quarantined = ?c.quarantined,
                "wal corruption: started with the records before it and the files after it"
            );
            // Reported with every query, like an unreadable segment: the
            // entries after the damage are missing.
            state.catalog.corrupt.push(CorruptFile {
                path: c.quarantined.clone().unwrap_or_else(|| c.path.clone()),
                error: c.to_string(),
            });
        }
        if report.records > 0 || report.torn_tail_bytes > 0 || report.end_marks > 0 {
            tracing::info!(
                records = report.records,
                bytes = report.bytes,
                torn_tail_bytes = report.torn_tail_bytes,
                end_marks = report.end_marks,
                undecodable = replay_errors,
                "replayed the wal"
            );
        }
        if !state.head.is_empty() {
            state.head_since = Some(Instant::now());
        }

        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            flushed: Condvar::new(),
            flushed_lock: Mutex::new(()),
            counters: Counters::default(),
            closing: Default::default(),
            flush_abandoned: Default::default(),
            compacting: Mutex::new(()),
            tail: Default::default(),
            tombstones: Default::default(),
            limiter: limits::Limiter::new(config.limits.clone()),
            scrubber: RwLock::new(Arc::new(config.scrub.clone())),
            config,
            commit_hook: Default::default(),
            segments,
            catalog: catalog.clone(),
            retired: Default::default(),
            orphans_seen: Default::default(),
            last_refresh: Mutex::new(None),
            peers: Default::default(),
        });
        let (commands, commands_rx) = mpsc::sync_channel(1024);
        let (jobs, jobs_rx) = mpsc::sync_channel(1);
        let (wake_compactor, wake_rx) = mpsc::sync_channel(1);
        // Segments left from before the restart may already call for it.
        let _ = wake_compactor.try_send(());
        let compactor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("skald-compact".into())
                .spawn(move || compact::run(shared, wake_rx))
                .map_err(io(std::path::Path::new("thread")))?
        };
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("skald-flush".into())
                .spawn(move || flush::run(shared, jobs_rx, wake_compactor))
                .map_err(io(std::path::Path::new("thread")))?
        };
        let committer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("skald-commit".into())
                .spawn(move || commit::run(shared, wal, commands_rx, jobs))
                .map_err(io(std::path::Path::new("thread")))?
        };
        let mut threads = vec![committer, flusher, compactor];
        if catalog.shared() {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("skald-catalog".into())
                    .spawn(move || follow_catalog(shared))
                    .map_err(io(std::path::Path::new("thread")))?,
            );
        }
        Ok(Store {
            shared,
            commands,
            threads: Mutex::new(threads),
            scratch: None,
            low_priority: low_priority::Helper::start(),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }

    /// Where the list of segments and the delete requests are kept.
    pub fn catalog(&self) -> &Arc<dyn CatalogStore> {
        &self.shared.catalog
    }

    /// Brings this store's view up to date with a shared catalog now (the
    /// store also does it every [`CATALOG_REFRESH`]).
    pub fn refresh_catalog(&self) -> Result<(), StoreError> {
        refresh_view(&self.shared)
    }

    /// Installs the hook that sees every durable group (pattern mining).
    /// Only the first call takes effect; replayed WAL records are not seen.
    pub fn on_commit(&self, hook: CommitHook) {
        let _ = self.shared.commit_hook.set(hook);
    }

    /// Validates, logs and applies a push; returns once the accepted
    /// entries are durable (per the fsync mode). Blocks: call it from a
    /// blocking context.
    pub fn push(
        &self,
        tenant: &TenantId,
        mut streams: Vec<StreamBatch>,
    ) -> Result<PushOutcome, StoreError> {
        if !self.shared.config.role.ingest {
            let target = match self.shared.config.role.compact {
                true => "compact",
                false => "query",
            };
            return Err(StoreError::NotIngesting(target));
        }
        let limits = self.shared.limiter.limits(tenant);
        let scrubber = self.shared.scrubber.read().clone();
        scrubber.scrub(tenant, &mut streams);
        let (streams, mut outcome) = commit::validate(&limits, streams, Timestamp::now());
        let streams = self
            .shared
            .limiter
            .admit(tenant, &limits, streams, &mut outcome);
        if streams.iter().all(|s| s.entries.is_empty()) {
            self.count_rejected(&outcome);
            return Ok(outcome);
        }
        let (reply, done) = mpsc::sync_channel(1);
        self.commands
            .send(Command::Push {
                tenant: tenant.clone(),
                streams,
                reply,
            })
            .map_err(|_| StoreError::ShuttingDown)?;
        let committed = done.recv().map_err(|_| StoreError::ShuttingDown)??;
        outcome.accepted += committed.accepted;
        outcome.accepted_bytes += committed.accepted_bytes;
        outcome.duplicates += committed.duplicates;
        outcome.rejected.extend(committed.rejected);
        self.count_rejected(&outcome);
        Ok(outcome)
    }

    /// The limits that apply to `tenant` now.
    pub fn limits(&self, tenant: &TenantId) -> Arc<skald_model::Limits> {
        self.shared.limiter.limits(tenant)
    }

    /// Every tenant's limits now.
    pub fn tenant_limits(&self) -> Arc<TenantLimits> {
        self.shared.limiter.current()
    }

    /// Replaces every tenant's limits (a reload of the configuration);
    /// pushes that started before keep the limits they read.
    pub fn set_limits(&self, limits: TenantLimits) {
        self.shared.limiter.replace(limits);
    }

    /// Replaces the scrubbing rules (a reload of the configuration).
    pub fn set_scrubber(&self, scrubber: scrub::Scrubber) {
        *self.shared.scrubber.write() = Arc::new(scrubber);
    }

    /// How long the WAL's fsyncs took (for `/metrics`).
    pub fn wal_fsync_histogram(&self) -> &histogram::Histogram {
        &self.shared.counters.wal_fsync
    }

    /// What `tenant` uses now of its rate and active-stream limits.
    pub fn limit_usage(&self, tenant: &TenantId) -> LimitUsage {
        self.shared.limiter.usage(tenant)
    }

    fn count_rejected(&self, outcome: &PushOutcome) {
        let n: u64 = outcome.rejected.iter().map(|r| r.entries).sum();
        self.shared
            .counters
            .entries_rejected
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Flushes everything in the head into segments and waits for it.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (reply, done) = mpsc::sync_channel(1);
        self.commands
            .send(Command::Flush { reply })
            .map_err(|_| StoreError::ShuttingDown)?;
        let target = done.recv().map_err(|_| StoreError::ShuttingDown)?;
        self.wait_flushed(target);
        Ok(())
    }

    fn wait_flushed(&self, target: u64) {
        let mut guard = self.shared.flushed_lock.lock();
        while self.shared.state.read().flushes_done < target {
            self.shared
                .flushed
                .wait_for(&mut guard, std::time::Duration::from_millis(100));
        }
    }

    /// Runs compactions until the policy asks for no more (the background
    /// thread does the same after every flush).
    pub fn compact(&self) -> Result<(), StoreError> {
        let never = std::collections::HashSet::new();
        let mut busy = std::collections::HashSet::new();
        loop {
            let _one_at_a_time = self.shared.compacting.lock();
            let Some((tenant, inputs)) = compact::pick(&self.shared, &never, &busy) else {
                // Inputs no query holds go now, not at the thread's next
                // check.
                return segment::reap(&self.shared);
            };
            let Some(_lease) = compact::TenantLease::take(&self.shared, &tenant)? else {
                // Another node compacts this tenant.
                busy.insert(tenant);
                continue;
            };
            compact::compact(&self.shared, &tenant, &inputs)?;
        }
    }

    /// Applies retention (per-tenant periods, stream rules, size budgets)
    /// and due deletes to the segments now, as the compaction thread does
    /// every `retention_interval_secs`.
    pub fn apply_retention(&self) -> Result<retention::RetentionReport, StoreError> {
        let _one_at_a_time = self.shared.compacting.lock();
        let report = retention::run_pass(&self.shared)?;
        segment::reap(&self.shared)?;
        Ok(report)
    }

    /// Deletes the objects of a shared segment store that the catalog has
    /// had no row for since at least `orphan_grace_secs` ago, as the
    /// compaction thread does after each retention pass; returns how many.
    pub fn sweep_orphans(&self) -> Result<usize, StoreError> {
        orphans::sweep(&self.shared)
    }

    /// Flushes the head, syncs and stops the store's threads.
    pub fn close(&self) -> Result<(), StoreError> {
        self.shared.closing.store(true, Ordering::Relaxed);
        let (reply, done) = mpsc::sync_channel(1);
        if self.commands.send(Command::Shutdown { reply }).is_ok() {
            let _ = done.recv();
        }
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
        Ok(())
    }

    /// Makes every snapshot ask `peers` for the entries other nodes hold
    /// in memory (see [`cluster`]). Only the first call takes effect.
    pub fn set_peers(&self, peers: Arc<dyn cluster::PeerHeads>) {
        let _ = self.shared.peers.set(peers);
    }

    /// The entries of this node's head (and of a head being flushed) of
    /// `tenant`'s streams matching `matchers`, in `[start, end)`, sorted:
    /// what a query node asks an ingest node for. No tombstones applied
    /// (the asking node applies its own).
    pub fn head_streams(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<(LabelSet, Vec<Entry>)> {
        let state = self.shared.state.read();
        let Some(index) = state.index.get(tenant) else {
            return Vec::new();
        };
        let head = state.head.tenants.get(tenant);
        let flushing = state.flushing.as_ref().and_then(|f| f.tenants.get(tenant));
        let mut out = Vec::new();
        for info in index.select(matchers, start, end) {
            let mut blocks: Vec<Arc<HeadBlock>> = Vec::new();
            if let Some((_, flushed)) = flushing.and_then(|f| f.get(&info.id)) {
                blocks.extend(flushed.iter().cloned());
            }
            if let Some(s) = head.and_then(|h| h.get(&info.id)) {
                blocks.extend(s.blocks_in(start, end));
            }
            let mut entries: Vec<Entry> = blocks
                .iter()
                .flat_map(|b| b.entries())
                .filter(|e| e.ts >= start && e.ts < end)
                .collect();
            if entries.is_empty() {
                continue;
            }
            entries.sort_by_key(|e| e.ts);
            out.push((info.labels.clone(), entries));
        }
        out
    }

    /// The streams matching `matchers` with entries in `[start, end)`, with
    /// every head block and segment chunk that may hold those entries
    /// (other nodes' heads too, when peers are set: see [`cluster`]).
    pub fn snapshot(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Snapshot {
        let from_peers = self
            .shared
            .peers
            .get()
            .map(|p| p.fetch(tenant, matchers, start, end));
        if from_peers.is_some()
            && self.shared.catalog.shared()
            && let Err(e) = refresh_view(&self.shared)
        {
            tracing::warn!(error = %e, "could not refresh the catalog view before a query");
        }
        let snap = if low_priority::is_marked() {
            let (shared, t, m) = (self.shared.clone(), tenant.clone(), matchers.to_vec());
            self.low_priority
                .run(move || select_sources(&shared, &t, &m, start, end))
                .unwrap_or_else(|| select_sources(&self.shared, tenant, matchers, start, end))
        } else {
            select_sources(&self.shared, tenant, matchers, start, end)
        };
        self.finish_snapshot(tenant, snap, from_peers)
    }

    /// Adds the peers' entries to a snapshot and hides deleted entries.
    fn finish_snapshot(
        &self,
        tenant: &TenantId,
        mut snap: Snapshot,
        from_peers: Option<cluster::PeerAnswer>,
    ) -> Snapshot {
        if let Some(answer) = from_peers {
            cluster::merge(&mut snap, answer);
        }
        delete::apply_to_snapshot(&self.shared.tombstones.of(tenant), &mut snap);
        snap
    }

    /// Label names of `tenant`'s streams with entries in `[start, end)`.
    pub fn label_names(&self, tenant: &TenantId, start: Timestamp, end: Timestamp) -> Vec<String> {
        let deleted = self.shared.tombstones.of(tenant);
        if !deleted.is_empty() || self.shared.peers.get().is_some() {
            let mut names: Vec<String> = self
                .streams(tenant, &[], start, end)
                .iter()
                .flat_map(|s| s.labels.labels().iter().map(|l| l.name.clone()))
                .collect();
            names.sort();
            names.dedup();
            return names;
        }
        let state = self.shared.state.read();
        state
            .index
            .get(tenant)
            .map(|i| i.label_names(start, end))
            .unwrap_or_default()
    }

    /// Values of label `name`, restricted to streams matching `matchers`.
    pub fn label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<String> {
        let deleted = self.shared.tombstones.of(tenant);
        if !deleted.is_empty() || self.shared.peers.get().is_some() {
            let mut values: Vec<String> = self
                .streams(tenant, matchers, start, end)
                .iter()
                .filter_map(|s| s.labels.get(name).map(str::to_string))
                .collect();
            values.sort();
            values.dedup();
            return values;
        }
        let state = self.shared.state.read();
        state
            .index
            .get(tenant)
            .map(|i| i.label_values(name, matchers, start, end))
            .unwrap_or_default()
    }

    /// Label sets of the streams matching any of `selectors`.
    pub fn series(
        &self,
        tenant: &TenantId,
        selectors: &[Vec<Matcher>],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<LabelSet> {
        if self.shared.peers.get().is_some() {
            let mut out: Vec<LabelSet> = selectors
                .iter()
                .flat_map(|m| self.streams(tenant, m, start, end))
                .map(|s| s.labels)
                .collect();
            out.sort();
            out.dedup();
            return out;
        }
        let state = self.shared.state.read();
        let Some(index) = state.index.get(tenant) else {
            return Vec::new();
        };
        let deleted = self.shared.tombstones.of(tenant);
        let mut out: Vec<LabelSet> = selectors
            .iter()
            .flat_map(|m| index.select(m, start, end))
            .filter(|s| !delete::Tombstones::hides(&deleted, s))
            .map(|s| s.labels.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every stream of a tenant the index knows (and the other nodes'
    /// heads hold, when peers are set), with its time bounds.
    pub fn streams(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<StreamInfo> {
        let from_peers = self
            .shared
            .peers
            .get()
            .map(|p| cluster::stream_infos(p.streams(tenant, matchers, start, end)));
        let deleted = self.shared.tombstones.of(tenant);
        let state = self.shared.state.read();
        let mut out: Vec<StreamInfo> = state
            .index
            .get(tenant)
            .map(|i| {
                i.select(matchers, start, end)
                    .into_iter()
                    .filter(|s| !delete::Tombstones::hides(&deleted, s))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        drop(state);
        for info in from_peers.into_iter().flatten() {
            if delete::Tombstones::hides(&deleted, &info) {
                continue;
            }
            match out.iter_mut().find(|s| s.id == info.id) {
                Some(s) => {
                    s.min_ts = s.min_ts.min(info.min_ts);
                    s.max_ts = s.max_ts.max(info.max_ts);
                }
                None => out.push(info),
            }
        }
        out
    }

    pub fn tenant_stats(&self, tenant: &TenantId) -> TenantStats {
        let deleted = self.shared.tombstones.of(tenant);
        let state = self.shared.state.read();
        let mut st = TenantStats {
            streams: state.index.get(tenant).map_or(0, |i| {
                if deleted.is_empty() {
                    return i.len() as u64;
                }
                i.select(&[], Timestamp::MIN, Timestamp::MAX)
                    .into_iter()
                    .filter(|s| !delete::Tombstones::hides(&deleted, s))
                    .count() as u64
            }),
            ..Default::default()
        };
        for seg in state.catalog.segments.get(tenant).into_iter().flatten() {
            st.segments += 1;
            st.segment_bytes += seg.disk_bytes;
            let (entries, raw) = {
                let s = seg.summary();
                (s.entries, s.raw_bytes)
            };
            st.segment_entries += entries;
            st.segment_raw_bytes += raw;
        }
        if let Some(streams) = state.head.tenants.get(tenant) {
            for s in streams.values() {
                for b in s.frozen.iter().map(|b| b.as_ref()).chain([&s.open]) {
                    st.head_entries += b.len() as u64;
                    st.head_bytes += b.raw_bytes() as u64;
                }
            }
        }
        // A head being flushed is still in memory, not yet in segments:
        // without it a flush in progress hid its entries from the totals.
        if let Some(streams) = state.flushing.as_ref().and_then(|f| f.tenants.get(tenant)) {
            for (_, blocks) in streams.values() {
                for b in blocks {
                    st.head_entries += b.len() as u64;
                    st.head_bytes += b.raw_bytes() as u64;
                }
            }
        }
        st
    }

    /// Subscribes to entries of `tenant`'s streams matching `matchers`
    /// as they become durable (see [`tail`]). At most `capacity` entries
    /// and `capacity_bytes` bytes wait in the subscription; more are
    /// counted as dropped. `waker` runs on the commit thread after entries
    /// were queued; it must not block. On a node with peers (see
    /// [`Store::set_peers`]) the other ingest nodes' entries come too:
    /// [`Subscription::wait_following`] says when they are reached.
    pub fn subscribe(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        capacity: usize,
        capacity_bytes: usize,
        waker: tail::Waker,
    ) -> Subscription {
        let sub = self.subscribe_local(tenant, matchers, capacity, capacity_bytes, waker);
        if let Some(peers) = self.shared.peers.get() {
            sub.expect_following();
            peers.follow(tenant, matchers, sub.feed());
        }
        sub
    }

    /// As [`Store::subscribe`], this node's entries only (what another
    /// node following this one asks for).
    pub fn subscribe_local(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        capacity: usize,
        capacity_bytes: usize,
        waker: tail::Waker,
    ) -> Subscription {
        self.shared.tail.subscribe(
            tenant.clone(),
            matchers.to_vec(),
            capacity,
            capacity_bytes,
            waker,
        )
    }

    /// Live tail subscriptions now (a dropped one no longer counts).
    pub fn live_tails(&self) -> usize {
        self.shared.tail.live()
    }

    /// Hides the entries a tombstone covers from every read from now on
    /// (see [`delete`]); replaces one of the same tenant and id.
    pub fn add_tombstone(&self, tombstone: delete::Tombstone) {
        self.shared.tombstones.add(tombstone);
    }

    /// Withdraws a tombstone; false when there was none.
    pub fn remove_tombstone(&self, tenant: &TenantId, id: &str) -> bool {
        self.shared.tombstones.remove(tenant, id)
    }

    /// Whether a compaction has dropped entries for a tombstone (None: no
    /// such tombstone).
    pub fn tombstone_applied(&self, tenant: &TenantId, id: &str) -> Option<bool> {
        if self.shared.tombstones.is_retired(tenant, id) {
            return Some(true);
        }
        self.shared.tombstones.applied(tenant, id)
    }

    pub fn tenants(&self) -> Vec<TenantId> {
        let state = self.shared.state.read();
        let mut t: Vec<TenantId> = state.index.keys().cloned().collect();
        t.sort();
        t
    }

    /// What went to and from the object store (`None` for segments on a
    /// local disk).
    pub fn object_stats(&self) -> Option<storage::ObjectStats> {
        self.shared.segments.remote_stats()
    }

    pub fn counters(&self) -> StoreCounters {
        let c = &self.shared.counters;
        let state = self.shared.state.read();
        StoreCounters {
            entries_accepted: c.entries_accepted.load(Ordering::Relaxed),
            bytes_accepted: c.bytes_accepted.load(Ordering::Relaxed),
            entries_rejected: c.entries_rejected.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            flush_errors: c.flush_errors.load(Ordering::Relaxed),
            wal_syncs: c.wal_syncs.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
            compaction_errors: c.compaction_errors.load(Ordering::Relaxed),
            compaction_pending: self.shared.compacting.is_locked()
                || compact::plan_exists(&state, &self.shared.config),
            head_bytes: (state.head.bytes + state.flushing.as_ref().map_or(0, |f| f.bytes)) as u64,
            corrupt_files: state.catalog.corrupt.len() as u64,
            retention_segments_deleted: c.retention_segments_deleted.load(Ordering::Relaxed),
            retention_segments_rewritten: c.retention_segments_rewritten.load(Ordering::Relaxed),
            retention_bytes_reclaimed: c.retention_bytes_reclaimed.load(Ordering::Relaxed),
            retention_entries_expired: c.retention_entries_expired.load(Ordering::Relaxed),
            deleted_entries_dropped: c.deleted_entries_dropped.load(Ordering::Relaxed),
            tombstones_retired: c.tombstones_retired.load(Ordering::Relaxed),
        }
    }

    /// Reads one source's entries in `[start, end)`, sorted by time. The
    /// query engine's way into blocks; errors name the file.
    pub fn read_source(source: &Source) -> Result<Vec<Entry>, StoreError> {
        match source {
            Source::Head(b) => Ok(b.entries().collect()),
            Source::Chunk(c) => Ok(c.segment.read_chunk(c.at)?),
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.close();
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// How often a store over a shared catalog asks it what other nodes
/// changed.
pub const CATALOG_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The `skald-catalog` thread: refreshes the view every
/// [`CATALOG_REFRESH`] until the store closes.
fn follow_catalog(shared: Arc<Shared>) {
    let mut failing = false;
    while !shared.closing.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let last = *shared.last_refresh.lock();
        if last.is_some_and(|t| t.elapsed() < CATALOG_REFRESH) {
            continue;
        }
        match refresh_view(&shared) {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(catalog = %shared.catalog.describe(), "the catalog answers again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "could not refresh the catalog view; serving the segments known so far");
            }
            Err(_) => *shared.last_refresh.lock() = Some(Instant::now()),
        }
    }
}

/// Adds the segments other processes published to the view, and drops
/// those they removed.
pub(crate) fn refresh_view(shared: &Shared) -> Result<(), StoreError> {
    let version = shared.state.read().catalog.version;
    let fetched = Catalog::fetch_changes(version, &*shared.segments, &*shared.catalog)?;
    let mut state = shared.state.write();
    let added = state.catalog.apply(fetched);
    for (tenant, seg) in added {
        let idx = state.index.entry(tenant).or_default();
        for (labels, id, min, max) in seg.streams() {
            idx.observe(labels, id, min, max);
        }
    }
    drop(state);
    *shared.last_refresh.lock() = Some(Instant::now());
    Ok(())
}

pub(crate) fn wal_options() -> skald_wal::WalOptions {
    skald_wal::WalOptions::default()
}

/// The sources of a snapshot, taken under the state's read lock (see
/// [`Store::snapshot`]).
fn select_sources(
    shared: &Shared,
    tenant: &TenantId,
    matchers: &[Matcher],
    start: Timestamp,
    end: Timestamp,
) -> Snapshot {
    let state = shared.state.read();
    let mut snap = Snapshot {
        corrupt: state.catalog.corrupt.clone(),
        ..Default::default()
    };
    let Some(index) = state.index.get(tenant) else {
        return snap;
    };
    let segments: Vec<&Arc<Segment>> = state
        .catalog
        .segments
        .get(tenant)
        .map(|s| {
            s.iter()
                .filter(|s| s.min_ts < end && s.max_ts >= start)
                .collect()
        })
        .unwrap_or_default();
    let head = state.head.tenants.get(tenant);
    let flushing = state.flushing.as_ref().and_then(|f| f.tenants.get(tenant));
    for info in index.select(matchers, start, end) {
        let mut sources = Vec::new();
        for seg in &segments {
            for at in seg.chunks_of(info.id, start, end) {
                sources.push(Source::Chunk(ChunkRef {
                    segment: Arc::clone(seg),
                    at,
                }));
            }
        }
        if let Some((_, blocks)) = flushing.and_then(|f| f.get(&info.id)) {
            sources.extend(
                blocks
                    .iter()
                    .filter(|b| b.min_ts() < end && b.max_ts() >= start)
                    .map(|b| Source::Head(b.clone())),
            );
        }
        if let Some(s) = head.and_then(|h| h.get(&info.id)) {
            sources.extend(s.blocks_in(start, end).into_iter().map(Source::Head));
        }
        if !sources.is_empty() {
            snap.streams.push(StreamSources {
                labels: info.labels.clone(),
                id: info.id,
                sources,
            });
        }
    }
    drop(state);
    snap
}

#[cfg(test)]
mod tests;
