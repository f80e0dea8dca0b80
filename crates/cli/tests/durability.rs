//! kill -9 during concurrent ingest loses no acknowledged entry; a corrupt
//! segment is reported while everything else is still served.

mod common;

use common::{Server, now_ns, segment_files};
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn kill_9_during_concurrent_ingest_loses_nothing_acknowledged() {
    // Small flushes so the kill lands around flushes and WAL truncation too.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skald.toml");
    std::fs::write(
        &config,
        "[store]\nflush_bytes = 1048576\nmax_head_bytes = 4194304\n",
    )
    .unwrap();
    let mut server = Server::start_with(&["--config", config.to_str().unwrap()]);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let base = now_ns() - 30_000_000_000;
    let url = server.url("/loki/api/v1/push");
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let acked = acked.clone();
            let stop = stop.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut batch = 0i64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let lines: Vec<String> = (0..200).map(|i| format!("w{w} b{batch} i{i} {}", "x".repeat(100))).collect();
                    let values: Vec<_> = lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| json!([(base + batch * 1000 + i as i64).to_string(), l]))
                        .collect();
                    let body = json!({"streams": [{"stream": {"app": "crash", "writer": w.to_string()}, "values": values}]});
                    match client.post(&url).header("Content-Type", "application/json").body(body.to_string()).send() {
                        Ok(r) if r.status().as_u16() == 204 => acked.lock().unwrap().extend(lines),
                        _ => return,
                    }
                    batch += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    server.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 1000,
        "too little was pushed to prove anything: {}",
        acked.len()
    );

    server.start_again();
    // Page through each writer's stream forward, as logcli does: the
    // server caps one answer at 5000 entries.
    let mut found: Vec<String> = Vec::new();
    for w in 0..4 {
        let mut start = common::day_ago().parse::<i64>().unwrap();
        loop {
            let v = server.get_json(
                "/loki/api/v1/query_range",
                &[
                    ("query", &format!(r#"{{app="crash", writer="{w}"}}"#)),
                    ("start", &start.to_string()),
                    ("limit", "5000"),
                    ("direction", "forward"),
                ],
            );
            let mut page = 0;
            for s in v["data"]["result"].as_array().unwrap() {
                for e in s["values"].as_array().unwrap() {
                    let ts: i64 = e[0].as_str().unwrap().parse().unwrap();
                    start = start.max(ts + 1);
                    found.push(e[1].as_str().unwrap().to_string());
                    page += 1;
                }
            }
            if page < 5000 {
                break;
            }
        }
    }
    let unique: HashSet<&String> = found.iter().collect();
    assert_eq!(unique.len(), found.len(), "some entries came back twice");
    let missing: Vec<&String> = acked
        .iter()
        .filter(|l| !unique.contains(l))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but lost ({} acked, {} found): {missing:?}",
        acked.len(),
        found.len()
    );
}

#[test]
fn a_corrupt_segment_is_reported_and_the_rest_still_served() {
    let mut server = Server::start();
    let t = now_ns() - 5_000_000_000;
    let push = |server: &Server, app: &str| {
        let values: Vec<_> = (0..200)
            .map(|i| json!([(t + i).to_string(), format!("{app} line {i}")]))
            .collect();
        let r = server.push_json(&json!({"streams": [{"stream": {"app": app}, "values": values}]}));
        assert_eq!(r.status(), 204);
    };
    push(&server, "first");
    server.stop();
    server.start_again();
    push(&server, "second");
    server.stop();
    let segs = segment_files(&server.data_dir());
    assert_eq!(segs.len(), 2, "{segs:?}");
    // Flip a byte in the middle of the first segment's data.
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x5a;
    std::fs::write(&segs[0], bytes).unwrap();

    server.start_again();
    let (status, body) = server.get(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app=~"first|second"}"#),
            ("start", &common::day_ago()),
            ("limit", "1000"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains(segs[0].file_name().unwrap().to_str().unwrap()),
        "corruption must be reported: {body}"
    );
    let lines: Vec<String> = server.lines(r#"{app="second"}"#, 1000, "forward");
    assert_eq!(lines.len(), 200, "the intact segment is still served");
    for l in server.lines(r#"{app="first"}"#, 1000, "forward") {
        assert!(l.starts_with("first line"), "never garbage: {l:?}");
    }
}
