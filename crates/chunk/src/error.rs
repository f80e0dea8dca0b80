//! The crate's one error type.
//!
//! Corruption errors say which file, which byte offset and what was wrong,
//! so an operator can act on them; messages are lowercase without a trailing
//! period so they read well when chained. Not here: mapping to HTTP or gRPC
//! statuses (the server does that, in one place).

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong encoding, writing, opening or reading.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// Reading or writing a file failed.
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A segment file is damaged, truncated, or not a segment at all.
    #[error("corrupt segment {path} at offset {offset}: {reason}")]
    CorruptSegment {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A block's bytes fail their checksum or do not decode. Inside a
    /// segment this is reported as [`ChunkError::CorruptSegment`] instead.
    #[error("corrupt block: {reason}")]
    CorruptBlock { reason: String },
    /// A filter's bytes do not describe a valid filter.
    #[error("corrupt filter: {reason}")]
    CorruptFilter { reason: String },
    /// The file was written by a newer format version than this build reads.
    #[error(
        "segment {path} has format version {found}; this build reads versions up to {supported}"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// The file holds a section marked as required that this build does not
    /// know (written by a newer build).
    #[error("segment {path} needs a feature this build lacks: {what}")]
    UnsupportedFeature { path: PathBuf, what: String },
    /// A block would decompress to more bytes than allowed.
    #[error("block decompresses to {size} bytes, above the limit of {limit}")]
    BlockTooLarge { size: u64, limit: u64 },
    /// The caller asked for something the format cannot hold (no entries,
    /// unsorted timestamps, a bad compression level, a duplicate stream id).
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// zstd failed outside of decoding stored bytes: setting up a context
    /// or compressing (it only does so on bad parameters or when out of
    /// memory).
    #[error("zstd failed: {source}")]
    Zstd {
        #[source]
        source: io::Error,
    },
}

impl ChunkError {
    /// Whether this error means stored bytes are damaged (as opposed to an
    /// I/O failure, a newer format, or a caller mistake).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            ChunkError::CorruptSegment { .. }
                | ChunkError::CorruptBlock { .. }
                | ChunkError::CorruptFilter { .. }
                | ChunkError::BlockTooLarge { .. }
        )
    }

    pub(crate) fn invalid_input(reason: impl Into<String>) -> Self {
        ChunkError::InvalidInput {
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ChunkError {
        let path = path.into();
        move |source| ChunkError::Io { path, source }
    }
}
