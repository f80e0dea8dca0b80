//! Bodies from the network: Loki push requests and OTLP log requests.

use prost::Message;
use skald_model::Timestamp;
use skald_server::otlp::{self, Encoding, OtlpConfig};
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
            e.write_all(data).expect("writing to memory");
            e.finish().expect("writing to memory")
        }
        Some("deflate") => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("writing to memory");
            e.finish().expect("writing to memory")
        }
        Some("snappy") => snappy(data),
        _ => data.to_vec(),
    }
}

fn snappy(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("snappy compresses any input")
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

/// prost's reading of a message, in our types; `None` where prost refuses
/// it or a timestamp does not fit in nanoseconds.
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
                ts: Timestamp(nanos),
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

/// Arbitrary bytes to `decode_push` under every content type and
/// encoding: no panic, the item limit held, and the same result as prost
/// on every protobuf message prost accepts.
///
/// The first byte picks the headers: bits 0-3 the content type, bits 4-6
/// the encoding, bit 7 whether the check compresses the rest itself first
/// (so the JSON and protobuf parsers see the input's bytes, not only the
/// decompressors).
pub fn push_decode(input: &[u8]) {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector & 0x0f) % CONTENT_TYPES.len()];
    let encoding = ENCODINGS[usize::from(selector >> 4 & 0x07) % ENCODINGS.len()];
    let precompress = selector & 0x80 != 0;
    let is_protobuf = !matches!(content_type, Some(t) if t.starts_with("application/json"));

    let body = if precompress {
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
            assert!(items(request) <= LIMITS.max_items, "item limit not held");
            for (i, stream) in request.streams.iter().enumerate() {
                let _ = stream.label_set(i);
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.kind(), e.is_too_large());
        }
    }

    // Differential: on a message prost accepts, we agree with it.
    let is_loki_protobuf = matches!(content_type, Some("application/x-protobuf") | None);
    let known_encoding = encoding != Some("br");
    if precompress
        && is_loki_protobuf
        && known_encoding
        && data.len() <= LIMITS.max_decompressed_bytes
        && let Some(expected) = prost_reading(data)
    {
        match result {
            Ok(got) => assert_eq!(got, expected, "we read the message unlike prost"),
            Err(WireError::TooManyItems { .. }) => assert!(items(&expected) > LIMITS.max_items),
            Err(e) => panic!("prost accepts what we refuse: {e}"),
        }
    }
}

/// Arbitrary bytes as an OTLP/HTTP logs body (first byte: bit 0 picks
/// JSON or protobuf), through what the server does with one: the item
/// count check, the decoder, and the mapping of resources, scopes and
/// records to streams under the default rules. No panic; a request that
/// maps stores one entry per log record it holds.
pub fn otlp_decode(input: &[u8]) {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    let encoding = if selector & 1 == 0 {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    if otlp::check_items(encoding, body, LIMITS.max_items).is_err() {
        return;
    }
    let Ok(request) = otlp::decode(encoding, body) else {
        return;
    };
    let records: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    let rules = OtlpConfig::default()
        .rules()
        .expect("the default OTLP rules compile");
    if let Ok((batches, mapped)) = otlp::map_request(request, &rules, Timestamp(1)) {
        let entries: usize = batches.iter().map(|b| b.entries.len()).sum();
        assert_eq!(entries, records, "an OTLP record was lost or doubled");
        assert_eq!(mapped.records, records as u64);
    }
}
