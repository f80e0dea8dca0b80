//! A segment as the store uses it: an open [`skald_chunk::SegmentReader`]
//! plus a map from stream to its place in the file, and [`NewSegment`],
//! the one way a segment is written and published (flush, compaction and
//! retention all use it). The one module that touches the segment
//! format's API.

use crate::catalog::{SegmentRecord, segment_key};
use crate::storage::SegmentStore;
use crate::{Shared, StoreError};
use parking_lot::Mutex;
use skald_chunk::{ChunkMeta, SegmentReader, SegmentWriter};
use skald_model::{Entry, LabelSet, StreamId, TenantId, Timestamp};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug)]
pub struct Segment {
    pub id: u64,
    /// Its key in the segment store.
    pub key: String,
    /// Where it is, for messages (a file path or a URL).
    pub path: PathBuf,
    reader: SegmentReader,
    by_stream: HashMap<StreamId, usize>,
    pub min_ts: Timestamp,
    pub max_ts: Timestamp,
    pub disk_bytes: u64,
}

impl Segment {
    /// Opens the segment file at `path` as segment `id` (inspection tools;
    /// the store opens segments through its segment store).
    pub fn open(id: u64, path: &std::path::Path) -> Result<Segment, skald_chunk::ChunkError> {
        let reader = SegmentReader::open(path)?;
        Ok(Segment::from_reader(id, &path.to_string_lossy(), reader))
    }

    /// Opens segment `id`, stored under `key` in `store`.
    pub fn open_in(
        id: u64,
        store: &dyn SegmentStore,
        key: &str,
    ) -> Result<Segment, skald_chunk::ChunkError> {
        let path = store.location(key);
        let source = store
            .open(key)
            .map_err(|source| skald_chunk::ChunkError::Io {
                path: path.clone(),
                source,
            })?;
        let reader = SegmentReader::from_source(path, source)?;
        Ok(Segment::from_reader(id, key, reader))
    }

    fn from_reader(id: u64, key: &str, reader: SegmentReader) -> Segment {
        let mut by_stream = HashMap::new();
        let mut min_ts = Timestamp::MAX;
        let mut max_ts = Timestamp::MIN;
        for (i, s) in reader.streams().iter().enumerate() {
            by_stream.insert(s.id, i);
            for c in &s.chunks {
                min_ts = min_ts.min(c.min_ts);
                max_ts = max_ts.max(c.max_ts);
            }
        }
        Segment {
            id,
            key: key.to_string(),
            path: reader.path().to_path_buf(),
            disk_bytes: reader.summary().stored_bytes,
            reader,
            by_stream,
            min_ts,
            max_ts,
        }
    }

    /// Totals recorded in the segment's footer.
    pub fn summary(&self) -> &skald_chunk::SegmentSummary {
        self.reader.summary()
    }

    /// Every stream: labels, id, and its time bounds in this segment.
    pub fn streams(&self) -> impl Iterator<Item = (&LabelSet, StreamId, Timestamp, Timestamp)> {
        self.reader.streams().iter().map(|s| {
            let min = s
                .chunks
                .iter()
                .map(|c| c.min_ts)
                .min()
                .unwrap_or(Timestamp::MAX);
            let max = s
                .chunks
                .iter()
                .map(|c| c.max_ts)
                .max()
                .unwrap_or(Timestamp::MIN);
            (&s.labels, s.id, min, max)
        })
    }

    /// The chunks of `stream` overlapping `[start, end)`, as indexes.
    pub fn chunks_of(
        &self,
        stream: StreamId,
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<(usize, usize)> {
        let Some(&pos) = self.by_stream.get(&stream) else {
            return Vec::new();
        };
        self.reader.streams()[pos]
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.min_ts < end && c.max_ts >= start)
            .map(|(i, _)| (pos, i))
            .collect()
    }

    pub fn chunk(&self, at: (usize, usize)) -> &ChunkMeta {
        &self.reader.streams()[at.0].chunks[at.1]
    }

    pub fn read_chunk(&self, at: (usize, usize)) -> Result<Vec<Entry>, skald_chunk::ChunkError> {
        self.reader.read_block(self.chunk(at))
    }

    /// The chunk decoded into one buffer that lends out its lines: for
    /// scans that need no owned entries.
    pub fn read_decoded(
        &self,
        at: (usize, usize),
    ) -> Result<skald_chunk::DecodedBlock, skald_chunk::ChunkError> {
        self.reader.read_decoded(self.chunk(at))
    }

    /// Whether the chunk may contain `needle` (a substring of some line,
    /// compared ASCII-case-insensitively); `false` is certain.
    pub fn may_contain(&self, at: (usize, usize), needle: &[u8]) -> bool {
        self.reader.may_contain(self.chunk(at), needle)
    }

    /// [`Segment::may_contain`] with a probe prepared once per query.
    pub fn may_match(&self, at: (usize, usize), probe: &skald_chunk::FilterProbe) -> bool {
        self.reader.may_match(self.chunk(at), probe)
    }

    /// The chunk's field columns, if it has some
    /// ([`skald_chunk::columns`]).
    pub fn columns(
        &self,
        at: (usize, usize),
        detail: skald_chunk::columns::ColumnDetail,
    ) -> Result<Option<skald_chunk::columns::BlockColumns>, skald_chunk::ChunkError> {
        self.reader.columns(self.chunk(at), detail)
    }
}

/// A segment being written for a tenant: created with the next id, filled
/// through [`NewSegment::writer`], then published alone (a flush) or in
/// place of the segments it merges (compaction, retention).
pub(crate) struct NewSegment {
    pub id: u64,
    key: String,
    /// The file being written: the store's own (local directory) or a
    /// staging file that publishing uploads and then removes.
    file: PathBuf,
    staged: bool,
    writer: SegmentWriter,
}

impl NewSegment {
    pub fn create(shared: &Shared, tenant: &TenantId, zstd_level: i32) -> Result<Self, StoreError> {
        let id = shared.catalog.allocate_id()?;
        let key = segment_key(tenant, id);
        let store = &*shared.segments;
        let (file, staged) = match store.local_path(&key) {
            Some(path) => (path, false),
            None => (shared.config.staging_dir().join(&key), true),
        };
        let dir = file.parent().expect("segment path has a parent");
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let writer =
            SegmentWriter::create_with_options(&file, shared.config.segment_options(zstd_level))?;
        Ok(NewSegment {
            id,
            key,
            file,
            staged,
            writer,
        })
    }

    pub fn writer(&mut self) -> &mut SegmentWriter {
        &mut self.writer
    }

    /// Finishes the file, stores it, opens it and lists it in the catalog
    /// store; the caller adds it to the view.
    pub fn publish(self, shared: &Shared, tenant: &TenantId) -> Result<Arc<Segment>, StoreError> {
        let segment = self.store(shared)?;
        let record = SegmentRecord::of(tenant, &segment);
        if let Err(e) = shared.catalog.publish(&record) {
            forget(shared, &segment);
            return Err(e.into());
        }
        Ok(segment)
    }

    /// Finishes the file, puts it in the segment store and opens it.
    fn store(self, shared: &Shared) -> Result<Arc<Segment>, StoreError> {
        let NewSegment {
            id,
            key,
            file,
            staged,
            writer,
        } = self;
        writer.finish()?;
        let store = &*shared.segments;
        let put = store.put_file(&key, &file);
        if staged {
            let _ = std::fs::remove_file(&file);
        }
        put.map_err(storage_error(store, &key))?;
        Ok(Arc::new(Segment::open_in(id, store, &key)?))
    }

    /// Publishes this segment in place of `inputs` (segments of `tenant`):
    /// the catalog store prepares (a local catalog stores a sidecar naming
    /// the inputs, so a crash at any point leaves either the inputs or the
    /// output, see `crate::catalog`), the output is stored, the catalog
    /// store swaps them (refusing if another process replaced an input
    /// meanwhile: [`StoreError::Catalog`] with a conflict, and the output
    /// is deleted), the view swaps them in one step, then the inputs go.
    pub fn replace(
        self,
        shared: &Shared,
        tenant: &TenantId,
        inputs: &[Arc<Segment>],
    ) -> Result<Arc<Segment>, StoreError> {
        let ids: Vec<u64> = inputs.iter().map(|s| s.id).collect();
        let leftover = shared.catalog.prepare_replace(tenant, &ids, self.id)?;
        let output = self.store(shared)?;
        if let Err(e) = shared
            .catalog
            .replace(&ids, &SegmentRecord::of(tenant, &output))
        {
            forget(shared, &output);
            if let Some(key) = &leftover {
                let _ = shared.segments.delete(key);
            }
            return Err(e.into());
        }
        shared
            .state
            .write()
            .catalog
            .replace(tenant, inputs, output.clone());
        retire(shared, inputs.to_vec(), leftover)?;
        Ok(output)
    }
}

/// Deletes a segment stored but never listed (its catalog change failed).
fn forget(shared: &Shared, seg: &Arc<Segment>) {
    if let Err(e) = shared.segments.delete(&seg.key) {
        tracing::warn!(path = %seg.path.display(), error = %e, "could not delete a segment the catalog did not take; it is never read");
    }
}

/// Takes `seg` of `tenant` out of the catalog, then out of the store.
pub(crate) fn delete(
    shared: &Shared,
    tenant: &TenantId,
    seg: &Arc<Segment>,
) -> Result<(), StoreError> {
    shared.catalog.remove(tenant, seg.id)?;
    shared.state.write().catalog.remove(tenant, seg.id);
    retire(shared, vec![seg.clone()], None)
}

/// Segments out of the catalog waiting to be deleted from a store whose
/// objects vanish on delete, each group with the sidecar to delete after
/// it: they go once no query holds them any more (see [`reap`]).
#[derive(Debug, Default)]
pub(crate) struct Retired(Mutex<Vec<RetiredGroup>>);

/// Segments to delete together, the sidecar to delete after them, and
/// when they left the catalog.
type RetiredGroup = (Vec<Arc<Segment>>, Option<String>, Instant);

impl Retired {
    pub fn is_empty(&self) -> bool {
        self.0.lock().is_empty()
    }
}

/// Deletes `segs` (already out of the catalog), then `sidecar`: at once if
/// readers keep what they opened (a local file, memory), else once no
/// query holds them. A crash before leaves them stored: the sidecar makes
/// the next start delete replaced segments, and the next retention pass
/// deletes expired ones again.
fn retire(
    shared: &Shared,
    segs: Vec<Arc<Segment>>,
    sidecar: Option<String>,
) -> Result<(), StoreError> {
    let grace = shared.catalog.delete_grace();
    if shared.segments.readable_after_delete() && grace.is_zero() {
        return delete_stored(&*shared.segments, &segs, sidecar.as_deref());
    }
    shared
        .retired
        .0
        .lock()
        .push((segs, sidecar, Instant::now()));
    reap(shared)
}

/// Deletes the retired segments no query holds any more.
pub(crate) fn reap(shared: &Shared) -> Result<(), StoreError> {
    let ready: Vec<RetiredGroup> = {
        let mut retired = shared.retired.0.lock();
        // Out of the catalog, a segment gains no new holder: a count of
        // one (this list's) stays one.
        // Other processes' queries are given `delete_grace`.
        let grace = shared.catalog.delete_grace();
        let (ready, waiting) =
            std::mem::take(&mut *retired)
                .into_iter()
                .partition(|(segs, _, since)| {
                    since.elapsed() >= grace && segs.iter().all(|s| Arc::strong_count(s) == 1)
                });
        *retired = waiting;
        ready
    };
    let mut result = Ok(());
    for (segs, sidecar, since) in ready {
        if let Err(e) = delete_stored(&*shared.segments, &segs, sidecar.as_deref()) {
            // Tried again at the next reap.
            shared.retired.0.lock().push((segs, sidecar, since));
            result = Err(e);
        }
    }
    result
}

fn delete_stored(
    store: &dyn SegmentStore,
    segs: &[Arc<Segment>],
    sidecar: Option<&str>,
) -> Result<(), StoreError> {
    for seg in segs {
        store
            .delete(&seg.key)
            .map_err(storage_error(store, &seg.key))?;
    }
    let last = sidecar.or(segs.last().map(|s| s.key.as_str()));
    if let Some(sidecar) = sidecar {
        store
            .delete(sidecar)
            .map_err(storage_error(store, sidecar))?;
    }
    if let Some(key) = last {
        store.sync_deletes(key).map_err(storage_error(store, key))?;
    }
    Ok(())
}

/// Maps an i/o error on `key` to a [`StoreError`] naming where it is.
pub(crate) fn storage_error(
    store: &dyn SegmentStore,
    key: &str,
) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = store.location(key);
    move |source| StoreError::Io { path, source }
}
