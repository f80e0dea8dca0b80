//! Push decoding: golden bodies in every format and encoding, round trips,
//! and one test per kind of malformed or oversized input.

use flate2::Compression;
use proptest::prelude::*;
use prost::Message;
use skald_model::{Entry, Label, LabelSet, Timestamp};
use skald_wire::push::proto::messages;
use skald_wire::{
    DecodeLimits, PushRequest, PushStream, StreamLabels, WireError, WireErrorKind, decode_push,
};
use std::io::Write;

const JSON: Option<&str> = Some("application/json");
const PROTOBUF: Option<&str> = Some("application/x-protobuf");

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn snappy(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(data).unwrap()
}

fn snappy_framed(data: &[u8]) -> Vec<u8> {
    let mut e = snap::write::FrameEncoder::new(Vec::new());
    e.write_all(data).unwrap();
    e.into_inner().unwrap()
}

fn proto_body(request: &PushRequest) -> Vec<u8> {
    snappy(&messages::PushRequest::from(request).encode_to_vec())
}

const GOLDEN_JSON: &str = r#"{
  "streams": [
    {"stream": {"app": "api", "env": "prod"},
     "values": [["1700000000000000000", "GET /health 200"],
                ["1700000000000000001", "GET /x 500", {"trace_id": "abc", "user": "u1"}]]},
    {"stream": {"job": "cron"}, "values": [["-5", "before the epoch", null]]},
    {"stream": {"job": "empty"}, "values": []}
  ]
}"#;

fn golden_request(labels: impl Fn(&[(&str, &str)]) -> StreamLabels) -> PushRequest {
    PushRequest {
        streams: vec![
            PushStream {
                labels: labels(&[("app", "api"), ("env", "prod")]),
                entries: vec![
                    Entry::new(Timestamp(1_700_000_000_000_000_000), "GET /health 200"),
                    Entry {
                        ts: Timestamp(1_700_000_000_000_000_001),
                        line: "GET /x 500".into(),
                        metadata: vec![Label::new("trace_id", "abc"), Label::new("user", "u1")],
                    },
                ],
            },
            PushStream {
                labels: labels(&[("job", "cron")]),
                entries: vec![Entry::new(Timestamp(-5), "before the epoch")],
            },
            PushStream {
                labels: labels(&[("job", "empty")]),
                entries: vec![],
            },
        ],
    }
}

fn pairs(pairs: &[(&str, &str)]) -> StreamLabels {
    StreamLabels::Pairs(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect())
}

fn selector(pairs: &[(&str, &str)]) -> StreamLabels {
    let inner: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    StreamLabels::Selector(format!("{{{}}}", inner.join(", ")))
}

#[test]
fn json_golden_in_every_encoding() {
    let body = GOLDEN_JSON.as_bytes();
    let expected = golden_request(pairs);
    let cases: [(Option<&str>, Vec<u8>); 8] = [
        (None, body.to_vec()),
        (Some("identity"), body.to_vec()),
        (Some("gzip"), gzip(body)),
        (Some("GZIP"), gzip(body)),
        (Some("deflate"), zlib(body)),
        (Some("deflate"), raw_deflate(body)),
        (Some("snappy"), snappy(body)),
        (Some("snappy"), snappy_framed(body)),
    ];
    for (encoding, encoded) in cases {
        let got = decode_push(JSON, encoding, &encoded, &limits());
        assert_eq!(got.as_ref(), Ok(&expected), "encoding {encoding:?}");
    }
}

#[test]
fn gzip_members_are_concatenated() {
    let (first, second) = GOLDEN_JSON.split_at(40);
    let mut body = gzip(first.as_bytes());
    body.extend(gzip(second.as_bytes()));
    let got = decode_push(JSON, Some("gzip"), &body, &limits()).unwrap();
    assert_eq!(got, golden_request(pairs));
}

#[test]
fn json_content_type_parameters_and_case_are_ignored() {
    let got = decode_push(
        Some("Application/JSON; charset=utf-8"),
        None,
        GOLDEN_JSON.as_bytes(),
        &limits(),
    );
    assert_eq!(got, Ok(golden_request(pairs)));
}

#[test]
fn json_ignores_unknown_keys_and_accepts_empty_bodies() {
    let body = br#"{"extra": [1, {"a": 2}], "streams": [{"labels": "x", "stream": {"a": "b"}, "values": [["1", "l"]], "more": null}]}"#;
    let got = decode_push(JSON, None, body, &limits()).unwrap();
    assert_eq!(got.streams[0].entries, vec![Entry::new(Timestamp(1), "l")]);
    assert_eq!(
        decode_push(JSON, None, b"{}", &limits()),
        Ok(PushRequest::default())
    );
    assert_eq!(
        decode_push(JSON, None, br#"{"streams": null}"#, &limits()),
        Ok(PushRequest::default())
    );
}

#[test]
fn json_unescapes_lines_and_labels() {
    let body = br#"{"streams":[{"stream":{"a":"q\"uote"},"values":[["1","tab\there \u00e9 \ud83d\ude00"]]}]}"#;
    let got = decode_push(JSON, None, body, &limits()).unwrap();
    assert_eq!(got.streams[0].labels, pairs(&[("a", "q\"uote")]));
    assert_eq!(got.streams[0].entries[0].line, "tab\there é 😀");
}

#[test]
fn protobuf_golden_with_every_header_combination() {
    let expected = golden_request(selector);
    let message = messages::PushRequest::from(&expected).encode_to_vec();
    let body = snappy(&message);
    let cases: [(Option<&str>, Option<&str>, Vec<u8>); 7] = [
        (PROTOBUF, None, body.clone()),
        (None, None, body.clone()),
        (Some(""), None, body.clone()),
        (Some("application/x-protobuf; foo=bar"), None, body.clone()),
        // tracing-loki names the snappy layer in Content-Encoding.
        (PROTOBUF, Some("snappy"), body.clone()),
        (PROTOBUF, Some("gzip"), gzip(&body)),
        (PROTOBUF, Some("deflate"), zlib(&body)),
    ];
    for (content_type, encoding, encoded) in cases {
        let got = decode_push(content_type, encoding, &encoded, &limits());
        assert_eq!(got.as_ref(), Ok(&expected), "{content_type:?} {encoding:?}");
    }
}

#[test]
fn protobuf_reads_loki_field_numbers() {
    // Hand-assembled bytes, independent of the prost structs: one stream
    // (field 1) with labels (1), one entry (2) with timestamp (1: seconds 1,
    // nanos 2), line (2) "hi", one metadata pair (3) a=b, a parsed pair (4)
    // that push ignores, and the stream hash (3).
    let pair = [0x0a, 0x01, b'a', 0x12, 0x01, b'b'];
    let mut entry = vec![0x0a, 0x04, 0x08, 0x01, 0x10, 0x02, 0x12, 0x02, b'h', b'i'];
    entry.extend([0x1a, pair.len() as u8]);
    entry.extend(pair);
    entry.extend([0x22, pair.len() as u8]);
    entry.extend(pair);
    let labels = br#"{a="1"}"#;
    let mut stream = vec![0x0a, labels.len() as u8];
    stream.extend(labels);
    stream.extend([0x12, entry.len() as u8]);
    stream.extend(&entry);
    stream.extend([0x18, 0x2a]);
    let mut message = vec![0x0a, stream.len() as u8];
    message.extend(&stream);
    // PushRequest.format = "loki" (field 2), ignored.
    message.extend([0x12, 0x04, b'l', b'o', b'k', b'i']);

    let got = decode_push(PROTOBUF, None, &snappy(&message), &limits()).unwrap();
    let expected = PushRequest {
        streams: vec![PushStream {
            labels: StreamLabels::Selector(r#"{a="1"}"#.into()),
            entries: vec![Entry {
                ts: Timestamp(1_000_000_002),
                line: "hi".into(),
                metadata: vec![Label::new("a", "b")],
            }],
        }],
    };
    assert_eq!(got, expected);
}

#[test]
fn label_helpers_validate_and_name_the_stream() {
    let request = golden_request(pairs);
    let ls = request.streams[0].label_set(0).unwrap();
    assert_eq!(ls, LabelSet::parse(r#"{app="api", env="prod"}"#).unwrap());
    let sel = golden_request(selector);
    assert_eq!(sel.streams[0].label_set(0).unwrap(), ls);
    assert_eq!(
        sel.streams[0].labels.to_string(),
        r#"{app="api", env="prod"}"#
    );

    let body = br#"{"streams":[{"stream":{"a":"1"},"values":[]},{"stream":{"a":"1","a":"2"},"values":[]}]}"#;
    let bad = decode_push(JSON, None, body, &limits()).unwrap();
    let err = bad.streams[1].label_set(1).unwrap_err();
    assert_eq!(err.to_string(), r#"stream 1: duplicate label name "a""#);
    let err = StreamLabels::Pairs(vec![]).into_label_set().unwrap_err();
    assert_eq!(err, skald_model::ModelError::EmptyLabelSet);
}

// --- errors -------------------------------------------------------------

fn json_error(body: &str) -> WireError {
    decode_push(JSON, None, body.as_bytes(), &limits()).unwrap_err()
}

fn stream_with_entries(entries: &str) -> String {
    format!(
        r#"{{"streams":[{{"stream":{{"a":"1"}},"values":[]}},{{"stream":{{"a":"1"}},"values":[]}},{{"stream":{{"a":"2"}},"values":[["1","a"],["2","b"],["3","c"],["4","d"],["5","e"],{entries}]}}]}}"#
    )
}

#[test]
fn json_entry_errors_name_stream_and_entry() {
    let cases = [
        (
            r#"["abc", "line"]"#,
            r#"stream 2 entry 5: timestamp "abc" is not an integer number of nanoseconds"#,
        ),
        (
            r#"["1.5", "line"]"#,
            r#"stream 2 entry 5: timestamp "1.5" is not an integer number of nanoseconds"#,
        ),
        (
            r#"["99999999999999999999", "line"]"#,
            r#"stream 2 entry 5: timestamp "99999999999999999999" is not an integer number of nanoseconds"#,
        ),
        (
            r#"[1700000000000000000, "line"]"#,
            r#"stream 2 entry 5: timestamp 1700000000000000000 must be a string of unix nanoseconds, like "1700000000000000000", not a json number"#,
        ),
        (
            r#"[null, "line"]"#,
            "stream 2 entry 5: timestamp must be a string of unix nanoseconds, not null",
        ),
        (
            r#"["1"]"#,
            r#"stream 2 entry 5: expected ["<unix ns>", "<line>"], got fewer elements"#,
        ),
        (
            r#"[]"#,
            r#"stream 2 entry 5: expected ["<unix ns>", "<line>"], got fewer elements"#,
        ),
        (
            r#"["1", "a", {}, "extra"]"#,
            "stream 2 entry 5: expected at most 3 elements: timestamp, line, metadata",
        ),
    ];
    for (entry, message) in cases {
        let err = json_error(&stream_with_entries(entry));
        assert!(
            matches!(
                err,
                WireError::Entry {
                    stream: 2,
                    entry: 5,
                    ..
                }
            ),
            "{entry}: {err:?}"
        );
        assert_eq!(err.kind(), WireErrorKind::Malformed);
        assert_eq!(err.to_string(), message, "{entry}");
    }
}

#[test]
fn json_type_errors_name_stream_and_entry() {
    let cases = [
        (r#"["1", 5]"#, "stream 2 entry 5: line must be a string"),
        (
            r#"["1", "a", {"k": 1}]"#,
            "stream 2 entry 5: structured metadata must be an object of strings",
        ),
        (
            r#"["1", "a", ["k"]]"#,
            "stream 2 entry 5: structured metadata must be an object of strings",
        ),
        (
            r#"{"ts": "1", "line": "a"}"#,
            r#"stream 2 entry 5: expected ["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {metadata}]"#,
        ),
    ];
    for (entry, prefix) in cases {
        let err = json_error(&stream_with_entries(entry));
        assert!(
            matches!(
                err,
                WireError::Entry {
                    stream: 2,
                    entry: 5,
                    ..
                }
            ),
            "{entry}: {err:?}"
        );
        assert!(err.to_string().starts_with(prefix), "{entry}: {err}");
    }
}

#[test]
fn json_stream_errors_name_the_stream() {
    let err = json_error(r#"{"streams":[{"stream":{"a":"1"}},{"stream":{"a":1}}]}"#);
    assert!(
        matches!(err, WireError::Stream { stream: 1, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(r#"stream 1: "stream" must be an object of string label values"#),
        "{err}"
    );
    let err = json_error(r#"{"streams":[{"stream":{"a":"1"}}, "nope"]}"#);
    assert!(
        matches!(err, WireError::Stream { stream: 1, .. }),
        "{err:?}"
    );
    let err = json_error(r#"{"streams":[{"stream":{"a":"1"},"values":{"x":1}}]}"#);
    assert!(
        matches!(err, WireError::Stream { stream: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn json_syntax_errors_give_the_position() {
    for body in [
        r#"{"streams":[{"stream":{"a":"1"},"values":[["1","x"]]}"#,
        r#"{"streams":[{"stream":{"a":"1"},"values":[["1","x"]]}]} trailing"#,
        "",
        "not json",
        r#"{"streams":[{"stream":{"a":"1"},"values":[["1","x"#,
    ] {
        let err = json_error(body);
        assert!(matches!(err, WireError::Json { .. }), "{body}: {err:?}");
        assert!(err.to_string().contains("line 1 column"), "{body}: {err}");
    }
    let err = json_error(r#"[1, 2]"#);
    assert!(matches!(err, WireError::Json { .. }), "{err:?}");
    let err = json_error(r#"{"streams": 5}"#);
    assert!(matches!(err, WireError::Json { .. }), "{err:?}");
}

#[test]
fn json_invalid_utf8_is_replaced_as_in_protobuf() {
    // Loki's rule, the same on both paths: the bad bytes become U+FFFD
    // and the push is accepted.
    let body = b"{\"streams\":[{\"stream\":{\"a\":\"1\xfe\"},\"values\":[[\"1\",\"\xff\"]]}]}";
    let req = decode_push(JSON, None, body, &limits()).unwrap();
    assert_eq!(req.streams[0].entries[0].line, "\u{fffd}");
    let labels = req.streams[0].labels.to_label_set().unwrap();
    assert_eq!(labels.get("a"), Some("1\u{fffd}"));
}

#[test]
fn unsupported_headers() {
    let err = decode_push(Some("text/plain"), None, b"", &limits()).unwrap_err();
    assert_eq!(err.kind(), WireErrorKind::Unsupported);
    assert_eq!(
        err.to_string(),
        r#"unsupported content type "text/plain": expected application/json or application/x-protobuf"#
    );
    let err = decode_push(JSON, Some("br"), b"{}", &limits()).unwrap_err();
    assert_eq!(err.kind(), WireErrorKind::Unsupported);
    assert_eq!(
        err.to_string(),
        r#"unsupported content encoding "br": expected gzip, deflate, snappy or none"#
    );
    let err = decode_push(JSON, Some("gzip, snappy"), b"{}", &limits()).unwrap_err();
    assert_eq!(err.kind(), WireErrorKind::Unsupported);
}

#[test]
fn corrupt_compression_is_malformed() {
    let cases: [(Option<&str>, Option<&str>, &[u8]); 6] = [
        (JSON, Some("gzip"), b"not gzip at all"),
        (JSON, Some("deflate"), b"\xff\xff\xff"),
        (JSON, Some("snappy"), b"\xff\xff\xff\xff\xff\xff"),
        (
            JSON,
            Some("snappy"),
            b"\xff\x06\x00\x00sNaPpY\x00\x05\x00\x00garbage",
        ),
        (PROTOBUF, None, b"\x0a\x0a\x0a\x0a"),
        (PROTOBUF, Some("gzip"), b"\x1f\x8b\x08"),
    ];
    for (content_type, encoding, body) in cases {
        let err = decode_push(content_type, encoding, body, &limits()).unwrap_err();
        assert_eq!(err.kind(), WireErrorKind::Malformed, "{encoding:?}: {err}");
        assert!(matches!(err, WireError::Decompress { .. }), "{err:?}");
    }
}

#[test]
fn uncompressed_protobuf_is_refused_as_corrupt_snappy() {
    let message = messages::PushRequest::from(&golden_request(selector)).encode_to_vec();
    let err = decode_push(PROTOBUF, None, &message, &limits()).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::Decompress {
                encoding: "snappy",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn malformed_protobuf_names_what_it_can() {
    let request = golden_request(selector);
    let message = messages::PushRequest::from(&request).encode_to_vec();

    let truncated = &message[..message.len() - 3];
    let err = decode_push(PROTOBUF, None, &snappy(truncated), &limits()).unwrap_err();
    assert!(matches!(err, WireError::Protobuf { .. }), "{err:?}");

    // streams (field 1) sent as a varint.
    let err = decode_push(PROTOBUF, None, &snappy(&[0x08, 0x01]), &limits()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid protobuf push body: field streams has wire type 0, expected 2"
    );

    // Stream 1's entry 0 has a timestamp past the year 2262.
    let mut msg = messages::PushRequest::from(&request);
    msg.streams[1].entries[0].timestamp = Some(messages::Timestamp {
        seconds: i64::MAX / 1000,
        nanos: 0,
    });
    let err = decode_push(PROTOBUF, None, &snappy(&msg.encode_to_vec()), &limits()).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::Entry {
                stream: 1,
                entry: 0,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("outside the years 1678 to 2262"),
        "{err}"
    );

    // Field number zero inside stream 0.
    let mut bytes = vec![0x0a, 0x02, 0x00, 0x00];
    bytes.extend_from_slice(&message);
    let err = decode_push(PROTOBUF, None, &snappy(&bytes), &limits()).unwrap_err();
    assert!(
        matches!(err, WireError::Stream { stream: 0, .. }),
        "{err:?}"
    );
}

// --- size limits -----------------------------------------------------------

fn small(max: usize) -> DecodeLimits {
    DecodeLimits {
        max_decompressed_bytes: max,
        ..DecodeLimits::default()
    }
}

#[test]
fn zip_bombs_stop_at_the_limit() {
    let bomb = vec![b' '; 64 << 20];
    let limits = small(1 << 20);
    let cases: [(Option<&str>, Vec<u8>); 4] = [
        (Some("gzip"), gzip(&bomb)),
        (Some("deflate"), zlib(&bomb)),
        (Some("deflate"), raw_deflate(&bomb)),
        (Some("snappy"), snappy_framed(&bomb)),
    ];
    for (encoding, body) in cases {
        assert!(body.len() < 4 << 20, "{encoding:?} compresses");
        let err = decode_push(JSON, encoding, &body, &limits).unwrap_err();
        assert_eq!(err, WireError::TooLarge { limit: 1 << 20 }, "{encoding:?}");
        assert!(err.is_too_large());
        assert_eq!(err.kind(), WireErrorKind::TooLarge);
    }
}

#[test]
fn snappy_declared_length_is_checked_before_allocating() {
    // A snappy block starts with its decompressed length as a varint; this
    // one claims 4 GiB and holds nothing.
    let mut body = Vec::new();
    prost::encoding::encode_varint(2 << 30, &mut body);
    body.extend([0x00; 4]);
    let err = decode_push(PROTOBUF, None, &body, &small(1 << 20)).unwrap_err();
    assert_eq!(err, WireError::TooLarge { limit: 1 << 20 });
}

#[test]
fn limit_is_inclusive_and_applies_to_every_layer() {
    let body = GOLDEN_JSON.as_bytes();
    assert!(decode_push(JSON, None, body, &small(body.len())).is_ok());
    let err = decode_push(JSON, None, body, &small(body.len() - 1)).unwrap_err();
    assert!(err.is_too_large());
    assert!(decode_push(JSON, Some("gzip"), &gzip(body), &small(body.len())).is_ok());
    let err = decode_push(JSON, Some("gzip"), &gzip(body), &small(body.len() - 1)).unwrap_err();
    assert!(err.is_too_large());

    // Protobuf: the inner snappy layer counts too.
    let message = messages::PushRequest::from(&golden_request(selector)).encode_to_vec();
    let inner = snappy(&message);
    let outer = gzip(&inner);
    assert!(decode_push(PROTOBUF, Some("gzip"), &outer, &small(message.len())).is_ok());
    let err = decode_push(PROTOBUF, Some("gzip"), &outer, &small(message.len() - 1)).unwrap_err();
    assert!(err.is_too_large());
}

#[test]
fn item_limit_bounds_memory_amplification() {
    // 100k empty entries: 2 bytes each on the wire, ~56 bytes each decoded.
    let mut stream = vec![0x0a, 0x03, b'{', b'}', b' '];
    for _ in 0..100_000 {
        stream.extend([0x12, 0x00]);
    }
    let mut message = vec![0x0a];
    prost::encoding::encode_varint(stream.len() as u64, &mut message);
    message.extend(&stream);
    let body = snappy(&message);
    let tight = DecodeLimits {
        max_items: 50_000,
        ..DecodeLimits::default()
    };
    let err = decode_push(PROTOBUF, None, &body, &tight).unwrap_err();
    assert_eq!(err, WireError::TooManyItems { limit: 50_000 });
    assert!(err.is_too_large());
    let loose = DecodeLimits {
        max_items: 100_001,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode_push(PROTOBUF, None, &body, &loose)
            .unwrap()
            .entry_count(),
        100_000
    );

    // JSON counts streams, entries and metadata pairs the same way.
    let tiny = DecodeLimits {
        max_items: 4,
        ..DecodeLimits::default()
    };
    let err = decode_push(JSON, None, GOLDEN_JSON.as_bytes(), &tiny).unwrap_err();
    assert_eq!(err, WireError::TooManyItems { limit: 4 });
    let exact = DecodeLimits {
        max_items: 8,
        ..DecodeLimits::default()
    };
    assert!(decode_push(JSON, None, GOLDEN_JSON.as_bytes(), &exact).is_ok());
}

// --- round trips -----------------------------------------------------------

fn arb_labels() -> impl Strategy<Value = Vec<Label>> {
    proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,6}", "\\PC{0,8}", 1..4)
        .prop_map(|m| m.into_iter().map(|(n, v)| Label::new(n, v)).collect())
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    (
        any::<i64>(),
        "\\PC{0,40}",
        proptest::collection::vec(("[a-z_]{1,6}", "\\PC{0,8}"), 0..3),
    )
        .prop_map(|(ts, line, metadata)| Entry {
            ts: Timestamp(ts),
            line,
            metadata: metadata
                .into_iter()
                .map(|(n, v)| Label::new(n, v))
                .collect(),
        })
}

fn arb_request() -> impl Strategy<Value = Vec<(Vec<Label>, Vec<Entry>)>> {
    proptest::collection::vec(
        (arb_labels(), proptest::collection::vec(arb_entry(), 0..6)),
        0..4,
    )
}

fn json_body(streams: &[(Vec<Label>, Vec<Entry>)]) -> Vec<u8> {
    use serde_json::{Map, Value, json};
    let streams: Vec<Value> = streams
        .iter()
        .map(|(labels, entries)| {
            let stream: Map<String, Value> = labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone().into()))
                .collect();
            let values: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let mut v = vec![Value::from(e.ts.0.to_string()), e.line.clone().into()];
                    if !e.metadata.is_empty() {
                        v.push(Value::Object(
                            e.metadata
                                .iter()
                                .map(|l| (l.name.clone(), l.value.clone().into()))
                                .collect(),
                        ));
                    }
                    Value::Array(v)
                })
                .collect();
            json!({"stream": stream, "values": values})
        })
        .collect();
    serde_json::to_vec(&json!({ "streams": streams })).unwrap()
}

proptest! {
    #[test]
    fn protobuf_round_trip(streams in arb_request()) {
        let request = PushRequest {
            streams: streams
                .into_iter()
                .map(|(labels, entries)| PushStream {
                    labels: StreamLabels::Selector(LabelSet::new(labels).unwrap().to_string()),
                    entries,
                })
                .collect(),
        };
        let body = proto_body(&request);
        prop_assert_eq!(decode_push(PROTOBUF, None, &body, &limits()).unwrap(), request.clone());
        prop_assert_eq!(decode_push(PROTOBUF, Some("gzip"), &gzip(&body), &limits()).unwrap(), request);
    }

    #[test]
    fn json_round_trip(streams in arb_request()) {
        // Metadata names may repeat in the generated entries; a JSON object
        // keeps them all, in order, and so do we.
        let body = json_body(&streams);
        let got = decode_push(JSON, Some("snappy"), &snappy(&body), &limits()).unwrap();
        let expected = PushRequest {
            streams: streams
                .into_iter()
                .map(|(labels, entries)| PushStream {
                    labels: StreamLabels::Pairs(labels),
                    entries: entries
                        .into_iter()
                        .map(|mut e| {
                            // serde_json's Map (a BTreeMap) dedups and sorts.
                            let mut seen = std::collections::BTreeMap::new();
                            for l in e.metadata.drain(..) {
                                seen.insert(l.name, l.value);
                            }
                            e.metadata = seen.into_iter().map(|(n, v)| Label::new(n, v)).collect();
                            e
                        })
                        .collect(),
                })
                .collect(),
        };
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn json_and_protobuf_agree(streams in arb_request()) {
        let json = decode_push(JSON, None, &json_body(&streams), &limits()).unwrap();
        let proto = decode_push(PROTOBUF, None, &proto_body(&json), &limits()).unwrap();
        prop_assert_eq!(json.streams.len(), proto.streams.len());
        for (j, p) in json.streams.iter().zip(&proto.streams) {
            prop_assert_eq!(j.labels.to_label_set().unwrap(), p.labels.to_label_set().unwrap());
            prop_assert_eq!(&j.entries, &p.entries);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        content_type in prop_oneof![Just(None), Just(JSON), Just(PROTOBUF)],
        encoding in prop_oneof![Just(None), Just(Some("gzip")), Just(Some("deflate")), Just(Some("snappy"))],
    ) {
        let _ = decode_push(content_type, encoding, &body, &small(1 << 16));
        let _ = decode_push(content_type, None, &snappy(&body), &small(1 << 16));
        let _ = skald_wire::push::proto::decode(&body, &limits());
    }
}

#[test]
fn snappy_lengths_past_what_snap_supports_are_too_large() {
    let mut body = Vec::new();
    prost::encoding::encode_varint(4 << 30, &mut body);
    body.extend([0x00; 4]);
    let err = decode_push(PROTOBUF, None, &body, &limits()).unwrap_err();
    assert!(err.is_too_large(), "{err:?}");
}
