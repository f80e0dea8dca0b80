//! Files the server reads back from its data directory: segments, the
//! WAL (its files and its record payloads), the delete request list,
//! export job records, the token file, and the analysis index's pattern
//! and error files. Each check writes the input where the server would
//! find the file and opens it through the server's own entry point.

use skald_model::{Entry, LabelSet, TenantId, Timestamp};
use skald_store::record::{self, StreamBatch};
use skald_store::{Store, StoreConfig};
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The tenant the seeds and the fixtures use.
pub(crate) const TENANT: &str = "fuzz";

static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's scratch directory (checks may run on several threads
    /// at once in the stable pass).
    static ROOT: PathBuf = std::env::temp_dir().join(format!(
        "skald-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    /// The fixture store of [`fixture_store`].
    static STORE: RefCell<Option<Arc<Store>>> = const { RefCell::new(None) };
}

/// Closes this thread's fixture store and removes its scratch directory
/// (the stable pass calls it after each target; a fuzzer never ends).
pub fn remove_scratch() {
    if let Some(store) = STORE.with(|cell| cell.borrow_mut().take()) {
        let _ = store.close();
    }
    let _ = ROOT.with(|root| std::fs::remove_dir_all(root));
}

/// A directory under this thread's scratch directory, emptied and made
/// anew for each input.
fn scratch(name: &str) -> PathBuf {
    let dir = ROOT.with(|root| root.join(name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

fn write(path: &Path, data: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("creating a scratch directory");
    }
    std::fs::write(path, data).expect("writing a scratch file");
}

fn tenant() -> TenantId {
    TenantId::new(TENANT).expect("a valid tenant")
}

/// Arbitrary bytes as a segment file: opening must refuse or succeed
/// without panicking, and every block of what opens must read or refuse
/// (checksums, sizes and versions are checked, never trusted). This is
/// also what the store's catalog does with each segment at start.
pub fn segment_read(data: &[u8]) {
    let path = scratch("segment").join("1.seg");
    write(&path, data);
    if let Ok(reader) = skald_chunk::SegmentReader::open(&path) {
        let _ = reader.summary();
        let _ = skald_chunk::segment::debug::describe(&reader, true);
        for stream in reader.streams() {
            for chunk in &stream.chunks {
                let _ = reader.read_block(chunk);
                let _ = reader.read_decoded(chunk);
                let _ = reader.may_contain(chunk, b"error");
            }
        }
    }
}

/// Arbitrary bytes as a WAL record payload: decode must refuse or succeed
/// without panicking or allocating without bound, and what decodes must
/// encode to bytes that decode to the same thing.
pub fn wal_record(data: &[u8]) {
    let Ok((tenant, streams)) = record::decode(data) else {
        return;
    };
    let mut again = Vec::new();
    record::encode(&tenant, &streams, &mut again);
    let (t2, s2) = record::decode(&again).expect("an encoded record decodes");
    assert_eq!(t2, tenant);
    assert_eq!(s2.len(), streams.len());
    for (a, b) in s2.iter().zip(&streams) {
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.entries, b.entries);
    }
}

/// Arbitrary bytes as the only file of a WAL directory, replayed as the
/// store replays at start (torn tails cut, corrupt files set aside), each
/// record's payload decoded. No panic; after that repair, a second replay
/// finds nothing more to repair and hands over the same records.
pub fn wal_file(data: &[u8]) {
    let dir = scratch("wal");
    let wal_dir = dir.join("wal");
    write(&wal_dir.join(format!("{:020}.wal", 1)), data);
    let options = skald_wal::WalOptions {
        quarantine_dir: Some(dir.join("quarantine")),
        ..Default::default()
    };
    let mut first = Vec::new();
    let Ok((wal, _)) = skald_wal::Wal::open(&wal_dir, options.clone(), |seq, payload| {
        let _ = record::decode(payload);
        first.push((seq, payload.to_vec()));
    }) else {
        return;
    };
    drop(wal);
    let mut second = Vec::new();
    let (_, report) = skald_wal::Wal::open(&wal_dir, options, |seq, payload| {
        second.push((seq, payload.to_vec()));
    })
    .expect("a repaired WAL opens again");
    assert!(
        report.corruptions.is_empty(),
        "a repaired WAL still has corruption: {:?}",
        report.corruptions
    );
    assert_eq!(first, second, "replay after repair differs");
}

/// A store with entries in a segment and in the head, shared by the
/// inputs of one thread; checks leave it as they found it.
fn fixture_store() -> Arc<Store> {
    STORE.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let dir = scratch("store");
                let store = Store::open(StoreConfig {
                    data_dir: dir,
                    ..Default::default()
                })
                .expect("opening the fixture store");
                let batch = |start: i64| StreamBatch {
                    labels: LabelSet::parse(r#"{app="fuzz", env="dev"}"#).expect("labels"),
                    entries: (0..4)
                        .map(|i| {
                            let line = if i % 2 == 0 {
                                "error boom"
                            } else {
                                "info fine"
                            };
                            Entry::new(Timestamp(start + i * 1_000), line)
                        })
                        .collect(),
                };
                store.push(&tenant(), vec![batch(1_000)]).expect("push");
                store.flush().expect("flush");
                store.push(&tenant(), vec![batch(10_000)]).expect("push");
                Arc::new(store)
            })
            .clone()
    })
}

fn visible_lines(store: &Store) -> Vec<(i64, String)> {
    let snap = store.snapshot(&tenant(), &[], Timestamp::MIN, Timestamp::MAX);
    let mut lines = Vec::new();
    for stream in &snap.streams {
        for source in &stream.sources {
            let entries = Store::read_source(source).expect("the fixture reads");
            lines.extend(entries.into_iter().map(|e| (e.ts.0, e.line)));
        }
    }
    lines.sort();
    lines
}

/// Arbitrary bytes as `delete_requests.json`, loaded as the server loads
/// it at start: parsed, each request's query compiled and registered
/// with the store as a tombstone, then applied by reads (labels, series,
/// a snapshot read through partly covered sources). No panic; what stays
/// visible is a subset of what was stored.
pub fn delete_requests(data: &[u8]) {
    let store = fixture_store();
    let all = visible_lines(&store);
    let path = store.config().data_dir.join("delete_requests.json");
    write(&path, data);
    let loaded = skald_server::Deletes::open(store.clone());
    if let Ok(deletes) = &loaded {
        let _ = deletes.list(&tenant());
        let _ = store.label_names(&tenant(), Timestamp::MIN, Timestamp::MAX);
        let _ = store.series(&tenant(), &[vec![]], Timestamp::MIN, Timestamp::MAX);
        let _ = store.tenant_stats(&tenant());
        let visible = visible_lines(&store);
        let all: HashSet<_> = all.iter().collect();
        assert!(
            visible.iter().all(|l| all.contains(l)),
            "a delete request made entries appear"
        );
    }
    // Withdraw whatever was registered, so the next input starts clean.
    if let Ok(serde_json::Value::Array(list)) = serde_json::from_slice(data) {
        for r in &list {
            let tenant = r["tenant"].as_str().and_then(|t| TenantId::new(t).ok());
            if let (Some(tenant), Some(id)) = (tenant, r["request_id"].as_str()) {
                store.remove_tombstone(&tenant, id);
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Arbitrary bytes as an export job record
/// (`export_jobs/<tenant>/<id>.json`), loaded as the server loads it at
/// start, then expired (which removes a job's file and record). No
/// panic, and nothing outside the data directory's export directories is
/// touched whatever the record says.
pub fn export_jobs(data: &[u8]) {
    let dir = scratch("exports");
    let keep = dir.join("keep");
    write(&keep, b"keep");
    let data_dir = dir.join("data");
    write(&data_dir.join("tokens.json"), b"[]");
    write(
        &data_dir.join("exports").join(TENANT).join("out.ndjson"),
        b"{}\n",
    );
    write(
        &data_dir
            .join("export_jobs")
            .join(TENANT)
            .join("00000000000000aa.json"),
        data,
    );
    if let Ok(exports) =
        skald_server::Exports::open(&data_dir, std::time::Duration::from_secs(3600))
    {
        let _ = exports.get(&tenant(), "00000000000000aa");
    }
    // Retention zero: every finished job expires now.
    let _ = skald_server::Exports::open(&data_dir, std::time::Duration::ZERO);
    assert!(
        keep.exists(),
        "expiring an export job removed a file outside the data directory"
    );
    assert!(
        data_dir.join("tokens.json").exists(),
        "expiring an export job removed a file outside the export directories"
    );
}

/// Arbitrary bytes as `tokens.json`, loaded as the server loads it (at
/// start and whenever it changes) and listed as `skald token list` does.
/// No panic; a file that loads lists.
pub fn tokens_file(data: &[u8]) {
    let dir = scratch("tokens");
    write(&dir.join("tokens.json"), data);
    let tokens = skald_server::service::auth::Tokens::new(&dir);
    if tokens.reload_if_changed(true).is_ok() {
        let listed = tokens.list().expect("a file that loads lists");
        for t in &listed {
            let _ = (t.expired(Timestamp::now()), t.role.as_str());
        }
    }
}

/// The input split at NUL bytes into the patterns and errors files of one
/// day, version 1 (`<dir>/<tenant>/patterns-<day>.tsv`, `errors-<day>.tsv`)
/// and version 2 (`patterns-<day>.v2.tsv`, `errors-<day>.v2.tsv`), read by
/// the analysis index for the patterns API,
/// error groups and anomaly detection over that day. No panic, no
/// overflow, whatever the counts and buckets say.
pub fn pattern_files(data: &[u8]) {
    use skald_analysis::{anomaly, groups, index};
    const DAY: i64 = 19_700;
    const SECS_PER_DAY: i64 = 86_400;
    let mut parts = data.splitn(4, |&b| b == 0);
    let dir = scratch("patterns");
    let tenant_dir = dir.join(TENANT);
    for name in [
        format!("patterns-{DAY}.tsv"),
        format!("errors-{DAY}.tsv"),
        format!("patterns-{DAY}.v2.tsv"),
        format!("errors-{DAY}.v2.tsv"),
    ] {
        write(&tenant_dir.join(name), parts.next().unwrap_or_default());
    }
    let config = index::IndexConfig::default();
    let Ok(index) = index::PatternIndex::open(&dir, config.clone()) else {
        return;
    };
    let tenant = tenant();
    let start = DAY * SECS_PER_DAY;
    let end = start + SECS_PER_DAY;
    let _ = index.query(&index::PatternQuery {
        tenant: &tenant,
        matchers: &[],
        start,
        end,
        step: 60,
    });
    let _ = groups::query(
        &index,
        &groups::ErrorQuery {
            tenant: &tenant,
            matchers: &[],
            start,
            end,
            step: 60,
            lookback_secs: SECS_PER_DAY,
            examples: 3,
            streams: 3,
        },
    );
    let range = anomaly::Range {
        start: start + SECS_PER_DAY / 2,
        window_secs: 300,
        windows: 12,
    };
    if let Ok(windows) = index.window_counts(&tenant, &[], range, &config.anomalies) {
        let _ = anomaly::detect(&windows, range, &config.anomalies);
    }
    let _ = index.close();
}
