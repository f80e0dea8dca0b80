//! Encoding and decoding of the stream index section (its bytes are
//! described in [`super::writer`]).
//!
//! The decoder validates everything it can without the rest of the file:
//! counts are bounded by the bytes left before anything is allocated, label
//! sets must be valid and hash to their stored stream id, and every offset
//! must fall inside the section it points into. Not here: checksums and
//! section layout (the reader checks those before calling [`decode`]).

use super::{ChunkMeta, ChunkSection, StreamMeta};
use crate::varint::{Cursor, Malformed, put_uvarint, zigzag};
use skald_model::{Label, LabelSet, StreamId, Timestamp};
use std::ops::Range;

pub(super) fn encode(streams: &[StreamMeta], out: &mut Vec<u8>) {
    put_uvarint(out, streams.len() as u64);
    for s in streams {
        out.extend_from_slice(&s.id.0.to_le_bytes());
        put_uvarint(out, s.labels.len() as u64);
        for l in s.labels.labels() {
            put_uvarint(out, l.name.len() as u64);
            out.extend_from_slice(l.name.as_bytes());
            put_uvarint(out, l.value.len() as u64);
            out.extend_from_slice(l.value.as_bytes());
        }
        put_uvarint(out, s.chunks.len() as u64);
        for c in &s.chunks {
            put_uvarint(out, c.offset);
            put_uvarint(out, u64::from(c.len));
            put_uvarint(out, zigzag(c.min_ts.0));
            put_uvarint(out, c.max_ts.0.abs_diff(c.min_ts.0));
            put_uvarint(out, u64::from(c.entries));
            put_uvarint(out, c.raw_bytes);
            put_uvarint(out, c.filter_offset);
            put_uvarint(out, u64::from(c.filter_len));
            put_uvarint(out, c.sections.len() as u64);
            for x in &c.sections {
                put_uvarint(out, u64::from(x.kind));
                put_uvarint(out, u64::from(x.flags));
                put_uvarint(out, x.offset);
                put_uvarint(out, x.len);
            }
        }
    }
}

/// Where the index entries may point.
pub(super) struct Bounds {
    /// The blocks section, absolute.
    pub blocks: Range<u64>,
    /// Length of the filters section.
    pub filters_len: u64,
    /// Length of the file, for per-chunk sections of later versions.
    pub file_len: u64,
}

fn within(offset: u64, len: u64, range: &Range<u64>) -> bool {
    offset >= range.start && offset.checked_add(len).is_some_and(|end| end <= range.end)
}

pub(super) fn decode(bytes: &[u8], bounds: &Bounds) -> Result<Vec<StreamMeta>, Malformed> {
    let mut c = Cursor::new(bytes);
    // A stream takes at least 8 (id) + 1 + 2 (one empty label) + 1 + 10
    // (one chunk) bytes; bounding counts by the bytes left keeps a corrupt
    // count from allocating.
    let count = c.uvarint_max("stream count", (c.remaining() / 22) as u64)?;
    if count == 0 {
        return Err(c.malformed("index lists no streams"));
    }
    let mut streams = Vec::with_capacity(count as usize);
    let mut previous: Option<StreamId> = None;
    for _ in 0..count {
        let at = c.pos();
        let id = StreamId(c.u64_le("stream id")?);
        if previous.is_some_and(|p| p >= id) {
            return Err(Malformed::new(at, "stream ids are not in increasing order"));
        }
        previous = Some(id);

        let label_count = c.uvarint_max("label count", (c.remaining() / 2) as u64)?;
        let mut labels = Vec::with_capacity(label_count as usize);
        for _ in 0..label_count {
            let name = c.string("label name")?;
            let value = c.string("label value")?;
            labels.push(Label::new(name, value));
        }
        let sorted = labels.windows(2).all(|w| w[0].name < w[1].name);
        let labels = LabelSet::new(labels)
            .map_err(|e| Malformed::new(at, format!("invalid labels of stream {id}: {e}")))?;
        if !sorted || labels.stream_id() != id {
            return Err(Malformed::new(
                at,
                format!("stream id {id} does not match its labels {labels}"),
            ));
        }

        let chunk_count = c.uvarint_max("chunk count", (c.remaining() / 9) as u64)?;
        if chunk_count == 0 {
            return Err(c.malformed(format!("stream {labels} has no chunks")));
        }
        let mut chunks = Vec::with_capacity(chunk_count as usize);
        for _ in 0..chunk_count {
            let chunk = decode_chunk(&mut c, bounds)?;
            if chunks
                .last()
                .is_some_and(|p: &ChunkMeta| p.min_ts > chunk.min_ts)
            {
                return Err(c.malformed(format!("chunks of stream {labels} are out of order")));
            }
            chunks.push(chunk);
        }
        streams.push(StreamMeta { labels, id, chunks });
    }
    if !c.is_at_end() {
        return Err(c.malformed("trailing bytes after the last stream"));
    }
    Ok(streams)
}

fn decode_chunk(c: &mut Cursor<'_>, bounds: &Bounds) -> Result<ChunkMeta, Malformed> {
    let at = c.pos();
    let offset = c.uvarint("block offset")?;
    let len = c.uvarint_max("block length", u64::from(u32::MAX))?;
    if !within(offset, len, &bounds.blocks) {
        return Err(Malformed::new(
            at,
            format!("block of {len} bytes at {offset} lies outside the blocks section"),
        ));
    }
    let min_ts = c.ivarint("min timestamp")?;
    let span_at = c.pos();
    let span = c.uvarint("time span")?;
    let max_ts = min_ts
        .checked_add_unsigned(span)
        .ok_or_else(|| Malformed::new(span_at, "max timestamp overflows"))?;
    let entries = c.uvarint_max("entry count", u64::from(u32::MAX))?;
    if entries == 0 {
        return Err(c.malformed("chunk has no entries"));
    }
    let raw_bytes = c.uvarint("raw bytes")?;
    let filter_at = c.pos();
    let filter_offset = c.uvarint("filter offset")?;
    let filter_len = c.uvarint_max("filter length", u64::from(u32::MAX))?;
    if !within(filter_offset, filter_len, &(0..bounds.filters_len)) {
        return Err(Malformed::new(
            filter_at,
            format!(
                "filter of {filter_len} bytes at {filter_offset} lies outside the filters section"
            ),
        ));
    }
    // Each extra section takes at least four bytes.
    let extra = c.uvarint_max("chunk section count", (c.remaining() / 4) as u64)?;
    let mut sections = Vec::with_capacity(extra as usize);
    for _ in 0..extra {
        let at = c.pos();
        let kind = c.uvarint_max("chunk section kind", u64::from(u32::MAX))? as u32;
        let flags = c.uvarint_max("chunk section flags", u64::from(u32::MAX))? as u32;
        let offset = c.uvarint("chunk section offset")?;
        let len = c.uvarint("chunk section length")?;
        if !within(offset, len, &(0..bounds.file_len)) {
            return Err(Malformed::new(at, "chunk section lies outside the file"));
        }
        sections.push(ChunkSection {
            kind,
            flags,
            offset,
            len,
        });
    }
    Ok(ChunkMeta {
        offset,
        len: len as u32,
        min_ts: Timestamp(min_ts),
        max_ts: Timestamp(max_ts),
        entries: entries as u32,
        raw_bytes,
        filter_offset,
        filter_len: filter_len as u32,
        sections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_chunk() -> impl Strategy<Value = ChunkMeta> {
        (
            16u64..1000,
            0u32..1000,
            any::<i64>(),
            any::<u64>(),
            1u32..,
            any::<u64>(),
            0u64..100,
            0u32..100,
            proptest::collection::vec((any::<u32>(), any::<u32>(), 0u64..5000, 0u64..5000), 0..3),
        )
            .prop_map(
                |(offset, len, min, span, entries, raw, f_off, f_len, extra)| {
                    let max = min.saturating_add_unsigned(span);
                    ChunkMeta {
                        offset,
                        len,
                        min_ts: Timestamp(min),
                        max_ts: Timestamp(max),
                        entries,
                        raw_bytes: raw,
                        filter_offset: f_off,
                        filter_len: f_len,
                        sections: extra
                            .into_iter()
                            .map(|(kind, flags, offset, len)| ChunkSection {
                                kind,
                                flags,
                                offset,
                                len,
                            })
                            .collect(),
                    }
                },
            )
    }

    fn arb_streams() -> impl Strategy<Value = Vec<StreamMeta>> {
        proptest::collection::vec(
            (
                proptest::collection::btree_map("[a-z_][a-z0-9_]{0,6}", "\\PC{0,8}", 1..4),
                proptest::collection::vec(arb_chunk(), 1..4),
            ),
            1..5,
        )
        .prop_map(|raw| {
            let mut streams: Vec<StreamMeta> = raw
                .into_iter()
                .map(|(labels, mut chunks)| {
                    let labels =
                        LabelSet::new(labels.into_iter().map(|(k, v)| Label::new(k, v)).collect())
                            .unwrap();
                    chunks.sort_by_key(|c| c.min_ts);
                    StreamMeta {
                        id: labels.stream_id(),
                        labels,
                        chunks,
                    }
                })
                .collect();
            streams.sort_by_key(|s| s.id);
            streams.dedup_by_key(|s| s.id);
            streams
        })
    }

    const BOUNDS: Bounds = Bounds {
        blocks: 16..3000,
        filters_len: 200,
        file_len: 10_000,
    };

    proptest! {
        #[test]
        fn round_trip(streams in arb_streams()) {
            let mut bytes = Vec::new();
            encode(&streams, &mut bytes);
            prop_assert_eq!(decode(&bytes, &BOUNDS).unwrap(), streams);
        }

        #[test]
        fn damaged_index_never_panics(streams in arb_streams(), pos in any::<proptest::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
            let mut bytes = Vec::new();
            encode(&streams, &mut bytes);
            let i = pos.index(bytes.len());
            if cut {
                bytes.truncate(i);
                prop_assert!(decode(&bytes, &BOUNDS).is_err());
            } else {
                bytes[i] = byte;
                let _ = decode(&bytes, &BOUNDS);
            }
        }
    }

    #[test]
    fn rejects_out_of_bounds_and_mismatched_ids() {
        let labels = LabelSet::parse(r#"{app="a"}"#).unwrap();
        let chunk = ChunkMeta {
            offset: 16,
            len: 10,
            min_ts: Timestamp(5),
            max_ts: Timestamp(9),
            entries: 1,
            raw_bytes: 3,
            filter_offset: 0,
            filter_len: 14,
            sections: Vec::new(),
        };
        let stream = StreamMeta {
            id: labels.stream_id(),
            labels: labels.clone(),
            chunks: vec![chunk.clone()],
        };
        let mut ok = Vec::new();
        encode(std::slice::from_ref(&stream), &mut ok);
        assert!(decode(&ok, &BOUNDS).is_ok());

        let mut bad = stream.clone();
        bad.chunks[0].offset = 2995;
        let mut bytes = Vec::new();
        encode(&[bad], &mut bytes);
        assert!(decode(&bytes, &BOUNDS).is_err());

        let mut bad = stream.clone();
        bad.chunks[0].filter_offset = 190;
        let mut bytes = Vec::new();
        encode(&[bad], &mut bytes);
        assert!(decode(&bytes, &BOUNDS).is_err());

        let mut bad = stream;
        bad.id = StreamId(bad.id.0 ^ 1);
        let mut bytes = Vec::new();
        encode(&[bad], &mut bytes);
        assert!(decode(&bytes, &BOUNDS).is_err());
    }
}
