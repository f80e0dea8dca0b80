//! Segment files end to end: round trips, damage anywhere, newer versions
//! and sections, the committed version 1 fixture, parallel reads.

mod common;

use common::loggen;
use proptest::prelude::*;
use skald_chunk::columns::ColumnDetail;
use skald_chunk::{
    ChunkError, FilterParams, SegmentOptions, SegmentReader, SegmentWriter, describe_segment,
};
use skald_model::{Entry, Label, LabelSet, Timestamp};
use std::path::{Path, PathBuf};

fn small_blocks() -> SegmentOptions {
    SegmentOptions {
        target_block_bytes: 2048,
        ..SegmentOptions::default()
    }
}

fn write(path: &Path, options: SegmentOptions, streams: &[(LabelSet, Vec<Entry>)]) {
    let mut w = SegmentWriter::create_with_options(path, options).unwrap();
    for (labels, entries) in streams {
        w.add_chunk(labels, entries).unwrap();
    }
    w.finish().unwrap();
}

/// Every entry of every stream, read back through the index.
fn read_all(reader: &SegmentReader) -> Result<Vec<(LabelSet, Vec<Entry>)>, ChunkError> {
    let mut out = Vec::new();
    for s in reader.streams() {
        let mut entries = Vec::new();
        for c in &s.chunks {
            entries.extend(reader.read_block(c)?);
        }
        out.push((s.labels.clone(), entries));
    }
    Ok(out)
}

fn sorted_by_id(mut streams: Vec<(LabelSet, Vec<Entry>)>) -> Vec<(LabelSet, Vec<Entry>)> {
    streams.sort_by_key(|(l, _)| l.stream_id());
    streams
}

fn arb_streams() -> impl Strategy<Value = Vec<(LabelSet, Vec<Entry>)>> {
    let entry = (
        0i64..1_000_000,
        "(\\PC|\n){0,60}",
        proptest::collection::vec(("[a-z_]{1,6}", "\\PC{0,10}"), 0..2),
    );
    proptest::collection::btree_map("[a-z]{1,8}", proptest::collection::vec(entry, 1..60), 1..5)
        .prop_map(|streams| {
            streams
                .into_iter()
                .map(|(app, raw)| {
                    let mut entries: Vec<Entry> = raw
                        .into_iter()
                        .map(|(ts, line, meta)| Entry {
                            ts: Timestamp(ts * 1000),
                            line,
                            metadata: meta.into_iter().map(|(n, v)| Label::new(n, v)).collect(),
                        })
                        .collect();
                    entries.sort_by_key(|e| e.ts);
                    (
                        LabelSet::new(vec![Label::new("app", app)]).unwrap(),
                        entries,
                    )
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn segment_round_trip(streams in arb_streams(), target in 1usize..3000) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        let options = SegmentOptions { target_block_bytes: target, ..SegmentOptions::default() };
        let mut w = SegmentWriter::create_with_options(&path, options).unwrap();
        for (labels, entries) in &streams {
            w.add_chunk(labels, entries).unwrap();
        }
        let written = w.finish().unwrap();
        let reader = SegmentReader::open(&path).unwrap();
        prop_assert_eq!(reader.summary(), &written);
        prop_assert_eq!(written.stored_bytes, std::fs::metadata(&path).unwrap().len());
        prop_assert_eq!(written.entries, streams.iter().map(|s| s.1.len() as u64).sum::<u64>());
        prop_assert_eq!(read_all(&reader).unwrap(), sorted_by_id(streams.clone()));
        // No false negatives through the reader either.
        for s in reader.streams() {
            for c in &s.chunks {
                let columns = reader.columns(c, ColumnDetail::Codes).unwrap().unwrap();
                prop_assert_eq!(columns.rows, c.entries);
                for e in reader.read_block(c).unwrap() {
                    let needle = &e.line.as_bytes()[..e.line.len().min(12)];
                    prop_assert!(reader.may_contain(c, needle));
                    prop_assert!(reader.may_contain_ignore_case(c, e.line.to_ascii_uppercase().as_bytes()));
                }
            }
        }
    }
}

fn sample(lines: usize) -> Vec<(LabelSet, Vec<Entry>)> {
    loggen::corpus(1, lines, 7)
}

#[test]
fn any_flipped_byte_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    let streams = sample(12);
    write(&path, small_blocks(), &streams);
    let good = std::fs::read(&path).unwrap();
    let expected = sorted_by_id(streams);
    assert!(good.len() > 2000, "{}", good.len());

    let bad_path = dir.path().join("bad.seg");
    for pos in 0..good.len() {
        for xor in [0x01u8, 0x80, 0xff] {
            let mut bytes = good.clone();
            bytes[pos] ^= xor;
            std::fs::write(&bad_path, &bytes).unwrap();
            let outcome = SegmentReader::open(&bad_path).and_then(|r| read_all(&r));
            match outcome {
                Err(e) => assert!(
                    e.is_corruption() || matches!(e, ChunkError::UnsupportedVersion { .. }),
                    "byte {pos}: unexpected error kind {e}"
                ),
                Ok(streams) => panic!(
                    "byte {pos} ^ {xor:#x} went unnoticed (data equal: {})",
                    streams == expected
                ),
            }
        }
    }
}

#[test]
fn truncated_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    write(&path, small_blocks(), &sample(12));
    let good = std::fs::read(&path).unwrap();
    let cut_path = dir.path().join("cut.seg");
    for len in (0..good.len()).step_by(7) {
        std::fs::write(&cut_path, &good[..len]).unwrap();
        let err = SegmentReader::open(&cut_path).unwrap_err();
        assert!(err.is_corruption(), "length {len}: {err}");
    }
}

#[test]
fn errors_name_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    write(&path, small_blocks(), &sample(12));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40] ^= 0xff; // inside the first block
    std::fs::write(&path, &bytes).unwrap();
    let reader = SegmentReader::open(&path).unwrap();
    let chunk = reader.streams()[0]
        .chunks
        .iter()
        .find(|c| c.offset <= 40 && 40 < c.offset + u64::from(c.len));
    let err = match chunk {
        Some(c) => reader.read_block(c).unwrap_err(),
        None => read_all(&reader).unwrap_err(),
    };
    let msg = err.to_string();
    assert!(
        msg.contains("s.seg") && msg.contains("offset 16") && msg.contains("checksum"),
        "{msg}"
    );
}

/// Rewrites a segment's section table with one more section of `kind` and
/// `flags` holding `payload`, as a later writer might.
fn add_section(path: &Path, kind: u16, flags: u16, payload: &[u8]) {
    let bytes = std::fs::read(path).unwrap();
    let footer = &bytes[bytes.len() - 32..];
    let table_offset = u64::from_le_bytes(footer[..8].try_into().unwrap()) as usize;
    let table = &bytes[table_offset..bytes.len() - 32];
    let count = u32::from_le_bytes(table[..4].try_into().unwrap());

    let mut out = bytes[..table_offset].to_vec();
    let section_offset = out.len() as u64;
    out.extend_from_slice(payload);
    let new_table_offset = out.len() as u64;
    let mut new_table = (count + 1).to_le_bytes().to_vec();
    new_table.extend_from_slice(&table[4..]);
    new_table.extend_from_slice(&kind.to_le_bytes());
    new_table.extend_from_slice(&flags.to_le_bytes());
    new_table.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    new_table.extend_from_slice(&section_offset.to_le_bytes());
    new_table.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&new_table);
    let mut new_footer = new_table_offset.to_le_bytes().to_vec();
    new_footer.extend_from_slice(&(new_table.len() as u32).to_le_bytes());
    new_footer.extend_from_slice(&crc32c::crc32c(&new_table).to_le_bytes());
    new_footer.extend_from_slice(&1u32.to_le_bytes());
    let crc = crc32c::crc32c(&new_footer);
    new_footer.extend_from_slice(&crc.to_le_bytes());
    new_footer.extend_from_slice(b"SKALDSEG");
    out.extend_from_slice(&new_footer);
    std::fs::write(path, out).unwrap();
}

#[test]
fn unknown_optional_sections_are_skipped_and_required_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let streams = sample(5);
    let optional = dir.path().join("optional.seg");
    write(&optional, small_blocks(), &streams);
    add_section(&optional, 40, 0, b"field columns of a later version");
    let reader = SegmentReader::open(&optional).unwrap();
    assert_eq!(read_all(&reader).unwrap(), sorted_by_id(streams.clone()));
    assert_eq!(reader.sections().len(), 6);

    let required = dir.path().join("required.seg");
    write(&required, small_blocks(), &streams);
    add_section(&required, 40, 1, b"must be understood");
    assert!(matches!(
        SegmentReader::open(&required),
        Err(ChunkError::UnsupportedFeature { .. })
    ));
}

#[test]
fn newer_versions_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    write(&path, small_blocks(), &sample(3));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = SegmentReader::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            ChunkError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[test]
fn writer_is_atomic_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    let tmp = dir.path().join("s.seg.tmp");
    let streams = sample(3);
    {
        let mut w = SegmentWriter::create(&path).unwrap();
        w.add_chunk(&streams[0].0, &streams[0].1).unwrap();
        assert!(tmp.exists() && !path.exists());
    }
    assert!(
        !tmp.exists() && !path.exists(),
        "a dropped writer leaves nothing"
    );

    let w = SegmentWriter::create(&path).unwrap();
    assert!(matches!(w.finish(), Err(ChunkError::InvalidInput { .. })));
    assert!(!tmp.exists() && !path.exists());

    let mut w = SegmentWriter::create(&path).unwrap();
    let unsorted = vec![Entry::new(Timestamp(2), "b"), Entry::new(Timestamp(1), "a")];
    assert!(matches!(
        w.add_chunk(&streams[0].0, &unsorted),
        Err(ChunkError::InvalidInput { .. })
    ));
    w.add_chunk(&streams[0].0, &streams[0].1).unwrap();
    w.add_chunk(&streams[0].0, &[]).unwrap();
    let summary = w.finish().unwrap();
    assert!(path.exists() && !tmp.exists());
    assert_eq!(summary.entries, 3);
}

#[test]
fn a_stream_added_twice_lists_its_chunks_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    let labels = LabelSet::parse(r#"{app="a"}"#).unwrap();
    let late: Vec<Entry> = (10..20)
        .map(|i| Entry::new(Timestamp(i), format!("late {i}")))
        .collect();
    let early: Vec<Entry> = (0..10)
        .map(|i| Entry::new(Timestamp(i), format!("early {i}")))
        .collect();
    let mut w = SegmentWriter::create(&path).unwrap();
    w.add_chunk(&labels, &late).unwrap();
    w.add_chunk(&labels, &early).unwrap();
    w.finish().unwrap();
    let reader = SegmentReader::open(&path).unwrap();
    let all = read_all(&reader).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1, [early, late].concat());
    assert!(reader.stream(labels.stream_id()).is_some());
}

#[test]
fn reader_serves_many_threads() {
    fn assert_sync<T: Sync + Send>() {}
    assert_sync::<SegmentReader>();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    let streams = loggen::corpus(2, 400, 3);
    write(&path, small_blocks(), &streams);
    let reader = SegmentReader::open(&path).unwrap();
    let expected = read_all(&reader).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..3 {
                    assert_eq!(read_all(&reader).unwrap(), expected);
                }
            });
        }
    });
}

#[test]
fn filters_skip_blocks_without_the_needle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    let labels = LabelSet::parse(r#"{app="a"}"#).unwrap();
    let entries: Vec<Entry> = (0..200)
        .map(|i| {
            Entry::new(
                Timestamp(i),
                format!("request {i} finished in {}ms", i % 17),
            )
        })
        .chain([Entry::new(
            Timestamp(500),
            "Deadlock detected in worker pool",
        )])
        .collect();
    let options = SegmentOptions {
        target_block_bytes: 1024,
        filter: FilterParams::default(),
        ..SegmentOptions::default()
    };
    write(&path, options, &[(labels, entries)]);
    let reader = SegmentReader::open(&path).unwrap();
    let chunks = &reader.streams()[0].chunks;
    assert!(chunks.len() > 5);
    let hits: Vec<bool> = chunks
        .iter()
        .map(|c| reader.may_contain(c, b"deadlock"))
        .collect();
    assert_eq!(hits.iter().filter(|h| **h).count(), 1, "{hits:?}");
    assert!(hits[hits.len() - 1]);
    assert!(reader.may_contain_ignore_case(&chunks[chunks.len() - 1], b"DEADLOCK"));
    assert!(chunks.iter().all(|c| reader.may_contain(c, b"ms")));
}

#[test]
fn describe_lists_streams_chunks_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    write(&path, small_blocks(), &sample(12));
    let text = describe_segment(&path, true).unwrap();
    for needle in [
        "format version 1",
        "index",
        "filters",
        "app=\"apache\"",
        "chunk at 16",
        "all good",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

// The committed fixture: a version 1 segment must stay readable forever.

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/segment-v1.seg")
}

fn fixture_content() -> Vec<(LabelSet, Vec<Entry>)> {
    let mut streams = loggen::corpus(1, 30, 2024);
    let mut special = vec![
        Entry::new(Timestamp(-5), "before the epoch"),
        Entry::new(Timestamp(0), "multi-line\n  stack trace"),
        Entry::new(Timestamp(0), "same time, kept in order: ünïcödé ✓"),
        Entry::new(Timestamp(1_000_000_007), ""),
    ];
    special[2].metadata = vec![Label::new("trace_id", "0af7651916cd43dd8448eb211c80319c")];
    streams.push((
        LabelSet::parse(r#"{app="edge", env="test"}"#).unwrap(),
        special,
    ));
    streams
}

fn fixture_options() -> SegmentOptions {
    SegmentOptions {
        target_block_bytes: 4096,
        ..SegmentOptions::default()
    }
}

/// Regenerates the fixture; run by hand only when adding a format version:
/// `cargo test -p skald-chunk --test segment -- --ignored regenerate`.
#[test]
#[ignore]
fn regenerate_fixture_v1() {
    write(&fixture_path(), fixture_options(), &fixture_content());
}

#[test]
fn fixture_v1_still_reads() {
    let reader = SegmentReader::open(fixture_path()).unwrap();
    assert_eq!(reader.format_version(), 1);
    assert_eq!(read_all(&reader).unwrap(), sorted_by_id(fixture_content()));
    let s = reader.summary();
    assert_eq!((s.streams, s.entries), (4, 94));
    assert_eq!(s.min_ts, Timestamp(-5));
    assert!(s.chunks > 4, "{s:?}");
    let edge = reader
        .stream(
            LabelSet::parse(r#"{app="edge", env="test"}"#)
                .unwrap()
                .stream_id(),
        )
        .unwrap();
    assert!(reader.may_contain(&edge.chunks[0], "ÜNÏCÖDÉ".to_lowercase().as_bytes()));
    assert!(!reader.may_contain(&edge.chunks[0], b"kubernetes"));
    // Written before digit filters: numbers fall back to the trigrams.
    assert!(reader.digit_filter(&edge.chunks[0]).is_none());
    // ... and before field columns: none, and no error.
    assert!(
        reader
            .columns(&edge.chunks[0], ColumnDetail::Codes)
            .unwrap()
            .is_none()
    );
    assert_eq!(s.column_bytes, 0);
}

#[test]
fn every_chunk_gets_field_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    let labels = LabelSet::parse(r#"{app="worker"}"#).unwrap();
    let entries: Vec<Entry> = (0..300)
        .map(|i| {
            let level = ["info", "warn", "error"][i % 3];
            let line = format!("level={level} task=t{i} duration={}ms", i * 10);
            Entry::new(Timestamp(i as i64), line)
        })
        .collect();
    write(&path, small_blocks(), &[(labels.clone(), entries.clone())]);
    let reader = SegmentReader::open(&path).unwrap();
    let stream = reader.stream(labels.stream_id()).unwrap();
    assert!(stream.chunks.len() > 3);
    let mut rows = 0;
    let mut errors = 0;
    for c in &stream.chunks {
        let cols = reader.columns(c, ColumnDetail::Codes).unwrap().unwrap();
        assert_eq!(cols.rows, c.entries);
        assert!(cols.covers_all(skald_chunk::columns::FieldFormat::Logfmt));
        let level = cols
            .column(skald_chunk::columns::FieldFormat::Logfmt, "level")
            .unwrap();
        let dict = level.dictionary.as_ref().unwrap();
        errors += dict
            .values
            .iter()
            .filter(|(v, _)| v == "error")
            .map(|(_, n)| n)
            .sum::<u32>();
        let block = reader.read_block(c).unwrap();
        let max = block
            .iter()
            .map(|e| {
                e.line
                    .rsplit('=')
                    .next()
                    .unwrap()
                    .trim_end_matches("ms")
                    .parse::<i64>()
                    .unwrap()
            })
            .max()
            .unwrap();
        let duration = cols
            .column(skald_chunk::columns::FieldFormat::Logfmt, "duration")
            .unwrap()
            .duration
            .unwrap();
        assert_eq!(duration.1, max * 1_000_000);
        rows += cols.rows;
    }
    assert_eq!(rows, 300);
    assert_eq!(errors, 100);
    assert!(reader.summary().column_bytes > 0);
    assert!(describe_segment(&path, false).unwrap().contains("columns"));
}

#[test]
fn digit_filters_skip_chunks_that_only_share_a_numbers_trigrams() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    let labels = LabelSet::parse(r#"{app="ids"}"#).unwrap();
    // Every chunk holds all the digit trigrams of 424242; one holds it.
    let entries: Vec<Entry> = (0..400)
        .map(|i| {
            let line = if i == 123 {
                "order 77424242 shipped".to_string()
            } else {
                format!(
                    "order {} user 2424 shard 42{} took 24{} ms",
                    100_000 + i * 7,
                    i % 10,
                    i % 3
                )
            };
            Entry::new(Timestamp(i), line)
        })
        .collect();
    write(&path, small_blocks(), &[(labels.clone(), entries)]);
    let reader = SegmentReader::open(&path).unwrap();
    let stream = reader.stream(labels.stream_id()).unwrap();
    assert!(stream.chunks.len() > 4, "{}", stream.chunks.len());
    let passing: Vec<_> = stream
        .chunks
        .iter()
        .filter(|c| reader.may_contain(c, b"424242"))
        .collect();
    assert!(
        stream
            .chunks
            .iter()
            .all(|c| reader.filter(c).unwrap().may_contain(b"424242")),
        "the trigrams alone should let every chunk through"
    );
    assert!(
        passing.len() <= 2,
        "{} of {} chunks",
        passing.len(),
        stream.chunks.len()
    );
    let hit = passing
        .iter()
        .flat_map(|c| reader.read_block(c).unwrap())
        .filter(|e| e.line.contains("424242"))
        .count();
    assert_eq!(hit, 1);
    assert!(reader.summary().filter_bytes > 0);
}

/// Flips a byte of the section named `kind` and checks that opening the
/// segment fails naming that section and its offset.
fn damaged_section_is_named(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    write(&path, small_blocks(), &sample(5));
    let reader = SegmentReader::open(&path).unwrap();
    let section = reader
        .sections()
        .iter()
        .find(|s| s.kind_name() == kind)
        .cloned()
        .unwrap();
    drop(reader);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[section.offset as usize + 2] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let msg = SegmentReader::open(&path).unwrap_err().to_string();
    assert!(
        msg.contains(&format!("{kind} section checksum"))
            && msg.contains(&format!("offset {}", section.offset)),
        "{msg}"
    );
}

#[test]
fn a_damaged_digit_filters_section_is_named() {
    damaged_section_is_named("digit filters");
}

#[test]
fn a_damaged_columns_section_is_named() {
    damaged_section_is_named("columns");
}

#[test]
fn a_segment_in_memory_reads_as_its_file_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seg");
    write(&path, small_blocks(), &loggen::corpus(3, 300, 5));
    let from_file = SegmentReader::open(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let from_memory = SegmentReader::from_source("memory/s.seg", Box::new(bytes.clone())).unwrap();
    assert_eq!(from_memory.summary(), from_file.summary());
    assert_eq!(from_memory.streams(), from_file.streams());
    assert_eq!(
        read_all(&from_memory).unwrap(),
        read_all(&from_file).unwrap()
    );
    assert_eq!(from_memory.path(), Path::new("memory/s.seg"));

    // Damage is found the same way whatever the bytes' home, and named by
    // the name the caller gave.
    let mut cut = bytes;
    cut.truncate(cut.len() - 3);
    let err = SegmentReader::from_source("memory/cut.seg", Box::new(cut)).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains("memory/cut.seg"), "{err}");
}
