//! An in-process stand-in for Loki's push endpoint: scripted answers, a
//! gate to hold requests, and a record of every delivered entry.

#![allow(dead_code)]

pub mod server;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            retry_after: None,
            body: format!("scripted {status}"),
        }
    }
}

/// One delivered entry: stream selector, timestamp, line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Got {
    pub stream: String,
    pub ts: i64,
    pub line: String,
}

#[derive(Default)]
pub struct MockState {
    pub script: Mutex<VecDeque<Reply>>,
    pub delivered: Mutex<Vec<Got>>,
    pub headers: Mutex<Vec<HeaderMap>>,
    pub requests: AtomicUsize,
    gate: Mutex<Option<tokio::sync::watch::Sender<bool>>>,
}

pub struct Mock {
    pub url: String,
    pub port: u16,
    pub state: Arc<MockState>,
    runtime: tokio::runtime::Runtime,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Mock {
    pub fn start() -> Mock {
        Mock::start_on(0)
    }

    pub fn start_on(port: u16) -> Mock {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(MockState::default());
        let (gate, _) = tokio::sync::watch::channel(true);
        *state.gate.lock().unwrap() = Some(gate);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route("/loki/api/v1/push", post(push))
            .with_state(state.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        Mock {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
            runtime,
        }
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// Holds every push until `open`.
    pub fn hold(&self) {
        self.state
            .gate
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .send_replace(false);
    }

    pub fn open(&self) {
        self.state
            .gate
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .send_replace(true);
    }

    pub fn delivered(&self) -> Vec<Got> {
        self.state.delivered.lock().unwrap().clone()
    }

    pub fn lines(&self) -> Vec<String> {
        self.delivered().into_iter().map(|g| g.line).collect()
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

/// Waits (generously) for `condition`; panics with `what` if it never holds.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn decode(headers: &HeaderMap, body: &[u8]) -> Vec<Got> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type == "application/x-protobuf" {
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        let request = skald_client::proto::PushRequest::decode(raw.as_slice()).unwrap();
        let mut got = Vec::new();
        for stream in request.streams {
            for e in stream.entries {
                let ts = e.timestamp.unwrap();
                got.push(Got {
                    stream: stream.labels.clone(),
                    ts: ts.seconds * 1_000_000_000 + i64::from(ts.nanos),
                    line: e.line,
                });
            }
        }
        return got;
    }
    assert_eq!(content_type, "application/json");
    let mut json = body.to_vec();
    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        json.clear();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut json)
            .unwrap();
    }
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let mut got = Vec::new();
    for stream in value["streams"].as_array().unwrap() {
        let labels = skald_client::Labels::new(
            stream["stream"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
        )
        .unwrap();
        for v in stream["values"].as_array().unwrap() {
            got.push(Got {
                stream: labels.selector().to_string(),
                ts: v[0].as_str().unwrap().parse().unwrap(),
                line: v[1].as_str().unwrap().to_string(),
            });
        }
    }
    got
}

async fn push(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut gate = state.gate.lock().unwrap().as_ref().unwrap().subscribe();
    let _ = gate.wait_for(|open| *open).await;
    state.requests.fetch_add(1, Ordering::SeqCst);
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::status(204));
    if (200..300).contains(&reply.status) {
        let got = decode(&headers, &body);
        state.delivered.lock().unwrap().extend(got);
        state.headers.lock().unwrap().push(headers);
    }
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        reply.body.clone(),
    )
        .into_response();
    if let Some(after) = reply.retry_after {
        response
            .headers_mut()
            .insert("retry-after", after.parse().unwrap());
    }
    response
}
