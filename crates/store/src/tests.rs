use super::*;
use skald_model::{Label, MatchOp};
use storage::SegmentStore;

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_path_buf(),
        flush_bytes: 1 << 20,
        max_head_bytes: 4 << 20,
        ..Default::default()
    }
}

fn tenant() -> TenantId {
    TenantId::new("t1").unwrap()
}

fn now() -> i64 {
    Timestamp::now().0
}

fn batch(labels: &str, entries: &[(i64, &str)]) -> StreamBatch {
    StreamBatch {
        labels: LabelSet::parse(labels).unwrap(),
        entries: entries
            .iter()
            .map(|(ts, l)| Entry::new(Timestamp(*ts), *l))
            .collect(),
    }
}

/// Every entry a query would read, exact duplicates read once.
fn read_all(store: &Store, selector: &str) -> Vec<(i64, String)> {
    let mut out = read_raw(store, selector);
    out.dedup();
    out
}

#[test]
fn entries_are_readable_from_head_segments_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = now() - 1_000_000;
    {
        let store = Store::open(config(dir.path())).unwrap();
        let out = store
            .push(
                &tenant(),
                vec![batch(r#"{app="a"}"#, &[(t0, "one"), (t0 + 1, "two")])],
            )
            .unwrap();
        assert_eq!(out.accepted, 2);
        assert_eq!(
            read_all(&store, r#"{app="a"}"#).len(),
            2,
            "fresh data is visible in the head"
        );
        store.flush().unwrap();
        assert_eq!(store.tenant_stats(&tenant()).segments, 1);
        store
            .push(&tenant(), vec![batch(r#"{app="a"}"#, &[(t0 + 2, "three")])])
            .unwrap();
        assert_eq!(
            read_all(&store, r#"{app="a"}"#).len(),
            3,
            "head and segment together"
        );
        store.close().unwrap();
    }
    let store = Store::open(config(dir.path())).unwrap();
    let got = read_all(&store, r#"{app="a"}"#);
    assert_eq!(
        got,
        vec![
            (t0, "one".into()),
            (t0 + 1, "two".into()),
            (t0 + 2, "three".into())
        ]
    );
    assert_eq!(
        store.label_names(&tenant(), Timestamp(0), Timestamp::MAX),
        ["app"]
    );
}

#[test]
fn a_crash_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let t0 = now() - 1_000_000;
    let store = Store::open(config(dir.path())).unwrap();
    store
        .push(&tenant(), vec![batch(r#"{app="a"}"#, &[(t0, "flushed")])])
        .unwrap();
    store.flush().unwrap();
    store
        .push(
            &tenant(),
            vec![batch(r#"{app="a"}"#, &[(t0 + 1, "only in the wal")])],
        )
        .unwrap();
    // What the disk holds right now is what a kill -9 would leave.
    copy_dir(dir.path(), copy.path());
    store.close().unwrap();
    let reopened = Store::open(config(copy.path())).unwrap();
    let got = read_all(&reopened, r#"{app="a"}"#);
    assert_eq!(
        got,
        vec![(t0, "flushed".into()), (t0 + 1, "only in the wal".into())]
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else {
            // A file the store removes meanwhile (an old WAL file once its
            // entries are in a segment) is absent from a crash's disk too.
            match std::fs::copy(e.path(), target) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => {
                    other.unwrap();
                }
            }
        }
    }
}

#[test]
fn validation_refuses_entries_not_streams() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let t = now();
    let week = 7 * 24 * 3600 * 1_000_000_000i64;
    let long = "x".repeat(300 * 1024);
    let out = store
        .push(
            &tenant(),
            vec![batch(
                r#"{app="a"}"#,
                &[
                    (t - 2 * week, "too old"),
                    (t + 3_600_000_000_000, "too new"),
                    (t, &long),
                    (t, "fine"),
                ],
            )],
        )
        .unwrap();
    assert_eq!(out.accepted, 1);
    assert_eq!(out.rejected.len(), 3, "{:?}", out.rejected);
    assert!(out.rejected.iter().any(|r| r.reason.contains("too old")));
    assert!(out.rejected.iter().any(|r| r.reason.contains("too new")));
    assert!(
        out.rejected
            .iter()
            .any(|r| r.reason.contains("max entry size"))
    );
    assert_eq!(read_all(&store, r#"{app="a"}"#), vec![(t, "fine".into())]);
    let out = store
        .push(
            &tenant(),
            vec![batch(r#"{app="a", __secret__="x"}"#, &[(t, "no")])],
        )
        .unwrap();
    assert_eq!(out.accepted, 0);
    assert!(
        out.rejected[0].reason.contains("reserved"),
        "{:?}",
        out.rejected
    );
}

#[test]
fn out_of_order_window_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.out_of_order_window_secs = 60;
    let store = Store::open(cfg).unwrap();
    let t = now();
    let s = 1_000_000_000;
    store
        .push(&tenant(), vec![batch(r#"{app="a"}"#, &[(t, "newest")])])
        .unwrap();
    let out = store
        .push(
            &tenant(),
            vec![batch(
                r#"{app="a"}"#,
                &[
                    (t - 30 * s, "late but in window"),
                    (t - 120 * s, "too late"),
                    (t, "newest"),
                ],
            )],
        )
        .unwrap();
    assert_eq!(out.accepted, 1);
    assert_eq!(out.duplicates, 1);
    assert_eq!(out.rejected.len(), 1);
    assert!(
        out.rejected[0].reason.contains("too far behind"),
        "{:?}",
        out.rejected
    );
    // The window follows the stream across a flush and a restart.
    store.close().unwrap();
    drop(store);
    let mut cfg = config(dir.path());
    cfg.out_of_order_window_secs = 60;
    let store = Store::open(cfg).unwrap();
    let out = store
        .push(
            &tenant(),
            vec![batch(r#"{app="a"}"#, &[(t - 120 * s, "still too late")])],
        )
        .unwrap();
    assert_eq!(out.accepted, 0);
    assert_eq!(read_all(&store, r#"{app="a"}"#).len(), 2);
}

#[test]
fn tenants_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let t = now();
    let other = TenantId::new("t2").unwrap();
    store
        .push(&tenant(), vec![batch(r#"{app="a"}"#, &[(t, "mine")])])
        .unwrap();
    store
        .push(&other, vec![batch(r#"{app="a"}"#, &[(t, "theirs")])])
        .unwrap();
    store.flush().unwrap();
    assert_eq!(read_all(&store, r#"{app="a"}"#), vec![(t, "mine".into())]);
    assert_eq!(store.tenants().len(), 2);
    assert!(dir.path().join("tenants/t2/segments").is_dir());
}

#[test]
fn metadata_survives_wal_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let t = now();
    let mut b = batch(r#"{app="a"}"#, &[(t, "with meta")]);
    b.entries[0].metadata = vec![Label::new("trace_id", "abc")];
    store.push(&tenant(), vec![b]).unwrap();
    store.flush().unwrap();
    let m = [Matcher::new("app", MatchOp::Eq, "a").unwrap()];
    let snap = store.snapshot(&tenant(), &m, Timestamp(0), Timestamp::MAX);
    let entries = Store::read_source(&snap.streams[0].sources[0]).unwrap();
    assert_eq!(entries[0].metadata, vec![Label::new("trace_id", "abc")]);
}

#[test]
fn head_stays_bounded_under_sustained_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let t = now() - 10_000_000_000;
    let line = "GET /api/v1/items?id=12345 HTTP/1.1 200 512 \"-\" \"curl/8.0\"";
    for round in 0..40 {
        let entries: Vec<(i64, &str)> = (0..1000).map(|i| (t + round * 1000 + i, line)).collect();
        store
            .push(&tenant(), vec![batch(r#"{app="load"}"#, &entries)])
            .unwrap();
        assert!(store.counters().head_bytes <= 4 << 20);
    }
    store.flush().unwrap();
    assert!(store.counters().flushes >= 2);
    assert_eq!(store.tenant_stats(&tenant()).head_entries, 0);
}

/// Every entry a query would read, duplicates included, in time order.
fn read_raw(store: &Store, selector: &str) -> Vec<(i64, String)> {
    let ls = LabelSet::parse(selector).unwrap();
    let matchers: Vec<Matcher> = ls
        .labels()
        .iter()
        .map(|l| Matcher::new(&l.name, MatchOp::Eq, &l.value).unwrap())
        .collect();
    let snap = store.snapshot(&tenant(), &matchers, Timestamp(0), Timestamp::MAX);
    let mut out: Vec<(i64, String)> = snap
        .streams
        .iter()
        .flat_map(|s| &s.sources)
        .flat_map(|src| Store::read_source(src).unwrap())
        .map(|e| (e.ts.0, e.line))
        .collect();
    out.sort();
    out
}

fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("tenants/t1/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn compaction_merges_segments_keeps_every_entry_and_drops_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.compact_base_bytes = 1 << 20;
    let store = Store::open(cfg.clone()).unwrap();
    let t0 = now() - 60_000_000_000;
    let mut want = Vec::new();
    for flush in 0..6i64 {
        let mut batches = Vec::new();
        for app in ["a", "b"] {
            let entries: Vec<(i64, String)> = (0..50)
                .map(|i| {
                    (
                        t0 + flush * 1000 + i,
                        format!("{app} flush {flush} entry {i}"),
                    )
                })
                .collect();
            if app == "a" {
                want.extend(entries.iter().cloned());
            }
            let refs: Vec<(i64, &str)> = entries.iter().map(|(t, l)| (*t, l.as_str())).collect();
            batches.push(batch(&format!(r#"{{app="{app}"}}"#), &refs));
        }
        // The same entry again in every flush: stored once by compaction.
        batches.push(batch(r#"{app="a"}"#, &[(t0, "a flush 0 entry 0")]));
        store.push(&tenant(), batches).unwrap();
        store.flush().unwrap();
    }
    want.sort();
    store.compact().unwrap();
    // Six tier-0 segments: four merged into one, two left.
    assert_eq!(
        segment_files(dir.path()).len(),
        3,
        "{:?}",
        segment_files(dir.path())
    );
    assert!(store.counters().compactions >= 1, "{:?}", store.counters());
    // The duplicate is stored once in the merged segment and once in each
    // of the two others.
    let mut got = read_raw(&store, r#"{app="a"}"#);
    let copies = got.iter().filter(|(t, _)| *t == t0).count();
    assert_eq!(copies, 3);
    got.dedup();
    assert!(
        got == want,
        "{} entries read, {} pushed",
        got.len(),
        want.len()
    );
    assert_eq!(read_raw(&store, r#"{app="b"}"#).len(), 300);
    store.close().unwrap();
    drop(store);
    let store = Store::open(cfg).unwrap();
    assert_eq!(read_raw(&store, r#"{app="a"}"#).len(), want.len() + 2);
    store.close().unwrap();
}

#[test]
fn a_compaction_cut_short_is_finished_or_undone_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.compact_fan_in = 0;
    let t0 = now() - 60_000_000_000;
    {
        let store = Store::open(cfg.clone()).unwrap();
        for (i, app) in ["a", "b", "c"].into_iter().enumerate() {
            store
                .push(
                    &tenant(),
                    vec![batch(
                        &format!(r#"{{app="{app}"}}"#),
                        &[(t0 + i as i64, app)],
                    )],
                )
                .unwrap();
            store.flush().unwrap();
        }
        store.close().unwrap();
    }
    let segs = segment_files(dir.path());
    assert_eq!(segs.len(), 3);
    let seg_dir = segs[0].parent().unwrap().to_path_buf();
    // A finished output (a copy of segment 1, standing for the merge of 1)
    // whose inputs were not yet deleted: the input goes.
    std::fs::copy(&segs[0], seg_dir.join("000000000099.seg")).unwrap();
    std::fs::write(seg_dir.join("000000000099.replaces"), "1\n").unwrap();
    // An output that never got renamed into place: its inputs stay.
    std::fs::write(seg_dir.join("000000000098.replaces"), "2\n3\n").unwrap();
    let store = Store::open(cfg).unwrap();
    let names: Vec<String> = segment_files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["000000000002.seg", "000000000003.seg", "000000000099.seg"]
    );
    for app in ["a", "b", "c"] {
        assert_eq!(
            read_raw(&store, &format!(r#"{{app="{app}"}}"#)).len(),
            1,
            "{app}"
        );
    }
    store.close().unwrap();
}

/// The WAL files of a data directory, oldest first.
fn wal_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

#[test]
fn wal_damage_mid_file_is_reported_set_aside_and_the_rest_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let crash1 = tempfile::tempdir().unwrap();
    let crash2 = tempfile::tempdir().unwrap();
    let t0 = now() - 1_000_000;
    let push = |store: &Store, ts: i64, line: &str| {
        let out = store
            .push(&tenant(), vec![batch(r#"{app="a"}"#, &[(ts, line)])])
            .unwrap();
        assert_eq!(out.accepted, 1);
    };
    let store = Store::open(config(dir.path())).unwrap();
    push(&store, t0, "before the damage");
    push(&store, t0 + 1, "damaged");
    copy_dir(dir.path(), crash1.path());
    store.close().unwrap();
    // A second life over the crash image: its records go to a newer file.
    let store = Store::open(config(crash1.path())).unwrap();
    push(&store, t0 + 2, "in a later file");
    copy_dir(crash1.path(), crash2.path());
    store.close().unwrap();

    let files = wal_files(crash2.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let first_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let damaged_at = 8 + 8 + first_len;
    bytes[damaged_at + 8 + 3] ^= 0x40;
    std::fs::write(&files[0], &bytes).unwrap();

    let store = Store::open(config(crash2.path())).unwrap();
    let got = read_all(&store, r#"{app="a"}"#);
    assert_eq!(
        got,
        vec![
            (t0, "before the damage".into()),
            (t0 + 2, "in a later file".into())
        ]
    );
    let snap = store.snapshot(&tenant(), &[], Timestamp(0), Timestamp::MAX);
    assert_eq!(snap.corrupt.len(), 1, "{:?}", snap.corrupt);
    let c = &snap.corrupt[0];
    assert!(
        c.error.contains(&files[0].display().to_string())
            && c.error.contains(&format!("at offset {damaged_at}")),
        "names the file and offset: {}",
        c.error
    );
    assert!(c.path.starts_with(crash2.path().join("quarantine/wal")));
    assert_eq!(std::fs::read(&c.path).unwrap(), bytes, "kept as found");
    assert_eq!(store.counters().corrupt_files, 1);
}

#[test]
fn a_damaged_segment_is_set_aside_and_everything_else_served() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = now() - 1_000_000;
    {
        let store = Store::open(config(dir.path())).unwrap();
        store
            .push(&tenant(), vec![batch(r#"{app="a"}"#, &[(t0, "damaged")])])
            .unwrap();
        store.flush().unwrap();
        store
            .push(&tenant(), vec![batch(r#"{app="b"}"#, &[(t0, "intact")])])
            .unwrap();
        store.close().unwrap();
    }
    let segs = segment_files(dir.path());
    assert_eq!(segs.len(), 2);
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&segs[0], &bytes).unwrap();

    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(read_all(&store, r#"{app="b"}"#).len(), 1);
    assert!(read_all(&store, r#"{app="a"}"#).is_empty());
    let snap = store.snapshot(&tenant(), &[], Timestamp(0), Timestamp::MAX);
    assert_eq!(snap.corrupt.len(), 1);
    let c = &snap.corrupt[0];
    assert!(c.error.contains("at offset 0"), "{}", c.error);
    let kept = dir
        .path()
        .join("quarantine/tenants/t1")
        .join(segs[0].file_name().unwrap());
    assert_eq!(c.path, kept);
    assert_eq!(std::fs::read(&kept).unwrap(), bytes);
    assert_eq!(segment_files(dir.path()), [segs[1].clone()]);
    drop(store);
    // Set aside once: the next start is clean.
    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(store.counters().corrupt_files, 0);
}

const HOUR: i64 = 3_600_000_000_000;

/// A store that accepts old entries, keeps `retention` (0: forever) and
/// never merges segments (so each flush is one segment to reason about).
fn retention_config(dir: &std::path::Path, retention: &str) -> StoreConfig {
    let mut cfg = config(dir);
    cfg.compact_fan_in = 0;
    let l = cfg.limits.defaults_mut();
    l.reject_old_samples = false;
    l.retention_period = skald_model::parse_duration(retention).unwrap();
    cfg
}

fn lines(store: &Store, selector: &str) -> Vec<String> {
    read_raw(store, selector)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

#[test]
fn retention_deletes_expired_segments_whole_and_rewrites_mixed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    {
        // Only the passes this test asks for: the background one runs when
        // its thread first wakes, which on a loaded machine can be after
        // the flushes below.
        let mut cfg = retention_config(dir.path(), "48h");
        cfg.role.compact = false;
        let store = Store::open(cfg).unwrap();
        store
            .push(
                &tenant(),
                vec![batch(
                    r#"{app="old"}"#,
                    &[(t - 100 * HOUR, "a1"), (t - 90 * HOUR, "a2")],
                )],
            )
            .unwrap();
        store.flush().unwrap();
        store
            .push(
                &tenant(),
                vec![batch(
                    r#"{app="mixed"}"#,
                    &[(t - 100 * HOUR, "b-old"), (t - HOUR, "b-new")],
                )],
            )
            .unwrap();
        store.flush().unwrap();
        store
            .push(
                &tenant(),
                vec![batch(r#"{app="fresh"}"#, &[(t - HOUR, "c")])],
            )
            .unwrap();
        store.flush().unwrap();
        assert_eq!(segment_files(dir.path()).len(), 3);

        let report = store.apply_retention().unwrap();
        assert_eq!(report.segments_deleted, 1, "{report:?}");
        assert_eq!(report.segments_rewritten, 1, "{report:?}");
        assert_eq!(report.entries_expired, 3, "{report:?}");
        assert!(report.bytes_reclaimed > 0);
        assert!(lines(&store, r#"{app="old"}"#).is_empty());
        assert_eq!(lines(&store, r#"{app="mixed"}"#), vec!["b-new"]);
        assert_eq!(lines(&store, r#"{app="fresh"}"#), vec!["c"]);
        // The index forgot the stream with nothing left.
        let names: Vec<String> = store
            .streams(&tenant(), &[], Timestamp::MIN, Timestamp::MAX)
            .iter()
            .map(|s| s.labels.to_string())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(!names.iter().any(|n| n.contains("old")));
        assert_eq!(segment_files(dir.path()).len(), 2);
        let c = store.counters();
        assert_eq!(c.retention_segments_deleted, 1);
        assert_eq!(c.retention_entries_expired, 3);
        // A second pass has nothing to do.
        assert!(store.apply_retention().unwrap().is_empty());
        store.close().unwrap();
    }
    let store = Store::open(retention_config(dir.path(), "48h")).unwrap();
    assert!(lines(&store, r#"{app="old"}"#).is_empty());
    assert_eq!(lines(&store, r#"{app="mixed"}"#), vec!["b-new"]);
    assert_eq!(lines(&store, r#"{app="fresh"}"#), vec!["c"]);
}

#[test]
fn retention_stream_rules_override_the_tenant_period() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    let mut cfg = retention_config(dir.path(), "0s");
    cfg.limits.defaults_mut().retention_stream = vec![skald_model::StreamRetention {
        selector: r#"{env="dev"}"#.into(),
        priority: 1,
        period: std::time::Duration::from_secs(24 * 3600),
        matchers: vec![Matcher::new("env", MatchOp::Eq, "dev").unwrap()],
    }];
    let store = Store::open(cfg).unwrap();
    store
        .push(
            &tenant(),
            vec![
                batch(
                    r#"{env="dev"}"#,
                    &[(t - 30 * HOUR, "dev-old"), (t - HOUR, "dev-new")],
                ),
                batch(r#"{env="prod"}"#, &[(t - 30 * 24 * HOUR, "prod-old")]),
            ],
        )
        .unwrap();
    store.flush().unwrap();
    let report = store.apply_retention().unwrap();
    assert_eq!(report.entries_expired, 1, "{report:?}");
    assert_eq!(lines(&store, r#"{env="dev"}"#), vec!["dev-new"]);
    assert_eq!(lines(&store, r#"{env="prod"}"#), vec!["prod-old"]);
}

#[test]
fn size_retention_deletes_the_oldest_segments_first() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    let mut cfg = retention_config(dir.path(), "0s");
    let store = Store::open(cfg.clone()).unwrap();
    for i in 0..4i64 {
        let line = format!("segment {i} {}", "x".repeat(2000));
        store
            .push(
                &tenant(),
                vec![batch(
                    r#"{app="a"}"#,
                    &[(t - (10 - i) * HOUR, line.as_str())],
                )],
            )
            .unwrap();
        store.flush().unwrap();
    }
    let sizes: u64 = store.tenant_stats(&tenant()).segment_bytes;
    let one = sizes / 4;
    // Room for about two and a half segments: the two oldest go.
    let mut limits = (*store.limits(&tenant())).clone();
    limits.retention_max_bytes = one * 5 / 2;
    store.set_limits(TenantLimits::new(limits));
    let report = store.apply_retention().unwrap();
    assert_eq!(report.segments_deleted, 2, "{report:?}");
    let left = lines(&store, r#"{app="a"}"#);
    assert_eq!(left.len(), 2);
    assert!(left[0].starts_with("segment 2") && left[1].starts_with("segment 3"));
    // A budget below one segment keeps the newest.
    cfg.limits.defaults_mut().retention_max_bytes = 1;
    store.set_limits(cfg.limits.clone());
    store.apply_retention().unwrap();
    let left = lines(&store, r#"{app="a"}"#);
    assert_eq!(left.len(), 1);
    assert!(left[0].starts_with("segment 3"));
}

#[test]
fn deletes_are_applied_physically_then_their_tombstone_retired() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    let store = Store::open(retention_config(dir.path(), "0s")).unwrap();
    store
        .push(
            &tenant(),
            vec![batch(
                r#"{app="a"}"#,
                &[(t - 3, "keep 1"), (t - 2, "secret"), (t - 1, "keep 2")],
            )],
        )
        .unwrap();
    store.flush().unwrap();
    let deleted_line: delete::LinePredicate = Arc::new(|l: &str| l.contains("secret"));
    store.add_tombstone(delete::Tombstone {
        id: "d1".into(),
        tenant: tenant(),
        matchers: vec![Matcher::new("app", MatchOp::Eq, "a").unwrap()],
        start: Timestamp(t - 10),
        end: Timestamp(t),
        lines: Some(deleted_line),
        physical_after: Timestamp(0),
        applied: Default::default(),
    });
    assert_eq!(lines(&store, r#"{app="a"}"#), vec!["keep 1", "keep 2"]);
    let report = store.apply_retention().unwrap();
    assert_eq!(report.entries_deleted, 1, "{report:?}");
    assert_eq!(report.tombstones_retired, 1, "{report:?}");
    assert_eq!(store.tombstone_applied(&tenant(), "d1"), Some(true));
    // Retired: reads no longer filter, so what they return is what is on
    // disk.
    assert!(store.shared.tombstones.of(&tenant()).is_empty());
    assert_eq!(lines(&store, r#"{app="a"}"#), vec!["keep 1", "keep 2"]);
    assert_eq!(store.counters().deleted_entries_dropped, 1);
}

#[test]
fn a_tombstone_with_covered_entries_in_the_head_is_not_retired() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    let store = Store::open(retention_config(dir.path(), "0s")).unwrap();
    store
        .push(&tenant(), vec![batch(r#"{app="a"}"#, &[(t - 2, "gone")])])
        .unwrap();
    store.add_tombstone(delete::Tombstone {
        id: "d1".into(),
        tenant: tenant(),
        matchers: vec![Matcher::new("app", MatchOp::Eq, "a").unwrap()],
        start: Timestamp(t - 10),
        end: Timestamp(t),
        lines: None,
        physical_after: Timestamp(0),
        applied: Default::default(),
    });
    assert_eq!(store.apply_retention().unwrap().tombstones_retired, 0);
    assert!(lines(&store, r#"{app="a"}"#).is_empty());
    store.flush().unwrap();
    let report = store.apply_retention().unwrap();
    assert_eq!(report.tombstones_retired, 1, "{report:?}");
    assert!(lines(&store, r#"{app="a"}"#).is_empty());
}

/// The on-disk states a crash in the middle of a rewrite can leave are
/// rebuilt by hand around a real rewrite: each reopens to every kept entry
/// exactly once and no expired one.
#[test]
fn a_crash_mid_rewrite_leaves_a_consistent_store() {
    let t = now();
    for state in [
        "output renamed, input not yet deleted",
        "output not yet renamed",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let input_copy = dir.path().join("input.copy");
        let (input, output) = {
            let store = Store::open(retention_config(dir.path(), "48h")).unwrap();
            store
                .push(
                    &tenant(),
                    vec![batch(
                        r#"{app="a"}"#,
                        &[(t - 100 * HOUR, "old"), (t - HOUR, "new")],
                    )],
                )
                .unwrap();
            store.flush().unwrap();
            let input = segment_files(dir.path())[0].clone();
            std::fs::copy(&input, &input_copy).unwrap();
            assert_eq!(store.apply_retention().unwrap().segments_rewritten, 1);
            store.close().unwrap();
            let output = segment_files(dir.path())[0].clone();
            assert_ne!(input, output);
            (input, output)
        };
        let input_id = input.file_stem().unwrap().to_str().unwrap().to_string();
        std::fs::copy(&input_copy, &input).unwrap();
        std::fs::write(output.with_extension("replaces"), format!("{input_id}\n")).unwrap();
        if state == "output not yet renamed" {
            let mut tmp = output.clone().into_os_string();
            tmp.push(".tmp");
            std::fs::rename(&output, &tmp).unwrap();
        }
        // Reopened with a retention the compactor's pass at start does not
        // act on, so what is seen is what the recovery left.
        let store = Store::open(retention_config(dir.path(), "1000h")).unwrap();
        let want: Vec<&str> = if state == "output not yet renamed" {
            vec!["new", "old"]
        } else {
            vec!["new"]
        };
        let mut got = lines(&store, r#"{app="a"}"#);
        got.sort();
        assert_eq!(got, want, "{state}");
        assert_eq!(
            segment_files(dir.path()).len(),
            1,
            "{state}: {:?}",
            segment_files(dir.path())
        );
        // And the next pass finishes the job.
        store.set_limits(retention_config(dir.path(), "48h").limits);
        store.apply_retention().unwrap();
        assert_eq!(lines(&store, r#"{app="a"}"#), vec!["new"], "{state}");
    }
}

#[test]
fn a_tail_queue_is_bounded_in_bytes_as_well_as_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let t0 = now() - 1_000_000;
    let m = Matcher::new("app", MatchOp::Eq, "a").unwrap();
    // Room for 10,000 entries but only about 3 KB.
    let sub = store.subscribe(&tenant(), &[m], 10_000, 3_000, Box::new(|| {}));
    let line = "x".repeat(900);
    let entries: Vec<(i64, &str)> = (0..10).map(|i| (t0 + i, line.as_str())).collect();
    store
        .push(&tenant(), vec![batch(r#"{app="a"}"#, &entries)])
        .unwrap();
    let got = sub.drain();
    assert!(
        (2..=3).contains(&got.entries.len()),
        "{} entries queued",
        got.entries.len()
    );
    let dropped: u64 = got.dropped.iter().map(|d| d.count).sum();
    assert_eq!(
        got.entries.len() as u64 + dropped,
        10,
        "every entry queued or counted"
    );
    // Draining frees the room again.
    store
        .push(
            &tenant(),
            vec![batch(r#"{app="a"}"#, &[(t0 + 20, "small")])],
        )
        .unwrap();
    assert_eq!(sub.drain().entries.len(), 1);
}

/// Pushes `flushes` batches of `per` entries to `{app="a"}` from `t0`,
/// flushing after each; answers them in order.
fn push_and_flush(store: &Store, t0: i64, flushes: i64, per: i64) -> Vec<(i64, String)> {
    let mut pushed = Vec::new();
    for flush in 0..flushes {
        let entries: Vec<(i64, String)> = (0..per)
            .map(|i| (t0 + flush * 1000 + i, format!("flush {flush} entry {i}")))
            .collect();
        let refs: Vec<(i64, &str)> = entries.iter().map(|(t, l)| (*t, l.as_str())).collect();
        store
            .push(&tenant(), vec![batch(r#"{app="a"}"#, &refs)])
            .unwrap();
        store.flush().unwrap();
        pushed.extend(entries);
    }
    pushed
}

#[test]
fn segments_in_memory_serve_flushes_compaction_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let segments = Arc::new(storage::MemorySegments::new());
    let mut cfg = config(dir.path());
    cfg.compact_base_bytes = 1 << 20;
    let t0 = now() - 60_000_000_000;
    let mut want = Vec::new();
    {
        let store = Store::open_with(cfg.clone(), segments.clone()).unwrap();
        want.extend(push_and_flush(&store, t0, 5, 40));
        store.compact().unwrap();
        assert_eq!(read_all(&store, r#"{app="a"}"#), want);
        store.close().unwrap();
    }
    // Nothing of the segments went to the data directory.
    assert!(!dir.path().join("tenants").exists());
    let keys: Vec<String> = segments
        .list("tenants/")
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(keys.len(), 2, "four merged into one, one left: {keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("tenants/t1/segments/") && k.ends_with(".seg"))
    );
    let store = Store::open_with(cfg, segments).unwrap();
    assert_eq!(store.tenant_stats(&tenant()).segments, 2);
    assert_eq!(read_all(&store, r#"{app="a"}"#), want);
    store.close().unwrap();
}

#[test]
fn an_in_memory_store_flushes_compacts_and_leaves_nothing_behind() {
    let store = Store::in_memory().unwrap();
    let scratch = store.config().data_dir.clone();
    assert!(scratch.starts_with(std::env::temp_dir()));
    let want = push_and_flush(&store, now() - 60_000_000_000, 3, 20);
    store.compact().unwrap();
    assert_eq!(read_all(&store, r#"{app="a"}"#), want);
    // Segments never touch the directory; two stores never share one.
    assert!(!scratch.join("tenants").exists());
    let other = Store::in_memory().unwrap();
    assert_ne!(other.config().data_dir, scratch);
    assert!(read_all(&other, r#"{app="a"}"#).is_empty());
    drop(store);
    assert!(!scratch.exists(), "removed with the store");
}

#[test]
fn a_damaged_segment_in_memory_is_set_aside_under_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let segments = Arc::new(storage::MemorySegments::new());
    let t0 = now() - 60_000_000_000;
    {
        let store = Store::open_with(config(dir.path()), segments.clone()).unwrap();
        store
            .push(&tenant(), vec![batch(r#"{app="a"}"#, &[(t0, "one")])])
            .unwrap();
        store.flush().unwrap();
        store.close().unwrap();
    }
    let key = segments.list("tenants/").unwrap().remove(0).key;
    let mut bytes = segments.get(&key).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    segments.put_bytes(&key, &bytes).unwrap();
    let store = Store::open_with(config(dir.path()), segments.clone()).unwrap();
    assert_eq!(store.counters().corrupt_files, 1);
    assert!(segments.list("tenants/").unwrap().is_empty());
    let quarantined = segments.list("quarantine/tenants/t1/").unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(segments.get(&quarantined[0].key).unwrap(), bytes);
    store.close().unwrap();
}
