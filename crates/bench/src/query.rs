//! The queries a user runs, timed from the client: request sent to the
//! whole answer received (JSON parsing excluded), and checked.

use super::target::MemorySample;
use anyhow::Context;
use serde_json::Value;
use std::time::{Duration, Instant};

/// One query to time.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    /// Short name in the report.
    pub name: &'static str,
    pub query: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub limit: usize,
    pub direction: &'static str,
    /// The step of a metric query, in seconds.
    pub step_secs: Option<u64>,
    /// Runs after the first, cold one.
    pub warm_runs: usize,
    pub expect: Expect,
}

/// What a correct answer looks like.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Exactly this many lines, each containing the text.
    LinesContaining { count: usize, text: String },
    /// Between one and `most` lines, each containing the text.
    SomeLinesContaining { most: usize, text: String },
    /// This many lines, the first (newest) at this timestamp.
    Newest { count: usize, newest_ns: i64 },
    /// A matrix whose series carry exactly the label `by` and whose
    /// values add up to `total` (a count whose windows tile the range).
    Total { by: &'static str, total: u64 },
    /// A non-empty matrix whose series carry exactly the label `by`, with
    /// at most `per_step` values at any step.
    Series {
        by: &'static str,
        per_step: Option<usize>,
    },
}

/// Timings and figures of one query, run once cold and then warm.
#[derive(Debug, Clone)]
pub struct QueryRun {
    pub name: &'static str,
    pub query: String,
    pub phase: &'static str,
    pub cold: Duration,
    /// Warm runs, sorted.
    pub warm: Vec<Duration>,
    pub lines: usize,
    pub chunks_skipped: Option<u64>,
    pub chunks_ref: Option<u64>,
    /// Server-side execution time of the last run (`stats.summary.execTime`).
    pub exec_time: Option<f64>,
    /// The server's peak RSS during this query's runs, when the server is
    /// a child whose peak can be reset.
    pub peak_rss: Option<u64>,
    /// The server's memory just before this query's peak was reset: what
    /// an overall peak must still count.
    pub memory_before: Option<MemorySample>,
    /// Why the answer was wrong, if it was.
    pub problem: Option<String>,
    /// (GET requests, bytes) the server fetched from its object store for
    /// the cold run and for all warm runs together; `None` when its
    /// segments are on a local disk.
    pub fetched: Option<[(u64, u64); 2]>,
}

impl QueryRun {
    pub fn warm_percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.warm, p)
    }
}

/// The `p`-th percentile (0..=100) of sorted durations, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Runs `spec` once, then `spec.warm_runs` more times; with the server's
/// `pid`, measures its peak RSS over these runs.
pub fn run(
    client: &reqwest::blocking::Client,
    base_url: &str,
    tenant: Option<&str>,
    spec: &QuerySpec,
    phase: &'static str,
    pid: Option<u32>,
) -> anyhow::Result<QueryRun> {
    let memory_before = pid.and_then(MemorySample::reset_peak);
    let fetched_before = object_reads(client, base_url);
    let (cold, first) = once(client, base_url, tenant, spec)?;
    let fetched_cold = object_reads(client, base_url);
    let mut timings = Vec::with_capacity(spec.warm_runs);
    let mut last = first;
    for _ in 0..spec.warm_runs {
        let (took, answer) = once(client, base_url, tenant, spec)?;
        timings.push(took);
        last = answer;
    }
    let fetched = match (fetched_before, fetched_cold, object_reads(client, base_url)) {
        (Some(a), Some(b), Some(c)) => Some([(b.0 - a.0, b.1 - a.1), (c.0 - b.0, c.1 - b.1)]),
        _ => None,
    };
    timings.sort();
    let data = &last["data"];
    let lines = entries(data);
    let stats = &data["stats"]["querier"];
    let problem = match &spec.expect {
        Expect::Total { .. } | Expect::Series { .. } => check_matrix(data, &spec.expect),
        expect => check(&lines, expect),
    };
    Ok(QueryRun {
        name: spec.name,
        query: spec.query.clone(),
        phase,
        cold,
        warm: timings,
        lines: lines.len(),
        chunks_skipped: stats["skald"]["chunksSkippedByFilters"].as_u64(),
        chunks_ref: stats["skald"]["totalChunksRef"]
            .as_u64()
            .or_else(|| stats["store"]["totalChunksRef"].as_u64()),
        exec_time: data["stats"]["summary"]["execTime"].as_f64(),
        peak_rss: memory_before
            .and(pid)
            .and_then(MemorySample::read)
            .map(|m| m.peak_rss),
        memory_before,
        problem,
        fetched,
    })
}

/// The server's object-store GET requests and bytes so far, from
/// `/metrics`; `None` when it exports none (segments on a local disk).
fn object_reads(client: &reqwest::blocking::Client, base_url: &str) -> Option<(u64, u64)> {
    let text = client
        .get(format!("{base_url}/metrics"))
        .send()
        .ok()?
        .text()
        .ok()?;
    let value = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?
            .trim()
            .parse()
            .ok()
    };
    Some((
        value("skald_object_store_get_requests_total")?,
        value("skald_object_store_get_bytes_total")?,
    ))
}

fn once(
    client: &reqwest::blocking::Client,
    base_url: &str,
    tenant: Option<&str>,
    spec: &QuerySpec,
) -> anyhow::Result<(Duration, Value)> {
    let mut url = reqwest::Url::parse(&format!("{base_url}/loki/api/v1/query_range"))
        .with_context(|| format!("the server address {base_url}"))?;
    url.query_pairs_mut()
        .append_pair("query", &spec.query)
        .append_pair("start", &spec.start_ns.to_string())
        .append_pair("end", &spec.end_ns.to_string())
        .append_pair("limit", &spec.limit.to_string())
        .append_pair("direction", spec.direction);
    if let Some(step) = spec.step_secs {
        url.query_pairs_mut()
            .append_pair("step", &format!("{step}s"));
    }
    let mut request = client.get(url);
    if let Some(t) = tenant {
        request = request.header("X-Scope-OrgID", t);
    }
    let sent = Instant::now();
    let response = request
        .send()
        .with_context(|| format!("query {}", spec.query))?;
    let status = response.status();
    let body = response
        .bytes()
        .with_context(|| format!("query {}", spec.query))?;
    let took = sent.elapsed();
    anyhow::ensure!(
        status.is_success(),
        "query {} answered {status}: {}",
        spec.query,
        String::from_utf8_lossy(&body)
    );
    let value = serde_json::from_slice(&body)
        .with_context(|| format!("query {}: the answer is not JSON", spec.query))?;
    Ok((took, value))
}

/// The answer's entries, newest first.
fn entries(data: &Value) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for stream in data["result"].as_array().into_iter().flatten() {
        for value in stream["values"].as_array().into_iter().flatten() {
            let ts = value[0]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(i64::MIN);
            out.push((ts, value[1].as_str().unwrap_or_default().to_string()));
        }
    }
    out.sort_by(|a, b| b.cmp(a));
    out
}

fn check_matrix(data: &Value, expect: &Expect) -> Option<String> {
    if data["resultType"] != "matrix" {
        return Some(format!("a {} instead of a matrix", data["resultType"]));
    }
    let series = data["result"].as_array().cloned().unwrap_or_default();
    let by = match expect {
        Expect::Total { by, .. } | Expect::Series { by, .. } => *by,
        _ => return None,
    };
    if series.is_empty() {
        return Some("no series".into());
    }
    let mut total = 0.0;
    let mut per_step: std::collections::HashMap<String, usize> = Default::default();
    for s in &series {
        let metric = s["metric"].as_object().cloned().unwrap_or_default();
        if metric.len() != 1 || !metric.contains_key(by) {
            return Some(format!(
                "a series labelled {metric:?}, expected only {by:?}"
            ));
        }
        for v in s["values"].as_array().into_iter().flatten() {
            total += v[1]
                .as_str()
                .and_then(|x| x.parse::<f64>().ok())
                .unwrap_or(f64::NAN);
            *per_step.entry(v[0].to_string()).or_default() += 1;
        }
    }
    match expect {
        Expect::Total { total: want, .. } => ((total - *want as f64).abs() > 0.5)
            .then(|| format!("values add up to {total}, expected {want}")),
        Expect::Series {
            per_step: Some(most),
            ..
        } => per_step
            .values()
            .max()
            .filter(|&&n| n > *most)
            .map(|n| format!("{n} values at one step, expected at most {most}")),
        _ => total
            .is_nan()
            .then(|| "a value that is not a number".to_string()),
    }
}

/// How many lines lack `text`, as a problem, if any.
fn lines_without(lines: &[(i64, String)], text: &str) -> Option<String> {
    let missing = lines.iter().filter(|(_, l)| !l.contains(text)).count();
    (missing > 0).then(|| format!("{missing} lines without {text:?}"))
}

fn check(lines: &[(i64, String)], expect: &Expect) -> Option<String> {
    match expect {
        Expect::LinesContaining { count, text } => {
            if lines.len() != *count {
                return Some(format!("{} lines instead of {count}", lines.len()));
            }
            lines_without(lines, text)
        }
        Expect::SomeLinesContaining { most, text } => {
            if lines.is_empty() || lines.len() > *most {
                return Some(format!("{} lines, expected 1 to {most}", lines.len()));
            }
            lines_without(lines, text)
        }
        Expect::Newest { count, newest_ns } => {
            if lines.len() != *count {
                return Some(format!("{} lines instead of {count}", lines.len()));
            }
            let newest = lines.first().map(|(ts, _)| *ts);
            (newest != Some(*newest_ns))
                .then(|| format!("newest line at {newest:?}, expected {newest_ns}"))
        }
        Expect::Total { .. } | Expect::Series { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 50.0), Some(Duration::from_millis(5)));
        assert_eq!(percentile(&d, 90.0), Some(Duration::from_millis(9)));
        assert_eq!(percentile(&d, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&d, 100.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
