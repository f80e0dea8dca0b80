//! JSON bodies of Loki's query endpoints, as `serde::Serialize` types.
//!
//! | endpoint | type | shape |
//! |---|---|---|
//! | `query`, `query_range` | [`QueryResponse`] | `{"status":"success","data":{"resultType":..,"result":[..],"stats":{..}}}` |
//! | `labels`, `label/<name>/values` | [`LabelsResponse`] | `{"status":"success","data":["a","b"]}` |
//! | `series` | [`SeriesResponse`] | `{"status":"success","data":[{"app":"x"}]}` |
//! | `index/stats` | [`IndexStatsResponse`] | `{"streams":1,"chunks":2,"entries":3,"bytes":4}` |
//! | `tail` (per message) | [`TailResponse`] | `{"streams":[..],"dropped_entries":[..]}` |
//! | errors | [`ErrorResponse`] | plain text, or Prometheus-style JSON |
//!
//! Log lines are `[["<unix ns as string>", "<line>"], ...]`. With Loki 3's
//! `categorize-labels` encoding (asked for by Grafana with the
//! `X-Loki-Response-Encoding-Flags: categorize-labels` header) each value
//! gets a third element, `{"structuredMetadata": {..}, "parsed": {..}}`
//! (each key left out when empty, `{}` when both are), and `data` carries
//! `"encodingFlags": ["categorize-labels"]`. Without the flag only the two
//! elements are written: the query layer must then fold structured metadata
//! and parsed labels into the stream labels, as Loki does.
//!
//! Label lists are written in the order given, so pass them sorted by name
//! (a `LabelSet` is) to match Loki, whose Go maps serialise sorted.
//!
//! Serialisation is hand-written where it is hot: timestamps are formatted
//! into a stack buffer and label lists are written as maps straight from
//! slices, so writing a 5000-line response allocates only its output
//! buffer (see `benches/decode.rs`).
//!
//! Not here: choosing the HTTP status or content type, or reading the
//! encoding-flags header; that is the server's.

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct, Serializer};
use skald_model::{Label, Timestamp};

/// The body of `/loki/api/v1/query` and `/loki/api/v1/query_range`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryResponse {
    pub result: QueryResult,
    pub stats: QueryStats,
    /// Write log values in Loki 3's `categorize-labels` shape.
    pub categorize_labels: bool,
}

/// What a query returns: log streams, or one of Prometheus' metric shapes.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    Streams(Vec<LogStream>),
    Vector(Vec<VectorSample>),
    Matrix(Vec<MatrixSeries>),
    Scalar(Sample),
}

impl Default for QueryResult {
    fn default() -> Self {
        QueryResult::Streams(Vec::new())
    }
}

/// One stream of a log query result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogStream {
    pub labels: Vec<Label>,
    pub values: Vec<LogValue>,
}

/// One log line of a result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogValue {
    pub ts: Timestamp,
    pub line: String,
    /// Written only with `categorize_labels`.
    pub structured_metadata: Vec<Label>,
    /// Labels extracted at query time (`| json`, `| logfmt`); written only
    /// with `categorize_labels`.
    pub parsed: Vec<Label>,
}

impl LogValue {
    pub fn new(ts: Timestamp, line: impl Into<String>) -> Self {
        LogValue {
            ts,
            line: line.into(),
            structured_metadata: Vec::new(),
            parsed: Vec::new(),
        }
    }
}

/// A metric sample: `[<unix seconds, millisecond precision>, "<value>"]`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    pub ts: Timestamp,
    pub value: f64,
}

/// One series of an instant query: `{"metric": {..}, "value": [t, "v"]}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VectorSample {
    pub metric: Vec<Label>,
    pub sample: Sample,
}

/// One series of a range query: `{"metric": {..}, "values": [[t, "v"], ..]}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatrixSeries {
    pub metric: Vec<Label>,
    pub samples: Vec<Sample>,
}

/// Query statistics in the shape of Loki's API docs. Grafana shows them in
/// its query inspector; every field is optional to it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct QueryStats {
    pub summary: SummaryStats,
    pub store: StoreStats,
    pub ingester: IngesterStats,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryStats {
    pub bytes_processed_per_second: u64,
    pub lines_processed_per_second: u64,
    pub total_bytes_processed: u64,
    pub total_lines_processed: u64,
    pub total_entries_returned: u64,
    /// Seconds.
    pub exec_time: f64,
    /// Seconds.
    pub queue_time: f64,
}

/// Work done on flushed data (Loki's "store").
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStats {
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    pub decompressed_lines: u64,
    /// Seconds.
    pub chunks_download_time: f64,
    pub total_chunks_ref: u64,
    pub total_chunks_downloaded: u64,
    pub total_duplicates: u64,
}

/// Work done on recent, not yet flushed data (Loki's "ingester").
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngesterStats {
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    pub decompressed_lines: u64,
    pub head_chunk_bytes: u64,
    pub head_chunk_lines: u64,
    pub total_batches: u64,
    pub total_chunks_matched: u64,
    pub total_duplicates: u64,
    pub total_lines_sent: u64,
    pub total_reached: u64,
}

/// The body of `/loki/api/v1/labels` and `/loki/api/v1/label/<name>/values`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelsResponse {
    pub data: Vec<String>,
}

/// The body of `/loki/api/v1/series`: one label map per stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeriesResponse {
    pub data: Vec<Vec<Label>>,
}

/// The body of `/loki/api/v1/index/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct IndexStatsResponse {
    pub streams: u64,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// One message of `/loki/api/v1/tail`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TailResponse {
    pub streams: Vec<LogStream>,
    pub dropped_entries: Vec<DroppedEntry>,
    pub categorize_labels: bool,
}

/// An entry the tailer could not deliver in time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DroppedEntry {
    pub labels: Vec<Label>,
    pub ts: Timestamp,
}

/// Prometheus' error classes, as in `{"errorType": "bad_data"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    Unavailable,
    NotFound,
}

/// An error answer. Loki itself answers most errors with the bare message
/// as `text/plain` ([`ErrorResponse::message`]); the JSON form
/// (`{"status":"error","errorType":"bad_data","error":"..."}`) is
/// Prometheus' and is what Grafana parses when a body is JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub error_type: ErrorType,
    pub message: String,
}

impl QueryResponse {
    /// Serialises into a buffer sized from the result, so the common case
    /// never reallocates.
    pub fn to_json(&self) -> Vec<u8> {
        let estimate = match &self.result {
            QueryResult::Streams(streams) => streams
                .iter()
                .map(|s| {
                    64 + labels_len(&s.labels)
                        + s.values
                            .iter()
                            .map(|v| {
                                32 + v.line.len()
                                    + if self.categorize_labels {
                                        48 + labels_len(&v.structured_metadata)
                                            + labels_len(&v.parsed)
                                    } else {
                                        0
                                    }
                            })
                            .sum::<usize>()
                })
                .sum(),
            QueryResult::Vector(v) => v.len() * 128,
            QueryResult::Matrix(m) => m.iter().map(|s| 64 + s.samples.len() * 40).sum(),
            QueryResult::Scalar(_) => 64,
        };
        to_vec(self, 1024 + estimate)
    }
}

fn labels_len(labels: &[Label]) -> usize {
    labels
        .iter()
        .map(|l| l.name.len() + l.value.len() + 6)
        .sum()
}

/// Serialises `value` as JSON into a new buffer of `capacity` bytes.
pub fn to_vec(value: &impl Serialize, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    // Writing into a Vec cannot fail, and none of these types' Serialize
    // impls produce errors of their own.
    if let Err(e) = serde_json::to_writer(&mut out, value) {
        debug_assert!(false, "serialising a response failed: {e}");
    }
    out
}

const SUCCESS: &str = "success";
const CATEGORIZE_LABELS: &str = "categorize-labels";

impl Serialize for QueryResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut top = s.serialize_struct("QueryResponse", 2)?;
        top.serialize_field("status", SUCCESS)?;
        top.serialize_field("data", &QueryData(self))?;
        top.end()
    }
}

struct QueryData<'a>(&'a QueryResponse);

impl Serialize for QueryData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let response = self.0;
        let categorize = response.categorize_labels;
        let fields = if categorize { 4 } else { 3 };
        let mut data = s.serialize_struct("QueryData", fields)?;
        match &response.result {
            QueryResult::Streams(streams) => {
                data.serialize_field("resultType", "streams")?;
                data.serialize_field(
                    "result",
                    &Streams {
                        streams,
                        categorize,
                    },
                )?;
            }
            QueryResult::Vector(vector) => {
                data.serialize_field("resultType", "vector")?;
                data.serialize_field("result", vector)?;
            }
            QueryResult::Matrix(matrix) => {
                data.serialize_field("resultType", "matrix")?;
                data.serialize_field("result", matrix)?;
            }
            QueryResult::Scalar(sample) => {
                data.serialize_field("resultType", "scalar")?;
                data.serialize_field("result", sample)?;
            }
        }
        data.serialize_field("stats", &response.stats)?;
        if categorize {
            data.serialize_field("encodingFlags", &[CATEGORIZE_LABELS])?;
        }
        data.end()
    }
}

struct Streams<'a> {
    streams: &'a [LogStream],
    categorize: bool,
}

impl Serialize for Streams<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.streams.len()))?;
        for stream in self.streams {
            seq.serialize_element(&StreamSer {
                stream,
                categorize: self.categorize,
            })?;
        }
        seq.end()
    }
}

struct StreamSer<'a> {
    stream: &'a LogStream,
    categorize: bool,
}

impl Serialize for StreamSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Stream", 2)?;
        st.serialize_field("stream", &LabelMap(&self.stream.labels))?;
        st.serialize_field(
            "values",
            &Values {
                values: &self.stream.values,
                categorize: self.categorize,
            },
        )?;
        st.end()
    }
}

struct Values<'a> {
    values: &'a [LogValue],
    categorize: bool,
}

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.values.len()))?;
        for value in self.values {
            seq.serialize_element(&ValueSer {
                value,
                categorize: self.categorize,
            })?;
        }
        seq.end()
    }
}

struct ValueSer<'a> {
    value: &'a LogValue,
    categorize: bool,
}

impl Serialize for ValueSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.value;
        let len = if self.categorize { 3 } else { 2 };
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(&NanosString(v.ts))?;
        seq.serialize_element(&v.line)?;
        if self.categorize {
            seq.serialize_element(&Categorized(v))?;
        }
        seq.end()
    }
}

/// `{"structuredMetadata": {..}, "parsed": {..}}`, empty parts left out.
struct Categorized<'a>(&'a LogValue);

impl Serialize for Categorized<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        let len =
            usize::from(!v.structured_metadata.is_empty()) + usize::from(!v.parsed.is_empty());
        let mut map = s.serialize_map(Some(len))?;
        if !v.structured_metadata.is_empty() {
            map.serialize_entry("structuredMetadata", &LabelMap(&v.structured_metadata))?;
        }
        if !v.parsed.is_empty() {
            map.serialize_entry("parsed", &LabelMap(&v.parsed))?;
        }
        map.end()
    }
}

/// Labels as a JSON object, in the order given.
pub struct LabelMap<'a>(pub &'a [Label]);

impl Serialize for LabelMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for label in self.0 {
            map.serialize_entry(&label.name, &label.value)?;
        }
        map.end()
    }
}

/// A timestamp as a JSON string of Unix nanoseconds, formatted without
/// allocating.
pub struct NanosString(pub Timestamp);

impl Serialize for NanosString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 20];
        s.serialize_str(format_i64(self.0.0, &mut buf))
    }
}

/// Formats `value` in decimal into the end of `buf`.
fn format_i64(value: i64, buf: &mut [u8; 20]) -> &str {
    let mut n = value.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    // Only ASCII digits and '-' were written.
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

impl Serialize for Sample {
    /// `[1700000000.123, "42"]`: seconds with millisecond precision (an
    /// integer when whole), and the value formatted as Prometheus does
    /// (shortest round-trip decimal, `NaN`, `+Inf`, `-Inf`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        let millis = self.ts.0.div_euclid(1_000_000);
        if millis % 1000 == 0 {
            seq.serialize_element(&(millis / 1000))?;
        } else {
            seq.serialize_element(&(millis as f64 / 1000.0))?;
        }
        seq.serialize_element(&format_sample_value(self.value))?;
        seq.end()
    }
}

/// Formats a sample value like Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub fn format_sample_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's Display is the shortest round-trip decimal, never in
        // exponent form, like Go's 'f' with precision -1.
        value.to_string()
    }
}

impl Serialize for VectorSample {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("VectorSample", 2)?;
        st.serialize_field("metric", &LabelMap(&self.metric))?;
        st.serialize_field("value", &self.sample)?;
        st.end()
    }
}

impl Serialize for MatrixSeries {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("MatrixSeries", 2)?;
        st.serialize_field("metric", &LabelMap(&self.metric))?;
        st.serialize_field("values", &self.samples)?;
        st.end()
    }
}

impl Serialize for LabelsResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("LabelsResponse", 2)?;
        st.serialize_field("status", SUCCESS)?;
        st.serialize_field("data", &self.data)?;
        st.end()
    }
}

impl Serialize for SeriesResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Data<'a>(&'a [Vec<Label>]);
        impl Serialize for Data<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|labels| LabelMap(labels)))
            }
        }
        let mut st = s.serialize_struct("SeriesResponse", 2)?;
        st.serialize_field("status", SUCCESS)?;
        st.serialize_field("data", &Data(&self.data))?;
        st.end()
    }
}

impl Serialize for TailResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Dropped<'a>(&'a DroppedEntry);
        impl Serialize for Dropped<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut st = s.serialize_struct("DroppedEntry", 2)?;
                st.serialize_field("labels", &LabelMap(&self.0.labels))?;
                st.serialize_field("timestamp", &NanosString(self.0.ts))?;
                st.end()
            }
        }
        struct DroppedList<'a>(&'a [DroppedEntry]);
        impl Serialize for DroppedList<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(Dropped))
            }
        }
        let mut st = s.serialize_struct("TailResponse", 2)?;
        st.serialize_field(
            "streams",
            &Streams {
                streams: &self.streams,
                categorize: self.categorize_labels,
            },
        )?;
        st.serialize_field("dropped_entries", &DroppedList(&self.dropped_entries))?;
        st.end()
    }
}

impl Serialize for ErrorResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ErrorResponse", 3)?;
        st.serialize_field("status", "error")?;
        st.serialize_field("errorType", &self.error_type)?;
        st.serialize_field("error", &self.message)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_integers() {
        let mut buf = [0u8; 20];
        for v in [0i64, 7, -7, 1_700_000_000_123_456_789, i64::MIN, i64::MAX] {
            assert_eq!(format_i64(v, &mut buf), v.to_string());
        }
    }

    #[test]
    fn formats_sample_values_like_go() {
        assert_eq!(format_sample_value(1.0), "1");
        assert_eq!(format_sample_value(0.1), "0.1");
        assert_eq!(
            format_sample_value(1267.1266666666666),
            "1267.1266666666666"
        );
        assert_eq!(format_sample_value(1e21), "1000000000000000000000");
        assert_eq!(format_sample_value(f64::NAN), "NaN");
        assert_eq!(format_sample_value(f64::INFINITY), "+Inf");
        assert_eq!(format_sample_value(f64::NEG_INFINITY), "-Inf");
    }
}
