use super::*;
use proptest::prelude::*;

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    BlockEncoder::new(DEFAULT_ZSTD_LEVEL)
        .unwrap()
        .encode(entries, &mut out)
        .unwrap();
    out
}

/// A block around an arbitrary payload, with a valid header and checksum,
/// to reach the payload parser with hostile bytes.
fn frame(flags: u8, n: u64, text_len: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![CODEC_ZSTD, flags];
    put_uvarint(&mut out, n);
    put_uvarint(&mut out, payload.len() as u64);
    put_uvarint(&mut out, text_len);
    out.extend_from_slice(&zstd::bulk::compress(payload, 1).unwrap());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn arb_entries() -> impl Strategy<Value = Vec<Entry>> {
    let entry = (
        any::<i64>(),
        prop_oneof![
            9 => "\\PC{0,30}",
            1 => "\\PC{0,10}\n\\PC{0,10}",
        ],
        prop_oneof![
            3 => Just(Vec::new()),
            1 => proptest::collection::vec(("[a-z_]{1,5}", "\\PC{0,6}"), 0..3),
        ],
    );
    (
        prop_oneof![Just(1i64), Just(1_000_000), any::<i64>()],
        proptest::collection::vec(entry, 1..40),
    )
        .prop_map(|(scale, raw)| {
            let mut entries: Vec<Entry> = raw
                .into_iter()
                .map(|(ts, line, meta)| Entry {
                    ts: Timestamp(if scale == 1 || scale == 1_000_000 {
                        ts.wrapping_mul(scale)
                    } else {
                        ts
                    }),
                    line,
                    metadata: meta.into_iter().map(|(n, v)| Label::new(n, v)).collect(),
                })
                .collect();
            entries.sort_by_key(|e| e.ts);
            entries
        })
}

proptest! {
    #[test]
    fn round_trip(entries in arb_entries(), level in prop_oneof![Just(-1), Just(1), Just(3), Just(9)]) {
        let mut out = vec![0xAA];
        let info = BlockEncoder::new(level).unwrap().encode(&entries, &mut out).unwrap();
        prop_assert_eq!(info.block_bytes as usize, out.len() - 1);
        prop_assert_eq!(info.entries as usize, entries.len());
        prop_assert_eq!(info.raw_bytes, entries.iter().map(Entry::size).sum::<usize>() as u64);
        let block = DecodedBlock::decode(&out[1..]).unwrap();
        prop_assert_eq!(block.to_entries(), entries.clone());
        let back: Vec<Entry> = block.iter().rev().map(|e| e.to_entry()).collect();
        prop_assert!(back.iter().rev().eq(entries.iter()));
    }

    #[test]
    fn any_damage_is_an_error(entries in arb_entries(), pos in any::<proptest::sample::Index>(), xor in 1u8..) {
        let mut bytes = encode(&entries);
        let i = pos.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(DecodedBlock::decode(&bytes).is_err());
        let cut = pos.index(bytes.len());
        prop_assert!(DecodedBlock::decode(&encode(&entries)[..cut]).is_err());
    }

    #[test]
    fn hostile_payloads_never_panic(
        flags in 0u8..4,
        n in 0u64..20,
        text in proptest::collection::vec(any::<u8>(), 0..30),
        numbers in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut payload = text.clone();
        payload.extend_from_slice(&numbers);
        let block = frame(flags, n, text.len() as u64, &payload);
        let _ = DecodedBlock::decode(&block);
    }
}

#[test]
fn ties_keep_insertion_order_and_empty_lines_survive() {
    let entries = vec![
        Entry::new(Timestamp(5), "b"),
        Entry::new(Timestamp(5), "a"),
        Entry::new(Timestamp(5), ""),
        Entry::new(Timestamp(7), "c"),
    ];
    let block = DecodedBlock::decode(&encode(&entries)).unwrap();
    assert_eq!(block.to_entries(), entries);
    assert_eq!(block.line(2), "");
    assert_eq!(block.metadata(1).count(), 0);
    assert!(block.get(4).is_none());
}

#[test]
fn millisecond_timestamps_cost_one_byte_each() {
    let entries: Vec<Entry> = (0..1000)
        .map(|i| Entry::new(Timestamp(1_700_000_000_000_000_000 + i * 3_000_000), "x"))
        .collect();
    let mut out = Vec::new();
    let info = BlockEncoder::new(1)
        .unwrap()
        .encode(&entries, &mut out)
        .unwrap();
    // 1000 lines of one byte, 1000 one-byte deltas, 1000 one-byte lengths.
    assert!(info.payload_bytes < 3020, "{}", info.payload_bytes);
}

#[test]
fn extreme_timestamps_round_trip() {
    let entries = vec![
        Entry::new(Timestamp::MIN, "first"),
        Entry::new(Timestamp(0), "zero"),
        Entry::new(Timestamp::MAX, "last"),
    ];
    let block = DecodedBlock::decode(&encode(&entries)).unwrap();
    assert_eq!(block.to_entries(), entries);
}

#[test]
fn refuses_bad_input() {
    let mut enc = BlockEncoder::new(3).unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        enc.encode(&[], &mut out),
        Err(ChunkError::InvalidInput { .. })
    ));
    let unsorted = [Entry::new(Timestamp(2), "a"), Entry::new(Timestamp(1), "b")];
    assert!(matches!(
        enc.encode(&unsorted, &mut out),
        Err(ChunkError::InvalidInput { .. })
    ));
    assert!(BlockEncoder::new(1000).is_err());
}

#[test]
fn refuses_payloads_above_the_limit_before_decompressing() {
    let entries = vec![Entry::new(Timestamp(1), "x".repeat(5000))];
    let bytes = encode(&entries);
    assert!(matches!(
        DecodedBlock::decode_with_limit(&bytes, 1000),
        Err(ChunkError::BlockTooLarge { limit: 1000, .. })
    ));
    assert!(DecodedBlock::decode_with_limit(&bytes, 10_000).is_ok());
    // A header claiming more than the hard cap.
    let mut huge = vec![CODEC_ZSTD, 0, 1];
    put_uvarint(&mut huge, (MAX_BLOCK_RAW_BYTES + 1) as u64);
    put_uvarint(&mut huge, 0);
    huge.extend_from_slice(&[0; 8]);
    let crc = crc32c::crc32c(&huge);
    huge.extend_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        DecodedBlock::decode(&huge),
        Err(ChunkError::BlockTooLarge { .. })
    ));
}

#[test]
fn a_frame_larger_than_its_header_claims_is_corrupt() {
    // The header says 10 bytes; the frame holds 100.
    let mut block = vec![CODEC_ZSTD, 0, 1, 10, 0];
    block.extend_from_slice(&zstd::bulk::compress(&[7u8; 100], 1).unwrap());
    let crc = crc32c::crc32c(&block);
    block.extend_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        DecodedBlock::decode(&block),
        Err(ChunkError::CorruptBlock { .. })
    ));
}

#[test]
fn lines_split_inside_a_character_are_corrupt() {
    // Text "é" (2 bytes) split into lines of 1 and 1 bytes.
    let mut payload = "é".as_bytes().to_vec();
    payload.extend_from_slice(&[1, 0, 1, 1, 1]);
    let block = frame(0, 2, 2, &payload);
    let err = DecodedBlock::decode(&block).unwrap_err();
    assert!(err.to_string().contains("inside a character"), "{err}");
}

#[test]
fn metadata_round_trips_beside_lines() {
    let mut e = Entry::new(Timestamp(10), "with metadata");
    e.metadata = vec![Label::new("trace_id", "abc"), Label::new("user", "é")];
    let entries = vec![Entry::new(Timestamp(9), "plain"), e];
    let block = DecodedBlock::decode(&encode(&entries)).unwrap();
    let got: Vec<_> = block.get(1).unwrap().metadata().collect();
    assert_eq!(got, vec![("trace_id", "abc"), ("user", "é")]);
    assert_eq!(block.to_entries(), entries);
}

#[test]
fn lines_with_newlines_fall_back_to_lengths() {
    let entries = vec![
        Entry::new(Timestamp(1), "panic: boom\n  at main.rs:1"),
        Entry::new(Timestamp(2), "plain"),
        Entry::new(Timestamp(3), "\n"),
    ];
    let bytes = encode(&entries);
    assert_eq!(bytes[1] & FLAG_NEWLINES, 0);
    assert_eq!(DecodedBlock::decode(&bytes).unwrap().to_entries(), entries);
    let plain = encode(&entries[1..2]);
    assert_eq!(plain[1] & FLAG_NEWLINES, FLAG_NEWLINES);
}

#[test]
fn newline_blocks_with_too_few_lines_are_corrupt() {
    // Header says 3 lines; the text has two newlines.
    let block = frame(FLAG_NEWLINES, 3, 4, b"a\nb\n\x01\x00\x00\x00");
    assert!(DecodedBlock::decode(&block).is_err());
}
