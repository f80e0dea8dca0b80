//! Field columns: per block, the fields that Loki's parameterless `json`
//! and `logfmt` parsers would give its lines, summarised so that a query
//! can rule a block out (or count its rows by a field) without
//! decompressing or parsing it.
//!
//! Columns are an index, never the source of truth: the block keeps every
//! line whole, and a reader that ignores columns gets the same answers.
//! They are written by the segment writer for every block
//! ([`ColumnBuilder`]), in the optional columns section of a segment (see
//! [`crate::segment::writer`]), and read back as [`BlockColumns`].
//!
//! # What a column holds
//!
//! Each line (row) of a block is one of:
//!
//! - a **JSON row**: the line is a JSON object that the `json` parser reads
//!   without an error;
//! - a **logfmt row**: otherwise, a line whose every logfmt pair scans
//!   without a syntax error (so `logfmt` and `logfmt --strict` agree and
//!   set no error);
//! - **neither**: any other line, and any line with a field whose name
//!   starts with `__` (a parser would set `__error__` and friends from it).
//!
//! Fields are named by [`skald_fields`] exactly as the parsers name them
//! (nested JSON keys joined with `_`, names sanitised); a row's value for a
//! name is the one the parser would leave (the last of duplicate keys; for
//! logfmt, pairs with an empty value give no field, as without
//! `--keep-empty`; JSON `null` gives the empty string). A column is one
//! (format, name): the rows of that format that have the field (`present`),
//! and:
//!
//! - a dictionary when the block has at most [`MAX_DICTIONARY`] distinct
//!   values: each value with its row count, and one code per row (0 = the
//!   row has no such field or is not of this format, `i` = the `i`th value);
//! - otherwise no values (the line holds them; reading them back costs the
//!   same parse the column would save), only the statistics below;
//! - the minimum and maximum over the present values when every one of
//!   them converts as a LogQL number (`strconv.ParseFloat`, NaN excluded),
//!   a duration (`time.ParseDuration`) or a byte size, each on its own.
//!
//! At most [`MAX_COLUMN_KEYS`] names per format get a column; when a block
//! has more, that format's key set is marked incomplete, and a name without
//! a column then says nothing. When it is complete, a name without a column
//! is absent from every row of that format.
//!
//! The block also records how many rows carry structured metadata (a
//! metadata label of a filtered name is what a filter sees on rows without
//! the field) and how many contain a backslash (parsers unescape, so such a
//! row may hold a value written differently).
//!
//! # Byte layout (one column set, a per-chunk section of kind 2)
//!
//! ```text
//! 0     1    encoding: 1 = zstd
//! 1     var  length of the decompressed header, varint, at most 64 MiB
//! .     var  length h of its zstd frame, varint
//! .     h    the header, one zstd frame
//! .     var  length of the decompressed codes, varint, at most 64 MiB
//! .     ...  the codes, one zstd frame, to the end
//!
//! header, varints unless marked:
//!   rows n, json rows, logfmt rows, metadata rows, escaped rows
//!   flags, u8: bit 0 = JSON key set complete, bit 1 = logfmt key set
//!              complete; other bits zero
//!   column count c
//!   c × column, ordered by (format, name), no two alike:
//!     format, u8: 1 = json, 2 = logfmt
//!     name length, name (UTF-8, a valid label name)
//!     present rows (at most the rows of the format)
//!     kinds, u8: bit 0 = number range, bit 1 = duration range, bit 2 =
//!                byte range, bit 3 = dictionary; other bits zero
//!     if bit 0: min, max        f64 little-endian each, min <= max
//!     if bit 1: min, max        zigzag varints, nanoseconds, min <= max
//!     if bit 2: min, max        varints, min <= max
//!     if bit 3: value count d, 1..=MAX_DICTIONARY
//!               d × (length, value UTF-8, row count >= 1), values unique,
//!               the counts adding up to present
//!
//! codes: for each dictionary column in column order, n codes, u8 each,
//!   0..=d; code i > 0 appears exactly as many times as value i's row
//!   count. Nothing else.
//! ```
//!
//! The codes are a frame of their own so that skipping a block, which
//! needs only the header (a few hundred bytes), does not decompress them
//! ([`ColumnDetail`]).
//!
//! The decoder checks every one of these invariants, so a query can trust
//! what it reads; the segment's columns section carries a CRC32C too.
//!
//! Size: on the benchmark's data (a third each Apache, JSON and logfmt
//! lines, 1M lines) columns came to 1.85 MB, 4.6 % of the 39.9 MB of
//! compressed blocks (see `docs/benchmarks.md`).

use crate::varint::{Cursor, Malformed, put_uvarint, zigzag};
use skald_fields::units::{parse_bytes, parse_duration, parse_float};
use std::borrow::Cow;
// A fast, non-cryptographic hasher: column names and values are looked up
// once per field of every line a flush writes.
use foldhash::HashMap;

/// Most distinct names per format and block that get a column. Application
/// logs carry a dozen or two fields; 48 leaves room without letting a line
/// of random keys grow the section without bound.
pub const MAX_COLUMN_KEYS: usize = 48;

/// Most distinct values a column keeps as a dictionary (levels, methods,
/// statuses, components); more, and it keeps statistics only.
pub const MAX_DICTIONARY: usize = 32;

/// Largest decompressed column set a reader accepts.
const MAX_BODY_BYTES: u64 = 64 << 20;

const ENCODING_ZSTD: u8 = 1;
const FLAG_JSON_COMPLETE: u8 = 1;
const FLAG_LOGFMT_COMPLETE: u8 = 2;
const KIND_NUMBER: u8 = 1;
const KIND_DURATION: u8 = 2;
const KIND_BYTES: u8 = 4;
const KIND_DICTIONARY: u8 = 8;

/// How much of a column set to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnDetail {
    /// Counts, names, ranges and dictionaries: enough to skip a block.
    Header,
    /// The row codes too, for reading values per row.
    Codes,
}

/// Which parser a column describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldFormat {
    Json = 1,
    Logfmt = 2,
}

impl FieldFormat {
    fn index(self) -> usize {
        self as usize - 1
    }
}

/// A column's low-cardinality values.
#[derive(Debug, Clone, PartialEq)]
pub struct Dictionary {
    /// Each value with the number of rows that hold it.
    pub values: Vec<(String, u32)>,
    /// Per row of the block: 0 when the row has no value here, else the
    /// index into `values` plus one. Empty when only the header was read
    /// ([`ColumnDetail::Header`]).
    pub codes: Vec<u8>,
}

/// One (format, name) column of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub format: FieldFormat,
    pub name: String,
    /// Rows of this format that have the field.
    pub present: u32,
    /// Range of the present values, when every one converts as a number.
    pub number: Option<(f64, f64)>,
    /// Range in nanoseconds, when every present value is a duration.
    pub duration: Option<(i64, i64)>,
    /// Range, when every present value is a byte size.
    pub bytes: Option<(u64, u64)>,
    pub dictionary: Option<Dictionary>,
}

/// The field columns of one block (see the module documentation).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BlockColumns {
    pub rows: u32,
    pub json_rows: u32,
    pub logfmt_rows: u32,
    /// Rows that carry structured metadata.
    pub metadata_rows: u32,
    /// Rows whose line contains a backslash.
    pub escaped_rows: u32,
    /// Per format: whether every name of its rows has a column.
    complete: [bool; 2],
    /// Ordered by (format, name).
    pub columns: Vec<Column>,
}

impl BlockColumns {
    /// Rows of `format`.
    pub fn rows_of(&self, format: FieldFormat) -> u32 {
        match format {
            FieldFormat::Json => self.json_rows,
            FieldFormat::Logfmt => self.logfmt_rows,
        }
    }

    /// Whether every row of the block is of `format`, so that the columns
    /// of that format describe what its parser gives every line.
    pub fn covers_all(&self, format: FieldFormat) -> bool {
        self.rows_of(format) == self.rows
    }

    /// Whether every name found in rows of `format` has a column.
    pub fn keys_complete(&self, format: FieldFormat) -> bool {
        self.complete[format.index()]
    }

    pub fn column(&self, format: FieldFormat, name: &str) -> Option<&Column> {
        self.columns
            .binary_search_by(|c| (c.format, c.name.as_str()).cmp(&(format, name)))
            .ok()
            .map(|i| &self.columns[i])
    }
}

/// Statistics of the values one column has seen so far.
#[derive(Debug)]
struct Accumulator {
    present: u32,
    number: Option<(f64, f64)>,
    duration: Option<(i64, i64)>,
    bytes: Option<(u64, u64)>,
    /// Still true while every value converted.
    number_ok: bool,
    duration_ok: bool,
    bytes_ok: bool,
    /// `None` once there were more than [`MAX_DICTIONARY`] values.
    dictionary: Option<Building>,
}

/// A dictionary being built: value to code, values with counts, codes.
type Building = (HashMap<String, u8>, Vec<(String, u32)>, Vec<u8>);

fn widen<T: PartialOrd + Copy>(range: &mut Option<(T, T)>, v: T) {
    *range = Some(match *range {
        None => (v, v),
        Some((lo, hi)) => (if v < lo { v } else { lo }, if v > hi { v } else { hi }),
    });
}

impl Accumulator {
    fn new(rows_before: usize) -> Self {
        Accumulator {
            present: 0,
            number: None,
            duration: None,
            bytes: None,
            number_ok: true,
            duration_ok: true,
            bytes_ok: true,
            dictionary: Some((HashMap::default(), Vec::new(), vec![0; rows_before])),
        }
    }

    /// Records `value` for the current row, which is row `row`.
    fn add(&mut self, row: usize, value: &str) {
        self.present += 1;
        if self.number_ok {
            match parse_float(value) {
                Ok(v) if !v.is_nan() => widen(&mut self.number, v),
                _ => self.number_ok = false,
            }
        }
        if self.duration_ok {
            match parse_duration(value) {
                Ok(v) => widen(&mut self.duration, v),
                Err(_) => self.duration_ok = false,
            }
        }
        if self.bytes_ok {
            match parse_bytes(value) {
                Ok(v) => widen(&mut self.bytes, v),
                Err(_) => self.bytes_ok = false,
            }
        }
        let Some((index, values, codes)) = &mut self.dictionary else {
            return;
        };
        let code = match index.get(value) {
            Some(&c) => c,
            None if values.len() == MAX_DICTIONARY => {
                self.dictionary = None;
                return;
            }
            None => {
                values.push((value.to_string(), 0));
                let c = values.len() as u8;
                index.insert(value.to_string(), c);
                c
            }
        };
        values[usize::from(code) - 1].1 += 1;
        codes.resize(row, 0);
        codes.push(code);
    }
}

/// Builds the columns of one block, line by line; reused from block to
/// block (see the module documentation for what is recorded).
#[derive(Debug, Default)]
pub struct ColumnBuilder {
    rows: u32,
    json_rows: u32,
    logfmt_rows: u32,
    metadata_rows: u32,
    escaped_rows: u32,
    complete: [bool; 2],
    /// Per format (see [`FieldFormat::index`]), the columns by name.
    columns: [HashMap<String, Accumulator>; 2],
    /// Per format, the number of names seen (with or without a column).
    names: [usize; 2],
    /// The current row's fields, `row[..row_len]`, last value of a name
    /// winning; the slots keep their buffers from row to row, so that a
    /// line costs no allocation once the builder is warm.
    row: Vec<(String, String)>,
    row_len: usize,
    body: Vec<u8>,
}

/// Sets `name` to `value` in `row[..*len]`, reusing the slots' buffers.
fn set_field(row: &mut Vec<(String, String)>, len: &mut usize, name: &str, value: &str) {
    if let Some(slot) = row[..*len].iter_mut().find(|(n, _)| n == name) {
        slot.1.clear();
        slot.1.push_str(value);
        return;
    }
    if *len == row.len() {
        row.push((String::new(), String::new()));
    }
    let slot = &mut row[*len];
    slot.0.clear();
    slot.0.push_str(name);
    slot.1.clear();
    slot.1.push_str(value);
    *len += 1;
}

impl ColumnBuilder {
    pub fn new() -> Self {
        ColumnBuilder {
            complete: [true; 2],
            ..ColumnBuilder::default()
        }
    }

    /// Adds the next line of the block; `has_metadata` when its entry
    /// carries structured metadata.
    pub fn add_line(&mut self, line: &str, has_metadata: bool) {
        let row = self.rows as usize;
        self.rows += 1;
        self.metadata_rows += u32::from(has_metadata);
        self.escaped_rows += u32::from(memchr::memchr(b'\\', line.as_bytes()).is_some());
        let Some(format) = self.read_fields(line) else {
            return;
        };
        match format {
            FieldFormat::Json => self.json_rows += 1,
            FieldFormat::Logfmt => self.logfmt_rows += 1,
        }
        let f = format.index();
        for (name, value) in &self.row[..self.row_len] {
            match self.columns[f].get_mut(name.as_str()) {
                Some(acc) => acc.add(row, value),
                None => {
                    self.names[f] += 1;
                    if self.names[f] > MAX_COLUMN_KEYS {
                        self.complete[f] = false;
                        continue;
                    }
                    let mut acc = Accumulator::new(row);
                    acc.add(row, value);
                    self.columns[f].insert(name.clone(), acc);
                }
            }
        }
    }

    /// Fills `self.row` with the line's fields and says which parser
    /// reads it cleanly, if one does.
    fn read_fields(&mut self, line: &str) -> Option<FieldFormat> {
        self.row_len = 0;
        let (row, len) = (&mut self.row, &mut self.row_len);
        let looks_json = line.trim_start().starts_with('{');
        let mut set = |name: &str, value: Cow<'_, str>| set_field(row, len, name, &value);
        let format = if looks_json && skald_fields::json::fields(line, &mut set).is_ok() {
            FieldFormat::Json
        } else {
            self.row_len = 0;
            let mut name = String::new();
            for pair in skald_fields::logfmt::Pairs::new(line) {
                let Ok(pair) = pair else {
                    return None;
                };
                if pair.value.is_empty() {
                    continue;
                }
                skald_fields::sanitize_label_name(pair.key, &mut name);
                if !name.is_empty() {
                    set_field(&mut self.row, &mut self.row_len, &name, &pair.value);
                }
            }
            FieldFormat::Logfmt
        };
        if self.row[..self.row_len]
            .iter()
            .any(|(n, _)| n.starts_with("__"))
        {
            return None;
        }
        Some(format)
    }

    /// Rows added since the last [`ColumnBuilder::finish`].
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Appends the encoded column set of the lines added so far to `out`,
    /// returns its length, and starts over for the next block.
    pub fn finish(&mut self, level: i32, out: &mut Vec<u8>) -> usize {
        let mut columns: Vec<((FieldFormat, String), Accumulator)> = Vec::new();
        for (format, map) in [FieldFormat::Json, FieldFormat::Logfmt]
            .into_iter()
            .zip(&mut self.columns)
        {
            columns.extend(map.drain().map(|(name, acc)| ((format, name), acc)));
        }
        columns.sort_by(|a, b| a.0.cmp(&b.0));
        let body = &mut self.body;
        body.clear();
        let mut all_codes: Vec<u8> = Vec::new();
        for v in [
            self.rows,
            self.json_rows,
            self.logfmt_rows,
            self.metadata_rows,
            self.escaped_rows,
        ] {
            put_uvarint(body, u64::from(v));
        }
        let mut flags = 0;
        if self.complete[0] {
            flags |= FLAG_JSON_COMPLETE;
        }
        if self.complete[1] {
            flags |= FLAG_LOGFMT_COMPLETE;
        }
        body.push(flags);
        put_uvarint(body, columns.len() as u64);
        for ((format, name), acc) in columns {
            body.push(format as u8);
            put_uvarint(body, name.len() as u64);
            body.extend_from_slice(name.as_bytes());
            put_uvarint(body, u64::from(acc.present));
            let number = acc.number.filter(|_| acc.number_ok);
            let duration = acc.duration.filter(|_| acc.duration_ok);
            let bytes = acc.bytes.filter(|_| acc.bytes_ok);
            let mut kinds = 0;
            kinds |= if number.is_some() { KIND_NUMBER } else { 0 };
            kinds |= if duration.is_some() { KIND_DURATION } else { 0 };
            kinds |= if bytes.is_some() { KIND_BYTES } else { 0 };
            kinds |= if acc.dictionary.is_some() {
                KIND_DICTIONARY
            } else {
                0
            };
            body.push(kinds);
            if let Some((lo, hi)) = number {
                body.extend_from_slice(&lo.to_le_bytes());
                body.extend_from_slice(&hi.to_le_bytes());
            }
            if let Some((lo, hi)) = duration {
                put_uvarint(body, zigzag(lo));
                put_uvarint(body, zigzag(hi));
            }
            if let Some((lo, hi)) = bytes {
                put_uvarint(body, lo);
                put_uvarint(body, hi);
            }
            if let Some((_, values, mut codes)) = acc.dictionary {
                put_uvarint(body, values.len() as u64);
                for (value, count) in &values {
                    put_uvarint(body, value.len() as u64);
                    body.extend_from_slice(value.as_bytes());
                    put_uvarint(body, u64::from(*count));
                }
                codes.resize(self.rows as usize, 0);
                all_codes.extend_from_slice(&codes);
            }
        }
        let start = out.len();
        out.push(ENCODING_ZSTD);
        let header = zstd::bulk::compress(body, level).expect("zstd compresses a buffer");
        put_uvarint(out, body.len() as u64);
        put_uvarint(out, header.len() as u64);
        out.extend_from_slice(&header);
        let codes = zstd::bulk::compress(&all_codes, level).expect("zstd compresses a buffer");
        put_uvarint(out, all_codes.len() as u64);
        out.extend_from_slice(&codes);
        *self = ColumnBuilder {
            body: std::mem::take(&mut self.body),
            row: std::mem::take(&mut self.row),
            columns: std::mem::take(&mut self.columns),
            ..ColumnBuilder::new()
        };
        out.len() - start
    }
}

/// Decodes one column set on its own (a segment's reader decodes its
/// chunks' sets with [`crate::SegmentReader::columns`]).
pub fn decode_column_set(
    bytes: &[u8],
    detail: ColumnDetail,
) -> Result<BlockColumns, crate::ChunkError> {
    decode(bytes, detail).map_err(|m| crate::ChunkError::CorruptBlock {
        reason: format!("column set at byte {}: {}", m.at, m.what),
    })
}

/// Decodes a column set written by [`ColumnBuilder::finish`], checking
/// every invariant of the module documentation; errors carry the offset
/// (in the section for the header, in the decompressed body otherwise).
pub(crate) fn decode(bytes: &[u8], detail: ColumnDetail) -> Result<BlockColumns, Malformed> {
    let mut c = Cursor::new(bytes);
    if c.u8("column encoding")? != ENCODING_ZSTD {
        return Err(Malformed::new(0, "unknown column encoding"));
    }
    let frame = |c: &mut Cursor<'_>, what: &str, to_end: bool| -> Result<Vec<u8>, Malformed> {
        let raw_len = c.uvarint_max(what, MAX_BODY_BYTES)? as usize;
        let len = if to_end {
            c.remaining()
        } else {
            c.uvarint_max(what, c.remaining() as u64)? as usize
        };
        let at = c.pos();
        let bytes = c.bytes(len, what)?;
        let raw = zstd::bulk::decompress(bytes, raw_len)
            .map_err(|e| Malformed::new(at, format!("{what} does not decompress: {e}")))?;
        if raw.len() != raw_len {
            return Err(Malformed::new(
                at,
                format!("{what} is {} bytes, not {raw_len}", raw.len()),
            ));
        }
        Ok(raw)
    };
    let header = frame(&mut c, "column header", false)?;
    let mut columns = decode_header(&header)?;
    if detail == ColumnDetail::Codes {
        let codes = frame(&mut c, "column codes", true)?;
        add_codes(&mut columns, &codes).map_err(|what| Malformed::new(c.pos(), what))?;
    }
    Ok(columns)
}

/// Hands each dictionary column its codes, checking them.
fn add_codes(cols: &mut BlockColumns, codes: &[u8]) -> Result<(), String> {
    let rows = cols.rows as usize;
    let mut rest = codes;
    for (name, dict) in cols
        .columns
        .iter_mut()
        .filter_map(|c| Some((&c.name, c.dictionary.as_mut()?)))
    {
        if rest.len() < rows {
            return Err(format!("row codes of column {name} are missing"));
        }
        let (mine, more) = rest.split_at(rows);
        rest = more;
        let d = dict.values.len();
        let mut seen = vec![0u32; d + 1];
        for &code in mine {
            match seen.get_mut(usize::from(code)) {
                Some(n) => *n += 1,
                None => return Err(format!("row code {code} of column {name} above {d}")),
            }
        }
        if dict.values.iter().zip(&seen[1..]).any(|((_, n), s)| n != s) {
            return Err(format!(
                "row codes of column {name} disagree with its dictionary counts"
            ));
        }
        dict.codes = mine.to_vec();
    }
    if !rest.is_empty() {
        return Err("trailing bytes after the last row codes".into());
    }
    Ok(())
}

fn decode_header(body: &[u8]) -> Result<BlockColumns, Malformed> {
    let mut c = Cursor::new(body);
    let max = u64::from(u32::MAX);
    let rows = c.uvarint_max("rows", max)? as u32;
    let json_rows = c.uvarint_max("json rows", u64::from(rows))? as u32;
    let logfmt_rows = c.uvarint_max("logfmt rows", u64::from(rows - json_rows))? as u32;
    let metadata_rows = c.uvarint_max("metadata rows", u64::from(rows))? as u32;
    let escaped_rows = c.uvarint_max("escaped rows", u64::from(rows))? as u32;
    let flags = c.u8("column flags")?;
    if flags & !(FLAG_JSON_COMPLETE | FLAG_LOGFMT_COMPLETE) != 0 {
        return Err(c.malformed(format!("unknown column flags {flags:#04x}")));
    }
    // A column takes at least five bytes.
    let count = c.uvarint_max("column count", (c.remaining() / 5) as u64)?;
    let mut columns: Vec<Column> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = c.pos();
        let format = match c.u8("column format")? {
            1 => FieldFormat::Json,
            2 => FieldFormat::Logfmt,
            other => return Err(Malformed::new(at, format!("unknown column format {other}"))),
        };
        let name = c.string("column name")?.to_string();
        if !skald_model::is_valid_label_name(&name) {
            return Err(Malformed::new(at, format!("invalid column name {name:?}")));
        }
        if columns
            .last()
            .is_some_and(|p| (p.format, p.name.as_str()) >= (format, name.as_str()))
        {
            return Err(Malformed::new(at, "columns are not in increasing order"));
        }
        let of_format = match format {
            FieldFormat::Json => json_rows,
            FieldFormat::Logfmt => logfmt_rows,
        };
        let present = c.uvarint_max("present rows", u64::from(of_format))? as u32;
        let kinds = c.u8("column kinds")?;
        if kinds & !(KIND_NUMBER | KIND_DURATION | KIND_BYTES | KIND_DICTIONARY) != 0 {
            return Err(c.malformed(format!("unknown column kinds {kinds:#04x}")));
        }
        let ordered = |c: &Cursor<'_>, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(c.malformed(format!("range of column {name} has min above max")))
            }
        };
        let mut number = None;
        if kinds & KIND_NUMBER != 0 {
            let lo = f64::from_le_bytes(c.array("number min")?);
            let hi = f64::from_le_bytes(c.array("number max")?);
            ordered(&c, lo <= hi)?;
            number = Some((lo, hi));
        }
        let mut duration = None;
        if kinds & KIND_DURATION != 0 {
            let lo = c.ivarint("duration min")?;
            let hi = c.ivarint("duration max")?;
            ordered(&c, lo <= hi)?;
            duration = Some((lo, hi));
        }
        let mut bytes = None;
        if kinds & KIND_BYTES != 0 {
            let lo = c.uvarint("bytes min")?;
            let hi = c.uvarint("bytes max")?;
            ordered(&c, lo <= hi)?;
            bytes = Some((lo, hi));
        }
        let mut dictionary = None;
        if kinds & KIND_DICTIONARY != 0 {
            let d = c.uvarint_max("dictionary size", MAX_DICTIONARY as u64)? as usize;
            if d == 0 {
                return Err(c.malformed("empty dictionary"));
            }
            let mut values: Vec<(String, u32)> = Vec::with_capacity(d);
            let mut total = 0u64;
            for _ in 0..d {
                let value = c.string("dictionary value")?.to_string();
                let count = c.uvarint_max("dictionary count", u64::from(present))? as u32;
                if count == 0 || values.iter().any(|(v, _)| *v == value) {
                    return Err(c.malformed("dictionary value repeated or without rows"));
                }
                total += u64::from(count);
                values.push((value, count));
            }
            if total != u64::from(present) {
                return Err(c.malformed(format!(
                    "dictionary counts add up to {total}, the column has {present} rows"
                )));
            }
            dictionary = Some(Dictionary {
                values,
                codes: Vec::new(),
            });
        }
        columns.push(Column {
            format,
            name,
            present,
            number,
            duration,
            bytes,
            dictionary,
        });
    }
    if !c.is_at_end() {
        return Err(c.malformed("trailing bytes after the last column"));
    }
    Ok(BlockColumns {
        rows,
        json_rows,
        logfmt_rows,
        metadata_rows,
        escaped_rows,
        complete: [
            flags & FLAG_JSON_COMPLETE != 0,
            flags & FLAG_LOGFMT_COMPLETE != 0,
        ],
        columns,
    })
}

#[cfg(test)]
mod tests;
