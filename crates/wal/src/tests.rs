use super::*;
use proptest::prelude::*;

/// Faults a test can arm on a [`Wal`]: a disk that takes only part of the
/// next write and then reports itself full, and cuts that fail.
#[derive(Default)]
pub(crate) struct Faults {
    /// The next write stores this many bytes, then fails with ENOSPC.
    partial_write: Option<usize>,
    /// This many cuts (truncations) fail before they work again.
    failing_cuts: u32,
    /// The next fsync fails with EIO.
    failing_sync: bool,
}

pub(crate) fn faulty_sync(faults: &mut Faults, file: &File) -> io::Result<()> {
    if std::mem::take(&mut faults.failing_sync) {
        return Err(io::Error::from_raw_os_error(5));
    }
    file.sync_data()
}

pub(crate) fn faulty_write(faults: &mut Faults, file: &mut File, buf: &[u8]) -> io::Result<()> {
    match faults.partial_write.take() {
        Some(n) => {
            file.write_all(&buf[..n.min(buf.len())])?;
            Err(io::Error::from_raw_os_error(28))
        }
        None => file.write_all(buf),
    }
}

pub(crate) fn faulty_cut(faults: &mut Faults) -> io::Result<()> {
    if faults.failing_cuts == 0 {
        return Ok(());
    }
    faults.failing_cuts -= 1;
    Err(io::Error::other("injected: cannot truncate"))
}

fn replay(dir: &Path) -> (Wal, Vec<(u64, Vec<u8>)>, ReplayReport) {
    let mut got = Vec::new();
    let small = WalOptions {
        file_size: 256,
        buffer_size: 64,
        quarantine_dir: Some(dir.join("quarantine")),
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

fn payloads(got: &[(u64, Vec<u8>)]) -> Vec<&[u8]> {
    got.iter().map(|(_, p)| p.as_slice()).collect()
}

#[test]
fn a_failed_write_is_cut_back_and_later_records_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = replay(dir.path());
    wal.append(b"acknowledged-1").unwrap();
    wal.sync().unwrap();
    // A full disk takes part of the next group, then refuses.
    wal.faults.partial_write = Some(11);
    wal.append(b"refused-a").unwrap();
    wal.append(b"refused-b").unwrap();
    assert!(wal.sync().is_err());
    assert!(!wal.is_broken());
    let len = fs::metadata(&wal.path).unwrap().len();
    assert_eq!(
        len,
        HEADER_LEN + FRAME_LEN + 14,
        "cut back to the last good record"
    );
    // The disk has room again: the next group lands right after.
    wal.append(b"acknowledged-2").unwrap();
    wal.sync().unwrap();
    // Dropping the wal must not write anything refused either.
    drop(wal);
    let (_, got, report) = replay(dir.path());
    assert_eq!(payloads(&got), [&b"acknowledged-1"[..], b"acknowledged-2"]);
    assert_eq!(report.torn_tail_bytes, 0);
    assert!(report.corruptions.is_empty());
}

#[test]
fn a_failed_flush_in_interval_mode_discards_only_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = replay(dir.path());
    wal.append(b"flushed").unwrap();
    wal.flush_to_os().unwrap();
    // Bigger than the buffer: written during append, and still refused as
    // a whole when the group fails.
    wal.append(&[7u8; 100]).unwrap();
    wal.faults.partial_write = Some(3);
    wal.append(b"refused").unwrap();
    assert!(wal.flush_to_os().is_err());
    wal.append(b"after").unwrap();
    wal.flush_to_os().unwrap();
    drop(wal);
    let (_, got, _) = replay(dir.path());
    assert_eq!(payloads(&got), [&b"flushed"[..], b"after"]);
}

#[test]
fn a_cut_that_fails_leaves_an_end_mark_and_moves_to_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = replay(dir.path());
    wal.append(b"good").unwrap();
    wal.sync().unwrap();
    let first = wal.path.clone();
    // The refused group reaches the file whole (complete, valid frames),
    // and the file cannot be cut back.
    wal.faults.partial_write = Some(usize::MAX);
    wal.faults.failing_cuts = 1;
    wal.append(b"refused").unwrap();
    assert!(wal.sync().is_err());
    assert!(wal.is_broken());
    // The next append repairs: the cut fails again, so an end mark goes
    // where the good records end and appends move to the next file.
    wal.faults.failing_cuts = 1;
    wal.append(b"later").unwrap();
    assert!(!wal.is_broken());
    assert_ne!(wal.path, first);
    wal.sync().unwrap();
    drop(wal);
    let (_, got, report) = replay(dir.path());
    assert_eq!(payloads(&got), [&b"good"[..], b"later"]);
    assert_eq!(report.end_marks, 1);
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
}

#[test]
fn a_wal_that_cannot_be_repaired_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = replay(dir.path());
    wal.append(b"good").unwrap();
    wal.sync().unwrap();
    wal.faults.partial_write = Some(2);
    wal.faults.failing_cuts = 1;
    wal.append(b"refused").unwrap();
    assert!(wal.sync().is_err());
    assert!(wal.is_broken());
    // The cut fails again, and a directory standing where the next file
    // would go makes moving on impossible too: everything is refused.
    let next = dir.path().join(file_name(wal.seq + 1));
    fs::create_dir(&next).unwrap();
    wal.faults.failing_cuts = 1;
    let err = wal.append(b"x").unwrap_err();
    assert!(
        matches!(err, WalError::Broken { offset, .. } if offset == HEADER_LEN + FRAME_LEN + 4),
        "{err}"
    );
    assert!(wal.is_broken());
    fs::remove_dir(&next).unwrap();
    wal.append(b"after repair").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, got, report) = replay(dir.path());
    assert_eq!(payloads(&got), [&b"good"[..], b"after repair"]);
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
}

#[test]
fn corruption_mid_file_is_quarantined_and_later_files_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = replay(dir.path());
    wal.append(b"one").unwrap();
    wal.append(b"two").unwrap();
    wal.append(b"three").unwrap();
    wal.sync().unwrap();
    let first = wal.path.clone();
    wal.rotate().unwrap();
    wal.append(b"four").unwrap();
    wal.sync().unwrap();
    drop(wal);
    // Damage the payload of "two".
    let mut bytes = fs::read(&first).unwrap();
    let two_at = (HEADER_LEN + FRAME_LEN + 3) as usize;
    bytes[two_at + FRAME_LEN as usize] ^= 0xff;
    let original = bytes.clone();
    fs::write(&first, bytes).unwrap();

    let (_, got, report) = replay(dir.path());
    assert_eq!(payloads(&got), [&b"one"[..], b"four"]);
    assert_eq!(report.corruptions.len(), 1);
    let c = &report.corruptions[0];
    assert_eq!(c.path, first);
    assert_eq!(c.offset, two_at as u64);
    assert_eq!(c.reason, "record checksum mismatch");
    let text = c.to_string();
    assert!(text.contains(&format!("at offset {two_at}")), "{text}");
    let kept = c.quarantined.clone().expect("a copy is kept");
    assert!(kept.starts_with(dir.path().join("quarantine")));
    assert_eq!(
        fs::read(&kept).unwrap(),
        original,
        "the copy is the damaged file as found"
    );
    // Cut where the damage starts: the next start is clean and keeps "one".
    assert_eq!(fs::metadata(&first).unwrap().len(), two_at as u64);
    let (_, got, report) = replay(dir.path());
    assert_eq!(payloads(&got), [&b"one"[..], b"four"]);
    assert!(report.corruptions.is_empty());
}

#[test]
fn damage_before_valid_records_of_the_newest_file_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = replay(dir.path());
    wal.append(b"one").unwrap();
    wal.append(b"two").unwrap();
    wal.append(b"three").unwrap();
    wal.sync().unwrap();
    let path = wal.path.clone();
    drop(wal);
    let mut bytes = fs::read(&path).unwrap();
    let two_at = (HEADER_LEN + FRAME_LEN + 3) as usize;
    bytes[two_at + FRAME_LEN as usize] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let (_, got, report) = replay(dir.path());
    assert_eq!(payloads(&got), [&b"one"[..]]);
    assert_eq!(report.torn_tail_bytes, 0);
    assert_eq!(report.corruptions.len(), 1);
    assert!(report.corruptions[0].quarantined.is_some());
}

#[test]
fn inspect_reports_without_changing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = replay(dir.path());
    wal.append(b"one").unwrap();
    wal.append(b"two").unwrap();
    wal.sync().unwrap();
    let path = wal.path.clone();
    drop(wal);
    let mut bytes = fs::read(&path).unwrap();
    bytes[(HEADER_LEN + FRAME_LEN) as usize] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let report = inspect(dir.path(), |_, _| {}).unwrap();
    assert_eq!(report.corruptions.len(), 1);
    assert!(report.corruptions[0].quarantined.is_none());
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert!(!dir.path().join("quarantine").exists());
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
            (0usize..300).prop_map(Op::FailWrite),
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
                Op::FailWrite(n) => {
                    // The disk takes n bytes of the group and is full: the
                    // whole group since the last sync is refused.
                    wal.faults.partial_write = Some(n);
                    // Or the group went out with an earlier append and the
                    // fsync fails.
                    wal.faults.failing_sync = true;
                    prop_assert!(wal.sync().is_err());
                    wal.faults = Faults::default();
                    pending.clear();
                }
                Op::Reopen => {
                    // Like a crash: records appended since the last sync
                    // were never acknowledged; those the buffer already
                    // pushed into the file replay, the rest are gone. What
                    // replays is the synced records and a prefix of them.
                    drop(wal);
                    let (w, got, report) = replay(dir.path());
                    prop_assert!(report.corruptions.is_empty());
                    let got: Vec<Vec<u8>> = got.into_iter().map(|(_, p)| p).collect();
                    prop_assert!(got.len() >= synced.len());
                    prop_assert_eq!(&got[..synced.len()], &synced[..]);
                    let extra = &got[synced.len()..];
                    prop_assert!(extra.len() <= pending.len());
                    prop_assert_eq!(extra, &pending[..extra.len()]);
                    synced = got;
                    pending.clear();
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
    FailWrite(usize),
}
