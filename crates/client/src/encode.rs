//! Turning a batch of entries into a push body: Loki's protobuf in a
//! snappy block, or Loki's JSON (optionally gzipped).
//!
//! Entries are grouped into streams by their selector text in order of
//! first appearance; within a stream they keep the order they were sent.

use crate::config::Encoding;
use crate::entry::Entry;
use prost::Message;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

/// Loki's push messages (`pkg/push/push.proto`, Apache-2.0), written from
/// its field numbers: `PushRequest{streams=1}`,
/// `StreamAdapter{labels=1, entries=2}`,
/// `EntryAdapter{timestamp=1, line=2, structuredMetadata=3}`,
/// `LabelPairAdapter{name=1, value=2}`,
/// `google.protobuf.Timestamp{seconds=1, nanos=2}`.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// How a stored body is framed on the wire; kept with each batch so that a
/// disk queue written under one encoding is sent correctly under another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    ProtobufSnappy = 0,
    Json = 1,
    JsonGzip = 2,
}

impl BodyKind {
    pub(crate) fn from_byte(byte: u8) -> Option<BodyKind> {
        match byte {
            0 => Some(BodyKind::ProtobufSnappy),
            1 => Some(BodyKind::Json),
            2 => Some(BodyKind::JsonGzip),
            _ => None,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            BodyKind::ProtobufSnappy => "application/x-protobuf",
            BodyKind::Json | BodyKind::JsonGzip => "application/json",
        }
    }

    pub(crate) fn content_encoding(self) -> Option<&'static str> {
        match self {
            BodyKind::JsonGzip => Some("gzip"),
            _ => None,
        }
    }
}

/// An encoded batch, ready to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub kind: BodyKind,
    pub entries: u32,
    /// Shared so that a retry re-sends it without a copy.
    pub body: bytes::Bytes,
}

/// Groups `entries` by stream, keeping first-appearance order.
fn group(entries: Vec<Entry>) -> Vec<(Arc<str>, Vec<Entry>)> {
    let mut index: HashMap<Arc<str>, usize> = HashMap::new();
    let mut streams: Vec<(Arc<str>, Vec<Entry>)> = Vec::new();
    for entry in entries {
        let selector = entry.labels.selector_arc();
        let slot = match index.get(selector) {
            Some(&slot) => slot,
            None => {
                index.insert(selector.clone(), streams.len());
                streams.push((selector.clone(), Vec::new()));
                streams.len() - 1
            }
        };
        streams[slot].1.push(entry);
    }
    streams
}

/// Encodes a batch (which must not be empty).
pub(crate) fn encode(entries: Vec<Entry>, encoding: Encoding) -> Batch {
    debug_assert!(!entries.is_empty());
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    match encoding {
        Encoding::Protobuf => Batch {
            kind: BodyKind::ProtobufSnappy,
            entries: count,
            body: encode_protobuf(entries).into(),
        },
        Encoding::Json => Batch {
            kind: BodyKind::Json,
            entries: count,
            body: encode_json(entries).into(),
        },
        Encoding::JsonGzip => {
            let json = encode_json(entries);
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(json.len() / 4),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail.
            let _ = gz.write_all(&json);
            Batch {
                kind: BodyKind::JsonGzip,
                entries: count,
                body: gz.finish().unwrap_or_default().into(),
            }
        }
    }
}

fn encode_protobuf(entries: Vec<Entry>) -> Vec<u8> {
    let streams = group(entries)
        .into_iter()
        .map(|(selector, entries)| proto::StreamAdapter {
            labels: selector.to_string(),
            entries: entries
                .into_iter()
                .map(|e| proto::EntryAdapter {
                    timestamp: Some(proto::Timestamp {
                        seconds: e.timestamp.0.div_euclid(1_000_000_000),
                        nanos: e.timestamp.0.rem_euclid(1_000_000_000) as i32,
                    }),
                    line: e.line,
                    structured_metadata: e
                        .metadata
                        .into_iter()
                        .map(|(name, value)| proto::LabelPairAdapter { name, value })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let message = proto::PushRequest { streams }.encode_to_vec();
    // Compressing into a fresh Vec only fails for inputs over 4 GiB, which a
    // batch limited in bytes never reaches; an empty body is then refused by
    // the server and reported.
    snap::raw::Encoder::new()
        .compress_vec(&message)
        .unwrap_or_default()
}

fn encode_json(entries: Vec<Entry>) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(entries.len() * 64);
    out.extend_from_slice(b"{\"streams\":[");
    for (i, (_, entries)) in group(entries).into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"stream\":{");
        for (j, (name, value)) in entries[0].labels.pairs().iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, name);
            out.push(b':');
            write_json_string(&mut out, value);
        }
        out.extend_from_slice(b"},\"values\":[");
        for (j, entry) in entries.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"[\"");
            out.extend_from_slice(entry.timestamp.0.to_string().as_bytes());
            out.extend_from_slice(b"\",");
            write_json_string(&mut out, &entry.line);
            if !entry.metadata.is_empty() {
                out.extend_from_slice(b",{");
                for (k, (name, value)) in entry.metadata.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    write_json_string(&mut out, name);
                    out.push(b':');
                    write_json_string(&mut out, value);
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    out
}

fn write_json_string(out: &mut Vec<u8>, value: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Labels, Timestamp};

    fn entries() -> Vec<Entry> {
        let a = Labels::new([("app", "a")]).unwrap();
        let b = Labels::new([("app", "b")]).unwrap();
        vec![
            Entry::new(&a, "one").at(Timestamp(1_500_000_000)),
            Entry::new(&b, "two\"").at(Timestamp(2)),
            Entry::new(&a, "three")
                .at(Timestamp(-1))
                .with_metadata("trace_id", "t1"),
        ]
    }

    #[test]
    fn protobuf_groups_streams_and_keeps_order() {
        let batch = encode(entries(), Encoding::Protobuf);
        assert_eq!(batch.entries, 3);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&batch.body)
            .unwrap();
        let request = proto::PushRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(request.streams.len(), 2);
        assert_eq!(request.streams[0].labels, r#"{app="a"}"#);
        let lines: Vec<&str> = request.streams[0]
            .entries
            .iter()
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(lines, ["one", "three"]);
        assert_eq!(
            request.streams[0].entries[0].timestamp,
            Some(proto::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            request.streams[0].entries[1].timestamp,
            Some(proto::Timestamp {
                seconds: -1,
                nanos: 999_999_999
            })
        );
        assert_eq!(request.streams[0].entries[1].structured_metadata.len(), 1);
    }

    #[test]
    fn json_matches_lokis_push_format() {
        let batch = encode(entries(), Encoding::Json);
        let value: serde_json::Value = serde_json::from_slice(&batch.body).unwrap();
        let expected = serde_json::json!({"streams": [
            {"stream": {"app": "a"}, "values": [["1500000000", "one"], ["-1", "three", {"trace_id": "t1"}]]},
            {"stream": {"app": "b"}, "values": [["2", "two\""]]},
        ]});
        assert_eq!(value, expected);
    }

    #[test]
    fn gzip_json_inflates_to_the_json_body() {
        use std::io::Read;
        let plain = encode(entries(), Encoding::Json);
        let gz = encode(entries(), Encoding::JsonGzip);
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&gz.body[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, plain.body);
        assert_eq!(gz.kind.content_encoding(), Some("gzip"));
    }
}
