//! The write-ahead log: an append-only sequence of CRC-framed records in
//! numbered files, replayed on start and truncated once what it protects is
//! safely in segments.
//!
//! The WAL knows nothing of what a record means (the store encodes push
//! batches into it) and nothing of async runtimes: it is plain synchronous
//! code, driven by the store's commit thread.
//!
//! # File format (version 1)
//!
//! A WAL directory holds files named `{seq:020}.wal`, `seq` counting up from
//! 1. Each file is:
//!
//! ```text
//! offset  size  field
//! 0       4     magic  b"SKWL"
//! 4       4     version, u32 little-endian (1)
//! 8       ...   records, back to back:
//!               4  payload length n, u32 LE (at most MAX_RECORD_BYTES)
//!               4  CRC32C of the payload, u32 LE
//!               n  payload
//! ```
//!
//! A frame whose length field is `0xFFFF_FFFF` (beyond any record) is an
//! *end mark*: the file's records end there. It is written only when a
//! failed write could not be cut back (see below); replay stops at it
//! without complaint.
//!
//! Invariants: records are only ever appended; a file is never modified
//! after the next one is created, except by replay. A write that fails
//! (a full disk, an I/O error) is undone before anything else is
//! appended: the file is cut back to the end of the last record of the
//! previous successful [`Wal::sync`] or [`Wal::flush_to_os`] (the *commit
//! point*), and every record appended since is discarded, so a refused
//! group never reappears and later records never sit behind a torn one.
//! If the cut itself fails, an end mark is written at the commit point and
//! appends move to a new file; until one of those works the WAL refuses
//! everything ([`WalError::Broken`]).
//!
//! Replay cuts a torn tail (a record cut short, or failing its checksum as
//! the very last bytes of the newest file: what a crash during a write
//! leaves) so new records follow valid ones. A bad record anywhere else is
//! corruption: replay reports the file and offset, keeps a copy of the file
//! in the quarantine directory, cuts the file there (so it replays cleanly
//! next time) and goes on with the following files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"SKWL";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 8;
const FRAME_LEN: u64 = 8;
/// Length field of an end mark (see the module docs).
const END_MARK_LEN: u32 = u32::MAX;

/// Largest record accepted, so a corrupt length can never make replay
/// allocate gigabytes.
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("wal file {path} is not a wal file or has unknown version {version}")]
    BadHeader { path: PathBuf, version: u32 },
    #[error("wal record of {len} bytes exceeds the limit of {MAX_RECORD_BYTES}")]
    RecordTooLarge { len: usize },
    /// A failed write could not be undone yet: nothing is accepted until
    /// the file is cut back to `offset` or a new file is started.
    #[error(
        "wal file {path} ends in a failed write after offset {offset} that could not be undone yet: {source}"
    )]
    Broken {
        path: PathBuf,
        offset: u64,
        #[source]
        source: io::Error,
    },
}

impl WalError {
    /// Whether the error came from the disk (full, failing) rather than
    /// from the caller's input.
    pub fn is_io(&self) -> bool {
        matches!(self, WalError::Io { .. } | WalError::Broken { .. })
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tuning of a WAL.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A new file is started once the current one exceeds this size.
    pub file_size: u64,
    /// Records are written to the file once this many bytes are waiting
    /// (and at every sync or flush).
    pub buffer_size: usize,
    /// Where replay keeps a copy of a file with a corrupt record before
    /// cutting it. None: corrupt files are reported and left as they are.
    pub quarantine_dir: Option<PathBuf>,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            file_size: 128 * 1024 * 1024,
            buffer_size: 1024 * 1024,
            quarantine_dir: None,
        }
    }
}

/// A bad record found by replay before the end of the log.
#[derive(Debug, Clone)]
pub struct Corruption {
    pub path: PathBuf,
    /// Byte offset of the bad record (or of the header) in the file.
    pub offset: u64,
    pub reason: &'static str,
    /// Bytes of the file from `offset` on that were not replayed.
    pub skipped_bytes: u64,
    /// Where the damaged file was copied before it was cut, if it was.
    pub quarantined: Option<PathBuf>,
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at offset {}: {}; {} bytes after it not replayed",
            self.path.display(),
            self.offset,
            self.reason,
            self.skipped_bytes
        )?;
        if let Some(q) = &self.quarantined {
            write!(f, " (damaged file kept as {})", q.display())?;
        }
        Ok(())
    }
}

/// What replay found besides the records.
#[derive(Debug, Default, Clone)]
pub struct ReplayReport {
    pub files: usize,
    pub records: u64,
    pub bytes: u64,
    /// Bytes cut from the end of the newest file (a torn write).
    pub torn_tail_bytes: u64,
    /// Files that ended in an end mark (a failed write that could not be
    /// cut back when it happened).
    pub end_marks: usize,
    /// Corruption found before the end of the log.
    pub corruptions: Vec<Corruption>,
}

/// An open WAL, positioned to append to a fresh file.
///
/// Records appended and not yet written by [`Wal::sync`] or
/// [`Wal::flush_to_os`] were never acknowledged: dropping the `Wal`
/// discards them.
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    seq: u64,
    path: PathBuf,
    file: File,
    /// Whole frames appended since the last write to the file.
    pending: Vec<u8>,
    /// Bytes in the file, including records written since the commit
    /// point.
    written: u64,
    /// End of the last record of the last successful sync or flush: where
    /// the file is cut back to when a write fails.
    committed: u64,
    /// A failed write could not be undone; see [`Wal::repair`].
    broken: Option<Broken>,
    #[cfg(test)]
    faults: tests::Faults,
}

#[derive(Clone, Copy)]
struct Broken {
    /// The end mark is on disk: only a new file is missing.
    end_marked: bool,
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

/// The sequence numbers of the WAL files in `dir`, ascending.
pub fn list_files(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut seqs = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(seqs),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for ent in rd {
        let ent = ent.map_err(io_err(dir))?;
        let name = ent.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Deletes the WAL files in `dir` whose sequence number is below `seq`.
/// For a caller that knows those files are closed and no longer needed
/// (the store's flush, after the segment holding their records is durable),
/// without owning the [`Wal`] that appends to the newest file.
pub fn remove_files_before(dir: &Path, seq: u64) -> Result<usize, WalError> {
    let mut removed = 0;
    for s in list_files(dir)? {
        if s >= seq {
            break;
        }
        let path = dir.join(file_name(s));
        fs::remove_file(&path).map_err(io_err(&path))?;
        removed += 1;
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl Wal {
    /// Opens the WAL in `dir` (creating it), hands every valid record to
    /// `on_record(file_seq, payload)` in order, cuts a torn tail, sets
    /// corrupt files aside, and starts a new file for appends.
    pub fn open(
        dir: &Path,
        options: WalOptions,
        mut on_record: impl FnMut(u64, &[u8]),
    ) -> Result<(Wal, ReplayReport), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let seqs = list_files(dir)?;
        let mut report = ReplayReport::default();
        let repair = Repair::Yes {
            quarantine: options.quarantine_dir.as_deref(),
        };
        for (i, &seq) in seqs.iter().enumerate() {
            let is_last = i + 1 == seqs.len();
            replay_file(
                &dir.join(file_name(seq)),
                seq,
                is_last,
                repair,
                &mut report,
                &mut on_record,
            )?;
            report.files += 1;
        }
        let next = seqs.last().map_or(1, |s| s + 1);
        let wal = Wal::create_file(dir.to_path_buf(), options, next)?;
        Ok((wal, report))
    }

    fn create_file(dir: PathBuf, options: WalOptions, seq: u64) -> Result<Wal, WalError> {
        let path = dir.join(file_name(seq));
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut header = [0u8; HEADER_LEN as usize];
        header[..4].copy_from_slice(MAGIC);
        header[4..].copy_from_slice(&VERSION.to_le_bytes());
        let written = file
            .write_all(&header)
            .and_then(|()| file.sync_data())
            .map_err(io_err(&path))
            .and_then(|()| sync_dir(&dir));
        if let Err(e) = written {
            // A half-made file would stand in the way of the next attempt
            // (and look like corruption to replay).
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(Wal {
            dir,
            options,
            seq,
            path,
            file,
            pending: Vec::new(),
            written: HEADER_LEN,
            committed: HEADER_LEN,
            broken: None,
            #[cfg(test)]
            faults: Default::default(),
        })
    }

    /// Sequence number of the file appends currently go to.
    pub fn current_seq(&self) -> u64 {
        self.seq
    }

    /// Path of the file appends currently go to.
    pub fn current_path(&self) -> &Path {
        &self.path
    }

    /// Whether a failed write is still waiting to be undone.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Adds one record. It is written by [`Wal::flush_to_os`] and durable
    /// after [`Wal::sync`]; if either fails, it is discarded together with
    /// every record appended since the last successful one.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), WalError> {
        if payload.len() > MAX_RECORD_BYTES {
            return Err(WalError::RecordTooLarge { len: payload.len() });
        }
        self.repair()?;
        let mut frame = [0u8; FRAME_LEN as usize];
        frame[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        frame[4..].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        self.pending.extend_from_slice(&frame);
        self.pending.extend_from_slice(payload);
        if self.pending.len() >= self.options.buffer_size {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Writes waiting records to the file and fsyncs it (data only): the
    /// new commit point. On failure every record since the previous commit
    /// point is discarded (and cut from the file).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.repair()?;
        self.write_pending()?;
        #[cfg(test)]
        let synced = tests::faulty_sync(&mut self.faults, &self.file);
        #[cfg(not(test))]
        let synced = self.file.sync_data();
        if let Err(e) = synced {
            // What the kernel did with the pages is unknown: the records
            // since the commit point must not survive to a replay.
            self.roll_back();
            return Err(io_err(&self.path)(e));
        }
        self.committed = self.written;
        Ok(())
    }

    /// Writes waiting records to the OS without waiting for the disk: what
    /// interval-fsync mode does between syncs, so a crash of the process
    /// (not of the machine) still loses nothing. A commit point, like
    /// [`Wal::sync`].
    pub fn flush_to_os(&mut self) -> Result<(), WalError> {
        self.repair()?;
        self.write_pending()?;
        self.committed = self.written;
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), WalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        #[cfg(test)]
        let written = tests::faulty_write(&mut self.faults, &mut self.file, &self.pending);
        #[cfg(not(test))]
        let written = self.file.write_all(&self.pending);
        if let Err(e) = written {
            self.roll_back();
            return Err(io_err(&self.path)(e));
        }
        self.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Discards everything since the commit point: waiting records, and
    /// bytes already in the file. If the file cannot be cut, the WAL is
    /// broken until [`Wal::repair`] succeeds.
    fn roll_back(&mut self) {
        self.pending.clear();
        self.pending.shrink_to(self.options.buffer_size);
        match self.cut_back() {
            Ok(()) => {}
            Err(_) => self.broken = Some(Broken { end_marked: false }),
        }
    }

    fn cut_back(&mut self) -> io::Result<()> {
        #[cfg(test)]
        tests::faulty_cut(&mut self.faults)?;
        self.file.set_len(self.committed)?;
        self.file.seek(SeekFrom::Start(self.committed))?;
        self.written = self.committed;
        Ok(())
    }

    /// Undoes a failed write that could not be undone when it happened:
    /// cuts the file back to the commit point, or failing that marks the
    /// end there and moves to a new file. Appends and syncs call it first;
    /// a no-op when nothing is broken.
    pub fn repair(&mut self) -> Result<(), WalError> {
        let Some(Broken { end_marked }) = self.broken else {
            return Ok(());
        };
        let offset = self.committed;
        let broken_err = |path: &Path, source| WalError::Broken {
            path: path.to_path_buf(),
            offset,
            source,
        };
        if !end_marked {
            if self.cut_back().is_ok() {
                self.broken = None;
                return Ok(());
            }
            let mut mark = [0u8; FRAME_LEN as usize];
            mark[..4].copy_from_slice(&END_MARK_LEN.to_le_bytes());
            self.file
                .write_all_at(&mark, offset)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| broken_err(&self.path, e))?;
            self.broken = Some(Broken { end_marked: true });
        }
        let next = Wal::create_file(self.dir.clone(), self.options.clone(), self.seq + 1).map_err(
            |e| match e {
                WalError::Io { source, .. } => broken_err(&self.path, source),
                other => other,
            },
        )?;
        *self = next;
        Ok(())
    }

    /// Starts a new file if the current one is full. Call after a sync.
    /// Returns whether it rotated.
    pub fn rotate_if_full(&mut self) -> Result<bool, WalError> {
        if self.written + (self.pending.len() as u64) < self.options.file_size {
            return Ok(false);
        }
        self.rotate()?;
        Ok(true)
    }

    /// Syncs the current file and starts the next one.
    pub fn rotate(&mut self) -> Result<(), WalError> {
        self.sync()?;
        let next = Wal::create_file(self.dir.clone(), self.options.clone(), self.seq + 1)?;
        *self = next;
        Ok(())
    }

    /// Deletes every file whose sequence number is below `seq` (their
    /// records are all in segments now). Never deletes the current file.
    pub fn truncate_before(&mut self, seq: u64) -> Result<usize, WalError> {
        remove_files_before(&self.dir, seq.min(self.seq))
    }

    /// Total bytes of all WAL files on disk.
    pub fn disk_bytes(&self) -> u64 {
        list_files(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| fs::metadata(self.dir.join(file_name(s))).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Reads every record of the WAL in `dir` without changing anything (no
/// torn-tail repair, no quarantine, no new file): for inspection.
pub fn inspect(
    dir: &Path,
    mut on_record: impl FnMut(u64, &[u8]),
) -> Result<ReplayReport, WalError> {
    let seqs = list_files(dir)?;
    let mut report = ReplayReport::default();
    for (i, &seq) in seqs.iter().enumerate() {
        let is_last = i + 1 == seqs.len();
        replay_file(
            &dir.join(file_name(seq)),
            seq,
            is_last,
            Repair::No,
            &mut report,
            &mut on_record,
        )?;
        report.files += 1;
    }
    Ok(report)
}

#[derive(Clone, Copy)]
enum Repair<'a> {
    No,
    Yes { quarantine: Option<&'a Path> },
}

fn replay_file(
    path: &Path,
    seq: u64,
    is_last: bool,
    repair: Repair<'_>,
    report: &mut ReplayReport,
    on_record: &mut impl FnMut(u64, &[u8]),
) -> Result<(), WalError> {
    let repairing = matches!(repair, Repair::Yes { .. });
    let mut file = OpenOptions::new()
        .read(true)
        .write(repairing)
        .open(path)
        .map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut data = Vec::with_capacity(len.min(1 << 30) as usize);
    file.read_to_end(&mut data).map_err(io_err(path))?;
    if data.len() < HEADER_LEN as usize {
        // A crash right after creating the file: nothing was acknowledged
        // from it. Give it a valid header so it replays as empty.
        if is_last || data.is_empty() {
            if repairing {
                write_empty(&mut file, path)?;
            }
            return Ok(());
        }
        corrupt(
            path,
            &mut file,
            0,
            "truncated header",
            data.len() as u64,
            repair,
            report,
        );
        return Ok(());
    }
    let version = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
    if &data[..4] != MAGIC || version != VERSION {
        return Err(WalError::BadHeader {
            path: path.to_path_buf(),
            version,
        });
    }
    let mut pos = HEADER_LEN as usize;
    while pos < data.len() {
        let problem = match frame_at(&data, pos) {
            Frame::Record(payload) => {
                on_record(seq, payload);
                report.records += 1;
                report.bytes += payload.len() as u64;
                pos += FRAME_LEN as usize + payload.len();
                continue;
            }
            Frame::EndMark => {
                report.end_marks += 1;
                break;
            }
            Frame::Bad(problem) => problem,
        };
        let skipped = (data.len() - pos) as u64;
        if is_last && problem.at_end {
            report.torn_tail_bytes = skipped;
            if repairing {
                file.set_len(pos as u64).map_err(io_err(path))?;
                file.sync_all().map_err(io_err(path))?;
            }
        } else {
            corrupt(
                path,
                &mut file,
                pos as u64,
                problem.reason,
                skipped,
                repair,
                report,
            );
        }
        break;
    }
    Ok(())
}

fn write_empty(file: &mut File, path: &Path) -> Result<(), WalError> {
    file.set_len(0).map_err(io_err(path))?;
    file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    file.write_all(MAGIC).map_err(io_err(path))?;
    file.write_all(&VERSION.to_le_bytes())
        .map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Records a bad record at `offset` and, when repairing, keeps a copy of
/// the file in quarantine and then cuts it there: the records before it are
/// replayed now and next time, the damaged bytes are kept for inspection.
/// Without a quarantine copy the file is left as it is.
fn corrupt(
    path: &Path,
    file: &mut File,
    offset: u64,
    reason: &'static str,
    skipped_bytes: u64,
    repair: Repair<'_>,
    report: &mut ReplayReport,
) {
    let quarantined = match repair {
        Repair::Yes {
            quarantine: Some(dir),
        } => quarantine(path, dir).ok(),
        _ => None,
    };
    if quarantined.is_some() {
        let cut = if offset < HEADER_LEN {
            write_empty(file, path).is_ok()
        } else {
            file.set_len(offset).and_then(|()| file.sync_all()).is_ok()
        };
        // Not cut: the next start finds (and copies) it again, nothing
        // worse.
        let _ = cut;
    }
    report.corruptions.push(Corruption {
        path: path.to_path_buf(),
        offset,
        reason,
        skipped_bytes,
        quarantined,
    });
}

/// Copies `path` into `dir` under an unused name; returns the copy's path.
fn quarantine(path: &Path, dir: &Path) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("wal");
    let target = (0..1000)
        .map(|i| match i {
            0 => dir.join(name),
            i => dir.join(format!("{name}.{i}")),
        })
        .find(|p| !p.exists())
        .ok_or_else(|| io::Error::other("quarantine directory is full"))?;
    let copied = fs::copy(path, &target)
        .and_then(|_| File::open(&target)?.sync_all())
        .and_then(|()| File::open(dir)?.sync_all());
    if let Err(e) = copied {
        let _ = fs::remove_file(&target);
        return Err(e);
    }
    Ok(target)
}

enum Frame<'a> {
    Record(&'a [u8]),
    EndMark,
    Bad(Problem),
}

struct Problem {
    reason: &'static str,
    /// The bad record reaches the end of the file: what a write cut short
    /// by a crash looks like.
    at_end: bool,
}

fn frame_at(data: &[u8], pos: usize) -> Frame<'_> {
    let bad = |reason, at_end| Frame::Bad(Problem { reason, at_end });
    let Some(frame) = data.get(pos..pos + FRAME_LEN as usize) else {
        return bad("record frame cut short", true);
    };
    let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(frame[4..].try_into().expect("4 bytes"));
    if len == END_MARK_LEN {
        return Frame::EndMark;
    }
    let len = len as usize;
    if len > MAX_RECORD_BYTES {
        return bad("record length out of range", false);
    }
    let start = pos + FRAME_LEN as usize;
    let Some(payload) = data.get(start..start + len) else {
        return bad("record payload cut short", true);
    };
    if crc32c::crc32c(payload) != crc {
        return bad("record checksum mismatch", start + len == data.len());
    }
    Frame::Record(payload)
}

#[cfg(test)]
mod tests;
