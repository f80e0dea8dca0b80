//! The unmodified `tracing-loki` crate (protobuf push, `Content-Encoding:
//! snappy`) shipping `tracing` events to Skald, then reading them back
//! through Loki's query API.
//!
//! Events at every level, with fields and inside spans, go through the
//! layer; the background task is shut down (which flushes it). Then a
//! forward `query_range` must return each event exactly once, in the stream
//! the layer labelled (`level` is added by the crate), its line the JSON the
//! crate writes (`message`, the fields, `_spans`), and LogQL's `| json`
//! must find a field in it. Writes `$SKALD_MANIFEST_DIR/tracing_loki.json`
//! for the after-restart check of `tests/clients/run.sh`.
//!
//! Usage: SKALD_URL=http://127.0.0.1:3100 tracing-loki-check

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

type Failure = Box<dyn std::error::Error>;

/// Events per level.
const PER_LEVEL: usize = 10;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("tracing-loki: FAIL: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Failure> {
    let base = std::env::var("SKALD_URL").map_err(|_| "SKALD_URL is not set")?;
    let base = base.trim_end_matches('/').to_string();
    let run_id = format!("{:x}", now_ns());
    let start_ns = now_ns() - 1_000_000_000;

    let (layer, controller, task) = tracing_loki::builder()
        .label("app", "tracing-loki")?
        .label("run", &run_id)?
        .extra_field("pid", std::process::id().to_string())?
        .build_controller_url(tracing_loki::url::Url::parse(&base)?)?;
    tracing_subscriber::registry().with(layer).init();
    let task = tokio::spawn(task);

    let mut sent: Vec<(String, String)> = Vec::new(); // (level, message)
    for i in 0..PER_LEVEL {
        let span = tracing::info_span!("request", id = i);
        let _entered = span.enter();
        tracing::trace!(i, "trace event {i}");
        tracing::debug!(i, "debug event {i}");
        tracing::info!(i, user = "ada", "info event {i}");
        tracing::warn!(i, "warn event {i}");
        tracing::error!(i, code = 500, "error event {i}");
        for level in ["trace", "debug", "info", "warn", "error"] {
            sent.push((level.to_string(), format!("{level} event {i}")));
        }
    }
    // Flushes what is queued, then ends the task.
    controller.shutdown().await;
    task.await?;
    let end_ns = now_ns() + 1_000_000_000;

    let query = format!(r#"{{app="tracing-loki", run="{run_id}"}}"#);
    let http = reqwest::Client::new();
    let got = query_range(&http, &base, &query, start_ns, end_ns).await?;

    // Every event exactly once, at its level.
    let mut want: BTreeMap<(String, String), usize> = BTreeMap::new();
    for key in &sent {
        *want.entry(key.clone()).or_default() += 1;
    }
    let mut have: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (labels, line) in &got {
        let doc: Value = serde_json::from_str(line)
            .map_err(|e| format!("a line is not the crate's JSON ({e}): {line}"))?;
        let message = doc["message"].as_str().unwrap_or_default().to_string();
        let level = labels["level"].as_str().unwrap_or_default().to_string();
        if doc["pid"] != json!(std::process::id().to_string()) {
            return Err(format!("the extra field pid is missing: {line}").into());
        }
        if doc["_spans"] != json!(["request"]) {
            return Err(format!("the span is missing: {line}").into());
        }
        *have.entry((level, message)).or_default() += 1;
    }
    if want != have {
        let missing: Vec<_> = want.keys().filter(|k| !have.contains_key(*k)).collect();
        let extra: Vec<_> = have
            .iter()
            .filter(|(k, n)| want.get(*k) != Some(n))
            .collect();
        return Err(format!(
            "{} events sent, {} read back; missing {missing:?}; unexpected or repeated {extra:?}",
            sent.len(),
            got.len()
        )
        .into());
    }

    // The fields are searchable with LogQL's json parser.
    let errors = query_range(
        &http,
        &base,
        &format!(r#"{query} | json | code = 500 and message =~ "error event .*""#),
        start_ns,
        end_ns,
    )
    .await?;
    if errors.len() != PER_LEVEL {
        return Err(format!(
            "| json | code = 500 found {} lines, expected {PER_LEVEL}",
            errors.len()
        )
        .into());
    }

    if let Ok(dir) = std::env::var("SKALD_MANIFEST_DIR") {
        let expected: Vec<Value> = got
            .iter()
            .map(|(labels, line)| json!({"labels": labels, "line": line}))
            .collect();
        let manifest = json!({"name": "tracing_loki", "query": query,
            "start": start_ns.to_string(), "end": end_ns.to_string(), "expected": expected});
        std::fs::write(
            std::path::Path::new(&dir).join("tracing_loki.json"),
            manifest.to_string(),
        )?;
    }
    println!("tracing-loki: OK, {} events", got.len());
    Ok(())
}

/// A forward log query; returns (stream labels, line) of every entry.
async fn query_range(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    start_ns: i64,
    end_ns: i64,
) -> Result<Vec<(Value, String)>, Failure> {
    let resp = http
        .get(format!("{base}/loki/api/v1/query_range"))
        .query(&[
            ("query", query.to_string()),
            ("start", start_ns.to_string()),
            ("end", end_ns.to_string()),
            ("limit", "5000".to_string()),
            ("direction", "forward".to_string()),
        ])
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        return Err(format!("query_range {query}: HTTP {status}: {body}").into());
    }
    let doc: Value = serde_json::from_str(&body)?;
    if doc["data"]["resultType"] != "streams" {
        return Err(format!("query_range {query}: not a streams answer: {body}").into());
    }
    let mut out = Vec::new();
    for stream in doc["data"]["result"].as_array().into_iter().flatten() {
        for value in stream["values"].as_array().into_iter().flatten() {
            let line = value[1].as_str().ok_or("a value without a line")?;
            out.push((stream["stream"].clone(), line.to_string()));
        }
    }
    Ok(out)
}
