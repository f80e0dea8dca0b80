//! A disk that fills up mid-write, for real: the file size limit of this
//! process (`RLIMIT_FSIZE`) makes the kernel take part of a write and then
//! refuse the rest, exactly as a full file system does. Its own test binary
//! because the limit holds for the whole process.
//!
//! Every acknowledged entry must be there exactly once afterwards (in the
//! running store, after a crash, after a clean restart) and no entry of a
//! refused push ever.

mod common;

use skald_model::{Entry, LabelSet, TenantId, Timestamp};
use skald_store::{Store, StoreConfig, StreamBatch};
use std::path::Path;

fn set_file_size_limit(bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain system calls with valid arguments; ignoring SIGXFSZ
    // turns "killed for writing past the limit" into the EFBIG error a
    // full disk's ENOSPC stands for here.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
}

fn tenant() -> TenantId {
    TenantId::new("t1").unwrap()
}

fn lines(store: &Store) -> Vec<String> {
    common::read_app(store, &tenant(), "full")
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

/// Panics with a short account (not thousands of lines) unless `got` is
/// exactly `acked`, in order.
fn assert_exactly(got: &[String], acked: &[String], refused: &[String], when: &str) {
    if got == acked {
        return;
    }
    let short = |l: &String| l.chars().take(20).collect::<String>();
    let missing: Vec<_> = acked
        .iter()
        .filter(|l| !got.contains(l))
        .map(short)
        .collect();
    let back: Vec<_> = refused
        .iter()
        .filter(|l| got.contains(l))
        .map(short)
        .collect();
    panic!(
        "{when}: {} entries, {} acknowledged; missing {missing:?}; refused but stored {back:?}",
        got.len(),
        acked.len()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn a_full_disk_refuses_whole_pushes_and_keeps_every_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let crash = tempfile::tempdir().unwrap();
    let config = |d: &Path| StoreConfig {
        data_dir: d.to_path_buf(),
        flush_bytes: 64 << 20,
        max_head_bytes: 128 << 20,
        ..Default::default()
    };
    let store = Store::open(config(dir.path())).unwrap();
    let t0 = Timestamp::now().0 - 60_000_000_000;
    let mut n = 0i64;
    let mut push = |store: &Store| {
        // 3 entries of ~1 KB: a record is bigger than what is left when
        // the limit hits, so the kernel takes part of it.
        let batch: Vec<String> = (0..3)
            .map(|i| format!("push {n} entry {i} {}", "x".repeat(1000)))
            .collect();
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, l)| Entry::new(Timestamp(t0 + n * 10 + i as i64), l.as_str()))
            .collect();
        n += 1;
        let r = store.push(
            &tenant(),
            vec![StreamBatch {
                labels: LabelSet::parse(r#"{app="full"}"#).unwrap(),
                entries,
            }],
        );
        (r.map(|o| o.accepted), batch)
    };
    let mut acked: Vec<String> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for _ in 0..5 {
        let (r, b) = push(&store);
        assert_eq!(r.unwrap(), 3);
        acked.extend(b);
    }
    let wal_bytes: u64 = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    // Room for a little more than two records.
    set_file_size_limit(wal_bytes + 7000);
    for _ in 0..6 {
        let (r, b) = push(&store);
        match r {
            Ok(3) => acked.extend(b),
            Ok(k) => panic!("partially accepted: {k}"),
            Err(e) => {
                assert!(e.to_string().contains("wal"), "{e}");
                refused.extend(b);
            }
        }
    }
    assert!(
        refused.len() >= 9,
        "the limit must refuse pushes: {refused:?}"
    );
    assert_exactly(&lines(&store), &acked, &refused, "while full");
    // Room again.
    set_file_size_limit(libc::RLIM_INFINITY);
    for _ in 0..5 {
        let (r, b) = push(&store);
        assert_eq!(r.unwrap(), 3);
        acked.extend(b);
    }
    assert_exactly(&lines(&store), &acked, &refused, "after room came back");
    // kill -9: what the disk holds now.
    copy_dir(dir.path(), crash.path());
    store.close().unwrap();
    drop(store);
    for d in [crash.path(), dir.path()] {
        let store = Store::open(config(d)).unwrap();
        let when = format!("after a restart over {}", d.display());
        assert_exactly(&lines(&store), &acked, &refused, &when);
        assert_eq!(store.counters().corrupt_files, 0);
    }
}
