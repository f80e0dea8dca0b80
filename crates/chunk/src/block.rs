//! Blocks: the compressed, checksummed unit in which one stream's entries
//! are stored and read back.
//!
//! A block holds entries of one stream in timestamp order (ties keep the
//! order they were given in). [`BlockEncoder`] turns a slice of
//! [`Entry`] into block bytes, reusing its buffers and zstd context from
//! block to block; [`DecodedBlock`] turns block bytes back into entries held
//! in one buffer, so that a query can scan lines as `&str` without an
//! allocation per entry ([`DecodedBlock::to_entries`] builds owned entries
//! when those are wanted).
//!
//! Not here: choosing which entries go in a block (the segment writer
//! splits at a target size), the block's filter (see [`crate::filter`]), or
//! where the block lives in a file (see [`crate::segment`]).
//!
//! # Block format (version 1)
//!
//! ```text
//! offset  size  field
//! 0       1     codec: 1 = zstd (the only codec of version 1)
//! 1       1     flags: bit 0 = entries carry structured metadata;
//!               bit 1 = lines end in '\n' (no line contains one);
//!               the other bits are zero
//! 2       var   entry count n, varint, >= 1
//! .       var   payload length p, varint: bytes after decompression,
//!               at most MAX_BLOCK_RAW_BYTES (64 MiB)
//! .       var   text length t, varint, t <= p
//! .       ...   the payload, compressed as zstd frame(s)
//! end-4   4     CRC32C (Castagnoli) of every byte above, u32 little-endian
//! ```
//!
//! Varints are unsigned LEB128; "zigzag" maps signed to unsigned
//! (`(v << 1) ^ (v >> 63)`). The payload, once decompressed, is `p` bytes:
//!
//! ```text
//! text, t bytes, valid UTF-8:
//!   line_0 line_1 ... line_{n-1}          the lines, back to back,
//!                                         each followed by '\n' if flag bit 1
//!   if flag bit 0: for each entry in order, for each of its metadata
//!   labels in order: name value           back to back
//! numbers, p - t bytes:
//!   u                  varint >= 1: the timestamp unit; every timestamp
//!                      is ts_0 plus a multiple of u
//!   ts_0               zigzag varint, nanoseconds since the Unix epoch
//!   (ts_i - ts_{i-1})/u   n - 1 varints (timestamps never decrease)
//!   len(line_i)        n varints, only if flag bit 1 is clear
//!   if flag bit 0, for each entry:
//!     c                varint, number of metadata labels (often 0)
//!     len(name) len(value)   c pairs of varints
//! ```
//!
//! Invariants a decoder checks: the string lengths add up to exactly `t`,
//! each string ends on a UTF-8 character boundary, the numbers end exactly
//! at `p`, and no timestamp overflows `i64`.
//!
//! Why this shape:
//! - Text first: the decoder splits the small numbers area off the
//!   decompressed buffer and keeps the rest as one `String`, validated once,
//!   from which every line and label is a `&str` slice.
//! - The unit `u` is the greatest common divisor of the deltas. Timestamps
//!   taken at millisecond precision (most log lines) then cost one byte per
//!   entry before compression instead of three or four.
//! - Lines end in a newline rather than carry a length whenever no line
//!   contains one (nearly always): a length costs about a byte per entry
//!   after compression, a newline next to nothing. On real build logs that
//!   compress 20 times, lengths made blocks 12% larger.
//! - Entries without metadata cost nothing when no entry in the block has
//!   any (flag bit 0 clear), and one byte each (`c = 0`, which zstd
//!   squeezes to almost nothing) otherwise.
//!
//! # Choosing the zstd level
//!
//! Measured with `cargo run --release -p skald-chunk --example measure` on
//! the 2-core build machine, on two corpora:
//! - generated: 240k lines in 12 streams (Apache combined access logs, JSON
//!   application logs and logfmt lines, 53 MB), timestamps at millisecond
//!   precision, 2% of entries with a trace id as metadata;
//! - real: 88k lines (8.7 MB) of CPython build logs and dpkg/apt logs in
//!   one stream, 1 ms apart (`measure FILE`).
//!
//! "vs zstd -3" is the blocks' size over that of compressing each stream's
//! lines, newline-separated, as one plain `zstd -3` frame. Speeds are MB of
//! lines per second on one thread; decode is to a [`DecodedBlock`].
//!
//! ```text
//!                     generated (ratio 5.7 by zstd -3)   real (ratio 20 by zstd -3)
//! block  level  ratio  vs -3  encode  decode     ratio  vs -3  encode  decode
//! 1 MiB    1     5.82  0.988    613    1792      15.16  1.332    947    2397
//! 1 MiB    3     5.62  1.024    457    1592      15.86  1.273    833    2311
//! 1 MiB    5     5.76  0.999    143    1606      17.36  1.163    299    2334
//! 1 MiB    7     6.16  0.933    104    1816      18.12  1.115    224    2462
//! 1 MiB    9     6.35  0.906     80    1572      18.32  1.102    175    2543
//! 4 MiB    1     5.87  0.980    504    1359      15.69  1.287    901    2464
//! 4 MiB    3     5.59  1.030    364    1557      18.66  1.082    877    2426
//! 4 MiB    5     5.67  1.015    151    1267      21.01  0.961    329    2443
//! ```
//!
//! Level 3 is the default: on real logs it is 15 to 20% smaller than level
//! 1 at about the same speed (the generated lines, being uniformly random
//! picks, flatter level 1), and levels 5 and up cost two to four times the
//! CPU, which ingest at 500k lines/s on two cores cannot spare. Highly
//! repetitive logs need big blocks to match a whole-stream zstd, hence the
//! segment writer's 4 MiB default. Owned [`Entry`] values
//! ([`DecodedBlock::to_entries`]) decode at 1000 to 1150 MB/s.
//!
//! Timestamps with random nanoseconds (no common unit) cost about 2.5
//! bytes per entry after compression: +7.6% on the generated corpus,
//! +48% on the real one, whose lines compress to 5 bytes each.

use crate::ChunkError;
use crate::varint::{Cursor, Malformed, put_uvarint, zigzag};
use skald_model::{Entry, Label, Timestamp};
use std::cell::RefCell;

/// Hard cap on a block's decompressed payload. No block, whatever its
/// header says, makes a reader allocate more than this for the payload.
pub const MAX_BLOCK_RAW_BYTES: usize = 64 << 20;

/// The zstd level used unless configured otherwise, chosen by the
/// measurement in the module documentation.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

const CODEC_ZSTD: u8 = 1;
const FLAG_METADATA: u8 = 1;
const FLAG_NEWLINES: u8 = 2;
const CHECKSUM_LEN: usize = 4;
/// codec, flags, three one-byte varints, at least one byte of zstd frame and
/// the checksum.
const MIN_BLOCK_LEN: usize = 2 + 3 + 1 + CHECKSUM_LEN;

/// What [`BlockEncoder::encode`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    pub entries: u32,
    pub min_ts: Timestamp,
    pub max_ts: Timestamp,
    /// Bytes of lines and metadata names and values: the sum of
    /// [`Entry::size`], what queries report as bytes processed.
    pub raw_bytes: u64,
    /// Length of the decompressed payload (text plus numbers).
    pub payload_bytes: u32,
    /// Length of the encoded block, header and checksum included.
    pub block_bytes: u32,
}

/// Encodes blocks, reusing one zstd context and scratch buffers, so that
/// encoding many blocks allocates nothing per block once warmed up.
pub struct BlockEncoder {
    compressor: zstd::bulk::Compressor<'static>,
    level: i32,
    payload: Vec<u8>,
    compressed: Vec<u8>,
}

impl std::fmt::Debug for BlockEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockEncoder")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl BlockEncoder {
    /// An encoder compressing at zstd `level` (see the module documentation
    /// for measurements; [`DEFAULT_ZSTD_LEVEL`] is the default).
    pub fn new(level: i32) -> Result<Self, ChunkError> {
        let range = zstd::compression_level_range();
        if !range.contains(&level) {
            return Err(ChunkError::invalid_input(format!(
                "zstd level {level} is outside {}..={}",
                range.start(),
                range.end()
            )));
        }
        let compressor =
            zstd::bulk::Compressor::new(level).map_err(|source| ChunkError::Zstd { source })?;
        Ok(BlockEncoder {
            compressor,
            level,
            payload: Vec::new(),
            compressed: Vec::new(),
        })
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// Appends the block holding `entries` to `out`. The entries must be of
    /// one stream, non-empty and sorted by timestamp; their lines and
    /// metadata together must fit in [`MAX_BLOCK_RAW_BYTES`].
    pub fn encode(
        &mut self,
        entries: &[Entry],
        out: &mut Vec<u8>,
    ) -> Result<BlockInfo, ChunkError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Err(ChunkError::invalid_input(
                "a block needs at least one entry",
            ));
        };

        // Pass 1: check the order, find the timestamp unit, measure.
        let mut unit = 0u64;
        let mut prev = first.ts.0;
        let mut text_len = 0usize;
        let mut has_metadata = false;
        let mut newlines = true;
        for (i, e) in entries.iter().enumerate() {
            if e.ts.0 < prev {
                return Err(ChunkError::invalid_input(format!(
                    "entries must be sorted by timestamp: entry {i} at {} follows {}",
                    e.ts.0, prev
                )));
            }
            let delta = e.ts.0.abs_diff(prev);
            if delta != 0 && unit != 1 {
                unit = gcd(unit, delta);
            }
            prev = e.ts.0;
            text_len += e.size();
            has_metadata |= !e.metadata.is_empty();
            newlines &= memchr::memchr(b'\n', e.line.as_bytes()).is_none();
        }
        let unit = unit.max(1);
        if newlines {
            text_len += entries.len();
        }
        if text_len > MAX_BLOCK_RAW_BYTES {
            return Err(ChunkError::invalid_input(format!(
                "entries hold {text_len} bytes; a block holds at most {MAX_BLOCK_RAW_BYTES}"
            )));
        }

        // Pass 2: the payload, text first, then numbers.
        let payload = &mut self.payload;
        payload.clear();
        payload.reserve(text_len + 3 * entries.len() + 20);
        for e in entries {
            payload.extend_from_slice(e.line.as_bytes());
            if newlines {
                payload.push(b'\n');
            }
        }
        if has_metadata {
            for label in entries.iter().flat_map(|e| &e.metadata) {
                payload.extend_from_slice(label.name.as_bytes());
                payload.extend_from_slice(label.value.as_bytes());
            }
        }
        debug_assert_eq!(payload.len(), text_len);
        put_uvarint(payload, unit);
        put_uvarint(payload, zigzag(first.ts.0));
        for pair in entries.windows(2) {
            put_uvarint(payload, pair[1].ts.0.abs_diff(pair[0].ts.0) / unit);
        }
        if !newlines {
            for e in entries {
                put_uvarint(payload, e.line.len() as u64);
            }
        }
        if has_metadata {
            for e in entries {
                put_uvarint(payload, e.metadata.len() as u64);
                for label in &e.metadata {
                    put_uvarint(payload, label.name.len() as u64);
                    put_uvarint(payload, label.value.len() as u64);
                }
            }
        }
        if payload.len() > MAX_BLOCK_RAW_BYTES {
            return Err(ChunkError::invalid_input(format!(
                "block payload of {} bytes exceeds {MAX_BLOCK_RAW_BYTES}",
                payload.len()
            )));
        }

        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(payload.len()));
        self.compressor
            .compress_to_buffer(payload.as_slice(), &mut self.compressed)
            .map_err(|source| ChunkError::Zstd { source })?;

        let start = out.len();
        out.push(CODEC_ZSTD);
        let mut flags = 0;
        if has_metadata {
            flags |= FLAG_METADATA;
        }
        if newlines {
            flags |= FLAG_NEWLINES;
        }
        out.push(flags);
        put_uvarint(out, entries.len() as u64);
        put_uvarint(out, payload.len() as u64);
        put_uvarint(out, text_len as u64);
        out.extend_from_slice(&self.compressed);
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());

        // Both fit: the payload is at most 64 MiB, so its entries and its
        // compressed form are far below 4 GiB.
        Ok(BlockInfo {
            entries: entries.len() as u32,
            min_ts: first.ts,
            max_ts: last.ts,
            raw_bytes: entries.iter().map(|e| e.size() as u64).sum(),
            payload_bytes: payload.len() as u32,
            block_bytes: (out.len() - start) as u32,
        })
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

thread_local! {
    /// One zstd decompression context per thread: creating one costs an
    /// allocation of about 100 KiB, too much to pay per block.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn decompress_into(compressed: &[u8], out: &mut Vec<u8>) -> Result<(), ChunkError> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(
                zstd::bulk::Decompressor::new().map_err(|source| ChunkError::Zstd { source })?,
            ),
        };
        // Writes at most `out.capacity()` bytes: a frame claiming more is an
        // error, never an allocation.
        decompressor
            .decompress_to_buffer(compressed, out)
            .map(|_| ())
            .map_err(|e| corrupt(format!("zstd payload does not decompress: {e}")))
    })
}

fn corrupt(reason: impl Into<String>) -> ChunkError {
    ChunkError::CorruptBlock {
        reason: reason.into(),
    }
}

fn malformed(m: Malformed) -> ChunkError {
    corrupt(m.to_string())
}

/// Where each metadata label of a block lies in its text.
#[derive(Debug, Clone, Default)]
struct MetadataColumn {
    /// Entry `i`'s labels are `labels[label_ends[i - 1]..label_ends[i]]`.
    label_ends: Vec<u32>,
    /// Per label: name start, name end (= value start), value end, as
    /// offsets into the text.
    labels: Vec<[u32; 3]>,
}

/// A decoded block: all lines and metadata in one string, with the
/// offsets and timestamps beside it.
#[derive(Debug, Clone)]
pub struct DecodedBlock {
    text: String,
    /// Line `i` is `text[bounds[i]..bounds[i + 1] - terminator]`. Every
    /// bound is a character boundary, checked when decoding.
    bounds: Vec<u32>,
    /// 1 when each line is followed by a newline, else 0.
    terminator: u32,
    timestamps: Vec<Timestamp>,
    metadata: Option<MetadataColumn>,
}

impl DecodedBlock {
    /// Verifies and decodes a block, allowing a payload of up to
    /// [`MAX_BLOCK_RAW_BYTES`].
    pub fn decode(block: &[u8]) -> Result<Self, ChunkError> {
        Self::decode_with_limit(block, MAX_BLOCK_RAW_BYTES)
    }

    /// Verifies and decodes a block whose payload may decompress to at most
    /// `max_payload_bytes` (never more than [`MAX_BLOCK_RAW_BYTES`]).
    /// Damaged input gives [`ChunkError::CorruptBlock`] or
    /// [`ChunkError::BlockTooLarge`]; allocation is bounded by the limit.
    pub fn decode_with_limit(block: &[u8], max_payload_bytes: usize) -> Result<Self, ChunkError> {
        let limit = max_payload_bytes.min(MAX_BLOCK_RAW_BYTES);
        if block.len() < MIN_BLOCK_LEN {
            return Err(corrupt(format!(
                "{} bytes is shorter than any block",
                block.len()
            )));
        }
        let (body, checksum) = block.split_at(block.len() - CHECKSUM_LEN);
        let stored = u32::from_le_bytes([checksum[0], checksum[1], checksum[2], checksum[3]]);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(corrupt(format!(
                "checksum mismatch: stored {stored:08x}, computed {computed:08x}"
            )));
        }

        let mut header = Cursor::new(body);
        let codec = header.u8("codec").map_err(malformed)?;
        if codec != CODEC_ZSTD {
            return Err(corrupt(format!("unknown codec {codec}")));
        }
        let flags = header.u8("flags").map_err(malformed)?;
        if flags & !(FLAG_METADATA | FLAG_NEWLINES) != 0 {
            return Err(corrupt(format!("unknown flags {flags:#04x}")));
        }
        let n = header.uvarint("entry count").map_err(malformed)?;
        let p = header.uvarint("payload length").map_err(malformed)?;
        let t = header.uvarint("text length").map_err(malformed)?;
        if p > limit as u64 {
            return Err(ChunkError::BlockTooLarge {
                size: p,
                limit: limit as u64,
            });
        }
        if t > p {
            return Err(corrupt(format!(
                "text length {t} exceeds payload length {p}"
            )));
        }
        // The numbers take at least n + 1 bytes (unit, first timestamp,
        // n - 1 deltas) and n more for lengths, which bounds n before we
        // allocate.
        let newlines = flags & FLAG_NEWLINES != 0;
        let numbers_len = p - t;
        let min_numbers = if newlines {
            n.saturating_add(1)
        } else {
            n.saturating_mul(2).saturating_add(1)
        };
        if n == 0 || min_numbers > numbers_len || (newlines && n > t) {
            return Err(corrupt(format!(
                "entry count {n} does not fit {numbers_len} bytes of numbers"
            )));
        }
        let (p, t, n) = (p as usize, t as usize, n as usize);

        let mut payload = Vec::with_capacity(p);
        decompress_into(&body[header.pos()..], &mut payload)?;
        if payload.len() != p {
            return Err(corrupt(format!(
                "payload decompressed to {} bytes, the header says {p}",
                payload.len()
            )));
        }
        let numbers = payload.split_off(t);
        let text = String::from_utf8(payload).map_err(|e| {
            corrupt(format!(
                "text is not utf-8 after byte {}",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Self::parse_numbers(text, &numbers, n, newlines, flags & FLAG_METADATA != 0)
            .map_err(malformed)
    }

    fn parse_numbers(
        text: String,
        numbers: &[u8],
        n: usize,
        newlines: bool,
        has_metadata: bool,
    ) -> Result<Self, Malformed> {
        let mut c = Cursor::new(numbers);
        let unit = c.uvarint("timestamp unit")?;
        if unit == 0 {
            return Err(Malformed::new(0, "timestamp unit is zero"));
        }
        let mut timestamps = Vec::with_capacity(n);
        let mut ts = c.ivarint("first timestamp")?;
        timestamps.push(Timestamp(ts));
        for _ in 1..n {
            let at = c.pos();
            let steps = c.uvarint("timestamp delta")?;
            ts = steps
                .checked_mul(unit)
                .and_then(|delta| ts.checked_add_unsigned(delta))
                .ok_or_else(|| Malformed::new(at, "timestamp overflows"))?;
            timestamps.push(Timestamp(ts));
        }

        let text_len = text.len() as u64;
        let mut bounds = Vec::with_capacity(n + 1);
        bounds.push(0u32);
        let mut end = 0u64;
        if newlines {
            // A newline byte is always a whole character in UTF-8, so every
            // bound found here is a character boundary.
            for pos in memchr::memchr_iter(b'\n', text.as_bytes()).take(n) {
                end = pos as u64 + 1;
                bounds.push(end as u32);
            }
            if bounds.len() != n + 1 {
                return Err(c.malformed(format!(
                    "text holds {} newline-terminated lines, the header says {n}",
                    bounds.len() - 1
                )));
            }
        } else {
            for i in 0..n {
                let at = c.pos();
                end += c.uvarint_max("line length", text_len)?;
                if end > text_len || !text.is_char_boundary(end as usize) {
                    return Err(Malformed::new(
                        at,
                        format!("line {i} ends at {end}, outside the text or inside a character"),
                    ));
                }
                bounds.push(end as u32);
            }
        }

        let metadata = if has_metadata {
            let mut column = MetadataColumn {
                label_ends: Vec::with_capacity(n),
                labels: Vec::new(),
            };
            let string_end = |c: &mut Cursor<'_>, pos: &mut u64, field: &str| {
                let at = c.pos();
                *pos += c.uvarint_max(field, text_len)?;
                if *pos > text_len || !text.is_char_boundary(*pos as usize) {
                    return Err(Malformed::new(
                        at,
                        format!("{field} ends outside the text or inside a character"),
                    ));
                }
                Ok(*pos as u32)
            };
            let mut pos = end;
            for _ in 0..n {
                // Each label takes at least two bytes of numbers.
                let count = c.uvarint_max("label count", (c.remaining() / 2) as u64)?;
                for _ in 0..count {
                    let start = pos as u32;
                    let name_end = string_end(&mut c, &mut pos, "label name")?;
                    let value_end = string_end(&mut c, &mut pos, "label value")?;
                    column.labels.push([start, name_end, value_end]);
                }
                column.label_ends.push(column.labels.len() as u32);
            }
            end = pos;
            Some(column)
        } else {
            None
        };
        if end != text_len {
            return Err(c.malformed(format!("strings cover {end} bytes of a text of {text_len}")));
        }
        if !c.is_at_end() {
            return Err(c.malformed("trailing bytes after the numbers"));
        }
        Ok(DecodedBlock {
            text,
            bounds,
            terminator: u32::from(newlines),
            timestamps,
            metadata,
        })
    }

    /// Number of entries (at least one).
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Always false: a block holds at least one entry.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    pub fn timestamps(&self) -> &[Timestamp] {
        &self.timestamps
    }

    /// The line of entry `i`. Panics if `i >= len()`, like slice indexing.
    pub fn line(&self, i: usize) -> &str {
        let start = self.bounds[i] as usize;
        let end = (self.bounds[i + 1] - self.terminator) as usize;
        &self.text[start..end]
    }

    /// Entry `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<EntryRef<'_>> {
        (i < self.len()).then(|| EntryRef {
            ts: self.timestamps[i],
            line: self.line(i),
            block: self,
            index: i,
        })
    }

    /// The entries in order; reversible for backward queries.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = EntryRef<'_>> + ExactSizeIterator {
        (0..self.len()).map(|i| EntryRef {
            ts: self.timestamps[i],
            line: self.line(i),
            block: self,
            index: i,
        })
    }

    /// The metadata labels of entry `i` (empty for most entries).
    pub fn metadata(&self, i: usize) -> MetadataIter<'_> {
        let labels: &[[u32; 3]] = match &self.metadata {
            Some(column) => {
                let start = if i == 0 { 0 } else { column.label_ends[i - 1] };
                &column.labels[start as usize..column.label_ends[i] as usize]
            }
            None => &[],
        };
        MetadataIter {
            text: &self.text,
            labels: labels.iter(),
        }
    }

    /// Owned copies of all entries.
    pub fn to_entries(&self) -> Vec<Entry> {
        self.iter().map(|e| e.to_entry()).collect()
    }
}

/// One entry of a [`DecodedBlock`], borrowing its strings.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    pub ts: Timestamp,
    pub line: &'a str,
    block: &'a DecodedBlock,
    index: usize,
}

impl<'a> EntryRef<'a> {
    /// The entry's structured metadata as `(name, value)` pairs.
    pub fn metadata(&self) -> MetadataIter<'a> {
        self.block.metadata(self.index)
    }

    pub fn to_entry(&self) -> Entry {
        Entry {
            ts: self.ts,
            line: self.line.to_owned(),
            metadata: self.metadata().map(|(n, v)| Label::new(n, v)).collect(),
        }
    }
}

/// The `(name, value)` metadata pairs of one entry.
#[derive(Debug, Clone)]
pub struct MetadataIter<'a> {
    text: &'a str,
    labels: std::slice::Iter<'a, [u32; 3]>,
}

impl<'a> Iterator for MetadataIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let &[start, name_end, value_end] = self.labels.next()?;
        Some((
            &self.text[start as usize..name_end as usize],
            &self.text[name_end as usize..value_end as usize],
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.labels.size_hint()
    }
}

impl ExactSizeIterator for MetadataIter<'_> {}

#[cfg(test)]
mod tests;
