//! Where segments live: the [`SegmentStore`] seam.
//!
//! Segments are written once and then read by range, listed and deleted;
//! nothing is ever modified in place. That is all the store asks of its
//! segment storage, so a local directory, memory and an object store can
//! all hold segments:
//!
//! - [`LocalDir`]: the embedded default, `tenants/<tenant>/segments/` under
//!   the data directory, exactly as before the seam existed (same files,
//!   same fsyncs; a new segment is written in place, so publishing it
//!   moves no bytes).
//! - [`MemorySegments`]: a map of keys to bytes, for tests.
//! - [`ObjectSegments`]: S3 and S3-compatible servers through the
//!   `object_store` crate, with a bounded read-through cache (see
//!   [`object`]).
//!
//! Keys are relative, `/`-separated paths such as
//! `tenants/acme/segments/000000000012.seg`; the catalog owns their
//! layout (see `crate::catalog`). Calls block: the store calls them from
//! its flush and compaction threads and from queries' blocking tasks.
//!
//! Not here: which segments exist and which replace which (the catalog),
//! and the segment format (`skald-chunk`).

mod cache;
mod local;
mod memory;
pub mod object;

pub use cache::{BlockCache, CacheStats};
pub use local::LocalDir;
pub use memory::MemorySegments;
pub use object::{ObjectSegments, ObjectStats, ObjectStoreConfig};

use skald_chunk::RangeRead;
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};

/// One stored object: its key and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// Storage for immutable segments and their small sidecar files.
pub trait SegmentStore: Send + Sync + Debug {
    /// What and where this store is, for logs: a directory or a URL.
    fn describe(&self) -> String;

    /// Where `key` is, for messages (an absolute path or a URL).
    fn location(&self, key: &str) -> PathBuf;

    /// Requests and bytes to and from a remote store, and its cache; `None`
    /// for a local one.
    fn remote_stats(&self) -> Option<ObjectStats> {
        None
    }

    /// The file a new segment for `key` should be written to when this
    /// store keeps its segments as local files: writing there and then
    /// calling [`SegmentStore::put_file`] with the same path publishes it
    /// without copying. `None`: write anywhere and `put_file` uploads.
    fn local_path(&self, key: &str) -> Option<PathBuf> {
        let _ = key;
        None
    }

    /// Publishes the complete, fsynced file `local` under `key`: once this
    /// returns, the segment is durable and listed, all of it or none of it.
    /// Large files go up in parts.
    fn put_file(&self, key: &str, local: &Path) -> io::Result<()>;

    /// Publishes `bytes` under `key`, atomically and durably (sidecars).
    fn put_bytes(&self, key: &str, bytes: &[u8]) -> io::Result<()>;

    /// The whole object (small ones: sidecars).
    fn get(&self, key: &str) -> io::Result<Vec<u8>>;

    /// The bytes `range` of `key`.
    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> io::Result<Vec<u8>> {
        let source = self.open(key)?;
        let len = usize::try_from(range.end.saturating_sub(range.start))
            .map_err(|_| io::Error::other("range too large"))?;
        let mut buf = vec![0u8; len];
        source.read_exact_at(&mut buf, range.start)?;
        Ok(buf)
    }

    /// Opens `key` for reads by range (what the segment reader reads).
    fn open(&self, key: &str) -> io::Result<Box<dyn RangeRead>>;

    /// Every object whose key starts with `prefix`, in no given order.
    fn list(&self, prefix: &str) -> io::Result<Vec<Listed>>;

    /// Deletes `key`; deleting what is not there is no error.
    fn delete(&self, key: &str) -> io::Result<()>;

    /// Moves `from` to `to` (which must not exist).
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;

    /// Whether a segment opened with [`SegmentStore::open`] stays readable
    /// after it is deleted (a local file held open, bytes in memory). When
    /// not, segments are deleted only once no query holds them.
    fn readable_after_delete(&self) -> bool {
        false
    }

    /// Makes earlier deletions and renames of keys beside `key` durable
    /// (a local directory fsyncs its directory; others are durable when
    /// the call returns).
    fn sync_deletes(&self, key: &str) -> io::Result<()> {
        let _ = key;
        Ok(())
    }
}

/// `NotFound` errors for a key, worded the same by every store.
pub(crate) fn not_found(key: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no object {key}"))
}

/// The steps every segment store must pass, shared with the S3 tests.
#[cfg(test)]
#[path = "../../tests/common/contract.rs"]
mod contract;

#[cfg(test)]
mod tests {
    use super::contract::contract;
    use super::*;

    #[test]
    fn the_local_directory_keeps_the_contract_as_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::new(dir.path().join("data"));
        contract(&store, dir.path());
        // Keys are paths under the root, nothing else is left behind.
        assert_eq!(
            std::fs::read(dir.path().join("data/quarantine/x/a")).unwrap(),
            b"hello"
        );
        assert!(!dir.path().join("data/tenants/x/a.tmp").exists());
        // A file written in place is published without a copy.
        let path = store.local_path("tenants/y/s").unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"segment").unwrap();
        store.put_file("tenants/y/s", &path).unwrap();
        assert_eq!(store.get("tenants/y/s").unwrap(), b"segment");
    }

    #[test]
    fn memory_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        contract(&MemorySegments::new(), dir.path());
    }
}
