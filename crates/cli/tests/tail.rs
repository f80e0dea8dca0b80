//! Live tail against the real binary: a websocket client (Loki's format)
//! and a gRPC client see entries another client pushes.

mod common;

use common::{Server, now_ns, urlencode};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

#[test]
fn websocket_tail_sees_entries_pushed_by_another_client() {
    let s = Server::start();
    rt().block_on(async {
    let now = now_ns();
    let old = json!({"streams": [{"stream": {"app": "tail"}, "values": [[(now - 1_000_000).to_string(), "history"]]}]});
    assert_eq!(
        tokio::task::block_in_place(|| s.push_json(&old)).status().as_u16(),
        204
    );
    let url = format!(
        "ws://127.0.0.1:{}/loki/api/v1/tail?query={}&limit=10",
        s.http,
        urlencode(r#"{app="tail"} |= "keep""#)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // History first: the filter drops the one old line.
    let first = next_json(&mut ws).await;
    assert_eq!(first["streams"].as_array().unwrap().len(), 0, "{first}");

    let pushed_at = Instant::now();
    tokio::task::block_in_place(|| {
        let now = now_ns();
        let body = json!({"streams": [{"stream": {"app": "tail"}, "values": [
            [now.to_string(), "keep 1"], [(now + 1).to_string(), "drop"], [(now + 2).to_string(), "keep 2"]
        ]}]});
        assert_eq!(s.push_json(&body).status().as_u16(), 204);
    });
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = next_json(&mut ws).await;
        for st in m["streams"].as_array().unwrap() {
            assert_eq!(st["stream"]["app"], "tail");
            for v in st["values"].as_array().unwrap() {
                got.push(v[1].as_str().unwrap().to_string());
            }
        }
    }
    eprintln!("push to websocket delivery: {:?}", pushed_at.elapsed());
    assert_eq!(got, ["keep 1", "keep 2"]);
    });
}

async fn next_json<S>(ws: &mut S) -> serde_json::Value
where
    S: tokio_stream::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a tail message within 10 s")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[test]
fn grpc_tail_logs_streams_new_entries_with_latency() {
    use skald_server::grpc::proto;
    let s = Server::start();
    rt().block_on(async {
        let mut c = proto::log_service_client::LogServiceClient::connect(s.grpc_url())
            .await
            .unwrap();
        let mut tail = c
            .tail_logs(proto::TailLogsRequest {
                query: r#"{app="gt"}"#.into(),
                limit: 0,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let _history = tail.message().await.unwrap().unwrap();
        let mut pusher = c.clone();
        let mut latencies = Vec::new();
        for i in 0..50 {
            let sent = Instant::now();
            pusher
                .push_log(proto::PushLogRequest {
                    labels: vec![proto::Label {
                        name: "app".into(),
                        value: "gt".into(),
                    }],
                    entry: Some(proto::Entry {
                        timestamp_ns: now_ns(),
                        line: format!("live {i}"),
                        structured_metadata: vec![],
                    }),
                })
                .await
                .unwrap();
            let m = tokio::time::timeout(Duration::from_secs(10), tail.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            latencies.push(sent.elapsed());
            assert_eq!(m.streams[0].entries[0].line, format!("live {i}"));
        }
        latencies.sort();
        eprintln!(
            "push call start to tail delivery over gRPC: p50 {:?}, p99 {:?}",
            latencies[latencies.len() / 2],
            latencies[latencies.len() * 99 / 100]
        );
    });
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `skald tail ... | head -n 1` ends once head has its line, even though no
/// further line comes to fail a write (as `tail -f | head` does).
#[test]
fn tail_ends_when_its_reader_goes_away() {
    use std::io::BufRead;
    let s = Server::start();
    let ts = now_ns();
    let values: Vec<_> = (0..3)
        .map(|i| json!([(ts + i).to_string(), format!("line {i}")]))
        .collect();
    let r = s.push_json(&json!({"streams": [{"stream": {"app": "gone"}, "values": values}]}));
    assert_eq!(r.status(), 204);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(["tail", r#"{app="gone"}"#, "--since", "5m", "-o", "raw"])
        .args(["--addr", &s.url("")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert_eq!(first.trim_end(), "line 0");
    drop(reader);
    // Generous: it checks every half second.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("skald tail still running a minute after its reader left");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
}
