//! Live tail latency: from the start of a push call to the entry's arrival
//! at a connected gRPC `TailLogs` subscriber, one entry at a time.

use skald_server::grpc::proto;
use skald_server::grpc::proto::log_service_client::LogServiceClient;
use std::time::{Duration, Instant};

/// Latency figures of one run.
#[derive(Debug, Clone)]
pub struct TailLatency {
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Pushes `samples` entries one by one to the server at `grpc_url` (tenant
/// header if given) and times each until a tail subscriber receives it.
pub fn measure(
    grpc_url: &str,
    tenant: Option<&str>,
    samples: usize,
) -> anyhow::Result<TailLatency> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(grpc_url.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        let tenant_value = tenant
            .map(|t| t.parse::<tonic::metadata::MetadataValue<_>>())
            .transpose()?;
        let mut client = LogServiceClient::new(channel);
        let mut tail = client
            .tail_logs(with_tenant(
                tenant_value.as_ref(),
                proto::TailLogsRequest {
                    query: r#"{bench="tail"}"#.into(),
                    limit: 0,
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        let mut pusher = client.clone();
        let mut latencies = Vec::with_capacity(samples);
        let base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as i64;
        for i in 0..samples {
            let line = format!("tail latency probe {i}");
            let sent = Instant::now();
            pusher
                .push_log(with_tenant(
                    tenant_value.as_ref(),
                    proto::PushLogRequest {
                        labels: vec![proto::Label {
                            name: "bench".into(),
                            value: "tail".into(),
                        }],
                        entry: Some(proto::Entry {
                            timestamp_ns: base + i as i64,
                            line: line.clone(),
                            structured_metadata: vec![],
                        }),
                    },
                ))
                .await?;
            loop {
                let m = tokio::time::timeout(Duration::from_secs(10), tail.message())
                    .await
                    .map_err(|_| anyhow::anyhow!("no tail message within 10 s"))??
                    .ok_or_else(|| anyhow::anyhow!("the tail stream ended"))?;
                let arrived = m
                    .streams
                    .iter()
                    .flat_map(|s| &s.entries)
                    .any(|e| e.line == line);
                if arrived {
                    latencies.push(sent.elapsed());
                    break;
                }
            }
        }
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        Ok(TailLatency {
            samples,
            p50: at(0.5),
            p99: at(0.99),
            max: *latencies.last().unwrap_or(&Duration::ZERO),
        })
    })
}

fn with_tenant<T>(
    tenant: Option<&tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    message: T,
) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(t) = tenant {
        req.metadata_mut().insert("x-scope-orgid", t.clone());
    }
    req
}
