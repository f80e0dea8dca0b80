//! The OTLP ingest rate: the dataset's first lines as OpenTelemetry log
//! records, pushed to `POST /otlp/v1/logs` as an SDK or the Collector's
//! `otlphttp` exporter sends them (`ExportLogsServiceRequest` in protobuf).
//!
//! Each dataset stream is one resource: `job` becomes `service.name`,
//! `instance` `service.instance.id`, `namespace` `service.namespace`,
//! `region` `cloud.region` (all stream labels under Loki's default mapping),
//! other labels plain resource attributes (structured metadata); a stream's
//! `level` label becomes the records' severity. Every record carries a
//! trace and a span id, as records logged inside a span do. Bodies are
//! encoded before the clock starts, like the Loki push bodies.
//!
//! Pushed to a tenant of its own after everything else is measured, so the
//! disk, memory and query figures stay those of the Loki push run.

use super::dataset::Dataset;
use anyhow::{Context, bail};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use rayon::prelude::*;
use skald_model::LabelSet;
use std::time::{Duration, Instant};

/// The OTLP requests and what they hold.
pub struct Prepared {
    pub bodies: Vec<Bytes>,
    pub lines: u64,
    pub raw_bytes: u64,
    pub body_bytes: u64,
    pub took: Duration,
}

/// Encodes lines `0..lines` of the dataset in requests of `batch_lines`.
pub fn prepare(ds: &Dataset, lines: u64, batch_lines: usize) -> anyhow::Result<Prepared> {
    let started = Instant::now();
    let lines = lines.min(ds.lines);
    let resources: Vec<Resource> = ds
        .streams
        .iter()
        .map(|s| resource(&s.labels))
        .collect::<anyhow::Result<_>>()?;
    let batches: Vec<(Vec<u8>, u64)> = (0..lines.div_ceil(batch_lines as u64))
        .into_par_iter()
        .map(|b| {
            let from = b * batch_lines as u64;
            encode_batch(ds, &resources, from, (from + batch_lines as u64).min(lines))
        })
        .collect();
    let mut prepared = Prepared {
        bodies: Vec::with_capacity(batches.len()),
        lines,
        raw_bytes: 0,
        body_bytes: 0,
        took: Duration::ZERO,
    };
    for (body, raw) in batches {
        prepared.raw_bytes += raw;
        prepared.body_bytes += body.len() as u64;
        prepared.bodies.push(Bytes::from(body));
    }
    prepared.took = started.elapsed();
    Ok(prepared)
}

/// The resource of a dataset stream (its labels as OTLP attributes).
fn resource(labels: &str) -> anyhow::Result<Resource> {
    let set = LabelSet::parse(labels).with_context(|| format!("dataset labels {labels}"))?;
    let attributes = set
        .labels()
        .iter()
        .filter(|l| l.name != "level")
        .map(|l| {
            let key = match l.name.as_str() {
                "job" => "service.name",
                "instance" => "service.instance.id",
                "namespace" => "service.namespace",
                "region" => "cloud.region",
                "env" => "deployment.environment",
                other => other,
            };
            string_kv(key, &l.value)
        })
        .collect();
    Ok(Resource {
        attributes,
        ..Default::default()
    })
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// OpenTelemetry's severity number of a level word.
fn severity(level: &str) -> i32 {
    match level {
        "debug" => 5,
        "warn" => 13,
        "error" => 17,
        _ => 9,
    }
}

/// Lines `from..to` as one request: one resource per stream, in order of
/// first appearance. Returns the protobuf body and the lines' bytes.
fn encode_batch(ds: &Dataset, resources: &[Resource], from: u64, to: u64) -> (Vec<u8>, u64) {
    let mut slot_of_stream = vec![usize::MAX; ds.streams.len()];
    let mut request = ExportLogsServiceRequest::default();
    let mut raw = 0;
    let mut line = String::new();
    for i in from..to {
        let (s, ts) = ds.entry(i, &mut line);
        if slot_of_stream[s] == usize::MAX {
            slot_of_stream[s] = request.resource_logs.len();
            request.resource_logs.push(ResourceLogs {
                resource: Some(resources[s].clone()),
                scope_logs: vec![ScopeLogs::default()],
                ..Default::default()
            });
        }
        raw += line.len() as u64;
        let level = ds.streams[s].level;
        let n = i + 1;
        let record = LogRecord {
            time_unix_nano: ts as u64,
            observed_time_unix_nano: ts as u64,
            severity_number: level.map_or(0, severity),
            severity_text: level.map(str::to_uppercase).unwrap_or_default(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(line.clone())),
            }),
            trace_id: (n as u128 * 0x9e37_79b9_7f4a_7c15).to_be_bytes().to_vec(),
            span_id: n.to_be_bytes().to_vec(),
            ..Default::default()
        };
        request.resource_logs[slot_of_stream[s]].scope_logs[0]
            .log_records
            .push(record);
    }
    (prost::Message::encode_to_vec(&request), raw)
}

/// Counts what the server stored under `tenant` for the OTLP run: every
/// record must be there, or the rate measured a failure.
pub fn check_stored(
    client: &reqwest::blocking::Client,
    base_url: &str,
    tenant: &str,
    ds: &Dataset,
    expected: u64,
) -> anyhow::Result<()> {
    let range_secs = (ds.end_ns - ds.start_ns) / 1_000_000_000 + 2;
    let query = format!(r#"sum(count_over_time({{service_name=~".+"}} [{range_secs}s]))"#);
    let end_ns = ds.end_ns + 1_000_000_000;
    let response = client
        .get(format!("{base_url}/loki/api/v1/query"))
        .header("X-Scope-OrgID", tenant)
        .query(&[("query", query.as_str()), ("time", &end_ns.to_string())])
        .send()
        .context("counting the OTLP records")?;
    let status = response.status();
    let body: serde_json::Value = response.json().context("the count's answer")?;
    if !status.is_success() {
        bail!("counting the OTLP records: {status}: {body}");
    }
    let stored = body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    if stored != expected {
        bail!("the server stored {stored} of the {expected} OTLP records pushed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn requests_carry_every_line_with_its_resource() {
        let end = 1_714_566_896_000_000_000;
        let ds = Dataset::new(5, 1_500, end, 3_600_000_000_000);
        let prepared = prepare(&ds, 1_200, 500).unwrap();
        assert_eq!(prepared.bodies.len(), 3);
        assert_eq!(prepared.lines, 1_200);
        // Timestamps are unique in the dataset: (service, line) by time.
        let mut got = std::collections::BTreeMap::new();
        for body in &prepared.bodies {
            let request = ExportLogsServiceRequest::decode(body.as_ref()).unwrap();
            for rl in &request.resource_logs {
                let attrs = &rl.resource.as_ref().unwrap().attributes;
                let service = attrs.iter().find(|kv| kv.key == "service.name").unwrap();
                for rec in &rl.scope_logs[0].log_records {
                    assert_eq!(rec.trace_id.len(), 16);
                    assert_eq!(rec.span_id.len(), 8);
                    let body = rec.body.clone().unwrap().value.unwrap();
                    let previous = got.insert(
                        rec.time_unix_nano as i64,
                        (service.value.clone().unwrap().value.unwrap(), body),
                    );
                    assert!(previous.is_none());
                }
            }
        }
        assert_eq!(got.len(), 1_200);
        let mut line = String::new();
        let mut raw = 0;
        for i in 0..1_200 {
            let (s, ts) = ds.entry(i, &mut line);
            let (service, body) = &got[&ts];
            assert_eq!(
                *service,
                any_value::Value::StringValue(ds.streams[s].job.into())
            );
            assert_eq!(*body, any_value::Value::StringValue(line.clone()));
            raw += line.len() as u64;
        }
        assert_eq!(raw, prepared.raw_bytes);
    }

    #[test]
    fn stream_labels_map_to_loki_default_resource_attributes() {
        let r = resource(r#"{job="api", instance="api-1", namespace="shop", region="eu", level="warn", team="x"}"#)
            .unwrap();
        let mut keys: Vec<&str> = r.attributes.iter().map(|kv| kv.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "cloud.region",
                "service.instance.id",
                "service.name",
                "service.namespace",
                "team"
            ]
        );
    }
}
