//! Feeds arbitrary bytes to `decode_push` under every content type and
//! encoding. Nothing may panic, allocate past the limits, or disagree with
//! prost about a well-formed protobuf message.
//!
//! The first input byte picks the headers and whether the harness itself
//! compresses the rest of the input first: raw bytes exercise the
//! decompressors, pre-compressed bytes reach the JSON and protobuf parsers.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use skald_wire::push::proto::messages;
use skald_wire::{DecodeLimits, PushRequest, WireError, decode_push};
use std::io::Write;

const CONTENT_TYPES: [Option<&str>; 5] = [
    Some("application/json"),
    Some("application/x-protobuf"),
    None,
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
];

const ENCODINGS: [Option<&str>; 5] = [
    None,
    Some("gzip"),
    Some("deflate"),
    Some("snappy"),
    Some("br"),
];

const LIMITS: DecodeLimits = DecodeLimits {
    max_decompressed_bytes: 1 << 20,
    max_items: 10_000,
};

fn compress(encoding: Option<&str>, data: &[u8]) -> Vec<u8> {
    match encoding {
        Some("gzip") => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Some("deflate") => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Some("snappy") => snappy(data),
        _ => data.to_vec(),
    }
}

fn snappy(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(data).unwrap()
}

fn items(request: &PushRequest) -> usize {
    request.streams.len()
        + request
            .streams
            .iter()
            .flat_map(|s| &s.entries)
            .map(|e| 1 + e.metadata.len())
            .sum::<usize>()
}

/// prost's reading of a message, in our types; `None` where prost refuses it
/// or a timestamp does not fit in nanoseconds.
fn prost_reading(message: &[u8]) -> Option<PushRequest> {
    let msg = messages::PushRequest::decode(message).ok()?;
    let mut request = PushRequest::default();
    for s in msg.streams {
        let mut entries = Vec::new();
        for e in s.entries {
            let ts = e.timestamp.unwrap_or_default();
            let nanos = ts
                .seconds
                .checked_mul(1_000_000_000)?
                .checked_add(i64::from(ts.nanos))?;
            entries.push(skald_model::Entry {
                ts: skald_model::Timestamp(nanos),
                line: e.line,
                metadata: e
                    .structured_metadata
                    .into_iter()
                    .map(|l| skald_model::Label::new(l.name, l.value))
                    .collect(),
            });
        }
        request.streams.push(skald_wire::PushStream {
            labels: skald_wire::StreamLabels::Selector(s.labels),
            entries,
        });
    }
    Some(request)
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector & 0x0f) % CONTENT_TYPES.len()];
    let encoding = ENCODINGS[usize::from(selector >> 4 & 0x07) % ENCODINGS.len()];
    let precompress = selector & 0x80 != 0;

    let body = if precompress {
        let is_protobuf = !matches!(content_type, Some(t) if t.starts_with("application/json"));
        let inner = if is_protobuf {
            snappy(data)
        } else {
            data.to_vec()
        };
        // With protobuf, a snappy Content-Encoding names the inner layer.
        if is_protobuf && encoding == Some("snappy") {
            inner
        } else {
            compress(encoding, &inner)
        }
    } else {
        data.to_vec()
    };

    let result = decode_push(content_type, encoding, &body, &LIMITS);
    match &result {
        Ok(request) => {
            assert!(items(request) <= LIMITS.max_items);
            for (i, stream) in request.streams.iter().enumerate() {
                let _ = stream.label_set(i);
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.kind(), e.is_too_large());
        }
    }

    // Differential: on a message prost accepts, we agree with it.
    let is_protobuf = matches!(content_type, Some("application/x-protobuf") | None);
    let known_encoding = encoding != Some("br");
    if precompress && is_protobuf && known_encoding && data.len() <= LIMITS.max_decompressed_bytes {
        if let Some(expected) = prost_reading(data) {
            match result {
                Ok(got) => assert_eq!(got, expected),
                Err(WireError::TooManyItems { .. }) => assert!(items(&expected) > LIMITS.max_items),
                Err(e) => panic!("prost accepts what we refuse: {e}"),
            }
        }
    }
});
