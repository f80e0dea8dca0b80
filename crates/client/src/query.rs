//! The query side of Loki's HTTP API: `query`, `query_range`, `labels`,
//! `label_values`, `series` and the `tail` websocket, with typed results.
//!
//! [`QueryClient`] is async (reqwest on tokio): queries are request and
//! answer, usually issued from async code, unlike the push path.
//!
//! Answers are parsed defensively: anything that is not what Loki's API
//! promises becomes [`Error::Decode`], never a panic.

use crate::config::Endpoint;
use crate::entry::Timestamp;
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Label name to value.
pub type LabelMap = BTreeMap<String, String>;

/// Order of log lines in a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        }
    }
}

/// Options of `query_range` (all optional; the server's defaults apply).
#[derive(Debug, Clone, Default)]
pub struct RangeQuery {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub limit: Option<u32>,
    pub step: Option<Duration>,
    pub direction: Option<Direction>,
}

/// Options of an instant `query`.
#[derive(Debug, Clone, Default)]
pub struct InstantQuery {
    pub time: Option<Timestamp>,
    pub limit: Option<u32>,
    pub direction: Option<Direction>,
}

/// A time window for `labels`, `label_values` and `series`.
#[derive(Debug, Clone, Default)]
pub struct TimeRange {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

/// One log line of a query result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub timestamp: Timestamp,
    pub line: String,
    pub metadata: LabelMap,
}

/// A stream of log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStream {
    pub labels: LabelMap,
    pub entries: Vec<LogEntry>,
}

/// A sample: Unix time in seconds (Loki's float) and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub time: f64,
    pub value: f64,
}

/// A metric series over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub metric: LabelMap,
    pub points: Vec<Point>,
}

/// A metric series at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub metric: LabelMap,
    pub point: Point,
}

/// What a query returned, by Loki's `resultType`.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    Streams(Vec<LogStream>),
    Matrix(Vec<Series>),
    Vector(Vec<Sample>),
    Scalar(Point),
}

/// One message of a tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailResponse {
    pub streams: Vec<LogStream>,
    /// Entries the server could not deliver in time: labels and timestamp.
    pub dropped: Vec<(LabelMap, Timestamp)>,
}

fn decode_err(what: impl std::fmt::Display) -> Error {
    Error::Decode(what.to_string())
}

fn label_map(value: &Value) -> Result<LabelMap> {
    let Some(object) = value.as_object() else {
        return Err(decode_err("labels are not an object"));
    };
    object
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_string())),
            None => Err(decode_err(format!("label {k:?} is not a string"))),
        })
        .collect()
}

fn timestamp_ns(value: &Value) -> Result<Timestamp> {
    value
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .map(Timestamp)
        .ok_or_else(|| decode_err(format!("{value} is not a nanosecond timestamp")))
}

fn point(value: &Value) -> Result<Point> {
    let pair = value.as_array().filter(|a| a.len() == 2);
    let Some(pair) = pair else {
        return Err(decode_err(format!("{value} is not a [time, value] pair")));
    };
    let time = pair[0]
        .as_f64()
        .ok_or_else(|| decode_err(format!("{} is not a time", pair[0])))?;
    let value = pair[1]
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| decode_err(format!("{} is not a sample value", pair[1])))?;
    Ok(Point { time, value })
}

fn streams(result: &Value) -> Result<Vec<LogStream>> {
    let Some(items) = result.as_array() else {
        return Err(decode_err("streams are not an array"));
    };
    items
        .iter()
        .map(|item| {
            let labels = label_map(&item["stream"])?;
            let values = item["values"]
                .as_array()
                .ok_or_else(|| decode_err("stream values are not an array"))?;
            let entries = values
                .iter()
                .map(|v| {
                    let parts = v.as_array().filter(|a| a.len() >= 2);
                    let Some(parts) = parts else {
                        return Err(decode_err(format!("{v} is not a [time, line] entry")));
                    };
                    Ok(LogEntry {
                        timestamp: timestamp_ns(&parts[0])?,
                        line: parts[1]
                            .as_str()
                            .ok_or_else(|| decode_err("line is not a string"))?
                            .to_string(),
                        metadata: match parts.get(2) {
                            Some(meta) => metadata(meta)?,
                            None => LabelMap::new(),
                        },
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(LogStream { labels, entries })
        })
        .collect()
}

/// Entry metadata: Loki sends `{"structuredMetadata": {...}, "parsed":
/// {...}}` with categorised labels, or a flat object otherwise.
fn metadata(value: &Value) -> Result<LabelMap> {
    if let Some(structured) = value.get("structuredMetadata") {
        return label_map(structured);
    }
    if value.get("parsed").is_some() {
        return Ok(LabelMap::new());
    }
    label_map(value)
}

/// Parses a `query` / `query_range` answer body.
pub fn parse_query_response(body: &[u8]) -> Result<QueryResult> {
    let value: Value = serde_json::from_slice(body).map_err(decode_err)?;
    let data = data(&value)?;
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("streams") => Ok(QueryResult::Streams(streams(result)?)),
        Some("matrix") => {
            let items = result
                .as_array()
                .ok_or_else(|| decode_err("matrix is not an array"))?;
            let series = items
                .iter()
                .map(|item| {
                    let points = item["values"]
                        .as_array()
                        .ok_or_else(|| decode_err("series values are not an array"))?
                        .iter()
                        .map(point)
                        .collect::<Result<Vec<_>>>()?;
                    Ok(Series {
                        metric: label_map(&item["metric"])?,
                        points,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(QueryResult::Matrix(series))
        }
        Some("vector") => {
            let items = result
                .as_array()
                .ok_or_else(|| decode_err("vector is not an array"))?;
            let samples = items
                .iter()
                .map(|item| {
                    Ok(Sample {
                        metric: label_map(&item["metric"])?,
                        point: point(&item["value"])?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(QueryResult::Vector(samples))
        }
        Some("scalar") => Ok(QueryResult::Scalar(point(result)?)),
        other => Err(decode_err(format!("unknown resultType {other:?}"))),
    }
}

fn data(value: &Value) -> Result<&Value> {
    if value["status"].as_str() != Some("success") {
        return Err(decode_err(format!("status is {}", value["status"])));
    }
    Ok(&value["data"])
}

fn string_list(body: &[u8]) -> Result<Vec<String>> {
    let value: Value = serde_json::from_slice(body).map_err(decode_err)?;
    match data(&value)? {
        // Loki omits `data` when there are no labels.
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| decode_err("list item is not a string"))
            })
            .collect(),
        _ => Err(decode_err("data is not a list")),
    }
}

/// Parses one tail websocket message.
pub fn parse_tail_message(text: &str) -> Result<TailResponse> {
    let value: Value = serde_json::from_str(text).map_err(decode_err)?;
    let streams = match &value["streams"] {
        Value::Null => Vec::new(),
        s => streams(s)?,
    };
    let dropped = match &value["dropped_entries"] {
        Value::Array(items) => items
            .iter()
            .map(|d| Ok((label_map(&d["labels"])?, timestamp_ns(&d["timestamp"])?)))
            .collect::<Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    Ok(TailResponse { streams, dropped })
}

/// An async client for Loki's query API.
#[derive(Clone)]
pub struct QueryClient {
    endpoint: Endpoint,
    http: reqwest::Client,
}

/// Largest answer read, so a misbehaving server cannot exhaust memory.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

impl QueryClient {
    pub fn new(endpoint: Endpoint) -> Result<QueryClient> {
        endpoint.validate()?;
        let http = reqwest::Client::builder()
            .timeout(endpoint.request_timeout)
            .default_headers(crate::http::default_headers(&endpoint)?)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(QueryClient { endpoint, http })
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Vec<u8>> {
        let request = self.http.get(self.endpoint.path(path)).query(params);
        let mut response = crate::http::authorize(request, &self.endpoint)
            .send()
            .await
            .map_err(|e| Error::Network(crate::http::error_chain(&e)))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Error::Network(crate::http::error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(decode_err(format!(
                    "answer larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !(200..=299).contains(&status) {
            let text = String::from_utf8_lossy(&body[..body.len().min(1024)]);
            return Err(Error::Status {
                status,
                body: text.trim().to_string(),
            });
        }
        Ok(body)
    }

    /// `GET /loki/api/v1/query_range`.
    pub async fn query_range(&self, query: &str, options: &RangeQuery) -> Result<QueryResult> {
        let mut params = vec![("query", query.to_string())];
        push_time(&mut params, "start", options.start);
        push_time(&mut params, "end", options.end);
        if let Some(limit) = options.limit {
            params.push(("limit", limit.to_string()));
        }
        if let Some(step) = options.step {
            params.push(("step", format!("{}ms", step.as_millis().max(1))));
        }
        if let Some(direction) = options.direction {
            params.push(("direction", direction.as_str().to_string()));
        }
        parse_query_response(&self.get("/loki/api/v1/query_range", &params).await?)
    }

    /// `GET /loki/api/v1/query`.
    pub async fn query(&self, query: &str, options: &InstantQuery) -> Result<QueryResult> {
        let mut params = vec![("query", query.to_string())];
        push_time(&mut params, "time", options.time);
        if let Some(limit) = options.limit {
            params.push(("limit", limit.to_string()));
        }
        if let Some(direction) = options.direction {
            params.push(("direction", direction.as_str().to_string()));
        }
        parse_query_response(&self.get("/loki/api/v1/query", &params).await?)
    }

    /// `GET /loki/api/v1/labels`.
    pub async fn labels(&self, range: &TimeRange) -> Result<Vec<String>> {
        let mut params = Vec::new();
        push_time(&mut params, "start", range.start);
        push_time(&mut params, "end", range.end);
        string_list(&self.get("/loki/api/v1/labels", &params).await?)
    }

    /// `GET /loki/api/v1/label/<name>/values`.
    pub async fn label_values(&self, name: &str, range: &TimeRange) -> Result<Vec<String>> {
        if !crate::entry::is_valid_label_name(name) {
            return Err(Error::InvalidLabel(format!(
                "{name:?} is not a valid label name"
            )));
        }
        let mut params = Vec::new();
        push_time(&mut params, "start", range.start);
        push_time(&mut params, "end", range.end);
        let path = format!("/loki/api/v1/label/{name}/values");
        string_list(&self.get(&path, &params).await?)
    }

    /// `GET /loki/api/v1/series` for one or more selectors (`match[]`).
    pub async fn series(&self, selectors: &[&str], range: &TimeRange) -> Result<Vec<LabelMap>> {
        let mut params: Vec<(&str, String)> = selectors
            .iter()
            .map(|s| ("match[]", s.to_string()))
            .collect();
        push_time(&mut params, "start", range.start);
        push_time(&mut params, "end", range.end);
        let body = self.get("/loki/api/v1/series", &params).await?;
        let value: Value = serde_json::from_slice(&body).map_err(decode_err)?;
        match data(&value)? {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items.iter().map(label_map).collect(),
            _ => Err(decode_err("series data is not a list")),
        }
    }

    /// Opens `GET /loki/api/v1/tail` as a websocket. A server without the
    /// endpoint (404) gives [`Error::NotSupported`].
    pub async fn tail(
        &self,
        query: &str,
        start: Option<Timestamp>,
        limit: Option<u32>,
    ) -> Result<Tail> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let base = self.endpoint.path("/loki/api/v1/tail");
        let ws_base = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", base.trim_start_matches("http://"))
        };
        let mut url = reqwest::Url::parse(&ws_base).map_err(|e| Error::Config(e.to_string()))?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("query", query);
            if let Some(start) = start {
                pairs.append_pair("start", &start.0.to_string());
            }
            if let Some(limit) = limit {
                pairs.append_pair("limit", &limit.to_string());
            }
        }
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| Error::Config(e.to_string()))?;
        let headers = request.headers_mut();
        for (name, value) in crate::http::default_headers(&self.endpoint)?.iter() {
            if let (Ok(name), Ok(value)) = (
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(
                    name.as_str().as_bytes(),
                ),
                tokio_tungstenite::tungstenite::http::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                headers.insert(name, value);
            }
        }
        if let Some(auth) = &self.endpoint.auth {
            let value = match auth {
                crate::Auth::Bearer(token) => format!("Bearer {token}"),
                crate::Auth::Basic { user, password } => {
                    format!(
                        "Basic {}",
                        base64_encode(format!("{user}:{password}").as_bytes())
                    )
                }
            };
            if let Ok(value) = tokio_tungstenite::tungstenite::http::HeaderValue::from_str(&value) {
                headers.insert("authorization", value);
            }
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Tail { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response))
                if response.status().as_u16() == 404 =>
            {
                Err(Error::NotSupported("tail (/loki/api/v1/tail)"))
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(Error::Status {
                status: response.status().as_u16(),
                body: response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            }),
            Err(e) => Err(Error::Network(crate::http::error_chain(&e))),
        }
    }
}

fn push_time(params: &mut Vec<(&str, String)>, name: &'static str, time: Option<Timestamp>) {
    if let Some(time) = time {
        params.push((name, time.0.to_string()));
    }
}

fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An open tail.
pub struct Tail {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Tail {
    /// The next message; `None` when the server closes the tail.
    pub async fn next(&mut self) -> Option<Result<TailResponse>> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let message = match self.socket.next().await? {
                Ok(message) => message,
                Err(e) => return Some(Err(Error::Network(e.to_string()))),
            };
            match message {
                Message::Text(text) => return Some(parse_tail_message(text.as_str())),
                Message::Binary(bytes) => {
                    return Some(parse_tail_message(&String::from_utf8_lossy(&bytes)));
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_result_type() {
        let streams = br#"{"status":"success","data":{"resultType":"streams","result":[
            {"stream":{"app":"a"},"values":[["12","one"],["13","two",{"trace":"t"}]]}],"stats":{}}}"#;
        let QueryResult::Streams(s) = parse_query_response(streams).unwrap() else {
            panic!("not streams")
        };
        assert_eq!(s[0].labels["app"], "a");
        assert_eq!(s[0].entries[1].timestamp, Timestamp(13));
        assert_eq!(s[0].entries[1].metadata["trace"], "t");

        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"level":"info"},"values":[[1.5,"2"],[2.5,"NaN"]]}]}}"#;
        let QueryResult::Matrix(m) = parse_query_response(matrix).unwrap() else {
            panic!("not a matrix")
        };
        assert_eq!(
            m[0].points[0],
            Point {
                time: 1.5,
                value: 2.0
            }
        );
        assert!(m[0].points[1].value.is_nan());

        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{},"value":[3,"+Inf"]}]}}"#;
        let QueryResult::Vector(v) = parse_query_response(vector).unwrap() else {
            panic!("not a vector")
        };
        assert_eq!(v[0].point.value, f64::INFINITY);

        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[4,"7"]}}"#;
        assert_eq!(
            parse_query_response(scalar).unwrap(),
            QueryResult::Scalar(Point {
                time: 4.0,
                value: 7.0
            })
        );
    }

    #[test]
    fn bad_answers_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"[]",
            b"{}",
            br#"{"status":"error"}"#,
            br#"{"status":"success","data":{"resultType":"streams","result":[{"stream":1}]}}"#,
            br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1]]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":{}}}"#,
            br#"{"status":"success","data":{"resultType":"nope","result":[]}}"#,
        ] {
            assert!(parse_query_response(body).is_err());
        }
    }

    #[test]
    fn parses_tail_messages() {
        let msg = r#"{"streams":[{"stream":{"a":"b"},"values":[["5","x"]]}],
            "dropped_entries":[{"labels":{"a":"c"},"timestamp":"6"}]}"#;
        let tail = parse_tail_message(msg).unwrap();
        assert_eq!(tail.streams[0].entries[0].line, "x");
        assert_eq!(tail.dropped[0].1, Timestamp(6));
    }

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }
}
