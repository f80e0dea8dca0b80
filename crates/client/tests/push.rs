//! The push pipeline against an in-process mock server: encodings,
//! headers, retries, refusals, backpressure, outages and crashes.

mod common;

use common::{Mock, Reply, eventually, free_port};
use skald_client::{
    Auth, Backpressure, Client, Config, DiskQueueConfig, Encoding, Entry, Error, Labels, Timestamp,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn config(url: &str) -> Config {
    let mut config = Config::new(url);
    config.retry.min_backoff = Duration::from_millis(1);
    config.retry.max_backoff = Duration::from_millis(5);
    config
}

fn labels(app: &str) -> Labels {
    Labels::new([("app", app)]).unwrap()
}

/// Collects every error the client reports.
fn error_log(config: &mut Config) -> Arc<Mutex<Vec<Error>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    config.on_error = Some(Arc::new(move |e: &Error| {
        sink.lock().unwrap().push(e.clone())
    }));
    log
}

#[test]
fn every_encoding_delivers_all_entries_in_order() {
    for encoding in [Encoding::Protobuf, Encoding::Json, Encoding::JsonGzip] {
        let mock = Mock::start();
        let mut config = config(&mock.url);
        config.encoding = encoding;
        config.batch.max_entries = 7;
        let client = Client::new(config).unwrap();
        let (a, b) = (labels("a"), labels("b"));
        for i in 0..100 {
            let l = if i % 3 == 0 { &b } else { &a };
            client
                .send(Entry::new(l, format!("line {i}")).at(Timestamp(i)))
                .unwrap();
        }
        client.flush(LONG).unwrap();
        let got = mock.delivered();
        assert_eq!(got.len(), 100, "{encoding:?}");
        for stream in [a.selector(), b.selector()] {
            let ts: Vec<i64> = got
                .iter()
                .filter(|g| g.stream == stream)
                .map(|g| g.ts)
                .collect();
            assert!(ts.windows(2).all(|w| w[0] < w[1]), "{encoding:?}: {ts:?}");
        }
        let stats = client.stats();
        assert_eq!(
            (stats.accepted, stats.delivered, stats.failed),
            (100, 100, 0)
        );
        client.close(LONG).unwrap();
        assert_eq!(client.send(Entry::new(&a, "late")), Err(Error::Closed));
    }
}

#[test]
fn tenant_auth_and_extra_headers_are_sent() {
    let mock = Mock::start();
    let mut config = config(&mock.url);
    config.endpoint.tenant = Some("team-a".into());
    config.endpoint.auth = Some(Auth::Basic {
        user: "u".into(),
        password: "p".into(),
    });
    config.endpoint.headers = vec![("x-extra".into(), "1".into())];
    let client = Client::new(config).unwrap();
    client.send(Entry::new(&labels("a"), "x")).unwrap();
    client.flush(LONG).unwrap();
    let headers = mock.state.headers.lock().unwrap()[0].clone();
    assert_eq!(headers["x-scope-orgid"], "team-a");
    assert_eq!(headers["authorization"], "Basic dTpw");
    assert_eq!(headers["x-extra"], "1");
    assert_eq!(headers["content-type"], "application/x-protobuf");

    let mock = Mock::start();
    let mut config = self::config(&mock.url);
    config.endpoint.auth = Some(Auth::Bearer("tok".into()));
    let client = Client::new(config).unwrap();
    client.send(Entry::new(&labels("a"), "x")).unwrap();
    client.flush(LONG).unwrap();
    assert_eq!(
        mock.state.headers.lock().unwrap()[0]["authorization"],
        "Bearer tok"
    );
}

#[test]
fn server_errors_and_429_are_retried_until_delivered() {
    let mock = Mock::start();
    mock.script([
        Reply::status(500),
        Reply::status(503),
        Reply {
            status: 429,
            retry_after: Some("0".into()),
            body: "slow down".into(),
        },
    ]);
    let mut config = config(&mock.url);
    let errors = error_log(&mut config);
    let client = Client::new(config).unwrap();
    client.send(Entry::new(&labels("a"), "x")).unwrap();
    client.flush(LONG).unwrap();
    assert_eq!(mock.lines(), ["x"]);
    assert_eq!(mock.requests(), 4);
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), 3);
    // Retry-After replaces the jittered delay.
    assert!(
        matches!(&errors[2], Error::Retrying { attempt: 3, retry_in, cause }
            if *retry_in == Duration::ZERO
            && matches!(**cause, Error::Status { status: 429, .. })),
        "{:?}",
        errors[2]
    );
}

#[test]
fn retry_after_is_honoured_and_capped() {
    let mock = Mock::start();
    mock.script([Reply {
        status: 429,
        retry_after: Some("3600".into()),
        body: String::new(),
    }]);
    let mut config = config(&mock.url);
    config.retry.max_retry_after = Duration::from_millis(20);
    let errors = error_log(&mut config);
    let client = Client::new(config).unwrap();
    client.send(Entry::new(&labels("a"), "x")).unwrap();
    client.flush(LONG).unwrap();
    assert!(matches!(
        errors.lock().unwrap()[0],
        Error::Retrying { retry_in, .. } if retry_in == Duration::from_millis(20)
    ));
}

#[test]
fn client_errors_are_not_retried_and_are_reported() {
    let mock = Mock::start();
    mock.script([Reply::status(400)]);
    let mut config = config(&mock.url);
    config.batch.max_entries = 2;
    let errors = error_log(&mut config);
    let client = Client::new(config).unwrap();
    client
        .send_batch([
            Entry::new(&labels("a"), "bad1"),
            Entry::new(&labels("a"), "bad2"),
        ])
        .unwrap();
    client.flush(LONG).unwrap();
    client.send(Entry::new(&labels("a"), "good")).unwrap();
    client.flush(LONG).unwrap();
    assert_eq!(mock.requests(), 2);
    assert_eq!(mock.lines(), ["good"]);
    assert_eq!(
        errors.lock().unwrap().as_slice(),
        [Error::Rejected {
            status: 400,
            entries: 2,
            body: "scripted 400".into()
        }]
    );
    assert_eq!(client.stats().failed, 2);
    assert!(matches!(client.last_error(), Some(Error::Rejected { .. })));
}

#[test]
fn retries_stop_at_the_budget() {
    let mock = Mock::start();
    mock.script(std::iter::repeat_n(Reply::status(502), 10));
    let mut config = config(&mock.url);
    config.retry.max_retries = Some(2);
    let errors = error_log(&mut config);
    let client = Client::new(config).unwrap();
    client.send(Entry::new(&labels("a"), "x")).unwrap();
    client.flush(LONG).unwrap();
    assert_eq!(mock.requests(), 3);
    assert!(matches!(
        client.last_error(),
        Some(Error::RetriesExhausted {
            attempts: 3,
            entries: 1,
            ..
        })
    ));
    assert_eq!(errors.lock().unwrap().len(), 3);
}

#[test]
fn garbage_answers_do_not_hurt() {
    let mock = Mock::start();
    mock.script([Reply {
        status: 500,
        retry_after: Some("not a date \u{7f}".into()),
        body: "\u{0}".repeat(100_000),
    }]);
    let client = Client::new(config(&mock.url)).unwrap();
    client.send(Entry::new(&labels("a"), "x")).unwrap();
    client.flush(LONG).unwrap();
    assert_eq!(mock.lines(), ["x"]);
}

/// Config where a held server stops the pipeline after a known number of
/// entries: one in flight, one waiting batch, one being sealed, and the
/// queue.
fn tight(url: &str, mode: Backpressure) -> Config {
    let mut config = config(url);
    config.batch.max_entries = 1;
    config.queue.max_entries = 10;
    config.queue.max_pending_batches = 1;
    config.queue.backpressure = mode;
    config
}

#[test]
fn drop_new_refuses_when_full_and_counts() {
    let mock = Mock::start();
    mock.hold();
    let client = Client::new(tight(&mock.url, Backpressure::DropNew)).unwrap();
    let l = labels("a");
    let mut refused = 0;
    for i in 0..100 {
        match client.send(Entry::new(&l, i.to_string())) {
            Ok(()) => {}
            Err(Error::QueueFull) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let stats = client.stats();
    assert_eq!(stats.dropped_new, refused);
    assert!(refused >= 100 - 13, "refused {refused}");
    assert!(stats.queued <= 10);
    mock.open();
    client.flush(LONG).unwrap();
    assert_eq!(mock.lines().len() as u64, 100 - refused);
    assert_eq!(mock.lines()[0], "0");
}

#[test]
fn drop_oldest_keeps_the_newest() {
    let mock = Mock::start();
    mock.hold();
    let client = Client::new(tight(&mock.url, Backpressure::DropOldest)).unwrap();
    let l = labels("a");
    // Let the first entry reach the server so the pipeline is stuck.
    client.send(Entry::new(&l, "0")).unwrap();
    eventually("first push in flight", || {
        client.stats().queued == 0 && client.stats().spooled == 0
    });
    for i in 1..100 {
        client.send(Entry::new(&l, i.to_string())).unwrap();
    }
    let stats = client.stats();
    assert!(stats.dropped_oldest >= 100 - 13, "{stats:?}");
    mock.open();
    client.flush(LONG).unwrap();
    let lines = mock.lines();
    assert_eq!(lines.len() as u64, 100 - stats.dropped_oldest);
    assert_eq!(lines.last().unwrap(), "99");
    assert_eq!(lines[0], "0");
    let tail: Vec<String> = (90..100).map(|i| i.to_string()).collect();
    assert_eq!(lines[lines.len() - 10..], tail[..]);
}

#[test]
fn block_waits_for_room_and_loses_nothing() {
    let mock = Mock::start();
    mock.hold();
    let client = Client::new(tight(&mock.url, Backpressure::Block)).unwrap();
    let producer = {
        let client = client.clone();
        std::thread::spawn(move || {
            let l = labels("a");
            for i in 0..50 {
                client.send(Entry::new(&l, i.to_string())).unwrap();
            }
        })
    };
    eventually("queue full", || client.stats().queued == 10);
    // Held server, full queue: the producer cannot have finished.
    assert!(!producer.is_finished());
    mock.open();
    producer.join().unwrap();
    client.flush(LONG).unwrap();
    let expected: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    assert_eq!(mock.lines(), expected);
    assert_eq!(
        client.stats().dropped_new + client.stats().dropped_oldest,
        0
    );
}

#[test]
fn without_a_disk_queue_close_reports_what_it_could_not_deliver() {
    let port = free_port();
    let mut config = config(&format!("http://127.0.0.1:{port}"));
    config.retry.max_retries = None;
    let client = Client::new(config).unwrap();
    client.send(Entry::new(&labels("a"), "x")).unwrap();
    client.flush(Duration::ZERO).unwrap_err();
    eventually("a failed attempt", || client.last_error().is_some());
    let err = client.close(Duration::from_millis(50)).unwrap_err();
    assert_eq!(err, Error::Timeout { pending: 1 });
    assert!(matches!(client.last_error(), Some(Error::Retrying { .. })));
}

fn disk_config(url: &str, dir: &std::path::Path) -> Config {
    let mut config = config(url);
    config.batch.max_entries = 50;
    config.disk_queue = Some(DiskQueueConfig {
        segment_bytes: 4096,
        fsync: false,
        ..DiskQueueConfig::new(dir)
    });
    config
}

#[test]
fn an_outage_is_bridged_by_the_disk_queue() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let client = Client::new(disk_config(&url, dir.path())).unwrap();
    let l = labels("a");
    for i in 0..1000 {
        client
            .send(Entry::new(&l, i.to_string()).at(Timestamp(i)))
            .unwrap();
    }
    client.sync(LONG).unwrap();
    assert_eq!(client.stats().spooled, 1000);
    // The server is down: nothing can be delivered; the batches stay on disk.
    assert!(matches!(
        client.close(Duration::from_millis(20)),
        Err(Error::Timeout { .. })
    ));
    drop(client);

    let mock = Mock::start_on(port);
    let client = Client::new(disk_config(&url, dir.path())).unwrap();
    assert_eq!(client.stats().accepted, 1000);
    client
        .send(Entry::new(&l, "after").at(Timestamp(5000)))
        .unwrap();
    client.flush(LONG).unwrap();
    let mut expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    expected.push("after".into());
    assert_eq!(mock.lines(), expected);
    client.close(LONG).unwrap();
    drop(client);
    // Delivered batches are gone from disk.
    let client = Client::new(disk_config(&url, dir.path())).unwrap();
    assert_eq!(client.stats().spooled, 0);
}

#[test]
fn a_full_disk_queue_sheds_its_oldest_segments_under_drop_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut config = disk_config(&url, dir.path());
    config.queue.backpressure = Backpressure::DropOldest;
    config.disk_queue.as_mut().unwrap().max_bytes = 8192;
    let client = Client::new(config.clone()).unwrap();
    let l = labels("a");
    const N: u64 = 5000;
    for i in 0..N {
        client
            .send(Entry::new(&l, format!("{i:05}")).at(Timestamp(i as i64)))
            .unwrap();
    }
    // The server is down: the disk fills and its oldest segments go.
    client.sync(LONG).unwrap();
    let stats = client.stats();
    assert!(stats.dropped_oldest > 0, "{stats:?}");
    assert!(stats.spooled_bytes <= 8192, "{stats:?}");
    assert_eq!(stats.spooled + stats.dropped_oldest, N, "{stats:?}");
    assert!(client.close(Duration::from_millis(20)).is_err());
    drop(client);

    // What is left arrives in order, nothing shed comes back, and the
    // newest entries are all there.
    let mock = Mock::start_on(port);
    let client = Client::new(config).unwrap();
    assert_eq!(client.stats().accepted, stats.spooled);
    client.flush(LONG).unwrap();
    let got: Vec<u64> = mock.lines().iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(got.len() as u64, stats.spooled);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order");
    let newest = got.len() - 50;
    assert_eq!(got[newest..], (N - 50..N).collect::<Vec<_>>()[..]);
}

const CHILD_DIR: &str = "SKALD_CLIENT_TEST_CHILD_DIR";
const CHILD_URL: &str = "SKALD_CLIENT_TEST_CHILD_URL";

/// Run by `a_killed_process_loses_nothing_it_synced` in a child process:
/// queues entries for a server that is down, syncs them to disk, says so,
/// then waits to be killed.
#[test]
#[ignore]
fn child_writes_and_waits_to_be_killed() {
    let (Ok(dir), Ok(url)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_URL)) else {
        return;
    };
    let client = Client::new(disk_config(&url, std::path::Path::new(&dir))).unwrap();
    let l = labels("crash");
    for i in 0..2000 {
        client
            .send(Entry::new(&l, i.to_string()).at(Timestamp(i)))
            .unwrap();
    }
    client.sync(LONG).unwrap();
    println!("SYNCED");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_killed_process_loses_nothing_it_synced() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writes_and_waits_to_be_killed",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_URL, &url)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let synced = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("SYNCED"));
    assert!(synced, "the child never synced");
    // The directory is the child's while it lives.
    match Client::new(disk_config(&url, dir.path())) {
        Err(Error::Disk { message, .. }) => assert!(
            message.contains(&format!(
                "in use by another client (process {})",
                child.id()
            )),
            "{message}"
        ),
        Err(other) => panic!("expected a disk error, got {other}"),
        Ok(_) => panic!("a second process opened a disk queue in use"),
    }
    child.kill().unwrap(); // SIGKILL: no close, no flush.
    child.wait().unwrap();

    let mock = Mock::start_on(port);
    let client = Client::new(disk_config(&url, dir.path())).unwrap();
    client.flush(LONG).unwrap();
    let expected: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
    assert_eq!(mock.lines(), expected);
}
