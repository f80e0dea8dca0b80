//! Writing segment files, and the segment file format.
//!
//! [`SegmentWriter`] streams blocks to `PATH.tmp` as chunks are added, keeps
//! the index and filters in memory (they are small), and on
//! [`SegmentWriter::finish`] appends them with the section table and
//! footer, fsyncs the file, renames it to `PATH` and fsyncs the directory:
//! a segment is either absent or complete. A writer dropped without
//! finishing removes its temporary file.
//!
//! Not here: deciding what goes into a segment or when (the store's
//! flusher), or the block and filter encodings themselves (see
//! [`crate::block`] and [`crate::filter`]).
//!
//! # Segment format (version 1)
//!
//! Integers are little-endian unless marked "varint" (unsigned LEB128) or
//! "zigzag varint" (`(v << 1) ^ (v >> 63)`, then LEB128). Checksums are
//! CRC32C (Castagnoli).
//!
//! ```text
//! offset   size  field
//! 0        8     magic b"SKALDSEG"
//! 8        4     format version, u32 (1)
//! 12       4     reserved flags, u32, zero in version 1
//! 16       ...   blocks section: the blocks, back to back (a block's bytes
//!                are described in crate::block; each ends in its own CRC)
//! .        ...   digit filters section (optional; absent in older files)
//! .        ...   columns section (optional; absent in older files)
//! .        ...   stream index section
//! .        ...   filters section
//! T        ...   section table
//! len-32   32    footer
//! ```
//!
//! Footer, the last 32 bytes of the file, read first:
//!
//! ```text
//! 0    8   offset T of the section table, u64
//! 8    4   length of the section table, u32 (= 4 + 24 × count)
//! 12   4   CRC32C of the section table, u32
//! 16   4   format version, u32 (must equal the header's)
//! 20   4   CRC32C of footer bytes 0..20, u32
//! 24   8   magic b"SKALDSEG"
//! ```
//!
//! Section table, ending where the footer starts:
//!
//! ```text
//! 0    4   section count c, u32
//! 4    24 × c entries:
//!          0    2   kind, u16: 1 = blocks, 2 = stream index, 3 = filters,
//!                   4 = digit filters, 5 = columns
//!          2    2   flags, u16: bit 0 = required (a reader that does not
//!                   know this kind must refuse the file); bit 1 = no
//!                   section checksum (its records carry their own);
//!                   other bits zero
//!          4    4   CRC32C of the section's bytes, u32 (0 if bit 1 is set)
//!          8    8   offset, u64
//!          16   8   length, u64
//! ```
//!
//! A version 1 file has exactly one section of each kind 1 to 3, all
//! required; the blocks section has flag bit 1 and starts at offset 16.
//! Sections lie between the header and the table and do not overlap. A
//! reader of this version skips sections of unknown kind unless they are
//! required, in which case it refuses the file with
//! [`crate::ChunkError::UnsupportedFeature`]: later versions can add
//! sections (field columns parsed from JSON or logfmt, label postings)
//! without breaking this reader when the data is optional. The format
//! version changes only for changes a version 1 reader could not read
//! correctly; optional sections and per-chunk sections are added without
//! changing it.
//!
//! Stream index section (kind 2), all varints unless marked:
//!
//! ```text
//! stream count s
//! s × stream, in strictly increasing stream id order:
//!   stream id, u64 (LabelSet::stream_id of the labels; checked on read)
//!   label count l >= 1
//!   l × (name length, name, value length, value)
//!                       UTF-8, sorted by name, names unique and valid
//!   chunk count c >= 1
//!   c × chunk, in non-decreasing min_ts order:
//!     block offset       absolute, inside the blocks section
//!     block length       at most 2^32 - 1
//!     min_ts             zigzag varint, nanoseconds since the epoch
//!     max_ts - min_ts
//!     entry count        >= 1, at most 2^32 - 1
//!     raw bytes          lines and metadata before compression
//!     filter offset      relative to the start of the filters section
//!     filter length
//!     extra section count e   (2 in files this writer writes: the
//!                        digit filter and the columns; 0 or 1 in older
//!                        files)
//!     e × (kind, flags, offset, length)
//!                        per-chunk sections for later versions (a column
//!                        of parsed fields, say); flags bit 0 = required;
//!                        offset absolute
//! ```
//!
//! Filters section (kind 3): the chunks' filters back to back, each found
//! through its index entry (a filter's bytes are described in
//! [`crate::filter`]).
//!
//! Digit filters section (kind 4, optional, checksummed, written by this
//! writer right after the blocks): the chunks' digit-gram filters back to
//! back ([`crate::filter`]). Each chunk names its own with a per-chunk
//! section of kind 1, flags 0, whose absolute offset and length lie inside
//! this section. Both are optional, so a reader that predates them skips
//! them and reads the file as before; a chunk without one is searched by
//! its trigram filter alone.
//!
//! Columns section (kind 5, optional, checksummed, written right after the
//! digit filters): the chunks' field columns back to back, one column set
//! per chunk, named by a per-chunk section of kind 2, flags 0, inside this
//! section. A column set's bytes, and what a column holds, are described in
//! [`crate::columns`]: for the lines of the block that are JSON objects or
//! logfmt, the fields Loki's parsers would give them, as dictionaries and
//! value ranges, so that label filters can skip a block unread. Columns
//! are an index: the block still holds every line whole, and a reader
//! that predates them (or a query that turns them off) reads the file and
//! answers as before. A chunk without a column set has no columns.
//!
//! Every byte of a version 1 file is covered by a check: header fields are
//! validated exactly, blocks by their own CRC (verified on read), the index
//! and filters sections and the section table by the CRCs above, the footer
//! by its own CRC and magic.

use super::index;
use super::{ChunkMeta, ChunkSection, FORMAT_VERSION, SegmentSummary, StreamMeta};
use crate::ChunkError;
use crate::block::{BlockEncoder, DEFAULT_ZSTD_LEVEL};
use crate::columns::ColumnBuilder;
use crate::filter::{FilterBuilder, FilterParams};
use skald_model::{Entry, LabelSet, StreamId};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub(crate) const MAGIC: &[u8; 8] = b"SKALDSEG";
pub(crate) const HEADER_LEN: u64 = 16;
pub(crate) const FOOTER_LEN: u64 = 32;
pub(crate) const SECTION_ENTRY_LEN: u64 = 24;

pub(crate) const SECTION_BLOCKS: u16 = 1;
pub(crate) const SECTION_INDEX: u16 = 2;
pub(crate) const SECTION_FILTERS: u16 = 3;
/// Optional: the chunks' digit-gram filters.
pub(crate) const SECTION_DIGIT_FILTERS: u16 = 4;
/// Per-chunk section kind: the chunk's digit-gram filter, inside the
/// digit filters section.
pub(crate) const CHUNK_SECTION_DIGIT_FILTER: u32 = 1;
/// Optional: the chunks' field columns.
pub(crate) const SECTION_COLUMNS: u16 = 5;
/// Per-chunk section kind: the chunk's column set, inside the columns
/// section.
pub(crate) const CHUNK_SECTION_COLUMNS: u32 = 2;
pub(crate) const SECTION_REQUIRED: u16 = 1;
pub(crate) const SECTION_NO_CHECKSUM: u16 = 2;

/// Largest entry accepted (line plus metadata), far above Loki's 256 KiB
/// line limit, so that a block's payload always stays under
/// [`crate::MAX_BLOCK_RAW_BYTES`].
pub const MAX_ENTRY_BYTES: usize = 16 << 20;

/// Block size the writer aims at, in raw bytes (lines and metadata).
/// Bigger blocks compress better on repetitive logs and make filters
/// smaller relative to the data; smaller ones waste less decompression
/// when a filter lets a block through. Measured (see [`crate::block`] and
/// [`crate::filter`]): on real build logs, 1 MiB blocks are 1.27x the size
/// of whole-stream `zstd -3` and 4 MiB blocks 1.08x; whole segments with
/// the default options come to 1.04x (generated logs) and about 1.1x (real
/// build logs) of it, filters and index included. A 4 MiB block decodes in
/// about 2 ms.
pub const DEFAULT_TARGET_BLOCK_BYTES: usize = 4 << 20;

/// Counted per entry on top of its size when cutting blocks, so that blocks
/// of empty lines end too, and as a bound on the entry's share of the
/// payload's numbers area.
const ENTRY_OVERHEAD: usize = 32;

/// How a segment is written.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentOptions {
    /// zstd level for blocks (see [`crate::block`] for measurements).
    pub zstd_level: i32,
    /// A chunk is cut into blocks of about this many raw bytes, at most
    /// 16 MiB.
    pub target_block_bytes: usize,
    pub filter: FilterParams,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            zstd_level: DEFAULT_ZSTD_LEVEL,
            target_block_bytes: DEFAULT_TARGET_BLOCK_BYTES,
            filter: FilterParams::default(),
        }
    }
}

/// Writes one segment file; see the module documentation for the format.
pub struct SegmentWriter {
    path: PathBuf,
    tmp_path: PathBuf,
    file: Option<BufWriter<File>>,
    target_block_bytes: usize,
    /// Where the next block goes.
    offset: u64,
    encoder: BlockEncoder,
    filter: FilterBuilder,
    block_buf: Vec<u8>,
    filters: Vec<u8>,
    digit_filters: Vec<u8>,
    columns: ColumnBuilder,
    column_sets: Vec<u8>,
    zstd_level: i32,
    streams: Vec<StreamMeta>,
    by_id: HashMap<StreamId, usize>,
    /// Set when a write failed: the temporary file is then in an unknown
    /// state and the segment must be abandoned.
    failed: bool,
    /// Set once the file has been renamed to its final path.
    renamed: bool,
}

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

impl SegmentWriter {
    /// Starts writing a segment that will appear at `path` once finished,
    /// with default options.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, ChunkError> {
        Self::create_with_options(path, SegmentOptions::default())
    }

    pub fn create_with_options(
        path: impl AsRef<Path>,
        options: SegmentOptions,
    ) -> Result<Self, ChunkError> {
        if options.target_block_bytes == 0 || options.target_block_bytes > MAX_ENTRY_BYTES {
            return Err(ChunkError::invalid_input(format!(
                "target block size {} is outside 1..={MAX_ENTRY_BYTES}",
                options.target_block_bytes
            )));
        }
        let encoder = BlockEncoder::new(options.zstd_level)?;
        let filter = FilterBuilder::new(options.filter)?;

        let path = path.as_ref().to_path_buf();
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp_path = PathBuf::from(tmp);
        let file = File::create(&tmp_path).map_err(ChunkError::io(&tmp_path))?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        file.write_all(&header).map_err(ChunkError::io(&tmp_path))?;
        Ok(SegmentWriter {
            path,
            tmp_path,
            file: Some(file),
            target_block_bytes: options.target_block_bytes,
            offset: HEADER_LEN,
            encoder,
            filter,
            block_buf: Vec::new(),
            filters: Vec::new(),
            digit_filters: Vec::new(),
            columns: ColumnBuilder::new(),
            column_sets: Vec::new(),
            zstd_level: options.zstd_level,
            streams: Vec::new(),
            by_id: HashMap::new(),
            failed: false,
            renamed: false,
        })
    }

    /// The path the segment will have once finished.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far (header and blocks).
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Adds entries of the stream `labels`, sorted by timestamp, cut into
    /// blocks of about the target size. A stream may be added more than
    /// once; its chunks are listed by start time. Adding no entries does
    /// nothing. Invalid input (unsorted entries, an entry over
    /// [`MAX_ENTRY_BYTES`], a stream id shared by two label sets) is refused
    /// before anything is written; after an I/O error the writer refuses
    /// further use.
    pub fn add_chunk(&mut self, labels: &LabelSet, entries: &[Entry]) -> Result<(), ChunkError> {
        if self.failed {
            return Err(ChunkError::invalid_input(
                "an earlier write of this segment failed; start a new one",
            ));
        }
        if entries.is_empty() {
            return Ok(());
        }
        for (i, pair) in entries.windows(2).enumerate() {
            if pair[1].ts < pair[0].ts {
                return Err(ChunkError::invalid_input(format!(
                    "entries of stream {labels} must be sorted by timestamp: entry {} at {} follows {}",
                    i + 1,
                    pair[1].ts.0,
                    pair[0].ts.0
                )));
            }
        }
        if let Some(big) = entries.iter().find(|e| e.size() > MAX_ENTRY_BYTES) {
            return Err(ChunkError::invalid_input(format!(
                "an entry of stream {labels} holds {} bytes, above the limit of {MAX_ENTRY_BYTES}",
                big.size()
            )));
        }
        let id = labels.stream_id();
        let stream = match self.by_id.get(&id) {
            Some(&i) if self.streams[i].labels != *labels => {
                return Err(ChunkError::invalid_input(format!(
                    "stream id {id} of {labels} is also the id of {}",
                    self.streams[i].labels
                )));
            }
            Some(&i) => i,
            None => {
                self.streams.push(StreamMeta {
                    labels: labels.clone(),
                    id,
                    chunks: Vec::new(),
                });
                self.by_id.insert(id, self.streams.len() - 1);
                self.streams.len() - 1
            }
        };

        let mut start = 0;
        let mut size = 0;
        for (i, e) in entries.iter().enumerate() {
            let cost = e.size() + ENTRY_OVERHEAD + 8 * e.metadata.len();
            if i > start && size + cost > self.target_block_bytes {
                self.write_block(stream, &entries[start..i])?;
                start = i;
                size = 0;
            }
            size += cost;
        }
        self.write_block(stream, &entries[start..])
    }

    fn write_block(&mut self, stream: usize, entries: &[Entry]) -> Result<(), ChunkError> {
        self.block_buf.clear();
        let info = match self.encoder.encode(entries, &mut self.block_buf) {
            Ok(info) => info,
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        let file = self.file.as_mut().expect("file is present until finish");
        if let Err(e) = file.write_all(&self.block_buf) {
            self.failed = true;
            return Err(ChunkError::io(&self.tmp_path)(e));
        }
        for e in entries {
            self.filter.add_line(e.line.as_bytes());
            self.columns.add_line(&e.line, !e.metadata.is_empty());
        }
        let columns_offset = self.column_sets.len() as u64;
        let columns_len = self.columns.finish(self.zstd_level, &mut self.column_sets);
        let filter_offset = self.filters.len() as u64;
        let digit_offset = self.digit_filters.len() as u64;
        let (filter_len, digit_len) = self
            .filter
            .finish_both(&mut self.filters, &mut self.digit_filters);
        let filter_len = filter_len as u32;
        self.streams[stream].chunks.push(ChunkMeta {
            offset: self.offset,
            len: info.block_bytes,
            min_ts: info.min_ts,
            max_ts: info.max_ts,
            entries: info.entries,
            raw_bytes: info.raw_bytes,
            filter_offset,
            filter_len,
            // Relative to their sections until `finish` knows where those
            // start.
            sections: vec![
                ChunkSection {
                    kind: CHUNK_SECTION_DIGIT_FILTER,
                    flags: 0,
                    offset: digit_offset,
                    len: digit_len as u64,
                },
                ChunkSection {
                    kind: CHUNK_SECTION_COLUMNS,
                    flags: 0,
                    offset: columns_offset,
                    len: columns_len as u64,
                },
            ],
        });
        self.offset += u64::from(info.block_bytes);
        Ok(())
    }

    /// Writes the index, filters, section table and footer, makes the file
    /// durable and moves it to its final path.
    pub fn finish(mut self) -> Result<SegmentSummary, ChunkError> {
        if self.failed {
            return Err(ChunkError::invalid_input(
                "an earlier write of this segment failed; start a new one",
            ));
        }
        if self.streams.is_empty() {
            return Err(ChunkError::invalid_input(
                "a segment needs at least one chunk",
            ));
        }
        let mut streams = std::mem::take(&mut self.streams);
        streams.sort_by_key(|s| s.id);
        let digits_offset = self.offset;
        let columns_offset = digits_offset + self.digit_filters.len() as u64;
        for s in &mut streams {
            s.chunks.sort_by_key(|c| c.min_ts);
            for x in s.chunks.iter_mut().flat_map(|c| &mut c.sections) {
                x.offset += match x.kind {
                    CHUNK_SECTION_COLUMNS => columns_offset,
                    _ => digits_offset,
                };
            }
        }
        let mut index_bytes = Vec::new();
        index::encode(&streams, &mut index_bytes);

        let blocks_start = HEADER_LEN;
        let index_offset = columns_offset + self.column_sets.len() as u64;
        let filters_offset = index_offset + index_bytes.len() as u64;
        let table_offset = filters_offset + self.filters.len() as u64;
        let sections = [
            (
                SECTION_BLOCKS,
                SECTION_REQUIRED | SECTION_NO_CHECKSUM,
                0,
                blocks_start,
                digits_offset - blocks_start,
            ),
            (
                SECTION_DIGIT_FILTERS,
                0,
                crc32c::crc32c(&self.digit_filters),
                digits_offset,
                self.digit_filters.len() as u64,
            ),
            (
                SECTION_COLUMNS,
                0,
                crc32c::crc32c(&self.column_sets),
                columns_offset,
                self.column_sets.len() as u64,
            ),
            (
                SECTION_INDEX,
                SECTION_REQUIRED,
                crc32c::crc32c(&index_bytes),
                index_offset,
                index_bytes.len() as u64,
            ),
            (
                SECTION_FILTERS,
                SECTION_REQUIRED,
                crc32c::crc32c(&self.filters),
                filters_offset,
                self.filters.len() as u64,
            ),
        ];
        let mut table = Vec::with_capacity(4 + sections.len() * SECTION_ENTRY_LEN as usize);
        table.extend_from_slice(&(sections.len() as u32).to_le_bytes());
        for (kind, flags, crc, offset, len) in sections {
            table.extend_from_slice(&kind.to_le_bytes());
            table.extend_from_slice(&flags.to_le_bytes());
            table.extend_from_slice(&crc.to_le_bytes());
            table.extend_from_slice(&offset.to_le_bytes());
            table.extend_from_slice(&len.to_le_bytes());
        }
        let mut footer = Vec::with_capacity(FOOTER_LEN as usize);
        footer.extend_from_slice(&table_offset.to_le_bytes());
        footer.extend_from_slice(&(table.len() as u32).to_le_bytes());
        footer.extend_from_slice(&crc32c::crc32c(&table).to_le_bytes());
        footer.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let footer_crc = crc32c::crc32c(&footer);
        footer.extend_from_slice(&footer_crc.to_le_bytes());
        footer.extend_from_slice(MAGIC);
        debug_assert_eq!(footer.len() as u64, FOOTER_LEN);

        let tmp = self.tmp_path.clone();
        let io = || ChunkError::io(&tmp);
        let mut file = self.file.take().expect("file is present until finish");
        for part in [
            &self.digit_filters,
            &self.column_sets,
            &index_bytes,
            &self.filters,
            &table,
            &footer,
        ] {
            file.write_all(part).map_err(io())?;
        }
        let file = file.into_inner().map_err(|e| io()(e.into_error()))?;
        file.sync_all().map_err(io())?;
        let stored_bytes = table_offset + table.len() as u64 + FOOTER_LEN;
        drop(file);
        fs::rename(&self.tmp_path, &self.path).map_err(ChunkError::io(&self.path))?;
        self.renamed = true;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(ChunkError::io(dir))?;

        let mut summary = SegmentSummary::from_streams(&streams);
        summary.stored_bytes = stored_bytes;
        summary.filter_bytes = (self.filters.len() + self.digit_filters.len()) as u64;
        summary.index_bytes = index_bytes.len() as u64;
        summary.column_bytes = self.column_sets.len() as u64;
        Ok(summary)
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        // Unfinished, or failed in `finish` before the rename: the temporary
        // file is garbage.
        if !self.renamed {
            self.file = None;
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}
