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
//! Invariants: records are only ever appended; a file is never modified
//! after the next one is created, except that replay cuts a torn tail (a
//! record cut short or failing its checksum at the very end of the newest
//! file, which is what a crash during a write leaves) so new records follow
//! valid ones. A bad record anywhere else is corruption: replay reports it
//! and skips the rest of that file, and the store logs it loudly.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"SKWL";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 8;
const FRAME_LEN: u64 = 8;

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
    /// Size of the in-memory write buffer in front of the file.
    pub buffer_size: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            file_size: 128 * 1024 * 1024,
            buffer_size: 1024 * 1024,
        }
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
    /// Corruption found before the end of the log: (file, offset, what).
    pub corruptions: Vec<String>,
}

/// An open WAL, positioned to append to a fresh file.
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    seq: u64,
    path: PathBuf,
    writer: BufWriter<File>,
    size: u64,
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
    /// `on_record(file_seq, payload)` in order, cuts a torn tail, and starts
    /// a new file for appends.
    pub fn open(
        dir: &Path,
        options: WalOptions,
        mut on_record: impl FnMut(u64, &[u8]),
    ) -> Result<(Wal, ReplayReport), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let seqs = list_files(dir)?;
        let mut report = ReplayReport::default();
        for (i, &seq) in seqs.iter().enumerate() {
            let is_last = i + 1 == seqs.len();
            replay_file(
                &dir.join(file_name(seq)),
                seq,
                is_last,
                true,
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
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut writer = BufWriter::with_capacity(options.buffer_size, file);
        writer.write_all(MAGIC).map_err(io_err(&path))?;
        writer
            .write_all(&VERSION.to_le_bytes())
            .map_err(io_err(&path))?;
        writer.flush().map_err(io_err(&path))?;
        writer.get_ref().sync_data().map_err(io_err(&path))?;
        sync_dir(&dir)?;
        Ok(Wal {
            dir,
            options,
            seq,
            path,
            writer,
            size: HEADER_LEN,
        })
    }

    /// Sequence number of the file appends currently go to.
    pub fn current_seq(&self) -> u64 {
        self.seq
    }

    /// Buffers one record. It is durable only after [`Wal::sync`].
    pub fn append(&mut self, payload: &[u8]) -> Result<(), WalError> {
        if payload.len() > MAX_RECORD_BYTES {
            return Err(WalError::RecordTooLarge { len: payload.len() });
        }
        let mut frame = [0u8; FRAME_LEN as usize];
        frame[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        frame[4..].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        self.writer.write_all(&frame).map_err(io_err(&self.path))?;
        self.writer.write_all(payload).map_err(io_err(&self.path))?;
        self.size += FRAME_LEN + payload.len() as u64;
        Ok(())
    }

    /// Writes buffered records to the file and fsyncs it (data only).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.writer.flush().map_err(io_err(&self.path))?;
        self.writer
            .get_ref()
            .sync_data()
            .map_err(io_err(&self.path))
    }

    /// Writes buffered records to the OS without waiting for the disk: what
    /// interval-fsync mode does between syncs, so a crash of the process
    /// (not of the machine) still loses nothing.
    pub fn flush_to_os(&mut self) -> Result<(), WalError> {
        self.writer.flush().map_err(io_err(&self.path))
    }

    /// Starts a new file if the current one is full. Call after a sync.
    /// Returns whether it rotated.
    pub fn rotate_if_full(&mut self) -> Result<bool, WalError> {
        if self.size < self.options.file_size {
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
/// torn-tail repair, no new file): for inspection.
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
            false,
            &mut report,
            &mut on_record,
        )?;
        report.files += 1;
    }
    Ok(report)
}

fn replay_file(
    path: &Path,
    seq: u64,
    is_last: bool,
    repair: bool,
    report: &mut ReplayReport,
    on_record: &mut impl FnMut(u64, &[u8]),
) -> Result<(), WalError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(repair)
        .open(path)
        .map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut data = Vec::with_capacity(len.min(1 << 30) as usize);
    file.read_to_end(&mut data).map_err(io_err(path))?;
    if data.len() < HEADER_LEN as usize {
        // A crash right after creating the file: nothing was acknowledged
        // from it. Give it a valid header so it replays as empty.
        if is_last && repair {
            file.set_len(0).map_err(io_err(path))?;
            file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
            file.write_all(MAGIC).map_err(io_err(path))?;
            file.write_all(&VERSION.to_le_bytes())
                .map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
            return Ok(());
        }
        report
            .corruptions
            .push(format!("{}: truncated header", path.display()));
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
            Ok(payload) => {
                on_record(seq, payload);
                report.records += 1;
                report.bytes += payload.len() as u64;
                pos += FRAME_LEN as usize + payload.len();
                continue;
            }
            Err(problem) => problem,
        };
        if is_last {
            report.torn_tail_bytes = (data.len() - pos) as u64;
            if repair {
                file.set_len(pos as u64).map_err(io_err(path))?;
                file.sync_all().map_err(io_err(path))?;
            }
        } else {
            report
                .corruptions
                .push(format!("{} at offset {pos}: {problem}", path.display()));
        }
        break;
    }
    Ok(())
}

fn frame_at(data: &[u8], pos: usize) -> Result<&[u8], &'static str> {
    let Some(frame) = data.get(pos..pos + FRAME_LEN as usize) else {
        return Err("record frame cut short");
    };
    let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(frame[4..].try_into().expect("4 bytes"));
    if len > MAX_RECORD_BYTES {
        return Err("record length out of range");
    }
    let start = pos + FRAME_LEN as usize;
    let Some(payload) = data.get(start..start + len) else {
        return Err("record payload cut short");
    };
    if crc32c::crc32c(payload) != crc {
        return Err("record checksum mismatch");
    }
    Ok(payload)
}

#[cfg(test)]
mod tests;
