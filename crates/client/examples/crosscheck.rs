//! Pushes or reads back marked lines, for checking this client against
//! another one (the Python SDK's functional suite uses it), over Loki's
//! HTTP API (`Client`, `QueryClient`) or Skald's gRPC API (`GrpcClient`):
//!
//! ```text
//! crosscheck push URL MARKER N        # N lines {app="crosscheck", from="rust"}
//! crosscheck read URL MARKER          # lines of {app="crosscheck"} with MARKER, oldest first
//! crosscheck grpc-push URL MARKER N   # N lines {app="crosscheck", from="rust-grpc"}, metadata seq=<i>
//! crosscheck grpc-read URL MARKER     # as read, printing `line<TAB>seq` (seq from metadata, or "-")
//! ```
//!
//! For the gRPC commands URL is the gRPC address, `http://host:port`.

use skald_client::grpc::{GrpcClient, pb};
use skald_client::{
    Client, Config, Direction, Endpoint, Entry, Labels, QueryClient, QueryResult, RangeQuery,
    Timestamp,
};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("push") if args.len() == 5 => push(&args[2], &args[3], &args[4]),
        Some("read") if args.len() == 4 => read(&args[2], &args[3]),
        Some("grpc-push") if args.len() == 5 => grpc_push(&args[2], &args[3], &args[4]),
        Some("grpc-read") if args.len() == 4 => grpc_read(&args[2], &args[3]),
        _ => Err(
            "usage: crosscheck push|grpc-push URL MARKER N | crosscheck read|grpc-read URL MARKER"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crosscheck: {e}");
            ExitCode::FAILURE
        }
    }
}

type Failure = Box<dyn std::error::Error>;

fn push(url: &str, marker: &str, n: &str) -> Result<(), Failure> {
    let n: usize = n.parse()?;
    let client = Client::new(Config::new(url))?;
    let labels = Labels::new([("app", "crosscheck"), ("from", "rust")])?;
    for i in 0..n {
        client.send(
            Entry::new(&labels, format!("rust {marker} {i}")).with_metadata("seq", i.to_string()),
        )?;
    }
    client.close(Duration::from_secs(30))?;
    if let Some(e) = client.last_error() {
        return Err(format!("push failed: {e}").into());
    }
    Ok(())
}

fn read(url: &str, marker: &str) -> Result<(), Failure> {
    runtime()?.block_on(async {
        let query = QueryClient::new(Endpoint::new(url))?;
        let now = Timestamp::now();
        let window = RangeQuery {
            start: Some(Timestamp(now.0 - 3_600_000_000_000)),
            end: Some(Timestamp(now.0 + 1)),
            limit: Some(5000),
            direction: Some(Direction::Forward),
            ..RangeQuery::default()
        };
        let q = format!("{{app=\"crosscheck\"}} |= {marker:?}");
        let QueryResult::Streams(streams) = query.query_range(&q, &window).await? else {
            return Err("expected a streams result".into());
        };
        let mut lines: Vec<(i64, String)> = streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| (e.timestamp.0, e.line.clone())))
            .collect();
        lines.sort();
        for (_, line) in lines {
            println!("{line}");
        }
        Ok(())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn grpc_push(url: &str, marker: &str, n: &str) -> Result<(), Failure> {
    let n: i64 = n.parse()?;
    runtime()?.block_on(async {
        let client = GrpcClient::connect(Endpoint::new(url)).await?;
        let start = Timestamp::now().0 - n;
        let entries = (0..n)
            .map(|i| {
                pb::Entry::new(start + i, format!("rust-grpc {marker} {i}"))
                    .with_metadata("seq", i.to_string())
            })
            .collect();
        let pushed = client
            .push_log_batch(pb::PushLogBatchRequest {
                streams: vec![pb::Stream::new(
                    pb::labels([("app", "crosscheck"), ("from", "rust-grpc")]),
                    entries,
                )],
            })
            .await?;
        if pushed.accepted != n as u64 {
            return Err(format!("pushed {n}, server answered {pushed:?}").into());
        }
        Ok(())
    })
}

fn grpc_read(url: &str, marker: &str) -> Result<(), Failure> {
    runtime()?.block_on(async {
        let client = GrpcClient::connect(Endpoint::new(url)).await?;
        let found = client
            .query_logs(pb::QueryLogsRequest {
                query: format!("{{app=\"crosscheck\"}} |= {marker:?}"),
                limit: 5000,
                direction: pb::Direction::Forward as i32,
                ..Default::default()
            })
            .await?;
        let mut lines: Vec<(i64, String, String)> = found
            .streams
            .iter()
            .flat_map(|s| {
                s.entries.iter().map(|e| {
                    let seq = e
                        .structured_metadata
                        .iter()
                        .find(|m| m.name == "seq")
                        .map_or_else(|| "-".to_string(), |m| m.value.clone());
                    (e.timestamp_ns, e.line.clone(), seq)
                })
            })
            .collect();
        lines.sort();
        for (_, line, seq) in lines {
            println!("{line}\t{seq}");
        }
        Ok(())
    })
}
