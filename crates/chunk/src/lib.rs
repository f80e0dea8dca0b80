//! The on-disk byte formats of Skald's storage: compressed blocks of one
//! stream's entries, the trigram filters that let a query skip blocks
//! without decompressing them, and the immutable segment files that hold
//! the blocks of many streams of one tenant.
//!
//! How the parts fit:
//!
//! - [`block`]: one stream's entries, timestamps delta-encoded, lines and
//!   structured metadata side by side, zstd-compressed, CRC32C-checked.
//!   [`BlockEncoder`] writes them, [`DecodedBlock`] reads them back into one
//!   buffer that hands out `&str` lines without an allocation per entry.
//! - [`filter`]: a bloom filter over the ASCII-lowercased byte trigrams of a
//!   block's lines, answering "may this block contain this substring?" for
//!   `|= "needle"` and `|~ "(?i)needle"`.
//! - [`columns`]: per block, the fields Loki's `json` and `logfmt` parsers
//!   would extract from its lines (dictionaries, value ranges, row codes),
//!   so that label filters can skip a block and counts by a field can
//!   skip parsing; an index beside the lines, never instead of them.
//! - [`segment`]: the file format. [`SegmentWriter`] appends blocks and
//!   writes the index, filters and footer; [`SegmentReader`] validates a
//!   segment, keeps its index and filters in memory and reads blocks by
//!   range from many threads through [`RangeRead`] (a local file read with
//!   positional reads, memory, or object storage in the store crate);
//!   [`describe_segment`] prints one for humans.
//!
//! Every decoder here treats its input as hostile: sizes are bounded before
//! anything is allocated, every block and section is checksummed, and
//! damage is reported as a [`ChunkError`] naming the file and offset, never
//! as a panic or as wrong data.
//!
//! Not here: where segments live (local disk or object storage), which
//! segments exist (the catalog), when to flush, and any query evaluation
//! beyond the filter check. Those belong to `skald-store` and `skald-query`.

pub mod block;
pub mod columns;
mod error;
pub mod filter;
pub mod segment;
mod varint;

pub use block::{
    BlockEncoder, BlockInfo, DEFAULT_ZSTD_LEVEL, DecodedBlock, EntryRef, MAX_BLOCK_RAW_BYTES,
    MetadataIter,
};
pub use error::ChunkError;
pub use filter::{
    BlockFilter, DigitFilter, FilterBuilder, FilterParams, FilterProbe, TrigramFilter,
};
pub use segment::{
    ChunkMeta, ChunkSection, FileRange, RangeRead, SegmentOptions, SegmentReader, SegmentSummary,
    SegmentWriter, StreamMeta, describe_segment,
};
