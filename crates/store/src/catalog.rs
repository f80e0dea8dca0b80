//! The catalog: which segments exist for each tenant, opened and indexed,
//! and which files could not be read.
//!
//! Two parts. [`Catalog`] is this process's view: every listed segment
//! open, for queries, flushes and compactions to use under the store's
//! lock. [`CatalogStore`] is where the list is kept, and the only way a
//! segment comes into or goes out of it (publish, replace, remove), so a
//! view and its store never disagree for long:
//!
//! - [`LocalCatalog`] (the default): the key tree of the segment store
//!   itself, `tenants/<tenant>/segments/<id>.seg` (a directory tree under
//!   the data directory, see [`crate::storage`]), listed at start. A
//!   segment only appears there once complete (a local file is written
//!   under a temporary name and renamed; an object upload is atomic), so
//!   the tree is always consistent; a `<id>.replaces` sidecar, stored
//!   before a compaction's output, makes a replacement atomic across a
//!   crash (see [`LocalCatalog::list`]). Delete requests are
//!   `delete_requests.json` in the data directory.
//! - [`PostgresCatalog`]: tables in a PostgreSQL database that several
//!   nodes share (see [`postgres`]). Publishing and replacing are one
//!   transaction each; a replacement whose inputs another node already
//!   replaced is refused ([`CatalogError::Conflict`]), so racing
//!   compactors never lose an update; a lease per tenant keeps a second
//!   compactor from doing the work at all.
//!
//! A segment that fails its checks when opened (damaged header, footer or
//! index) is reported with its path and the offset of the damage, and
//! everything else is served; under a local catalog it is also moved to
//! `quarantine/tenants/<tenant>/` for inspection. Damage inside a block is
//! found when the block is read, and reported with the query that read it.

mod pg_tls;
pub mod postgres;

pub use postgres::PostgresCatalog;

use crate::delete::DeleteRequest;
use crate::segment::Segment;
use crate::storage::SegmentStore;
use parking_lot::Mutex;
use skald_model::{TenantId, Timestamp};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A file the store could not read, kept to be reported with query results.
#[derive(Debug, Clone)]
pub struct CorruptFile {
    pub path: PathBuf,
    pub error: String,
}

/// A segment as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    pub tenant: TenantId,
    pub id: u64,
    /// Its key in the segment store.
    pub key: String,
    /// The oldest and newest entry (known once written; the local catalog
    /// learns them by opening the segment).
    pub min_ts: Timestamp,
    pub max_ts: Timestamp,
    /// Bytes stored.
    pub bytes: u64,
    pub entries: u64,
}

impl SegmentRecord {
    /// The record of an open segment.
    pub(crate) fn of(tenant: &TenantId, seg: &Segment) -> SegmentRecord {
        SegmentRecord {
            tenant: tenant.clone(),
            id: seg.id,
            key: seg.key.clone(),
            min_ts: seg.min_ts,
            max_ts: seg.max_ts,
            bytes: seg.disk_bytes,
            entries: seg.summary().entries,
        }
    }
}

/// A registered node of a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    /// Its HTTP API's base URL.
    pub address: String,
    pub target: String,
    /// Seconds since its last heartbeat.
    pub silent_secs: f64,
}

/// What changed in a catalog since a version (see
/// [`CatalogStore::changes_since`]).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The version to ask from next time.
    pub version: u64,
    pub added: Vec<SegmentRecord>,
    pub removed: Vec<(TenantId, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Another node changed the segments this change was based on (a
    /// compaction raced this one, or retention took an input).
    #[error("catalog conflict: {0}")]
    Conflict(String),
    /// The catalog was written by a newer Skald.
    #[error(
        "the catalog at {at} has schema version {found}, newer than this skald knows ({known}); upgrade skald"
    )]
    NewerSchema { at: String, found: i64, known: i64 },
    #[error("catalog {at}: {message}")]
    Unavailable { at: String, message: String },
    #[error("catalog i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the list of segments (and the other state every node must share:
/// delete requests, retention passes, compaction leases) is kept.
///
/// Calls block; the store makes them from its flush and compaction
/// threads, and the server from blocking tasks.
pub trait CatalogStore: Send + Sync + std::fmt::Debug {
    /// What and where this catalog is, for logs (never a password).
    fn describe(&self) -> String;

    /// Every published segment. Replacements cut short by a crash are
    /// finished or undone first.
    fn list(&self) -> Result<Vec<SegmentRecord>, CatalogError>;

    /// The version [`CatalogStore::changes_since`] starts from, read with
    /// [`CatalogStore::list`] (0: a catalog nobody else changes).
    fn version(&self) -> Result<u64, CatalogError> {
        Ok(0)
    }

    /// Segments published and removed by anyone since `version`. A
    /// catalog only this process changes has none.
    fn changes_since(&self, version: u64) -> Result<Changes, CatalogError> {
        Ok(Changes {
            version,
            ..Default::default()
        })
    }

    /// Whether other processes change this catalog (the view is then
    /// refreshed from [`CatalogStore::changes_since`]).
    fn shared(&self) -> bool {
        false
    }

    /// A new segment id, never handed out before.
    fn allocate_id(&self) -> Result<u64, CatalogError>;

    /// Makes sure [`CatalogStore::allocate_id`] never hands out `id` or
    /// below (segments stored before this catalog listed them).
    fn reserve_ids_through(&self, id: u64) -> Result<(), CatalogError> {
        let _ = id;
        Ok(())
    }

    /// Lists `segment`, already complete in the segment store.
    fn publish(&self, segment: &SegmentRecord) -> Result<(), CatalogError>;

    /// Called before the output of a replacement is stored: returns a key
    /// of the segment store to delete once the inputs are gone (the local
    /// catalog's `.replaces` sidecar), if any.
    fn prepare_replace(
        &self,
        tenant: &TenantId,
        inputs: &[u64],
        output: u64,
    ) -> Result<Option<String>, CatalogError>;

    /// Lists `output` instead of `inputs` (segments of the output's
    /// tenant), at once; [`CatalogError::Conflict`] and no change if any
    /// input is no longer listed.
    fn replace(&self, inputs: &[u64], output: &SegmentRecord) -> Result<(), CatalogError>;

    /// Stops listing segment `id` of `tenant`.
    fn remove(&self, tenant: &TenantId, id: u64) -> Result<(), CatalogError>;

    /// How long a segment out of the catalog stays in the segment store,
    /// for other processes' queries still reading it.
    fn delete_grace(&self) -> Duration {
        Duration::ZERO
    }

    /// Whether a damaged segment may be moved under `quarantine/` (only
    /// when nobody else lists it).
    fn quarantines(&self) -> bool {
        true
    }

    /// Takes the right to compact and apply retention to `tenant` (false:
    /// someone else holds it). Held until [`CatalogStore::release_tenant`]
    /// or, if this process dies, until the lease expires.
    fn lease_tenant(&self, tenant: &TenantId) -> Result<bool, CatalogError> {
        let _ = tenant;
        Ok(true)
    }

    fn release_tenant(&self, tenant: &TenantId) -> Result<(), CatalogError> {
        let _ = tenant;
        Ok(())
    }

    /// Whether this process should run a retention pass now: true at most
    /// once per `every` across every process sharing the catalog.
    fn retention_due(&self, every: Duration) -> Result<bool, CatalogError> {
        let _ = every;
        Ok(true)
    }

    /// Records (or refreshes: a heartbeat) this node, reachable at
    /// `address`, doing `target` (all, ingest, query, compact).
    fn register_node(&self, address: &str, target: &str) -> Result<(), CatalogError> {
        let _ = (address, target);
        Ok(())
    }

    /// Removes this node's registration (a clean stop, head flushed).
    fn leave(&self, address: &str) -> Result<(), CatalogError> {
        let _ = address;
        Ok(())
    }

    /// Removes `address`'s registration if its last heartbeat is at least
    /// `silent` old (a node that came back since is kept); true when
    /// removed.
    fn forget_node(&self, address: &str, silent: Duration) -> Result<bool, CatalogError> {
        let _ = (address, silent);
        Ok(false)
    }

    /// The key of every segment this catalog has a row for, listed or
    /// removed but not yet purged; `None` when it keeps no such record
    /// (the local catalog lists what the directory holds). An object of
    /// the segment store with no row is an orphan: stored by a node that
    /// stopped before listing it, or removed and purged long ago.
    fn known_keys(&self) -> Result<Option<HashSet<String>>, CatalogError> {
        Ok(None)
    }

    /// The registered nodes that hold heads (targets `all` and `ingest`).
    fn ingest_nodes(&self) -> Result<Vec<NodeRecord>, CatalogError> {
        Ok(Vec::new())
    }

    /// Every delete request of every tenant, oldest first.
    fn delete_requests(&self) -> Result<Vec<DeleteRequest>, CatalogError>;

    /// Records a delete request (durably, before it is acknowledged).
    fn add_delete_request(&self, request: &DeleteRequest) -> Result<(), CatalogError>;

    /// Withdraws a delete request; false when there was none.
    fn remove_delete_request(&self, tenant: &TenantId, id: &str) -> Result<bool, CatalogError>;

    /// The API token records (JSON, as `skald_server::service::auth`
    /// writes them: an id, a name and a salted hash, never the token) when
    /// this catalog keeps them, so every node sharing it authenticates
    /// against the same list. `None`: tokens stay in the data directory's
    /// `tokens.json`, as with the local catalog.
    fn tokens(&self) -> Result<Option<Vec<String>>, CatalogError> {
        Ok(None)
    }

    /// Adds a token record; a name already taken is a
    /// [`CatalogError::Conflict`] and adds nothing.
    fn add_token(&self, _id: &str, _name: &str, _record: &str) -> Result<(), CatalogError> {
        Err(CatalogError::Conflict(
            "this catalog keeps no tokens: they are in the data directory".into(),
        ))
    }

    /// The record (JSON, as `skald_server::export` writes it) of export
    /// job `id` of `tenant`, when this catalog keeps them (a shared
    /// catalog: a job started on one node is found on every node).
    /// `None`: not kept here (each node keeps its own under its data
    /// directory), or no such job.
    fn export_job(&self, _tenant: &TenantId, _id: &str) -> Result<Option<String>, CatalogError> {
        Ok(None)
    }

    /// Stores (or replaces) an export job's record; nothing when this
    /// catalog keeps none.
    fn put_export_job(
        &self,
        _tenant: &TenantId,
        _id: &str,
        _record: &str,
    ) -> Result<(), CatalogError> {
        Ok(())
    }

    /// Removes an export job's record (it expired).
    fn remove_export_job(&self, _tenant: &TenantId, _id: &str) -> Result<(), CatalogError> {
        Ok(())
    }

    /// Removes the token of that name (or else that id) and answers its
    /// record; `None` if there is none.
    fn remove_token(&self, _name_or_id: &str) -> Result<Option<String>, CatalogError> {
        Err(CatalogError::Conflict(
            "this catalog keeps no tokens: they are in the data directory".into(),
        ))
    }
}

/// What [`Catalog::fetch_changes`] found, to apply under the lock.
pub(crate) struct Fetched {
    changes: Changes,
    opened: Vec<(TenantId, Arc<Segment>)>,
    corrupt: Vec<CorruptFile>,
}

/// This process's view of the catalog: every listed segment, open.
#[derive(Debug, Default)]
pub struct Catalog {
    pub segments: HashMap<TenantId, Vec<Arc<Segment>>>,
    pub corrupt: Vec<CorruptFile>,
    /// Ids of segments this view stopped listing: a late refresh never
    /// brings one back (ids are never reused).
    gone: HashSet<u64>,
    /// The catalog store's version this view reflects.
    pub version: u64,
}

impl Catalog {
    /// Opens every segment `catalog` lists from `store`. A segment that
    /// fails to open is recorded as corrupt, logged and (if it is damaged,
    /// rather than unreadable for now or written by a newer version, and
    /// the catalog allows it) moved under `quarantine/`; the rest are
    /// served.
    pub fn load(
        store: &dyn SegmentStore,
        catalog: &dyn CatalogStore,
    ) -> Result<Catalog, CatalogError> {
        let version = catalog.version()?;
        let records = catalog.list()?;
        let mut cat = Catalog {
            version,
            ..Default::default()
        };
        for record in records {
            if let Some(seg) = cat.open(store, catalog, &record) {
                cat.segments
                    .entry(record.tenant.clone())
                    .or_default()
                    .push(seg);
            }
        }
        for segs in cat.segments.values_mut() {
            segs.sort_by_key(|s| s.id);
        }
        Ok(cat)
    }

    /// Opens a listed segment; None (and a corrupt file reported) if it
    /// cannot be read.
    fn open(
        &mut self,
        store: &dyn SegmentStore,
        catalog: &dyn CatalogStore,
        record: &SegmentRecord,
    ) -> Option<Arc<Segment>> {
        let key = &record.key;
        match Segment::open_in(record.id, store, key) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                let path = store.location(key);
                let damaged = matches!(e, skald_chunk::ChunkError::CorruptSegment { .. });
                let kept = (damaged && catalog.quarantines())
                    .then(|| set_aside(store, key, &record.tenant))
                    .and_then(|r| {
                        r.inspect_err(|q| tracing::error!(path = %path.display(), error = %q, "could not move a corrupt segment to the quarantine"))
                            .ok()
                    });
                tracing::error!(path = %path.display(), error = %e, quarantined = ?kept, "segment is corrupt; serving everything else");
                self.corrupt.push(CorruptFile {
                    path: kept.unwrap_or(path),
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// Opens the segments another process published since this view's
    /// version (without the lock: opening may read remote bytes). The
    /// caller adds them with [`Catalog::apply`].
    pub(crate) fn fetch_changes(
        version: u64,
        store: &dyn SegmentStore,
        catalog: &dyn CatalogStore,
    ) -> Result<Fetched, CatalogError> {
        let changes = catalog.changes_since(version)?;
        let mut scratch = Catalog::default();
        let mut opened = Vec::new();
        for record in &changes.added {
            if let Some(seg) = scratch.open(store, catalog, record) {
                opened.push((record.tenant.clone(), seg));
            }
        }
        Ok(Fetched {
            changes,
            opened,
            corrupt: scratch.corrupt,
        })
    }

    /// Applies what [`Catalog::fetch_changes`] found; returns the segments
    /// added (for the label index). Segments this view already has, or
    /// already dropped, are left as they are.
    pub(crate) fn apply(&mut self, fetched: Fetched) -> Vec<(TenantId, Arc<Segment>)> {
        let Fetched {
            changes,
            opened,
            corrupt,
        } = fetched;
        let mut added = Vec::new();
        for (tenant, seg) in opened {
            let known = self
                .segments
                .get(&tenant)
                .is_some_and(|segs| segs.iter().any(|s| s.id == seg.id));
            if known || self.gone.contains(&seg.id) {
                continue;
            }
            self.publish(&tenant, seg.clone());
            added.push((tenant, seg));
        }
        for (tenant, id) in &changes.removed {
            self.remove(tenant, *id);
        }
        for c in corrupt {
            if !self.corrupt.iter().any(|o| o.path == c.path) {
                self.corrupt.push(c);
            }
        }
        self.version = self.version.max(changes.version);
        added
    }

    /// Lists a new segment of `tenant` (unless already listed).
    pub fn publish(&mut self, tenant: &TenantId, segment: Arc<Segment>) {
        let segs = self.segments.entry(tenant.clone()).or_default();
        if segs.iter().any(|s| s.id == segment.id) {
            return;
        }
        segs.push(segment);
        segs.sort_by_key(|s| s.id);
    }

    /// Replaces `inputs` by `output` in one step: a reader sees either,
    /// never both or neither.
    pub fn replace(&mut self, tenant: &TenantId, inputs: &[Arc<Segment>], output: Arc<Segment>) {
        for i in inputs {
            self.gone.insert(i.id);
        }
        let segs = self.segments.entry(tenant.clone()).or_default();
        segs.retain(|s| !inputs.iter().any(|i| i.id == s.id));
        if !segs.iter().any(|s| s.id == output.id) {
            segs.push(output);
        }
        segs.sort_by_key(|s| s.id);
    }

    /// Stops listing segment `id` of `tenant`.
    pub fn remove(&mut self, tenant: &TenantId, id: u64) {
        self.gone.insert(id);
        if let Some(segs) = self.segments.get_mut(tenant) {
            segs.retain(|s| s.id != id);
        }
    }
}

/// The embedded catalog: the segment store's own key tree, and delete
/// requests in a JSON file of the data directory.
#[derive(Debug)]
pub struct LocalCatalog {
    segments: Arc<dyn SegmentStore>,
    /// `<data_dir>/delete_requests.json`.
    deletes_file: PathBuf,
    /// Serialises the rewrites of the delete requests' file.
    deletes_lock: Mutex<()>,
    next_id: AtomicU64,
}

impl LocalCatalog {
    /// The catalog of the segments in `segments`, with its other state in
    /// `data_dir`.
    pub fn new(segments: Arc<dyn SegmentStore>, data_dir: &Path) -> LocalCatalog {
        LocalCatalog {
            segments,
            deletes_file: data_dir.join(DELETES_FILE),
            deletes_lock: Mutex::new(()),
            next_id: AtomicU64::new(1),
        }
    }

    fn io(&self, key: &str) -> impl FnOnce(std::io::Error) -> CatalogError {
        let path = self.segments.location(key);
        move |source| CatalogError::Io { path, source }
    }

    fn write_deletes(&self, list: &[DeleteRequest]) -> Result<(), CatalogError> {
        let io = |source| CatalogError::Io {
            path: self.deletes_file.clone(),
            source,
        };
        let body = serde_json::to_vec_pretty(list)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        // Written as a segment store writes a small file: temporary name,
        // fsync, rename, fsync of the directory.
        let dir = self.deletes_file.parent().unwrap_or(Path::new("."));
        crate::storage::LocalDir::new(dir)
            .put_bytes(DELETES_FILE, &body)
            .map_err(io)
    }
}

/// The local catalog's file of delete requests.
const DELETES_FILE: &str = "delete_requests.json";

impl CatalogStore for LocalCatalog {
    fn describe(&self) -> String {
        format!("the key tree of {}", self.segments.describe())
    }

    /// Lists the key tree: finishes or undoes compactions cut short (see
    /// `finish_compactions`), deletes `.tmp` leftovers of flushes cut
    /// short, and returns the segments (their time bounds and sizes are
    /// learnt when they are opened).
    fn list(&self) -> Result<Vec<SegmentRecord>, CatalogError> {
        let store = &*self.segments;
        let mut by_tenant: HashMap<TenantId, Vec<(String, Key)>> = HashMap::new();
        for listed in store.list(TENANTS).map_err(self.io(TENANTS))? {
            if let Some((tenant, kind)) = parse_key(&listed.key) {
                by_tenant
                    .entry(tenant)
                    .or_default()
                    .push((listed.key, kind));
            }
        }
        let mut out = Vec::new();
        let mut next_id = 1;
        for (tenant, mut keys) in by_tenant {
            finish_compactions(store, &mut keys).map_err(self.io(TENANTS))?;
            for (key, kind) in keys {
                match kind {
                    Key::Segment(id) => {
                        next_id = u64::max(next_id, id + 1);
                        out.push(SegmentRecord {
                            tenant: tenant.clone(),
                            id,
                            key,
                            min_ts: Timestamp::MIN,
                            max_ts: Timestamp::MAX,
                            bytes: 0,
                            entries: 0,
                        });
                    }
                    Key::Temporary => {
                        // Leftovers of a flush cut short: never acknowledged
                        // as flushed, so the WAL still holds their entries.
                        let _ = store.delete(&key);
                    }
                    Key::Replaces(_) => {}
                }
            }
        }
        self.next_id.fetch_max(next_id, Ordering::Relaxed);
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    fn allocate_id(&self) -> Result<u64, CatalogError> {
        Ok(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Nothing to do: a segment complete in the key tree is listed.
    fn publish(&self, _segment: &SegmentRecord) -> Result<(), CatalogError> {
        Ok(())
    }

    /// Stores the `<output>.replaces` sidecar naming the inputs: from now
    /// on, a crash leaves either the inputs (no output yet) or the output
    /// (its inputs deleted at the next start).
    fn prepare_replace(
        &self,
        tenant: &TenantId,
        inputs: &[u64],
        output: u64,
    ) -> Result<Option<String>, CatalogError> {
        let sidecar = replaces_key(tenant, output);
        let listing: String = inputs.iter().map(|id| format!("{id}\n")).collect();
        self.segments
            .put_bytes(&sidecar, listing.as_bytes())
            .map_err(self.io(&sidecar))?;
        Ok(Some(sidecar))
    }

    /// Checks that every input is still stored (this process's compaction
    /// lock keeps that true; the check catches a caller that forgot it);
    /// then nothing more: the output is stored, and its sidecar stands for
    /// the inputs' removal until they are deleted.
    fn replace(&self, inputs: &[u64], output: &SegmentRecord) -> Result<(), CatalogError> {
        let dir = format!("{TENANTS}{}/segments/", output.tenant.as_str());
        let stored: HashSet<String> = self
            .segments
            .list(&dir)
            .map_err(self.io(&dir))?
            .into_iter()
            .map(|l| l.key)
            .collect();
        let gone: Vec<u64> = inputs
            .iter()
            .copied()
            .filter(|&id| !stored.contains(&segment_key(&output.tenant, id)))
            .collect();
        if !gone.is_empty() {
            return Err(CatalogError::Conflict(format!(
                "segments {gone:?} of tenant {} are no longer listed; segment {} is not published",
                output.tenant, output.id
            )));
        }
        Ok(())
    }

    /// Nothing to do: deleting the segment's key removes it.
    fn remove(&self, _tenant: &TenantId, _id: u64) -> Result<(), CatalogError> {
        Ok(())
    }

    fn delete_requests(&self) -> Result<Vec<DeleteRequest>, CatalogError> {
        let path = &self.deletes_file;
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CatalogError::Io {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(CatalogError::Io {
                path: path.clone(),
                source,
            }),
        }
    }

    fn add_delete_request(&self, request: &DeleteRequest) -> Result<(), CatalogError> {
        let _one_writer = self.deletes_lock.lock();
        let mut list = self.delete_requests()?;
        list.retain(|r| !(r.tenant == request.tenant && r.request_id == request.request_id));
        list.push(request.clone());
        self.write_deletes(&list)
    }

    fn remove_delete_request(&self, tenant: &TenantId, id: &str) -> Result<bool, CatalogError> {
        let _one_writer = self.deletes_lock.lock();
        let mut list = self.delete_requests()?;
        let before = list.len();
        list.retain(|r| !(r.tenant == tenant.as_str() && r.request_id == id));
        if list.len() == before {
            return Ok(false);
        }
        self.write_deletes(&list)?;
        Ok(true)
    }
}

/// The highest segment id among the keys of `store` (0: none).
pub(crate) fn max_stored_id(store: &dyn SegmentStore) -> std::io::Result<u64> {
    Ok(store
        .list(TENANTS)?
        .iter()
        .filter_map(|l| match parse_key(&l.key)? {
            (_, Key::Segment(id) | Key::Replaces(id)) => Some(id),
            _ => None,
        })
        .max()
        .unwrap_or(0))
}

/// Where every tenant's keys start.
pub(crate) const TENANTS: &str = "tenants/";

/// The key of segment `id` of `tenant`.
pub(crate) fn segment_key(tenant: &TenantId, id: u64) -> String {
    format!("{TENANTS}{}/segments/{id:012}.seg", tenant.as_str())
}

/// The key of the sidecar listing the segments that segment `id`
/// replaces.
pub(crate) fn replaces_key(tenant: &TenantId, id: u64) -> String {
    format!("{TENANTS}{}/segments/{id:012}.replaces", tenant.as_str())
}

/// Whether `key` names a segment (not a sidecar or a temporary file).
pub(crate) fn is_segment_key(key: &str) -> bool {
    matches!(parse_key(key), Some((_, Key::Segment(_))))
}

/// What a key under `tenants/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Segment(u64),
    Replaces(u64),
    /// A `.tmp` file left by a write cut short.
    Temporary,
}

fn parse_key(key: &str) -> Option<(TenantId, Key)> {
    let rest = key.strip_prefix(TENANTS)?;
    let (tenant, rest) = rest.split_once('/')?;
    let name = rest.strip_prefix("segments/")?;
    if name.contains('/') {
        return None;
    }
    let tenant = TenantId::new(tenant).ok()?;
    let kind = if name.ends_with(".tmp") {
        Key::Temporary
    } else if let Some(stem) = name.strip_suffix(".seg") {
        Key::Segment(stem.parse().ok()?)
    } else if let Some(stem) = name.strip_suffix(".replaces") {
        Key::Replaces(stem.parse().ok()?)
    } else {
        return None;
    };
    Some((tenant, kind))
}

/// Completes or undoes compactions cut short: a `<id>.replaces` sidecar
/// lists the inputs of the segment `<id>.seg`. If that segment exists it
/// is complete and its inputs go; if not, the compaction never finished
/// and the inputs stay. Either way the sidecar goes. `keys` (one
/// tenant's) loses what was deleted.
fn finish_compactions(
    store: &dyn SegmentStore,
    keys: &mut Vec<(String, Key)>,
) -> std::io::Result<()> {
    let segments: HashSet<u64> = keys
        .iter()
        .filter_map(|(_, k)| match k {
            Key::Segment(id) => Some(*id),
            _ => None,
        })
        .collect();
    let sidecars: Vec<(String, u64)> = keys
        .iter()
        .filter_map(|(key, k)| match k {
            Key::Replaces(id) => Some((key.clone(), *id)),
            _ => None,
        })
        .collect();
    let mut removed: HashSet<u64> = HashSet::new();
    for (sidecar, output) in sidecars {
        if segments.contains(&output) {
            let listing = store.get(&sidecar)?;
            for line in String::from_utf8_lossy(&listing).lines() {
                if let Ok(id) = line.trim().parse::<u64>() {
                    let input = sibling(&sidecar, &format!("{id:012}.seg"));
                    if segments.contains(&id) {
                        store.delete(&input)?;
                        tracing::info!(path = %store.location(&input).display(), "removed a segment replaced by compaction");
                        removed.insert(id);
                    }
                }
            }
        }
        store.delete(&sidecar)?;
        store.sync_deletes(&sidecar)?;
    }
    keys.retain(|(_, k)| match k {
        Key::Segment(id) => !removed.contains(id),
        Key::Replaces(_) => false,
        Key::Temporary => true,
    });
    Ok(())
}

/// `name` in the same directory as `key`.
fn sibling(key: &str, name: &str) -> String {
    match key.rfind('/') {
        Some(i) => format!("{}/{name}", &key[..i]),
        None => name.to_string(),
    }
}

/// Moves segment `key` of `tenant` under `quarantine/tenants/<tenant>/`
/// with an unused name; returns where it went.
fn set_aside(store: &dyn SegmentStore, key: &str, tenant: &TenantId) -> std::io::Result<PathBuf> {
    let dir = format!("quarantine/tenants/{}/", tenant.as_str());
    let name = key.rsplit('/').next().unwrap_or("segment");
    let taken: HashSet<String> = store.list(&dir)?.into_iter().map(|l| l.key).collect();
    let target = (0..1000)
        .map(|i| match i {
            0 => format!("{dir}{name}"),
            i => format!("{dir}{name}.{i}"),
        })
        .find(|k| !taken.contains(k))
        .ok_or_else(|| std::io::Error::other("quarantine directory is full"))?;
    store.rename(key, &target)?;
    Ok(store.location(&target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let t = TenantId::new("acme").unwrap();
        assert_eq!(
            segment_key(&t, 12),
            "tenants/acme/segments/000000000012.seg"
        );
        assert_eq!(
            parse_key(&segment_key(&t, 12)),
            Some((t.clone(), Key::Segment(12)))
        );
        assert_eq!(
            parse_key(&replaces_key(&t, 3)),
            Some((t.clone(), Key::Replaces(3)))
        );
        assert_eq!(
            parse_key("tenants/acme/segments/000000000012.seg.tmp"),
            Some((t.clone(), Key::Temporary))
        );
        assert_eq!(parse_key("tenants/acme/segments/x.seg"), None);
        assert_eq!(parse_key("tenants/acme/other/000000000012.seg"), None);
        assert_eq!(parse_key("quarantine/tenants/acme/segments/1.seg"), None);
        assert_eq!(
            sibling(
                "tenants/acme/segments/000000000012.replaces",
                "000000000001.seg"
            ),
            "tenants/acme/segments/000000000001.seg"
        );
    }
}
