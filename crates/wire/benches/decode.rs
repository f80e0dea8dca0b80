//! Decode and encode throughput on a realistic push: about 1 MiB of
//! access-log lines in 8 streams, a quarter of them with structured
//! metadata, as promtail or Alloy batch them.
//!
//! Run with `cargo bench -p skald-wire --bench decode`. Plain `Instant`
//! timing, best of several rounds: the numbers are for comparing decoders
//! on one machine, not for publishing.

use prost::Message;
use skald_model::{Entry, Label, Timestamp};
use skald_wire::push::proto::messages;
use skald_wire::response::{LogStream, LogValue, QueryResponse, QueryResult};
use skald_wire::{DecodeLimits, PushRequest, PushStream, StreamLabels, decode_push};
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

fn realistic_request() -> PushRequest {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut streams: Vec<PushStream> = (0..8)
        .map(|i| PushStream {
            labels: StreamLabels::Selector(format!(
                r#"{{app="shop", env="prod", namespace="web", pod="frontend-7d9f{i}", container="nginx"}}"#
            )),
            entries: Vec::new(),
        })
        .collect();
    let mut bytes = 0;
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut i = 0usize;
    while bytes < 1 << 20 {
        let r = next();
        let line = format!(
            r#"10.{}.{}.{} - - [14/Nov/2023:22:13:20 +0000] "GET /api/v1/items/{}?page={} HTTP/1.1" {} {} "-" "Mozilla/5.0 (X11; Linux x86_64) Firefox/119.0" rt=0.{:03}"#,
            r % 256,
            (r >> 8) % 256,
            (r >> 16) % 256,
            r % 100_000,
            (r >> 24) % 50,
            [200, 200, 200, 404, 500][(r >> 32) as usize % 5],
            (r >> 36) % 20_000,
            (r >> 50) % 1000
        );
        bytes += line.len();
        ts += 1_000_000;
        let metadata = if i.is_multiple_of(4) {
            vec![Label::new(
                "trace_id",
                format!("{:032x}", u128::from(r) * 31),
            )]
        } else {
            Vec::new()
        };
        streams[i % 8].entries.push(Entry {
            ts: Timestamp(ts),
            line,
            metadata,
        });
        i += 1;
    }
    PushRequest { streams }
}

fn to_json(request: &PushRequest) -> Vec<u8> {
    let streams: Vec<serde_json::Value> = request
        .streams
        .iter()
        .map(|s| {
            let labels = skald_model::LabelSet::parse(&s.labels.to_string()).unwrap();
            let stream: serde_json::Map<String, serde_json::Value> = labels
                .labels()
                .iter()
                .map(|l| (l.name.clone(), l.value.clone().into()))
                .collect();
            let values: Vec<serde_json::Value> = s
                .entries
                .iter()
                .map(|e| {
                    let mut v: Vec<serde_json::Value> =
                        vec![e.ts.0.to_string().into(), e.line.clone().into()];
                    if !e.metadata.is_empty() {
                        let m: serde_json::Map<String, serde_json::Value> = e
                            .metadata
                            .iter()
                            .map(|l| (l.name.clone(), l.value.clone().into()))
                            .collect();
                        v.push(m.into());
                    }
                    v.into()
                })
                .collect();
            serde_json::json!({"stream": stream, "values": values})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "streams": streams })).unwrap()
}

/// The prost route, for comparison: decode into prost's structs, then move
/// into ours.
fn decode_with_prost(body: &[u8]) -> PushRequest {
    let plain = snap::raw::Decoder::new().decompress_vec(body).unwrap();
    let msg = messages::PushRequest::decode(plain.as_slice()).unwrap();
    PushRequest {
        streams: msg
            .streams
            .into_iter()
            .map(|s| PushStream {
                labels: StreamLabels::Selector(s.labels),
                entries: s
                    .entries
                    .into_iter()
                    .map(|e| {
                        let ts = e.timestamp.unwrap_or_default();
                        Entry {
                            ts: Timestamp(ts.seconds * 1_000_000_000 + i64::from(ts.nanos)),
                            line: e.line,
                            metadata: e
                                .structured_metadata
                                .into_iter()
                                .map(|l| Label {
                                    name: l.name,
                                    value: l.value,
                                })
                                .collect(),
                        }
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn best_of(rounds: usize, mut f: impl FnMut()) -> Duration {
    f();
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn report(name: &str, elapsed: Duration, lines: usize, bytes: usize) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{name:<34} {:>8.2} ms  {:>6.2} M lines/s  {:>7.1} MiB/s of body",
        secs * 1e3,
        lines as f64 / secs / 1e6,
        bytes as f64 / secs / (1 << 20) as f64
    );
}

fn main() {
    let request = realistic_request();
    let lines = request.entry_count();
    let line_bytes: usize = request
        .streams
        .iter()
        .flat_map(|s| &s.entries)
        .map(|e| e.line.len())
        .sum();
    let proto = messages::PushRequest::from(&request).encode_to_vec();
    let snappy = snap::raw::Encoder::new().compress_vec(&proto).unwrap();
    let json = to_json(&request);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).unwrap();
    let json_gz = gz.finish().unwrap();
    println!(
        "{lines} lines, {line_bytes} line bytes; protobuf {} B, snappy {} B, json {} B, json.gz {} B",
        proto.len(),
        snappy.len(),
        json.len(),
        json_gz.len()
    );
    let limits = DecodeLimits::default();
    let rounds = 30;

    let t = best_of(rounds, || {
        black_box(snap::raw::Decoder::new().decompress_vec(&snappy).unwrap());
    });
    report("snappy alone", t, lines, snappy.len());

    let t = best_of(rounds, || {
        black_box(skald_wire::push::proto::decode(&proto, &limits).unwrap());
    });
    report("protobuf decode (hand-written)", t, lines, proto.len());

    let t = best_of(rounds, || {
        black_box(decode_push(Some("application/x-protobuf"), None, &snappy, &limits).unwrap());
    });
    report("decode_push protobuf+snappy", t, lines, snappy.len());

    let t = best_of(rounds, || {
        black_box(decode_with_prost(&snappy));
    });
    report("prost decode + convert (+snappy)", t, lines, snappy.len());
    assert_eq!(
        decode_with_prost(&snappy),
        decode_push(None, None, &snappy, &limits).unwrap()
    );

    let t = best_of(rounds, || {
        black_box(decode_push(Some("application/json"), None, &json, &limits).unwrap());
    });
    report("decode_push json", t, lines, json.len());

    let t = best_of(rounds, || {
        black_box(decode_push(Some("application/json"), Some("gzip"), &json_gz, &limits).unwrap());
    });
    report("decode_push json+gzip", t, lines, json_gz.len());

    for categorize in [false, true] {
        let response = QueryResponse {
            result: QueryResult::Streams(
                request
                    .streams
                    .iter()
                    .map(|s| LogStream {
                        labels: skald_model::LabelSet::parse(&s.labels.to_string())
                            .unwrap()
                            .into_labels(),
                        values: s
                            .entries
                            .iter()
                            .take(625)
                            .map(|e| LogValue {
                                structured_metadata: e.metadata.clone(),
                                ..LogValue::new(e.ts, e.line.clone())
                            })
                            .collect(),
                    })
                    .collect(),
            ),
            categorize_labels: categorize,
            ..QueryResponse::default()
        };
        let size = response.to_json().len();
        let t = best_of(rounds, || {
            black_box(response.to_json());
        });
        let name = format!("response 5000 lines (categorize={categorize})");
        report(&name, t, 5000, size);
    }
}
