use super::*;
use proptest::prelude::*;

fn replay(dir: &Path) -> (Wal, Vec<(u64, Vec<u8>)>, ReplayReport) {
    let mut got = Vec::new();
    let small = WalOptions {
        file_size: 256,
        buffer_size: 64,
    };
    let (wal, report) = Wal::open(dir, small, |s, p| got.push((s, p.to_vec()))).unwrap();
    (wal, got, report)
}

#[test]
fn torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = replay(dir.path());
    wal.append(b"one").unwrap();
    wal.append(b"two").unwrap();
    wal.sync().unwrap();
    let path = wal.path.clone();
    drop(wal);
    // A crash in the middle of writing a third record.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
    drop(f);
    let (mut wal, got, report) = replay(dir.path());
    assert_eq!(
        got.iter().map(|(_, p)| p.as_slice()).collect::<Vec<_>>(),
        [b"one", b"two"]
    );
    assert_eq!(report.torn_tail_bytes, 6);
    wal.append(b"three").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, got, report) = replay(dir.path());
    assert_eq!(got.len(), 3);
    assert!(report.corruptions.is_empty());
}

#[test]
fn corruption_in_an_older_file_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = replay(dir.path());
    wal.append(b"first-file").unwrap();
    let first = wal.path.clone();
    wal.rotate().unwrap();
    wal.append(b"second-file").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let mut bytes = fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&first, bytes).unwrap();
    let (_, got, report) = replay(dir.path());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"second-file");
    assert_eq!(report.corruptions.len(), 1);
}

#[test]
fn truncate_removes_only_older_files() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = replay(dir.path());
    for _ in 0..3 {
        wal.append(b"x").unwrap();
        wal.rotate().unwrap();
    }
    let cur = wal.current_seq();
    assert_eq!(list_files(dir.path()).unwrap().len(), 4);
    assert_eq!(wal.truncate_before(cur - 1).unwrap(), 2);
    assert_eq!(list_files(dir.path()).unwrap(), vec![cur - 1, cur]);
    // Never the current file, whatever is asked.
    wal.truncate_before(u64::MAX).unwrap();
    assert_eq!(list_files(dir.path()).unwrap(), vec![cur]);
}

#[test]
fn unknown_version_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(file_name(1)), b"SKWL\x09\0\0\0").unwrap();
    fs::write(dir.path().join(file_name(2)), b"SKWL\x01\0\0\0").unwrap();
    let r = Wal::open(dir.path(), WalOptions::default(), |_, _| {});
    assert!(matches!(r, Err(WalError::BadHeader { version: 9, .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Random appends, syncs, rotations and reopenings: replay always
    /// returns exactly the synced records, in order.
    #[test]
    fn replay_matches_model(ops in proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200).prop_map(Op::Append),
            Just(Op::Sync),
            Just(Op::Rotate),
            Just(Op::Reopen),
        ], 1..40))
    {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = replay(dir.path());
        let mut synced: Vec<Vec<u8>> = Vec::new();
        let mut pending: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            match op {
                Op::Append(p) => { wal.append(&p).unwrap(); pending.push(p); }
                Op::Sync => { wal.sync().unwrap(); synced.append(&mut pending); wal.rotate_if_full().unwrap(); }
                Op::Rotate => { wal.rotate().unwrap(); synced.append(&mut pending); }
                Op::Reopen => {
                    // Dropping the BufWriter flushes it, so pending records
                    // survive a clean reopen too.
                    drop(wal);
                    synced.append(&mut pending);
                    let (w, got, report) = replay(dir.path());
                    prop_assert!(report.corruptions.is_empty());
                    let got: Vec<Vec<u8>> = got.into_iter().map(|(_, p)| p).collect();
                    prop_assert_eq!(&got, &synced);
                    wal = w;
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Sync,
    Rotate,
    Reopen,
}
