//! Segment files: immutable files holding the blocks of many streams of one
//! tenant, with an index of streams and chunks and a trigram filter per
//! chunk.
//!
//! - [`writer`]: the byte-by-byte format, and [`SegmentWriter`] which
//!   writes it atomically (temporary file, fsync, rename, fsync directory).
//! - [`reader`]: [`SegmentReader`], which validates a segment, keeps its
//!   index and filters in memory, and reads blocks by range so that many
//!   threads can share one reader.
//! - [`range`]: [`RangeRead`], the reader's only view of where the bytes
//!   live: a local file ([`FileRange`], positional reads), memory, or (in
//!   the store) an object store behind a cache.
//! - `index`: encoding of the stream index section.
//! - [`debug`]: [`describe_segment`], a human-readable dump for
//!   `skald debug segment`.
//!
//! In a segment a *chunk* is a run of one stream's entries stored as one
//! block plus its filter; a stream's data is a list of chunks.
//!
//! Not here: naming, listing, uploading or deleting segments (the store and
//! its catalog), and merging segments (compaction, in the store, built on
//! the reader and writer here).

pub mod debug;
mod index;
pub mod range;
pub mod reader;
pub mod writer;

pub use debug::describe_segment;
pub use range::{FileRange, RangeRead};
pub use reader::{SectionInfo, SegmentReader};
pub use writer::{DEFAULT_TARGET_BLOCK_BYTES, MAX_ENTRY_BYTES, SegmentOptions, SegmentWriter};

use skald_model::{LabelSet, StreamId, Timestamp};

/// The segment format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// One stream of a segment and where its entries are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMeta {
    pub labels: LabelSet,
    pub id: StreamId,
    /// Ordered by `min_ts` (ties in the order they were written).
    pub chunks: Vec<ChunkMeta>,
}

/// Where one chunk (a block and its filter) of a stream is, and what it
/// holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Absolute file offset of the block.
    pub offset: u64,
    /// Length of the block in bytes, header and checksum included.
    pub len: u32,
    pub min_ts: Timestamp,
    pub max_ts: Timestamp,
    pub entries: u32,
    /// Bytes of lines and metadata before compression (the sum of
    /// `Entry::size`).
    pub raw_bytes: u64,
    /// Offset of the chunk's filter within the filters section.
    pub filter_offset: u64,
    pub filter_len: u32,
    /// Per-chunk sections beyond the block and filter: its digit-gram
    /// filter and its field columns in files this version writes; kinds
    /// this version does not know are kept when read, so nothing is
    /// silently lost.
    pub sections: Vec<ChunkSection>,
}

/// A per-chunk section (see [`ChunkMeta::sections`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSection {
    pub kind: u32,
    pub flags: u32,
    /// Absolute file offset.
    pub offset: u64,
    pub len: u64,
}

/// Totals of a segment, as returned by [`SegmentWriter::finish`] and
/// [`SegmentReader::summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    pub min_ts: Timestamp,
    pub max_ts: Timestamp,
    pub streams: usize,
    pub chunks: usize,
    pub entries: u64,
    /// Bytes of lines and metadata before compression.
    pub raw_bytes: u64,
    /// Size of the file.
    pub stored_bytes: u64,
    /// Bytes of compressed blocks.
    pub block_bytes: u64,
    /// Bytes of the filters section.
    pub filter_bytes: u64,
    /// Bytes of the index section.
    pub index_bytes: u64,
    /// Bytes of the columns section (field columns, see
    /// [`crate::columns`]); 0 in files written before columns existed.
    pub column_bytes: u64,
}

impl SegmentSummary {
    /// Totals over `streams`; the byte counts of the file parts are the
    /// caller's to fill in.
    fn from_streams(streams: &[StreamMeta]) -> Self {
        let mut s = SegmentSummary {
            min_ts: Timestamp::MAX,
            max_ts: Timestamp::MIN,
            streams: streams.len(),
            chunks: 0,
            entries: 0,
            raw_bytes: 0,
            stored_bytes: 0,
            block_bytes: 0,
            filter_bytes: 0,
            index_bytes: 0,
            column_bytes: 0,
        };
        for c in streams.iter().flat_map(|st| &st.chunks) {
            s.min_ts = s.min_ts.min(c.min_ts);
            s.max_ts = s.max_ts.max(c.max_ts);
            s.chunks += 1;
            s.entries += u64::from(c.entries);
            s.raw_bytes += c.raw_bytes;
            s.block_bytes += u64::from(c.len);
        }
        s
    }
}
