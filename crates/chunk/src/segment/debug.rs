//! A human-readable description of a segment file, for
//! `skald debug segment FILE`: header, sections, totals, and every stream
//! and chunk with its sizes, compression ratio and filter size.
//!
//! Not here: any repair, or machine-readable output (the reader's types
//! serve programs).

use super::reader::SegmentReader;
use crate::ChunkError;
use std::fmt::Write;
use std::path::Path;

/// Opens `path` and describes it. With `verify_blocks`, also reads and
/// checks every block, reporting each one that fails.
pub fn describe_segment(path: &Path, verify_blocks: bool) -> Result<String, ChunkError> {
    let reader = SegmentReader::open(path)?;
    Ok(describe(&reader, verify_blocks))
}

fn ratio(raw: u64, stored: u64) -> f64 {
    if stored == 0 {
        0.0
    } else {
        raw as f64 / stored as f64
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Describes an open segment; see [`describe_segment`].
pub fn describe(reader: &SegmentReader, verify_blocks: bool) -> String {
    let s = reader.summary();
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "segment {}", reader.path().display());
    let _ = writeln!(
        out,
        "  format version {}, {} bytes",
        reader.format_version(),
        s.stored_bytes
    );
    let _ = writeln!(out, "  sections:");
    for x in reader.sections() {
        let _ = writeln!(
            out,
            "    {:<8} kind {} flags {:#06x} offset {} length {} crc {:08x}",
            x.kind_name(),
            x.kind,
            x.flags,
            x.offset,
            x.len,
            x.crc
        );
    }
    let _ = writeln!(out, "  time {} .. {}", s.min_ts, s.max_ts);
    let _ = writeln!(
        out,
        "  {} streams, {} chunks, {} entries",
        s.streams, s.chunks, s.entries
    );
    let _ = writeln!(
        out,
        "  raw {} bytes, blocks {} bytes (ratio {:.2}), filters {} bytes ({:.1}% of blocks), index {} bytes",
        s.raw_bytes,
        s.block_bytes,
        ratio(s.raw_bytes, s.block_bytes),
        s.filter_bytes,
        percent(s.filter_bytes, s.block_bytes),
        s.index_bytes
    );
    let _ = writeln!(
        out,
        "  columns {} bytes ({:.1}% of blocks)",
        s.column_bytes,
        percent(s.column_bytes, s.block_bytes)
    );
    let mut failures = 0usize;
    for stream in reader.streams() {
        let raw: u64 = stream.chunks.iter().map(|c| c.raw_bytes).sum();
        let stored: u64 = stream.chunks.iter().map(|c| u64::from(c.len)).sum();
        let _ = writeln!(
            out,
            "  stream {} {}: {} chunks, raw {} bytes, blocks {} bytes (ratio {:.2})",
            stream.id,
            stream.labels,
            stream.chunks.len(),
            raw,
            stored,
            ratio(raw, stored)
        );
        for c in &stream.chunks {
            let filter = match reader.filter(c) {
                Some(f) => format!(
                    "filter {} bytes (k={}, {} bits, {:.0}% set)",
                    f.byte_len(),
                    f.hashes(),
                    f.num_bits(),
                    100.0 * f.fill_ratio()
                ),
                None => "filter missing".to_string(),
            };
            let filter = match reader.digit_filter(c) {
                Some(d) => format!("{filter}, digit filter {} bytes", d.byte_len()),
                None => filter,
            };
            let filter = match reader.columns(c, crate::columns::ColumnDetail::Codes) {
                Ok(Some(cols)) => format!(
                    "{filter}, {} columns ({} json, {} logfmt of {} rows)",
                    cols.columns.len(),
                    cols.json_rows,
                    cols.logfmt_rows,
                    cols.rows
                ),
                Ok(None) => filter,
                Err(e) => {
                    failures += 1;
                    format!("{filter}, columns unreadable: {e}")
                }
            };
            let _ = writeln!(
                out,
                "    chunk at {} length {}: {} entries, raw {} bytes (ratio {:.2}), {}, time {} .. {}",
                c.offset,
                c.len,
                c.entries,
                c.raw_bytes,
                ratio(c.raw_bytes, u64::from(c.len)),
                filter,
                c.min_ts,
                c.max_ts
            );
            for x in &c.sections {
                let _ = writeln!(
                    out,
                    "      extra section kind {} flags {:#x} offset {} length {}",
                    x.kind, x.flags, x.offset, x.len
                );
            }
            if verify_blocks && let Err(e) = reader.read_decoded(c) {
                failures += 1;
                let _ = writeln!(out, "      BAD: {e}");
            }
        }
    }
    if verify_blocks {
        let _ = writeln!(
            out,
            "  verified {} blocks: {}",
            s.chunks,
            if failures == 0 {
                "all good".to_string()
            } else {
                format!("{failures} bad")
            }
        );
    }
    out
}
