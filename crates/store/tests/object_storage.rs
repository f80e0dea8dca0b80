//! The store with its segments in S3: a real S3 server (`s3s-fs`) on a
//! loopback port, the store talking to it through `object_store` exactly
//! as it would to AWS. Flushes upload, queries read back through the
//! cache, compaction and retention replace and delete objects, a restart
//! reads everything back from the bucket alone.

mod common;

use common::s3::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
use common::{push_and_flush, read_app, snapshot_entries};
use skald_model::{MatchOp, Matcher, TenantId, Timestamp};
use skald_store::storage::{ObjectSegments, ObjectStoreConfig, SegmentStore};
use skald_store::{Store, StoreConfig};
use std::sync::Arc;

const HOUR: i64 = 3_600_000_000_000;

fn object_config(server: &S3Server, prefix: &str) -> ObjectStoreConfig {
    ObjectStoreConfig {
        endpoint: Some(server.endpoint.clone()),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        ..ObjectStoreConfig::new(format!("s3://{BUCKET}/{prefix}"))
    }
}

fn open(
    server: &S3Server,
    dir: &std::path::Path,
    config: StoreConfig,
) -> (Store, Arc<ObjectSegments>) {
    let objects = Arc::new(ObjectSegments::open(&object_config(server, "skald")).unwrap());
    objects.check().unwrap();
    let store = Store::open_with(
        StoreConfig {
            data_dir: dir.to_path_buf(),
            ..config
        },
        objects.clone(),
    )
    .unwrap();
    (store, objects)
}

fn tenant() -> TenantId {
    TenantId::new("t1").unwrap()
}

fn now() -> i64 {
    Timestamp::now().0
}

/// The entries of `{app="<app>"}`, exact duplicates read once; no
/// segment may be unreadable.
fn read(store: &Store, app: &str) -> Vec<(i64, String)> {
    assert_eq!(store.counters().corrupt_files, 0);
    let mut out = read_app(store, &tenant(), app);
    out.dedup();
    out
}

fn segments(server: &S3Server) -> Vec<String> {
    server
        .objects("skald/tenants/t1/segments/")
        .into_iter()
        .filter(|k| k.ends_with(".seg"))
        .collect()
}

fn entries(app: &str, t0: i64, flush: i64, n: i64) -> Vec<(i64, String)> {
    (0..n)
        .map(|i| {
            (
                t0 + flush * 1000 + i,
                format!(
                    "{app} flush {flush} entry {i} request_id={}",
                    i * 7919 % 1000
                ),
            )
        })
        .collect()
}

#[test]
fn flushed_segments_live_in_the_bucket_and_read_back_after_a_restart() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let t0 = now() - HOUR;
    let mut want = Vec::new();
    {
        let (store, objects) = open(&server, dir.path(), StoreConfig::default());
        for flush in 0..2 {
            let e = entries("a", t0, flush, 200);
            want.extend(e.clone());
            push_and_flush(&store, &tenant(), "a", &e);
        }
        assert_eq!(segments(&server).len(), 2, "{:?}", server.objects(""));
        // Nothing of the segments stays on local disk.
        assert!(!dir.path().join("tenants").exists());
        let staged = dir.path().join("staging");
        assert!(
            std::fs::read_dir(&staged).map_or(true, |d| d.flatten().all(|e| e.path().is_dir())),
            "staging files are removed after upload"
        );
        assert_eq!(read(&store, "a"), want);
        let before = objects.stats();
        assert_eq!(read(&store, "a"), want);
        let after = objects.stats();
        assert_eq!(
            after.gets, before.gets,
            "a second read is served from the cache"
        );
        assert!(after.cache.hits > before.cache.hits);
        store.close().unwrap();
    }
    // The bytes in the bucket are the segments themselves.
    let first = &segments(&server)[0];
    let bytes = std::fs::read(server.object_path(first)).unwrap();
    assert_eq!(&bytes[..8], b"SKALDSEG", "{first}");

    // A new process with an empty local directory but for the WAL: the
    // catalog is listed from the bucket.
    let (store, objects) = open(&server, dir.path(), StoreConfig::default());
    assert_eq!(store.tenant_stats(&tenant()).segments, 2);
    assert_eq!(read(&store, "a"), want);
    let stats = objects.stats();
    assert!(stats.gets > 0 && stats.get_bytes > 0, "{stats:?}");
    store.close().unwrap();
}

#[test]
fn compaction_replaces_objects_and_keeps_every_entry() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        compact_base_bytes: 1 << 20,
        ..StoreConfig::default()
    };
    let t0 = now() - HOUR;
    let mut want = Vec::new();
    let (store, _objects) = open(&server, dir.path(), config.clone());
    for flush in 0..5 {
        let e = entries("a", t0, flush, 100);
        want.extend(e.clone());
        push_and_flush(&store, &tenant(), "a", &e);
    }
    // The background thread may have merged some already; either way
    // four are merged into one and one is left.
    store.compact().unwrap();
    assert!(store.counters().compactions >= 1);
    // Replaced objects go once nothing holds them: a background
    // compaction that picked the same inputs meanwhile lets go of them
    // within its next check (a second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut after = segments(&server);
    while after.len() != 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        after = segments(&server);
    }
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        !server
            .objects("skald/")
            .iter()
            .any(|k| k.ends_with(".replaces")),
        "the sidecar is gone"
    );
    assert_eq!(read(&store, "a"), want);
    store.close().unwrap();
    drop(store);
    let (store, _objects) = open(&server, dir.path(), config);
    assert_eq!(read(&store, "a"), want);
    store.close().unwrap();
}

#[test]
fn retention_deletes_and_rewrites_objects() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig {
        compact_fan_in: 0,
        ..StoreConfig::default()
    };
    let limits = config.limits.defaults_mut();
    limits.reject_old_samples = false;
    limits.retention_period = skald_model::parse_duration("48h").unwrap();
    let t = now();
    let (store, _objects) = open(&server, dir.path(), config.clone());
    let push = |app: &str, entries: &[(i64, &str)]| {
        let e: Vec<(i64, String)> = entries.iter().map(|(t, l)| (*t, l.to_string())).collect();
        push_and_flush(&store, &tenant(), app, &e);
    };
    push("old", &[(t - 100 * HOUR, "a1"), (t - 90 * HOUR, "a2")]);
    push("mixed", &[(t - 100 * HOUR, "b-old"), (t - HOUR, "b-new")]);
    push("fresh", &[(t - HOUR, "c")]);
    let before = segments(&server);
    assert_eq!(before.len(), 3);
    // A query reading the expired segment keeps it readable: unlike an
    // open local file, a deleted object is gone for readers.
    let matchers = [Matcher::new("app", MatchOp::Eq, "old").unwrap()];
    let held = store.snapshot(&tenant(), &matchers, Timestamp(0), Timestamp::MAX);
    let report = store.apply_retention().unwrap();
    assert_eq!(report.segments_deleted, 1, "{report:?}");
    assert_eq!(report.segments_rewritten, 1, "{report:?}");
    let after = segments(&server);
    assert_eq!(after.len(), 3, "the held one waits: {after:?}");
    assert!(after.contains(&before[0]));
    let held_lines: Vec<String> = snapshot_entries(&held)
        .into_iter()
        .map(|e| e.line)
        .collect();
    assert_eq!(held_lines, ["a1", "a2"]);
    drop(held);
    assert!(store.apply_retention().unwrap().is_empty());
    let after = segments(&server);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        !after.contains(&before[0]),
        "the expired segment is deleted"
    );
    assert!(!after.contains(&before[1]), "the mixed one is rewritten");
    assert!(after.contains(&before[2]));
    let lines = |store: &Store, app: &str| -> Vec<String> {
        read(store, app).into_iter().map(|(_, l)| l).collect()
    };
    assert!(lines(&store, "old").is_empty());
    assert_eq!(lines(&store, "mixed"), ["b-new"]);
    assert_eq!(lines(&store, "fresh"), ["c"]);
    store.close().unwrap();
    drop(store);
    let (store, _objects) = open(&server, dir.path(), config);
    assert!(lines(&store, "old").is_empty());
    assert_eq!(lines(&store, "mixed"), ["b-new"]);
    store.close().unwrap();
}

#[test]
fn the_segment_store_contract_holds_against_s3() {
    let server = S3Server::start();
    let objects = ObjectSegments::open(&object_config(&server, "p/q")).unwrap();
    objects.check().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    common::contract::contract(&objects, scratch.path());
    // Under the prefix, and nothing left of the write check.
    assert_eq!(server.objects(""), ["p/q/quarantine/x/a", "p/q/tenantsx/c"]);
}

#[test]
fn large_segments_go_up_in_parts() {
    let server = S3Server::start();
    let config = ObjectStoreConfig {
        multipart_bytes: 5 << 20,
        part_bytes: 5 << 20,
        ..object_config(&server, "big")
    };
    let objects = ObjectSegments::open(&config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("f");
    // 11 MiB that differ everywhere: three parts, the last short.
    let bytes: Vec<u8> = (0..11u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&local, &bytes).unwrap();
    objects
        .put_file("tenants/t/segments/1.seg", &local)
        .unwrap();
    assert_eq!(
        std::fs::read(server.object_path("big/tenants/t/segments/1.seg")).unwrap(),
        bytes
    );
    assert_eq!(objects.stats().puts, 1);
}

#[test]
fn bad_credentials_and_missing_buckets_are_clear_errors() {
    let server = S3Server::start();
    let wrong = ObjectStoreConfig {
        secret_access_key: Some("not-the-secret".into()),
        ..object_config(&server, "x")
    };
    let err = ObjectSegments::open(&wrong).unwrap().check().unwrap_err();
    assert!(err.to_string().contains("s3://logs/x"), "{err}");
    let missing = ObjectStoreConfig {
        url: "s3://no-such-bucket".into(),
        ..object_config(&server, "")
    };
    let err = ObjectSegments::open(&missing).unwrap().check().unwrap_err();
    assert!(err.to_string().contains("s3://no-such-bucket"), "{err}");
    let err = ObjectSegments::open(&ObjectStoreConfig::new("gs://x")).unwrap_err();
    assert!(err.to_string().contains("s3://bucket"), "{err}");
}
