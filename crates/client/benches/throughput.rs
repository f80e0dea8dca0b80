//! Throughput of the push path, as a plain program (`cargo bench -p
//! skald-client`):
//!
//! 1. enqueue: `send` calls per second into a queue large enough never to
//!    block, and heap allocations per entry during those calls (the line's
//!    own `String` is made outside the timed loop, so any allocation counted
//!    is the client's);
//! 2. end to end to a sink: entries per second from the first `send` to a
//!    completed `flush`, against a minimal in-process HTTP server that reads
//!    each body and answers 204 (the client's own cost: batching, protobuf,
//!    snappy, HTTP);
//! 3. end to end to `skald serve`, when `$SKALD_BIN` names the binary.
//!
//! Sizes: `BENCH_ENTRIES` (default 1 000 000).

use skald_client::{Client, Config, Entry, Labels, Timestamp};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn entries(n: usize, labels: &Labels) -> Vec<Entry> {
    // Recent, so that a server accepts them.
    let base = Timestamp::now().0 - 60_000_000_000;
    (0..n)
        .map(|i| {
            Entry::new(
                labels,
                format!(
                    "GET /api/v1/items/{i} status=200 duration_ms={} bytes=512",
                    i % 97
                ),
            )
            .at(Timestamp(base + i as i64))
        })
        .collect()
}

/// Accepts connections and answers every HTTP request with 204.
fn sink() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
                    if writer.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

fn end_to_end(name: &str, url: &str, n: usize, labels: &Labels) {
    let client = Client::new(Config::new(url)).unwrap();
    let batch = entries(n, labels);
    let start = Instant::now();
    for entry in batch {
        client.send(entry).unwrap();
    }
    client.flush(Duration::from_secs(600)).unwrap();
    let elapsed = start.elapsed();
    let stats = client.stats();
    assert_eq!(stats.delivered, n as u64, "{:?}", client.last_error());
    println!(
        "end to end ({name}): {n} entries in {:.3} s = {:.0} entries/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    let n: usize = std::env::var("BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let labels = Labels::new([("service", "bench"), ("env", "dev")]).unwrap();

    // 1. Enqueue, against a server that is not there: nothing leaves the
    // queue faster than the retries allow, so this is `send` alone.
    let mut config = Config::new("http://127.0.0.1:9");
    config.queue.max_entries = n + 1;
    config.queue.max_bytes = usize::MAX / 2;
    config.retry.max_retries = None;
    config.drop_timeout = Duration::ZERO;
    let client = Client::new(config).unwrap();
    let batch = entries(n, &labels);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let start = Instant::now();
    for entry in batch {
        client.send(entry).unwrap();
    }
    let elapsed = start.elapsed();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "enqueue: {n} entries in {:.3} s = {:.0} entries/s, {:.3} allocations per entry",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        allocations as f64 / n as f64
    );
    let _ = client.close(Duration::ZERO);
    drop(client);

    // 2. End to end to the sink.
    end_to_end("sink", &sink(), n, &labels);

    // 3. End to end to skald.
    match std::env::var("SKALD_BIN") {
        Ok(bin) => {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let grpc = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = std::process::Command::new(bin)
                .arg("serve")
                .arg("--data-dir")
                .arg(dir.path())
                .arg("--http-addr")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--grpc-addr")
                .arg(format!("127.0.0.1:{grpc}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let url = format!("http://127.0.0.1:{port}");
            let probe = reqwest::blocking::Client::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !probe
                .get(format!("{url}/ready"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                assert!(Instant::now() < deadline, "skald not ready");
                std::thread::sleep(Duration::from_millis(50));
            }
            end_to_end("skald", &url, n, &labels);
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(_) => println!("end to end (skald): skipped, set SKALD_BIN"),
    }
}
