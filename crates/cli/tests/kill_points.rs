//! kill -9 at random points under concurrent push, many times over one
//! data directory: after every restart each acknowledged entry is there
//! exactly once.
//!
//! The default run takes 4 kill points. The long run takes 100:
//!
//! ```sh
//! cargo test -p skald --release --test kill_points -- --ignored --nocapture
//! SKALD_KILL_SEED=1234 cargo test -p skald --test kill_points -- --ignored   # replay
//! ```

mod common;

use common::{Server, now_ns};
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WRITERS: usize = 3;

/// xorshift64*: a reproducible sequence from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Every line of the `crash` streams, paging as logcli does.
fn stored(server: &Server, since: i64) -> Vec<String> {
    let mut found = Vec::new();
    for w in 0..WRITERS {
        let mut start = since;
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
    found
}

fn kill_points(points: usize) {
    let seed = std::env::var("SKALD_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ns() as u64 | 1);
    println!("kill points: {points}, seed {seed} (SKALD_KILL_SEED replays it)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skald.toml");
    // Small flushes and eager compaction: kills land around flushes, WAL
    // truncation and segment merges too.
    std::fs::write(
        &config,
        "[store]\nflush_bytes = 1048576\nmax_head_bytes = 4194304\ncompact_fan_in = 2\ncompact_base_bytes = 65536\n",
    )
    .unwrap();
    let mut server = Server::start_with(&["--config", config.to_str().unwrap()]);
    let since = now_ns() - 600_000_000_000;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    for point in 0..points {
        let stop = Arc::new(AtomicBool::new(false));
        let url = server.url("/loki/api/v1/push");
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap();
                    let mut batch = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let lines: Vec<String> = (0..100)
                            .map(|i| format!("p{point} w{w} b{batch} i{i} {}", "x".repeat(80)))
                            .collect();
                        let ts = now_ns() - 60_000_000_000;
                        let values: Vec<_> = lines
                            .iter()
                            .enumerate()
                            .map(|(i, l)| json!([(ts + i as i64).to_string(), l]))
                            .collect();
                        let body = json!({"streams": [{"stream": {"app": "crash", "writer": w.to_string()}, "values": values}]});
                        match client
                            .post(&url)
                            .header("Content-Type", "application/json")
                            .body(body.to_string())
                            .send()
                        {
                            Ok(r) if r.status().as_u16() == 204 => {
                                acked.lock().unwrap().extend(lines)
                            }
                            _ => return,
                        }
                        batch += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + rng.next() % 1400));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        server.start_again();
        let found = stored(&server, since);
        let unique: HashSet<&String> = found.iter().collect();
        assert_eq!(
            unique.len(),
            found.len(),
            "kill point {point} (seed {seed}): some entries came back twice"
        );
        let acked = acked.lock().unwrap();
        let missing: Vec<&String> = acked
            .iter()
            .filter(|l| !unique.contains(l))
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "kill point {point} (seed {seed}): acknowledged but lost ({} acked, {} found): {missing:?}",
            acked.len(),
            found.len()
        );
        println!(
            "kill point {point}: {} acknowledged entries, all there once",
            acked.len()
        );
    }
    assert!(
        acked.lock().unwrap().len() > 1000,
        "too little was pushed to prove anything"
    );
}

#[test]
fn a_few_kill_points_lose_and_duplicate_nothing_acknowledged() {
    kill_points(4);
}

#[test]
#[ignore = "long: 100 kill points, several minutes; see the module doc for the command"]
fn a_hundred_kill_points_lose_and_duplicate_nothing_acknowledged() {
    kill_points(100);
}
