//! Query responses against golden files in `tests/golden/`, written by hand
//! from the shapes in Loki's API docs.

use skald_model::{Label, Timestamp};
use skald_wire::response::{
    DroppedEntry, ErrorResponse, ErrorType, IndexStatsResponse, LabelsResponse, LogStream,
    LogValue, MatrixSeries, QueryResponse, QueryResult, QueryStats, Sample, SeriesResponse,
    SummaryStats, TailResponse, VectorSample, to_vec,
};

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim_end()
        .to_string()
}

fn check(name: &str, json: Vec<u8>) {
    let got = String::from_utf8(json).unwrap();
    assert_eq!(got, golden(name), "{name}");
    // And it is JSON.
    serde_json::from_str::<serde_json::Value>(&got).unwrap();
}

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect()
}

fn log_response(categorize_labels: bool) -> QueryResponse {
    QueryResponse {
        result: QueryResult::Streams(vec![LogStream {
            labels: labels(&[("app", "api"), ("env", "prod")]),
            values: vec![
                LogValue {
                    structured_metadata: labels(&[("trace_id", "abc")]),
                    parsed: labels(&[("status", "500")]),
                    ..LogValue::new(
                        Timestamp(1_700_000_000_000_000_001),
                        "GET /x 500 \"quoted\"\ttab",
                    )
                },
                LogValue::new(Timestamp(-5), "before the epoch"),
            ],
        }]),
        stats: QueryStats {
            summary: SummaryStats {
                bytes_processed_per_second: 100,
                lines_processed_per_second: 2,
                total_bytes_processed: 50,
                total_lines_processed: 1,
                total_entries_returned: 2,
                exec_time: 0.5,
                queue_time: 0.0,
            },
            ..QueryStats::default()
        },
        categorize_labels,
    }
}

#[test]
fn streams() {
    check("streams.json", log_response(false).to_json());
}

#[test]
fn streams_categorized() {
    check("streams_categorized.json", log_response(true).to_json());
}

#[test]
fn to_json_and_serde_agree() {
    let response = log_response(true);
    assert_eq!(response.to_json(), serde_json::to_vec(&response).unwrap());
}

#[test]
fn vector() {
    let response = QueryResponse {
        result: QueryResult::Vector(vec![
            VectorSample {
                metric: vec![],
                sample: Sample {
                    ts: Timestamp(1_588_889_221_000_000_000),
                    value: 1267.1266666666666,
                },
            },
            VectorSample {
                metric: labels(&[("level", "warn")]),
                sample: Sample {
                    ts: Timestamp(1_588_889_221_500_999_999),
                    value: f64::NAN,
                },
            },
        ]),
        ..QueryResponse::default()
    };
    check("vector.json", response.to_json());
}

#[test]
fn matrix() {
    let response = QueryResponse {
        result: QueryResult::Matrix(vec![MatrixSeries {
            metric: labels(&[("level", "info")]),
            samples: vec![
                Sample {
                    ts: Timestamp(1_588_889_221_000_000_000),
                    value: 137.95,
                },
                Sample {
                    ts: Timestamp(1_588_889_221_123_000_000),
                    value: f64::INFINITY,
                },
                Sample {
                    ts: Timestamp(1_588_889_222_000_000_000),
                    value: -0.25,
                },
            ],
        }]),
        ..QueryResponse::default()
    };
    check("matrix.json", response.to_json());
}

#[test]
fn scalar() {
    let response = QueryResponse {
        result: QueryResult::Scalar(Sample {
            ts: Timestamp(1_588_889_221_000_000_000),
            value: 2.0,
        }),
        ..QueryResponse::default()
    };
    check("scalar.json", response.to_json());
}

#[test]
fn labels_and_values() {
    let response = LabelsResponse {
        data: vec!["app".into(), "env".into(), "job".into()],
    };
    check("labels.json", to_vec(&response, 64));
}

#[test]
fn series() {
    let response = SeriesResponse {
        data: vec![
            labels(&[("app", "api"), ("env", "prod")]),
            labels(&[("job", "cron")]),
        ],
    };
    check("series.json", to_vec(&response, 64));
}

#[test]
fn tail() {
    let response = TailResponse {
        streams: vec![LogStream {
            labels: labels(&[("app", "api")]),
            values: vec![LogValue::new(Timestamp(1_700_000_000_000_000_000), "hello")],
        }],
        dropped_entries: vec![DroppedEntry {
            labels: labels(&[("app", "api")]),
            ts: Timestamp(1_699_999_999_000_000_000),
        }],
        categorize_labels: false,
    };
    check("tail.json", to_vec(&response, 64));
}

#[test]
fn index_stats() {
    let response = IndexStatsResponse {
        streams: 1,
        chunks: 2,
        entries: 3,
        bytes: 4,
    };
    check("index_stats.json", to_vec(&response, 64));
}

#[test]
fn error() {
    let response = ErrorResponse {
        error_type: ErrorType::BadData,
        message: "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER".into(),
    };
    check("error.json", to_vec(&response, 64));
}

#[test]
fn large_responses_are_sized_up_front() {
    let values: Vec<LogValue> = (0..5000)
        .map(|i| LogValue::new(Timestamp(i), format!("line {i} {}", "x".repeat(100))))
        .collect();
    let response = QueryResponse {
        result: QueryResult::Streams(vec![LogStream {
            labels: labels(&[("app", "api")]),
            values,
        }]),
        ..QueryResponse::default()
    };
    let json = response.to_json();
    assert!(json.capacity() < json.len() * 2, "estimate is sane");
    let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        parsed["data"]["result"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        5000
    );
}
