//! LogQL conformance: runs every case in `tests/conformance/*.txt` (the
//! format is described in `tests/conformance/README.md`) against a real
//! store in four states — every entry still in the head, every entry
//! flushed to segments, half of each stream flushed with the rest in the
//! head, and every entry flushed to segments in S3 and read back by a new
//! store with an empty data directory — and log queries in both
//! directions, each case with field columns turned off and on (the two
//! answers must be identical).
//!
//! Each data block of a file is stored under its own tenant, so the four
//! stores are built once for the whole corpus. A failing case is reported
//! with its file, line and name, the store state and the direction, and
//! the test fails after every case has run.

use skald_logql::{Expr, parse_expr};
use skald_model::{Entry, Label, LabelSet, TenantId, Timestamp};
use skald_pipeline::Pipeline;
use skald_query::{
    Direction, LogQuery, MetricLimits, MetricOutput, MetricQuery, run_log_query, run_metric_query,
};
use skald_store::{FsyncMode, Store, StoreConfig, StreamBatch};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Corpus time zero: 2024-01-01T00:00:00Z. Timestamps in the corpus are
/// seconds after it.
const T0: i64 = 1_704_067_200 * SECOND;
const SECOND: i64 = 1_000_000_000;

// ---------------------------------------------------------------- format

#[derive(Debug, Clone)]
struct Stream {
    labels: LabelSet,
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Data {
    tenant: TenantId,
    streams: Vec<Stream>,
}

/// A result stream: labels and `(timestamp, line)` entries.
type LogStream = (Vec<Label>, Vec<(i64, String)>);
/// A result series: labels and `(timestamp, value)` points.
type MetricSeries = (Vec<Label>, Vec<(i64, f64)>);

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Streams(Vec<LogStream>),
    Matrix(Vec<MetricSeries>),
    Vector(Vec<(Vec<Label>, f64)>),
    Scalar(f64),
    Error(String),
}

#[derive(Debug)]
struct Case {
    file: String,
    line: usize,
    name: String,
    data: usize,
    query: String,
    start: i64,
    end: i64,
    step: i64,
    instant: Option<i64>,
    limit: usize,
    direction: Option<Direction>,
    interval: i64,
    max_series: usize,
    /// Series a range aggregation may hold at one step (default: the
    /// engine's).
    max_inner_series: Option<usize>,
    /// Bytes a range aggregation may hold while reading (default: the
    /// engine's).
    max_range_bytes: Option<usize>,
    expect: Expect,
}

/// Seconds after T0 (`12`, `1.5`, `-3`) to nanoseconds since the epoch.
fn parse_ts(text: &str) -> Result<i64, String> {
    Ok(T0 + parse_secs(text)?)
}

/// Seconds (`12`, `1.5`, `-0.001`, or with a unit `5m`, `1h`) to nanoseconds.
fn parse_secs(text: &str) -> Result<i64, String> {
    let text = text.trim();
    for (suffix, unit) in [
        ("ms", 1_000_000),
        ("s", SECOND),
        ("m", 60 * SECOND),
        ("h", 3600 * SECOND),
    ] {
        if let Some(n) = text.strip_suffix(suffix)
            && let Ok(v) = n.parse::<i64>()
        {
            return Ok(v * unit);
        }
    }
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > 9 {
        return Err(format!("bad time {text:?}"));
    }
    let int: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| format!("bad time {text:?}"))?
    };
    let frac_ns: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}")
            .parse()
            .map_err(|_| format!("bad time {text:?}"))?
    };
    let v = int * SECOND + frac_ns;
    Ok(if neg { -v } else { v })
}

fn show_ts(ns: i64) -> String {
    let rel = ns - T0;
    let (sign, abs) = if rel < 0 { ("-", -rel) } else { ("", rel) };
    let (s, frac) = (abs / SECOND, abs % SECOND);
    if frac == 0 {
        format!("{sign}{s}")
    } else {
        let f = format!("{frac:09}");
        format!("{sign}{s}.{}", f.trim_end_matches('0'))
    }
}

fn parse_labels(text: &str) -> Result<Vec<Label>, String> {
    let text = text.trim();
    if text == "{}" {
        return Ok(Vec::new());
    }
    LabelSet::parse(text)
        .map(LabelSet::into_labels)
        .map_err(|e| format!("bad labels {text}: {e}"))
}

fn show_labels(labels: &[Label]) -> String {
    if labels.is_empty() {
        return "{}".into();
    }
    LabelSet::from_trusted(labels.to_vec()).to_string()
}

/// Splits `{a="b", c="d"} rest` at the brace closing the label set.
fn split_labels(text: &str) -> Result<(&str, &str), String> {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
        } else if c == '"' {
            in_str = true;
        } else if c == '}' {
            return Ok((&text[..=i], text[i + 1..].trim_start()));
        }
    }
    Err(format!("unclosed label set in {text:?}"))
}

/// A line as written after its timestamp: raw, or `= "json string"` for
/// lines that need escapes (empty, tabs, ANSI colours, edge spaces).
fn parse_line(text: &str) -> Result<String, String> {
    match text.strip_prefix("= ") {
        Some(quoted) => unquote(quoted).ok_or_else(|| format!("bad quoted line {quoted}")),
        None => Ok(text.to_string()),
    }
}

/// A double-quoted string with JSON's escapes (`\\n`, `\\t`, `\\u001b`, ...).
fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            _ => return None,
        });
    }
    Some(out)
}

fn quote(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => _ = write!(out, "\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `<ts> [@{metadata}] <line>`
fn parse_entry(text: &str) -> Result<Entry, String> {
    let (ts, rest) = text.split_once(' ').unwrap_or((text, ""));
    let ts = parse_ts(ts)?;
    let (metadata, line) = match rest.strip_prefix('@') {
        Some(meta) => {
            let (labels, line) = split_labels(meta)?;
            (parse_labels(labels)?, line)
        }
        None => (Vec::new(), rest),
    };
    Ok(Entry {
        ts: Timestamp(ts),
        line: parse_line(line)?,
        metadata,
    })
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}

struct Parser<'a> {
    file: String,
    lines: Vec<&'a str>,
    at: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, msg: impl std::fmt::Display) -> String {
        format!("{}:{}: {msg}", self.file, self.at + 1)
    }

    fn peek(&self) -> Option<&'a str> {
        self.lines.get(self.at).copied()
    }

    /// Lines that belong to the block being read: indented, or starting
    /// with `{` (label sets of streams and series).
    fn body_line(&self) -> Option<&'a str> {
        let l = self.peek()?;
        (l.starts_with(' ') || l.starts_with('{')).then_some(l)
    }

    fn streams(&mut self) -> Result<Vec<Stream>, String> {
        let mut out: Vec<Stream> = Vec::new();
        while let Some(l) = self.peek() {
            if let Some(rest) = l.strip_prefix("stream ") {
                let labels = LabelSet::parse(rest.trim()).map_err(|e| self.err(e))?;
                out.push(Stream {
                    labels,
                    entries: Vec::new(),
                });
            } else if l.starts_with("  ") && !out.is_empty() {
                let e = parse_entry(l.trim_start()).map_err(|e| self.err(e))?;
                if let Some(s) = out.last_mut() {
                    s.entries.push(e);
                }
            } else if l.trim().is_empty() || l.starts_with('#') {
            } else {
                break;
            }
            self.at += 1;
        }
        Ok(out)
    }

    fn expect(&mut self, kind: &str) -> Result<Expect, String> {
        let (kind, inline) = kind.split_once(':').unwrap_or((kind, ""));
        let inline = inline.trim();
        match kind.trim() {
            "error" => Ok(Expect::Error(inline.to_string())),
            "scalar" => Ok(Expect::Scalar(
                parse_value(inline).map_err(|e| self.err(e))?,
            )),
            "streams" => {
                let mut out: Vec<LogStream> = Vec::new();
                while let Some(l) = self.body_line() {
                    if l.starts_with('{') {
                        out.push((parse_labels(l).map_err(|e| self.err(e))?, Vec::new()));
                    } else {
                        let e = parse_entry(l.trim_start()).map_err(|e| self.err(e))?;
                        if !e.metadata.is_empty() {
                            return Err(self.err("expected lines carry no metadata"));
                        }
                        let Some(last) = out.last_mut() else {
                            return Err(self.err("an entry before any stream"));
                        };
                        last.1.push((e.ts.0, e.line));
                    }
                    self.at += 1;
                }
                Ok(Expect::Streams(out))
            }
            "matrix" => {
                let mut out = Vec::new();
                while let Some(l) = self.body_line() {
                    let (labels, rest) = split_labels(l.trim()).map_err(|e| self.err(e))?;
                    let mut points = Vec::new();
                    for p in rest.split_whitespace() {
                        let (t, v) = p
                            .split_once('=')
                            .ok_or_else(|| self.err(format!("bad point {p:?}")))?;
                        points.push((
                            parse_ts(t).map_err(|e| self.err(e))?,
                            parse_value(v).map_err(|e| self.err(e))?,
                        ));
                    }
                    out.push((parse_labels(labels).map_err(|e| self.err(e))?, points));
                    self.at += 1;
                }
                Ok(Expect::Matrix(out))
            }
            "vector" => {
                let mut out = Vec::new();
                while let Some(l) = self.body_line() {
                    let (labels, rest) = split_labels(l.trim()).map_err(|e| self.err(e))?;
                    out.push((
                        parse_labels(labels).map_err(|e| self.err(e))?,
                        parse_value(rest.trim()).map_err(|e| self.err(e))?,
                    ));
                    self.at += 1;
                }
                Ok(Expect::Vector(out))
            }
            other => Err(self.err(format!("unknown expectation {other:?}"))),
        }
    }
}

/// Parses one corpus file into its data blocks (appended to `data`) and
/// cases.
fn parse_file(file: &str, text: &str, data: &mut Vec<Data>) -> Result<Vec<Case>, String> {
    let mut p = Parser {
        file: file.to_string(),
        lines: text.lines().collect(),
        at: 0,
    };
    let mut named: BTreeMap<String, usize> = BTreeMap::new();
    let mut cases = Vec::new();
    let tenant_for = |n: usize| TenantId::new(&format!("c{n}")).expect("valid tenant");
    while let Some(l) = p.peek() {
        if l.trim().is_empty() || l.starts_with('#') {
            p.at += 1;
            continue;
        }
        if let Some(name) = l.strip_prefix("=== data ") {
            p.at += 1;
            let streams = p.streams()?;
            named.insert(name.trim().to_string(), data.len());
            data.push(Data {
                tenant: tenant_for(data.len()),
                streams,
            });
            continue;
        }
        let Some(name) = l.strip_prefix("=== ") else {
            return Err(p.err(format!("expected `=== <case name>`, found {l:?}")));
        };
        let line = p.at + 1;
        p.at += 1;
        let mut case = Case {
            file: file.to_string(),
            line,
            name: name.trim().to_string(),
            data: usize::MAX,
            query: String::new(),
            start: T0,
            end: T0 + 1000 * SECOND,
            step: 0,
            instant: None,
            limit: 100,
            direction: None,
            interval: 0,
            max_series: 500,
            max_inner_series: None,
            max_range_bytes: None,
            expect: Expect::Error(String::new()),
        };
        let mut expect = None;
        while let Some(l) = p.peek() {
            if l.starts_with("===") {
                break;
            }
            if l.trim().is_empty() || l.starts_with('#') {
                p.at += 1;
                continue;
            }
            let (key, value) = l
                .split_once(':')
                .ok_or_else(|| p.err(format!("expected `key: value`, found {l:?}")))?;
            let value = value.trim();
            p.at += 1;
            match key {
                "data" => {
                    case.data = *named
                        .get(value)
                        .ok_or_else(|| p.err(format!("no data named {value:?}")))?;
                }
                "streams" => {
                    let streams = p.streams()?;
                    case.data = data.len();
                    data.push(Data {
                        tenant: tenant_for(data.len()),
                        streams,
                    });
                }
                "query" => case.query = value.to_string(),
                "params" => {
                    for kv in value.split_whitespace() {
                        let (k, v) = kv
                            .split_once('=')
                            .ok_or_else(|| p.err(format!("bad param {kv:?}")))?;
                        let bad = |e: String| p.err(format!("param {k}: {e}"));
                        match k {
                            "start" => case.start = parse_ts(v).map_err(bad)?,
                            "end" => case.end = parse_ts(v).map_err(bad)?,
                            "step" => case.step = parse_secs(v).map_err(bad)?,
                            "time" => case.instant = Some(parse_ts(v).map_err(bad)?),
                            "interval" => case.interval = parse_secs(v).map_err(bad)?,
                            "limit" => {
                                case.limit = v.parse().map_err(|_| bad("not a number".into()))?
                            }
                            "max_series" => {
                                case.max_series =
                                    v.parse().map_err(|_| bad("not a number".into()))?
                            }
                            "max_inner_series" => {
                                case.max_inner_series =
                                    Some(v.parse().map_err(|_| bad("not a number".into()))?)
                            }
                            "max_range_bytes" => {
                                case.max_range_bytes =
                                    Some(v.parse().map_err(|_| bad("not a number".into()))?)
                            }
                            "direction" => {
                                case.direction = Some(match v {
                                    "forward" => Direction::Forward,
                                    "backward" => Direction::Backward,
                                    _ => return Err(bad(format!("unknown direction {v:?}"))),
                                })
                            }
                            _ => return Err(p.err(format!("unknown param {k:?}"))),
                        }
                    }
                }
                k if k.starts_with("expect") => {
                    let kind = l
                        .strip_prefix("expect ")
                        .ok_or_else(|| p.err("expected `expect <kind>:`"))?;
                    expect = Some(p.expect(kind)?);
                }
                _ => return Err(p.err(format!("unknown key {key:?}"))),
            }
        }
        let at = |msg: &str| format!("{file}:{line}: {msg}");
        case.expect = expect.ok_or_else(|| at("case without `expect`"))?;
        if case.query.is_empty() {
            return Err(at("case without `query`"));
        }
        if case.data == usize::MAX {
            // Error cases may need no data.
            case.data = data.len();
            data.push(Data {
                tenant: tenant_for(data.len()),
                streams: Vec::new(),
            });
        }
        cases.push(case);
    }
    Ok(cases)
}

// ---------------------------------------------------------------- stores

#[derive(Debug, Clone, Copy)]
enum State {
    Head,
    Flushed,
    Mixed,
    /// Flushed to segments in S3 (an in-process S3 server), then read by
    /// a new store with an empty data directory: every byte comes from
    /// the bucket, through the range reads and caches of object storage.
    ObjectStorage,
}

#[path = "../../store/tests/common/s3.rs"]
mod s3;

/// The S3 segment store over `server`'s bucket.
fn bucket(server: &s3::S3Server) -> std::sync::Arc<skald_store::storage::ObjectSegments> {
    let config = skald_store::storage::ObjectStoreConfig {
        endpoint: Some(server.endpoint.clone()),
        access_key_id: Some(s3::ACCESS_KEY.into()),
        secret_access_key: Some(s3::SECRET_KEY.into()),
        ..skald_store::storage::ObjectStoreConfig::new(format!("s3://{}/conformance", s3::BUCKET))
    };
    std::sync::Arc::new(skald_store::storage::ObjectSegments::open(&config).expect("bucket"))
}

fn open_store(dir: &Path, server: Option<&s3::S3Server>) -> Store {
    let mut config = StoreConfig {
        data_dir: dir.to_path_buf(),
        fsync: FsyncMode::Interval,
        compact_fan_in: 0,
        ..StoreConfig::default()
    };
    config.limits = skald_store::TenantLimits::unlimited();
    match server {
        None => Store::open(config).expect("open store"),
        Some(server) => Store::open_with(config, bucket(server)).expect("open store over S3"),
    }
}

/// Pushes every data block into a new store in `state`.
fn build(dir: &Path, data: &[Data], state: State, server: Option<&s3::S3Server>) -> Store {
    if let State::ObjectStorage = state {
        let writer = build(&dir.join("writer"), data, State::Flushed, server);
        writer.close().expect("close the writer");
        return open_store(&dir.join("reader"), server);
    }
    let store = open_store(dir, server);
    // Mixed: the older half of each stream (or every other single-entry
    // stream) is flushed, the rest stays in the head.
    let mut later: Vec<(TenantId, Vec<StreamBatch>)> = Vec::new();
    for d in data {
        let mut now = Vec::new();
        let mut rest = Vec::new();
        for (i, s) in d.streams.iter().enumerate() {
            let mut entries = s.entries.clone();
            entries.sort_by_key(|e| e.ts);
            let split = match (state, entries.len()) {
                (State::Mixed, 1) => i % 2,
                (State::Mixed, n) => n.div_ceil(2),
                _ => entries.len(),
            };
            let second = entries.split_off(split);
            for (part, out) in [(entries, &mut now), (second, &mut rest)] {
                if !part.is_empty() {
                    out.push(StreamBatch {
                        labels: s.labels.clone(),
                        entries: part,
                    });
                }
            }
        }
        push(&store, &d.tenant, now);
        later.push((d.tenant.clone(), rest));
    }
    if !matches!(state, State::Head) {
        store.flush().expect("flush");
    }
    for (tenant, batches) in later {
        push(&store, &tenant, batches);
    }
    store
}

fn push(store: &Store, tenant: &TenantId, batches: Vec<StreamBatch>) {
    if batches.is_empty() {
        return;
    }
    let wanted: usize = batches.iter().map(|b| b.entries.len()).sum();
    let out = store.push(tenant, batches).expect("push");
    assert!(
        out.rejected.is_empty(),
        "corpus data refused: {:?}",
        out.rejected
    );
    assert_eq!(out.accepted as usize + out.duplicates as usize, wanted);
}

// ---------------------------------------------------------------- running

fn run(store: &Store, tenant: &TenantId, case: &Case, direction: Direction) -> Expect {
    let expr = match parse_expr(&case.query) {
        Ok(e) => e,
        Err(e) => return Expect::Error(e.to_string()),
    };
    match expr {
        Expr::Log(log) => {
            let pipeline = match Pipeline::new(&log.pipeline) {
                Ok(p) => p,
                Err(e) => return Expect::Error(e.to_string()),
            };
            let q = LogQuery {
                tenant,
                selector: &log.selector,
                pipeline: &pipeline,
                start: Timestamp(case.start),
                end: Timestamp(case.end),
                limit: case.limit,
                direction,
                interval: case.interval,
            };
            match run_log_query(store, &q) {
                Err(e) => Expect::Error(e.to_string()),
                Ok(r) => Expect::Streams(
                    r.streams
                        .into_iter()
                        .map(|s| {
                            let entries = s.entries.into_iter().map(|e| (e.ts.0, e.line)).collect();
                            (s.labels.into_labels(), entries)
                        })
                        .collect(),
                ),
            }
        }
        metric => {
            let (start, end, step) = match case.instant {
                Some(t) => (t, t, SECOND),
                None => (case.start, case.end, case.step),
            };
            let q = MetricQuery {
                tenant,
                expr: &metric,
                start: Timestamp(start),
                end: Timestamp(end),
                step,
                limits: MetricLimits {
                    max_series: case.max_series,
                    max_inner_series: case
                        .max_inner_series
                        .unwrap_or(MetricLimits::default().max_inner_series),
                    max_range_bytes: case
                        .max_range_bytes
                        .unwrap_or(MetricLimits::default().max_range_bytes),
                },
            };
            match run_metric_query(store, &q) {
                Err(e) => Expect::Error(e.to_string()),
                Ok(r) => match (r.output, case.instant.is_some()) {
                    (MetricOutput::Scalar(points), true) => {
                        Expect::Scalar(points.first().map_or(f64::NAN, |p| p.1))
                    }
                    (MetricOutput::Scalar(points), false) => {
                        Expect::Matrix(vec![(Vec::new(), points)])
                    }
                    (MetricOutput::Matrix(series), true) => Expect::Vector(
                        series
                            .into_iter()
                            .filter_map(|s| Some((s.labels, s.points.first()?.1)))
                            .collect(),
                    ),
                    (MetricOutput::Matrix(series), false) => {
                        Expect::Matrix(series.into_iter().map(|s| (s.labels, s.points)).collect())
                    }
                },
            }
        }
    }
}

fn same_value(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-3)
}

/// Whether `got` meets `want`. Result streams are compared in label
/// order (Loki does not define the order of streams); entries, series and
/// vector samples in the order given.
fn matches(want: &Expect, got: &Expect) -> bool {
    match (want, got) {
        (Expect::Error(w), Expect::Error(g)) => g.to_lowercase().contains(&w.to_lowercase()),
        (Expect::Scalar(w), Expect::Scalar(g)) => same_value(*w, *g),
        (Expect::Streams(w), Expect::Streams(g)) => {
            let mut w = w.clone();
            let mut g = g.clone();
            w.sort_by(|a, b| a.0.cmp(&b.0));
            g.sort_by(|a, b| a.0.cmp(&b.0));
            w == g
        }
        (Expect::Matrix(w), Expect::Matrix(g)) => {
            w.len() == g.len()
                && w.iter().zip(g).all(|(a, b)| {
                    a.0 == b.0
                        && a.1.len() == b.1.len()
                        && a.1
                            .iter()
                            .zip(&b.1)
                            .all(|(p, q)| p.0 == q.0 && same_value(p.1, q.1))
                })
        }
        (Expect::Vector(w), Expect::Vector(g)) => {
            w.len() == g.len()
                && w.iter()
                    .zip(g)
                    .all(|(a, b)| a.0 == b.0 && same_value(a.1, b.1))
        }
        _ => false,
    }
}

fn show_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// An expectation in the corpus's own syntax, to paste into a file.
fn show(e: &Expect) -> String {
    let mut s = String::new();
    match e {
        Expect::Error(m) => _ = write!(s, "expect error: {m}"),
        Expect::Scalar(v) => _ = write!(s, "expect scalar: {}", show_value(*v)),
        Expect::Streams(streams) => {
            s.push_str("expect streams:");
            for (labels, entries) in streams {
                _ = write!(s, "\n{}", show_labels(labels));
                for (ts, line) in entries {
                    let needs_json = line.is_empty()
                        || line.starts_with("= ")
                        || line.starts_with('@')
                        || line.trim() != line
                        || line.chars().any(char::is_control);
                    let line = if needs_json {
                        format!("= {}", quote(line))
                    } else {
                        line.clone()
                    };
                    _ = write!(s, "\n  {} {line}", show_ts(*ts));
                }
            }
        }
        Expect::Matrix(series) => {
            s.push_str("expect matrix:");
            for (labels, points) in series {
                _ = write!(s, "\n{}", show_labels(labels));
                for (t, v) in points {
                    _ = write!(s, " {}={}", show_ts(*t), show_value(*v));
                }
            }
        }
        Expect::Vector(samples) => {
            s.push_str("expect vector:");
            for (labels, v) in samples {
                _ = write!(s, "\n{} {}", show_labels(labels), show_value(*v));
            }
        }
    }
    s
}

/// Streams expected in forward order, turned into another direction.
fn in_direction(e: &Expect, direction: Direction) -> Expect {
    match (e, direction) {
        (Expect::Streams(s), Direction::Backward) => Expect::Streams(
            s.iter()
                .map(|(l, entries)| (l.clone(), entries.iter().rev().cloned().collect()))
                .collect(),
        ),
        _ => e.clone(),
    }
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/conformance")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn conformance() {
    let mut data = Vec::new();
    let mut cases = Vec::new();
    let mut per_file = Vec::new();
    for path in corpus_files() {
        let name = format!(
            "tests/conformance/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let text = std::fs::read_to_string(&path).expect("read corpus file");
        let file_cases = parse_file(&name, &text, &mut data).unwrap_or_else(|e| panic!("{e}"));
        per_file.push((name, file_cases.len()));
        cases.extend(file_cases);
    }
    let only = std::env::var("CONFORMANCE_ONLY").ok();

    let mut failures = Vec::new();
    let server = s3::S3Server::start();
    let states = [
        State::Head,
        State::Flushed,
        State::Mixed,
        State::ObjectStorage,
    ];
    for state in states {
        let dir = tempfile::tempdir().expect("temp dir");
        let on_s3 = matches!(state, State::ObjectStorage).then_some(&server);
        let store = build(dir.path(), &data, state, on_s3);
        for case in &cases {
            if only.as_deref().is_some_and(|o| {
                !case.name.contains(o) && !format!("{}:{}", case.file, case.line).contains(o)
            }) {
                continue;
            }
            let tenant = &data[case.data].tenant;
            // Log queries run in both directions unless the case names one
            // (its expectation is then in that direction's order).
            let directions: &[Direction] = match case.direction {
                Some(Direction::Forward) => &[Direction::Forward],
                Some(Direction::Backward) => &[Direction::Backward],
                None => &[Direction::Forward, Direction::Backward],
            };
            for &direction in directions {
                let want = match case.direction {
                    Some(_) => case.expect.clone(),
                    None => in_direction(&case.expect, direction),
                };
                // Field columns are an index: the answer must be the same,
                // to the byte, with them and without.
                skald_query::set_field_columns(false);
                let without = run(&store, tenant, case, direction);
                skald_query::set_field_columns(true);
                let got = run(&store, tenant, case, direction);
                if show(&got) != show(&without) {
                    failures.push(format!(
                        "{}:{}: case {:?} ({state:?} store, {direction:?}) differs with field columns\n  query: {}\n--- without columns\n{}\n--- with columns\n{}\n",
                        case.file,
                        case.line,
                        case.name,
                        case.query,
                        show(&without),
                        show(&got)
                    ));
                }
                if !matches(&want, &got) {
                    failures.push(format!(
                        "{}:{}: case {:?} ({state:?} store, {direction:?})\n  query: {}\n--- want\n{}\n--- got\n{}\n",
                        case.file,
                        case.line,
                        case.name,
                        case.query,
                        show(&want),
                        show(&got)
                    ));
                }
                if !matches!(case.expect, Expect::Streams(_)) {
                    break;
                }
            }
        }
        store.close().expect("close");
    }
    for (file, n) in &per_file {
        eprintln!("{file}: {n} cases");
    }
    if !failures.is_empty() {
        panic!(
            "{} conformance failure(s) of {} cases:\n\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
}
