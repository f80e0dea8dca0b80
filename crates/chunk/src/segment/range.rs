//! Where a segment's bytes come from: [`RangeRead`], the one thing the
//! segment reader needs of its storage.
//!
//! Segments are written once and then only read by range (a header, a
//! footer, a section, a block), so the reader asks for exactly that and
//! never knows whether the bytes live in a local file, in memory or in an
//! object store behind a cache. Reads are blocking: the store calls the
//! reader from its own threads and from blocking tasks.
//!
//! Implemented here for a local file ([`FileRange`], positional reads, so
//! one file is shared by many threads without locking or seeking) and for
//! bytes in memory (`Vec<u8>`, `Arc<[u8]>`). Object storage lives in the
//! store crate, which owns remote access and caching.
//!
//! Not here: naming, listing, writing or deleting segments.

use std::fmt::Debug;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Immutable bytes readable at any offset from many threads at once.
pub trait RangeRead: Send + Sync + Debug {
    /// Total length in bytes; fixed for the reader's life.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`; an
    /// error of kind `UnexpectedEof` if they are not all there.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// A local file read with `pread`; its length is taken once at open (a
/// segment file never changes once published).
#[derive(Debug)]
pub struct FileRange {
    file: File,
    len: u64,
}

impl FileRange {
    pub fn open(path: &Path) -> io::Result<FileRange> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileRange { file, len })
    }
}

impl RangeRead for FileRange {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

/// Copies `offset..offset + buf.len()` of `bytes` into `buf`.
fn read_slice(bytes: &[u8], buf: &mut [u8], offset: u64) -> io::Result<()> {
    let start = usize::try_from(offset).ok();
    let range = start.and_then(|s| Some(s..s.checked_add(buf.len())?));
    match range.and_then(|r| bytes.get(r)) {
        Some(src) => {
            buf.copy_from_slice(src);
            Ok(())
        }
        None => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{} bytes at offset {offset} lie past the end ({} bytes)",
                buf.len(),
                bytes.len()
            ),
        )),
    }
}

impl RangeRead for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        read_slice(self, buf, offset)
    }
}

impl RangeRead for Arc<[u8]> {
    fn len(&self) -> u64 {
        (**self).len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        read_slice(self, buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_ranges_and_refuses_past_the_end() {
        let bytes: Vec<u8> = (0..10).collect();
        let mut buf = [0u8; 3];
        bytes.read_exact_at(&mut buf, 7).unwrap();
        assert_eq!(buf, [7, 8, 9]);
        let err = bytes.read_exact_at(&mut buf, 8).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let err = bytes.read_exact_at(&mut buf, u64::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let shared: Arc<[u8]> = bytes.into();
        shared.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [0, 1, 2]);
        assert_eq!(RangeRead::len(&shared), 10);
    }

    #[test]
    fn file_reads_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello, segment").unwrap();
        let f = FileRange::open(&path).unwrap();
        assert_eq!(f.len(), 14);
        let mut buf = [0u8; 7];
        f.read_exact_at(&mut buf, 7).unwrap();
        assert_eq!(&buf, b"segment");
        assert!(f.read_exact_at(&mut buf, 8).is_err());
    }
}
