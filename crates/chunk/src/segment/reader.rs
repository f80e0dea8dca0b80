//! Reading segment files.
//!
//! [`SegmentReader::open`] checks the header, footer, section table and the
//! checksums of the index and filters sections, then keeps the decoded
//! index and all filters in memory (a few percent of the file). Blocks stay
//! where the segment lives and are read by range through [`RangeRead`]
//! (positional reads, `pread`, for a local file), verified against their
//! checksum and their index entry, so one reader can be shared by many
//! threads without locking.
//!
//! Any damage is reported as an error naming the file, the offset and what
//! is wrong; a reader never returns entries from a block that fails its
//! checks.
//!
//! Not here: caching of blocks, or deciding which chunks a query needs
//! (the store and query crates do that with [`StreamMeta`] and the filter
//! checks offered here), or where the bytes live (see [`super::range`]).

use super::index::{self, Bounds};
use super::range::{FileRange, RangeRead};
use super::writer::{
    CHUNK_SECTION_COLUMNS, CHUNK_SECTION_DIGIT_FILTER, FOOTER_LEN, HEADER_LEN, MAGIC,
    SECTION_BLOCKS, SECTION_COLUMNS, SECTION_DIGIT_FILTERS, SECTION_ENTRY_LEN, SECTION_FILTERS,
    SECTION_INDEX, SECTION_NO_CHECKSUM, SECTION_REQUIRED,
};
use super::{ChunkMeta, FORMAT_VERSION, SegmentSummary, StreamMeta};
use crate::ChunkError;
use crate::block::DecodedBlock;
use crate::columns::{BlockColumns, ColumnDetail};
use crate::filter::{DigitFilter, FilterProbe, TrigramFilter};
use crate::varint::Cursor;
use skald_model::{Entry, StreamId};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One entry of a segment's section table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    pub kind: u16,
    pub flags: u16,
    pub crc: u32,
    pub offset: u64,
    pub len: u64,
}

impl SectionInfo {
    /// A name for people: `blocks`, `index`, `filters` or `unknown`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            SECTION_BLOCKS => "blocks",
            SECTION_INDEX => "index",
            SECTION_FILTERS => "filters",
            SECTION_DIGIT_FILTERS => "digit filters",
            SECTION_COLUMNS => "columns",
            _ => "unknown",
        }
    }
}

/// An open segment; `Sync`, so blocks can be read from many threads.
#[derive(Debug)]
pub struct SegmentReader {
    /// Where the segment is, for messages (a file path or an object key).
    path: PathBuf,
    source: Box<dyn RangeRead>,
    version: u32,
    sections: Vec<SectionInfo>,
    blocks: Range<u64>,
    streams: Vec<StreamMeta>,
    filters: Vec<u8>,
    /// The digit filters section and its file offset; empty in files
    /// written before digit filters existed.
    digit_filters: Vec<u8>,
    digit_filters_offset: u64,
    /// The columns section and its file offset; empty in files written
    /// before columns existed.
    columns: Vec<u8>,
    columns_offset: u64,
    summary: SegmentSummary,
}

impl SegmentReader {
    /// Opens and validates a segment file; see the module documentation.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ChunkError> {
        let path = path.as_ref();
        let file = FileRange::open(path).map_err(ChunkError::io(path))?;
        Self::from_source(path, Box::new(file))
    }

    /// Validates the segment whose bytes `source` reads; `path` names it
    /// in errors and [`SegmentReader::path`].
    pub fn from_source(
        path: impl Into<PathBuf>,
        source: Box<dyn RangeRead>,
    ) -> Result<Self, ChunkError> {
        let path = path.into();
        let file_len = source.len();
        let corrupt = |offset: u64, reason: String| ChunkError::CorruptSegment {
            path: path.clone(),
            offset,
            reason,
        };
        let read = |offset: u64, len: u64| -> Result<Vec<u8>, ChunkError> {
            // Callers pass ranges inside the file, so `len` is bounded by
            // the file's size.
            let mut buf = vec![0u8; len as usize];
            source
                .read_exact_at(&mut buf, offset)
                .map_err(ChunkError::io(&path))?;
            Ok(buf)
        };

        if file_len < HEADER_LEN + FOOTER_LEN {
            return Err(corrupt(
                0,
                format!("{file_len} bytes is too short to be a segment"),
            ));
        }
        let header = read(0, HEADER_LEN)?;
        if &header[..8] != MAGIC {
            return Err(corrupt(0, "bad magic: not a skald segment".into()));
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version == 0 {
            return Err(corrupt(8, "format version 0 does not exist".into()));
        }
        if version > FORMAT_VERSION {
            return Err(ChunkError::UnsupportedVersion {
                path: path.clone(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if header[12..16] != [0; 4] {
            return Err(corrupt(12, "reserved header flags are not zero".into()));
        }

        let footer_offset = file_len - FOOTER_LEN;
        let footer = read(footer_offset, FOOTER_LEN)?;
        if &footer[24..32] != MAGIC {
            return Err(corrupt(
                footer_offset + 24,
                "bad footer magic: truncated or not a skald segment".into(),
            ));
        }
        let le32 =
            |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let stored = le32(&footer, 20);
        let computed = crc32c::crc32c(&footer[..20]);
        if stored != computed {
            return Err(corrupt(
                footer_offset,
                format!("footer checksum mismatch: stored {stored:08x}, computed {computed:08x}"),
            ));
        }
        if le32(&footer, 16) != version {
            return Err(corrupt(
                footer_offset + 16,
                format!(
                    "footer says format version {}, header says {version}",
                    le32(&footer, 16)
                ),
            ));
        }
        let mut table_offset_bytes = [0u8; 8];
        table_offset_bytes.copy_from_slice(&footer[..8]);
        let table_offset = u64::from_le_bytes(table_offset_bytes);
        let table_len = u64::from(le32(&footer, 8));
        if table_offset < HEADER_LEN || table_offset.checked_add(table_len) != Some(footer_offset) {
            return Err(corrupt(
                footer_offset,
                format!(
                    "section table of {table_len} bytes at {table_offset} does not end at the footer"
                ),
            ));
        }
        let table = read(table_offset, table_len)?;
        let stored = le32(&footer, 12);
        let computed = crc32c::crc32c(&table);
        if stored != computed {
            return Err(corrupt(
                table_offset,
                format!(
                    "section table checksum mismatch: stored {stored:08x}, computed {computed:08x}"
                ),
            ));
        }
        let sections = parse_section_table(&table)
            .map_err(|(at, reason)| corrupt(table_offset + at, reason))?;

        let find = |kind: u16| -> Result<&SectionInfo, ChunkError> {
            let mut found = sections.iter().filter(|s| s.kind == kind);
            match (found.next(), found.next()) {
                (Some(s), None) => Ok(s),
                (None, _) => Err(corrupt(
                    table_offset,
                    format!("no {} section", kind_name(kind)),
                )),
                (Some(_), Some(_)) => Err(corrupt(
                    table_offset,
                    format!("more than one {} section", kind_name(kind)),
                )),
            }
        };
        for s in &sections {
            let end = s.offset.checked_add(s.len);
            if s.offset < HEADER_LEN || end.is_none_or(|e| e > table_offset) {
                return Err(corrupt(
                    table_offset,
                    format!(
                        "{} section of {} bytes at {} lies outside the file's body",
                        s.kind_name(),
                        s.len,
                        s.offset
                    ),
                ));
            }
            let known = matches!(
                s.kind,
                SECTION_BLOCKS
                    | SECTION_INDEX
                    | SECTION_FILTERS
                    | SECTION_DIGIT_FILTERS
                    | SECTION_COLUMNS
            );
            if !known && s.flags & SECTION_REQUIRED != 0 {
                return Err(ChunkError::UnsupportedFeature {
                    path: path.clone(),
                    what: format!("required section of kind {}", s.kind),
                });
            }
        }
        let mut by_offset: Vec<&SectionInfo> = sections.iter().collect();
        by_offset.sort_by_key(|s| s.offset);
        for pair in by_offset.windows(2) {
            if pair[0].offset + pair[0].len > pair[1].offset {
                return Err(corrupt(
                    table_offset,
                    format!(
                        "{} and {} sections overlap",
                        pair[0].kind_name(),
                        pair[1].kind_name()
                    ),
                ));
            }
        }
        let blocks = find(SECTION_BLOCKS)?;
        if blocks.flags & SECTION_NO_CHECKSUM == 0 || blocks.offset != HEADER_LEN {
            return Err(corrupt(
                table_offset,
                "blocks section must start after the header and carry no checksum".into(),
            ));
        }
        let blocks = blocks.offset..blocks.offset + blocks.len;

        let read_checked = |s: &SectionInfo| -> Result<Vec<u8>, ChunkError> {
            if s.flags & SECTION_NO_CHECKSUM != 0 {
                return Err(corrupt(
                    table_offset,
                    format!("{} section must carry a checksum", s.kind_name()),
                ));
            }
            let bytes = read(s.offset, s.len)?;
            let computed = crc32c::crc32c(&bytes);
            if computed != s.crc {
                return Err(corrupt(
                    s.offset,
                    format!(
                        "{} section checksum mismatch: stored {:08x}, computed {computed:08x}",
                        s.kind_name(),
                        s.crc
                    ),
                ));
            }
            Ok(bytes)
        };
        let index_section = find(SECTION_INDEX)?;
        let index_bytes = read_checked(index_section)?;
        let filters_section = find(SECTION_FILTERS)?;
        let filters = read_checked(filters_section)?;
        let (digit_filters, digit_filters_offset) =
            if sections.iter().any(|s| s.kind == SECTION_DIGIT_FILTERS) {
                let s = find(SECTION_DIGIT_FILTERS)?;
                (read_checked(s)?, s.offset)
            } else {
                (Vec::new(), 0)
            };
        let (columns, columns_offset) = if sections.iter().any(|s| s.kind == SECTION_COLUMNS) {
            let s = find(SECTION_COLUMNS)?;
            (read_checked(s)?, s.offset)
        } else {
            (Vec::new(), 0)
        };

        let bounds = Bounds {
            blocks: blocks.clone(),
            filters_len: filters.len() as u64,
            file_len,
        };
        let streams = index::decode(&index_bytes, &bounds).map_err(|m| {
            corrupt(
                index_section.offset + m.at as u64,
                format!("stream index: {}", m.what),
            )
        })?;
        for chunk in streams.iter().flat_map(|s| &s.chunks) {
            if let Some(x) = chunk.sections.iter().find(|x| x.flags & 1 != 0) {
                return Err(ChunkError::UnsupportedFeature {
                    path: path.clone(),
                    what: format!("required chunk section of kind {}", x.kind),
                });
            }
            let start = chunk.filter_offset as usize;
            let filter = &filters[start..start + chunk.filter_len as usize];
            if let Err(e) = TrigramFilter::from_bytes(filter) {
                return Err(corrupt(
                    filters_section.offset + chunk.filter_offset,
                    format!("filter of the chunk at offset {}: {e}", chunk.offset),
                ));
            }
            for x in chunk
                .sections
                .iter()
                .filter(|x| x.kind == CHUNK_SECTION_DIGIT_FILTER)
            {
                let bytes = x
                    .offset
                    .checked_sub(digit_filters_offset)
                    .and_then(|start| {
                        let start = usize::try_from(start).ok()?;
                        digit_filters.get(start..start.checked_add(usize::try_from(x.len).ok()?)?)
                    });
                let checked = match bytes {
                    None => Err("it lies outside the digit filters section".to_string()),
                    Some(b) => DigitFilter::from_bytes(b)
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                };
                if let Err(e) = checked {
                    return Err(corrupt(
                        x.offset,
                        format!("digit filter of the chunk at offset {}: {e}", chunk.offset),
                    ));
                }
            }
            for x in chunk
                .sections
                .iter()
                .filter(|x| x.kind == CHUNK_SECTION_COLUMNS)
            {
                if section_slice(&columns, columns_offset, x).is_none() {
                    return Err(corrupt(
                        x.offset,
                        format!(
                            "columns of the chunk at offset {} lie outside the columns section",
                            chunk.offset
                        ),
                    ));
                }
            }
        }

        let mut summary = SegmentSummary::from_streams(&streams);
        summary.stored_bytes = file_len;
        summary.filter_bytes = (filters.len() + digit_filters.len()) as u64;
        summary.index_bytes = index_bytes.len() as u64;
        summary.column_bytes = columns.len() as u64;
        Ok(SegmentReader {
            path,
            source,
            version,
            sections,
            blocks,
            streams,
            filters,
            digit_filters,
            digit_filters_offset,
            columns,
            columns_offset,
            summary,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format version the file was written with.
    pub fn format_version(&self) -> u32 {
        self.version
    }

    /// The section table, in file order of the table.
    pub fn sections(&self) -> &[SectionInfo] {
        &self.sections
    }

    pub fn summary(&self) -> &SegmentSummary {
        &self.summary
    }

    /// All streams, in increasing stream id order.
    pub fn streams(&self) -> &[StreamMeta] {
        &self.streams
    }

    pub fn stream(&self, id: StreamId) -> Option<&StreamMeta> {
        self.streams
            .binary_search_by_key(&id, |s| s.id)
            .ok()
            .map(|i| &self.streams[i])
    }

    /// Reads, verifies and decodes the block of `chunk` (which must come
    /// from this reader) into owned entries.
    pub fn read_block(&self, chunk: &ChunkMeta) -> Result<Vec<Entry>, ChunkError> {
        Ok(self.read_decoded(chunk)?.to_entries())
    }

    /// Reads, verifies and decodes the block of `chunk` into one buffer
    /// that lends out its lines; cheaper than [`SegmentReader::read_block`]
    /// when lines are only scanned.
    pub fn read_decoded(&self, chunk: &ChunkMeta) -> Result<DecodedBlock, ChunkError> {
        let corrupt = |reason: String| ChunkError::CorruptSegment {
            path: self.path.clone(),
            offset: chunk.offset,
            reason,
        };
        let len = u64::from(chunk.len);
        let end = chunk.offset.checked_add(len);
        if chunk.offset < self.blocks.start || end.is_none_or(|e| e > self.blocks.end) {
            return Err(corrupt(format!(
                "a chunk of {len} bytes at {} lies outside the blocks section (is it from another segment?)",
                chunk.offset
            )));
        }
        let mut buf = vec![0u8; chunk.len as usize];
        self.source
            .read_exact_at(&mut buf, chunk.offset)
            .map_err(ChunkError::io(&self.path))?;
        let block = DecodedBlock::decode(&buf).map_err(|e| {
            corrupt(match e {
                ChunkError::CorruptBlock { reason } => format!("block: {reason}"),
                other => format!("block: {other}"),
            })
        })?;
        let timestamps = block.timestamps();
        let (first, last) = (timestamps[0], timestamps[timestamps.len() - 1]);
        if block.len() != chunk.entries as usize || first != chunk.min_ts || last != chunk.max_ts {
            return Err(corrupt(format!(
                "block holds {} entries from {} to {}, its index entry says {} from {} to {}",
                block.len(),
                first.0,
                last.0,
                chunk.entries,
                chunk.min_ts.0,
                chunk.max_ts.0
            )));
        }
        Ok(block)
    }

    /// The filter of `chunk`, or `None` if `chunk` is not from this reader.
    pub fn filter(&self, chunk: &ChunkMeta) -> Option<TrigramFilter<'_>> {
        let start = usize::try_from(chunk.filter_offset).ok()?;
        let bytes = self
            .filters
            .get(start..start.checked_add(chunk.filter_len as usize)?)?;
        TrigramFilter::from_bytes(bytes).ok()
    }

    /// Whether the block of `chunk` may hold a line containing `needle`,
    /// case-sensitively or ASCII case-insensitively (see
    /// [`TrigramFilter::may_contain`]). Never false for a block that does.
    pub fn may_contain(&self, chunk: &ChunkMeta, needle: &[u8]) -> bool {
        self.may_match(chunk, &FilterProbe::new(needle))
    }

    /// Like [`SegmentReader::may_contain`], for Unicode case-insensitive
    /// search (see [`FilterProbe::ignore_case`]).
    pub fn may_contain_ignore_case(&self, chunk: &ChunkMeta, needle: &[u8]) -> bool {
        self.may_match(chunk, &FilterProbe::ignore_case(needle))
    }

    /// The digit-gram filter of `chunk`, if it has one (files written
    /// before digit filters existed have none).
    pub fn digit_filter(&self, chunk: &ChunkMeta) -> Option<DigitFilter<'_>> {
        let x = chunk
            .sections
            .iter()
            .find(|x| x.kind == CHUNK_SECTION_DIGIT_FILTER)?;
        let start = usize::try_from(x.offset.checked_sub(self.digit_filters_offset)?).ok()?;
        let bytes = self
            .digit_filters
            .get(start..start.checked_add(usize::try_from(x.len).ok()?)?)?;
        DigitFilter::from_bytes(bytes).ok()
    }

    /// The field columns of `chunk` (see [`crate::columns`]); `None` when
    /// it has none (written before columns existed). Damage is an error
    /// naming the segment and the column set's offset.
    pub fn columns(
        &self,
        chunk: &ChunkMeta,
        detail: ColumnDetail,
    ) -> Result<Option<BlockColumns>, ChunkError> {
        let Some(x) = chunk
            .sections
            .iter()
            .find(|x| x.kind == CHUNK_SECTION_COLUMNS)
        else {
            return Ok(None);
        };
        let corrupt = |reason: String| ChunkError::CorruptSegment {
            path: self.path.clone(),
            offset: x.offset,
            reason,
        };
        let bytes = section_slice(&self.columns, self.columns_offset, x).ok_or_else(|| {
            corrupt(format!(
                "columns of the chunk at offset {} lie outside the columns section",
                chunk.offset
            ))
        })?;
        let columns = crate::columns::decode(bytes, detail).map_err(|m| {
            corrupt(format!(
                "columns of the chunk at offset {} (byte {}): {}",
                chunk.offset, m.at, m.what
            ))
        })?;
        if columns.rows != chunk.entries {
            return Err(corrupt(format!(
                "columns of the chunk at offset {} describe {} rows, the chunk holds {}",
                chunk.offset, columns.rows, chunk.entries
            )));
        }
        Ok(Some(columns))
    }

    /// Checks a prepared probe; true when the filter cannot be found.
    pub fn may_match(&self, chunk: &ChunkMeta, probe: &FilterProbe) -> bool {
        if probe.has_digit_grams()
            && self
                .digit_filter(chunk)
                .is_some_and(|d| !d.may_match(probe))
        {
            return false;
        }
        self.filter(chunk).is_none_or(|f| f.may_match(probe))
    }
}

/// The bytes of per-chunk section `x` inside the section `bytes` that
/// starts at file offset `start`.
fn section_slice<'a>(bytes: &'a [u8], start: u64, x: &super::ChunkSection) -> Option<&'a [u8]> {
    let from = usize::try_from(x.offset.checked_sub(start)?).ok()?;
    bytes.get(from..from.checked_add(usize::try_from(x.len).ok()?)?)
}

fn kind_name(kind: u16) -> &'static str {
    SectionInfo {
        kind,
        flags: 0,
        crc: 0,
        offset: 0,
        len: 0,
    }
    .kind_name()
}

/// Parses the section table; errors carry the offset within the table.
fn parse_section_table(table: &[u8]) -> Result<Vec<SectionInfo>, (u64, String)> {
    let mut c = Cursor::new(table);
    let count = c.u32_le("section count").map_err(|m| (0, m.to_string()))?;
    if u64::from(count) * SECTION_ENTRY_LEN + 4 != table.len() as u64 {
        return Err((
            0,
            format!(
                "section table of {} bytes cannot hold {count} sections",
                table.len()
            ),
        ));
    }
    let mut sections = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = c.pos() as u64;
        let entry = (|| {
            Ok::<_, crate::varint::Malformed>(SectionInfo {
                kind: c.u16_le("section kind")?,
                flags: c.u16_le("section flags")?,
                crc: c.u32_le("section checksum")?,
                offset: c.u64_le("section offset")?,
                len: c.u64_le("section length")?,
            })
        })()
        .map_err(|m| (at, m.to_string()))?;
        if entry.flags & !(SECTION_REQUIRED | SECTION_NO_CHECKSUM) != 0 {
            return Err((at, format!("unknown section flags {:#06x}", entry.flags)));
        }
        sections.push(entry);
    }
    Ok(sections)
}
