//! The disk queue: encoded batches in append-only segment files, sent in
//! order and forgotten once the server has them.
//!
//! It lets a process keep logging through a server outage of hours (up to
//! `max_bytes` of compressed batches) and lose nothing already written when
//! it crashes. Delivery is at least once: a crash between a successful push
//! and the cursor update sends that batch again (Loki drops an entry that
//! repeats the timestamp and line of one already in its stream).
//!
//! Not here: batching, HTTP, retries (see `pipeline`). The queue is plain
//! synchronous code; the pipeline calls it under its own lock.
//!
//! One directory belongs to one client at a time: opening takes an
//! exclusive `flock` on `<dir>/lock` (which holds the owner's process id,
//! for the error message of the next one to try) and a second open, from
//! this process or another, fails instead of interleaving segments and
//! cursor updates. The lock goes with the queue, or at
//! [`DiskQueue::release`] when the client closes; the kernel drops it when
//! the process dies, so a crash never leaves the directory locked. (On
//! non-Unix systems there is no lock.)
//!
//! When the queue is full, the pipeline either waits for the sender or,
//! with `Backpressure::DropOldest`, sheds whole segments, oldest first
//! ([`DiskQueue::shed_oldest`]), never the one holding the batch the sender
//! is delivering.
//!
//! # Files
//!
//! A directory holds segments named `<id>.seg` (`id` a zero-padded decimal
//! counter) and a `cursor` file.
//!
//! Segment, little-endian:
//!
//! ```text
//! 0        8         12         16
//! +--------+---------+----------+----------------------------------+
//! | magic  | version | reserved | record | record | ...            |
//! |SKCQSEG\0|  u32=1 |  u32=0   |                                  |
//! +--------+---------+----------+----------------------------------+
//!
//! record:
//! +---------+---------+---------------------------------------------+
//! | len u32 | crc u32 | payload (len bytes)                         |
//! +---------+---------+---------------------------------------------+
//! payload: kind u8 (0 protobuf+snappy, 1 JSON, 2 JSON+gzip)
//!          | entries u32 | body (the HTTP body exactly as sent)
//! crc: CRC-32C of the payload
//! ```
//!
//! Cursor (32 bytes): `magic "SKCQCUR\0" | version u32=1 | segment u64 |
//! offset u64 | crc32c u32` of the first 28 bytes. It names the first
//! record not yet delivered and is replaced atomically (write a temporary
//! file, rename).
//!
//! Invariants and recovery: records are only appended; segments before the
//! cursor's are deleted. On open, a record that runs past the end of the
//! file or fails its checksum ends its segment: in the newest segment it is
//! a write cut short by a crash and is truncated away; in an older one the
//! rest of that segment is skipped and reported. A missing or damaged
//! cursor means "from the oldest segment" (at least once, again). A version
//! newer than this code knows is an error, never a guess.

use crate::encode::{Batch, BodyKind};
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"SKCQSEG\0";
pub(crate) const CURSOR_MAGIC: &[u8; 8] = b"SKCQCUR\0";
pub(crate) const VERSION: u32 = 1;
const SEGMENT_HEADER: u64 = 16;
const RECORD_HEADER: u64 = 8;
const PAYLOAD_HEADER: usize = 5;
const CURSOR_LEN: usize = 32;

#[derive(Debug, Clone, Copy)]
struct RecordLoc {
    segment: u64,
    offset: u64,
    len: u32,
    entries: u32,
}

/// An open disk queue.
pub(crate) struct DiskQueue {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: bool,
    records: VecDeque<RecordLoc>,
    /// Segment ids on disk, oldest first (the writer's included).
    segments: VecDeque<u64>,
    writer: Option<(u64, File, u64)>,
    reader: Option<(u64, File)>,
    pending_bytes: u64,
    pending_entries: u64,
    next_segment: u64,
    /// The front record has been handed to the sender by `front` and not
    /// yet popped: shedding must keep it.
    in_flight: bool,
    /// The open `lock` file holding the directory's `flock`.
    lock: Option<File>,
}

/// What opening found, beyond the queue itself.
pub(crate) struct Recovery {
    /// Damage that was skipped, to be reported.
    pub warnings: Vec<Error>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Takes the directory's exclusive lock, or says who holds it.
#[cfg(unix)]
fn lock_dir(dir: &Path) -> Result<Option<File>> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join("lock");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::disk(&path, e))?;
    // SAFETY: flock takes a descriptor we own for the duration of the call
    // and no memory.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(Error::disk(&path, err));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim() {
            "" => String::new(),
            pid => format!(" (process {pid})"),
        };
        return Err(Error::disk(
            dir,
            format!(
                "already in use by another client{holder}; a disk queue directory belongs to one client at a time"
            ),
        ));
    }
    // For the message above, seen by whoever comes next.
    let pid = std::process::id().to_string();
    let _ = file.set_len(0);
    let _ = file.write_all(pid.as_bytes());
    Ok(Some(file))
}

#[cfg(not(unix))]
fn lock_dir(_dir: &Path) -> Result<Option<File>> {
    Ok(None)
}

/// Reads a cursor file; `None` when absent or damaged.
fn read_cursor(path: &Path) -> Result<Option<(u64, u64)>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::disk(path, e)),
    };
    if bytes.len() != CURSOR_LEN || &bytes[..8] != CURSOR_MAGIC {
        return Ok(None);
    }
    let version = u32_at(&bytes, 8);
    if version > VERSION {
        return Err(Error::disk(
            path,
            format!("cursor version {version} is newer than this client reads ({VERSION})"),
        ));
    }
    if crc32c::crc32c(&bytes[..28]) != u32_at(&bytes, 28) {
        return Ok(None);
    }
    Ok(Some((u64_at(&bytes, 12), u64_at(&bytes, 20))))
}

/// Checks a segment header; `Ok(false)` for a file too short to hold one
/// (a crash right after creating it).
fn check_segment_header(path: &Path, bytes: &[u8]) -> Result<bool> {
    if bytes.len() < SEGMENT_HEADER as usize {
        return Ok(false);
    }
    if &bytes[..8] != SEGMENT_MAGIC {
        return Err(Error::disk(path, "not a segment file (bad magic)"));
    }
    let version = u32_at(bytes, 8);
    if version > VERSION {
        return Err(Error::disk(
            path,
            format!("segment version {version} is newer than this client reads ({VERSION})"),
        ));
    }
    Ok(true)
}

/// Parses one record at `offset`; `None` if it is cut short or damaged.
fn parse_record(bytes: &[u8], offset: usize) -> Option<(usize, BodyKind, u32)> {
    let header_end = offset.checked_add(RECORD_HEADER as usize)?;
    if header_end > bytes.len() {
        return None;
    }
    let len = u32_at(bytes, offset) as usize;
    let crc = u32_at(bytes, offset + 4);
    let end = header_end.checked_add(len)?;
    if len < PAYLOAD_HEADER || end > bytes.len() {
        return None;
    }
    let payload = &bytes[header_end..end];
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    let kind = BodyKind::from_byte(payload[0])?;
    Some((len, kind, u32_at(payload, 1)))
}

impl DiskQueue {
    pub(crate) fn open(config: &crate::DiskQueueConfig) -> Result<(DiskQueue, Recovery)> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| Error::disk(&dir, e))?;
        let lock = lock_dir(&dir)?;
        let mut ids = Vec::new();
        for item in fs::read_dir(&dir).map_err(|e| Error::disk(&dir, e))? {
            let item = item.map_err(|e| Error::disk(&dir, e))?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_suffix(".seg")
                .and_then(|s| s.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let cursor = read_cursor(&dir.join("cursor"))?;
        let mut queue = DiskQueue {
            dir: dir.clone(),
            max_bytes: config.max_bytes,
            segment_bytes: config.segment_bytes,
            fsync: config.fsync,
            records: VecDeque::new(),
            segments: VecDeque::new(),
            writer: None,
            reader: None,
            pending_bytes: 0,
            pending_entries: 0,
            next_segment: ids.last().map_or(1, |last| last + 1),
            in_flight: false,
            lock,
        };
        let mut warnings = Vec::new();
        let newest = ids.last().copied();
        for id in ids {
            let path = segment_path(&dir, id);
            if let Some((cursor_segment, _)) = cursor
                && id < cursor_segment
            {
                fs::remove_file(&path).map_err(|e| Error::disk(&path, e))?;
                continue;
            }
            let bytes = fs::read(&path).map_err(|e| Error::disk(&path, e))?;
            if !check_segment_header(&path, &bytes)? {
                fs::remove_file(&path).map_err(|e| Error::disk(&path, e))?;
                continue;
            }
            let mut offset = SEGMENT_HEADER as usize;
            if let Some((cursor_segment, cursor_offset)) = cursor
                && id == cursor_segment
            {
                offset = offset.max(usize::try_from(cursor_offset).unwrap_or(usize::MAX));
            }
            let before = queue.records.len();
            while offset < bytes.len() {
                let Some((len, _kind, entries)) = parse_record(&bytes, offset) else {
                    break;
                };
                queue.records.push_back(RecordLoc {
                    segment: id,
                    offset: offset as u64,
                    len: len as u32,
                    entries,
                });
                queue.pending_bytes += RECORD_HEADER + len as u64;
                queue.pending_entries += u64::from(entries);
                offset += RECORD_HEADER as usize + len;
            }
            if offset < bytes.len() {
                if Some(id) == newest {
                    // A write cut short by a crash: drop its remains.
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| Error::disk(&path, e))?;
                    file.set_len(offset as u64)
                        .map_err(|e| Error::disk(&path, e))?;
                } else {
                    warnings.push(Error::disk(
                        &path,
                        format!(
                            "damaged record at offset {offset}; skipped {} bytes",
                            bytes.len() - offset
                        ),
                    ));
                }
            }
            if queue.records.len() == before {
                fs::remove_file(&path).map_err(|e| Error::disk(&path, e))?;
            } else {
                queue.segments.push_back(id);
            }
        }
        Ok((queue, Recovery { warnings }))
    }

    pub(crate) fn pending_entries(&self) -> u64 {
        self.pending_entries
    }

    pub(crate) fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// Whether `batch` fits under `max_bytes` (always, when empty, so that
    /// one oversized batch cannot wedge the queue).
    pub(crate) fn has_room(&self, batch: &Batch) -> bool {
        let size = RECORD_HEADER + PAYLOAD_HEADER as u64 + batch.body.len() as u64;
        self.records.is_empty() || self.pending_bytes + size <= self.max_bytes
    }

    pub(crate) fn append(&mut self, batch: &Batch) -> Result<()> {
        let payload_len = PAYLOAD_HEADER + batch.body.len();
        let len = u32::try_from(payload_len)
            .map_err(|_| Error::disk(&self.dir, "batch larger than 4 GiB"))?;
        let record_size = RECORD_HEADER + payload_len as u64;
        let roll = match &self.writer {
            None => true,
            Some((_, _, size)) => *size > SEGMENT_HEADER && size + record_size > self.segment_bytes,
        };
        if roll {
            self.start_segment()?;
        }
        let mut record = Vec::with_capacity(record_size as usize);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&[0; 4]);
        record.push(batch.kind as u8);
        record.extend_from_slice(&batch.entries.to_le_bytes());
        record.extend_from_slice(&batch.body);
        let crc = crc32c::crc32c(&record[RECORD_HEADER as usize..]);
        record[4..8].copy_from_slice(&crc.to_le_bytes());
        let fsync = self.fsync;
        let Some((id, file, size)) = self.writer.as_mut() else {
            return Err(Error::disk(&self.dir, "no open segment"));
        };
        let path = segment_path(&self.dir, *id);
        let written = file
            .write_all(&record)
            .and_then(|()| if fsync { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // The file may now end in a partial record; later appends go to
            // a fresh segment so that nothing follows the damage.
            self.writer = None;
            return Err(Error::disk(path, e));
        }
        self.records.push_back(RecordLoc {
            segment: *id,
            offset: *size,
            len,
            entries: batch.entries,
        });
        *size += record_size;
        self.pending_bytes += record_size;
        self.pending_entries += u64::from(batch.entries);
        Ok(())
    }

    fn start_segment(&mut self) -> Result<()> {
        let id = self.next_segment;
        self.next_segment += 1;
        let path = segment_path(&self.dir, id);
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::disk(&path, e))?;
        let mut header = Vec::with_capacity(SEGMENT_HEADER as usize);
        header.extend_from_slice(SEGMENT_MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        file.write_all(&header).map_err(|e| Error::disk(&path, e))?;
        let finished = self.writer.replace((id, file, SEGMENT_HEADER));
        if let Some((old, _, _)) = finished
            && !self.records.iter().any(|r| r.segment == old)
        {
            self.remove_segment(old)?;
        }
        self.segments.push_back(id);
        Ok(())
    }

    /// The oldest undelivered batch. A record damaged since it was written
    /// is skipped and returned as an error.
    pub(crate) fn front(&mut self) -> Result<Option<Batch>> {
        let Some(loc) = self.records.front().copied() else {
            return Ok(None);
        };
        let path = segment_path(&self.dir, loc.segment);
        let result = self.read_record(&path, loc);
        if result.is_err() {
            self.pop_front()?;
        }
        self.in_flight = result.is_ok();
        result.map(Some)
    }

    /// Makes room for `batch` by forgetting whole segments, oldest first,
    /// and returns how many entries that dropped. The segment of the batch
    /// the sender holds (returned by `front`, not yet popped) is kept whole,
    /// so that the cursor, which names one position, stays exact: what is
    /// shed never comes back, even after a crash.
    pub(crate) fn shed_oldest(&mut self, batch: &Batch) -> Result<u64> {
        let protected = if self.in_flight {
            self.records.front().map(|r| r.segment)
        } else {
            None
        };
        let mut dropped = 0u64;
        while !self.has_room(batch) {
            let Some(victim) = self
                .records
                .iter()
                .map(|r| r.segment)
                .find(|s| Some(*s) != protected)
            else {
                break;
            };
            let mut freed_bytes = 0u64;
            let mut freed_entries = 0u64;
            self.records.retain(|r| {
                if r.segment != victim {
                    return true;
                }
                freed_bytes += RECORD_HEADER + u64::from(r.len);
                freed_entries += u64::from(r.entries);
                false
            });
            self.pending_bytes -= freed_bytes;
            self.pending_entries -= freed_entries;
            dropped += freed_entries;
            if self.writer.as_ref().is_some_and(|(id, _, _)| *id == victim) {
                // Appends go to a fresh segment after the gap.
                self.writer = None;
            }
            self.remove_segment(victim)?;
        }
        // With a batch in flight the cursor already names it, and every
        // segment between it and the next record is gone.
        if dropped > 0 && protected.is_none() {
            match self.records.front() {
                Some(first) => self.write_cursor(first.segment, first.offset)?,
                None => self.write_cursor(self.next_segment, SEGMENT_HEADER)?,
            }
        }
        Ok(dropped)
    }

    /// Gives up the directory's lock: nothing will be read or written
    /// through this queue again.
    pub(crate) fn release(&mut self) {
        self.writer = None;
        self.reader = None;
        self.lock = None;
    }

    fn read_record(&mut self, path: &Path, loc: RecordLoc) -> Result<Batch> {
        if self.reader.as_ref().map(|(id, _)| *id) != Some(loc.segment) {
            let file = File::open(path).map_err(|e| Error::disk(path, e))?;
            self.reader = Some((loc.segment, file));
        }
        let Some((_, file)) = self.reader.as_mut() else {
            return Err(Error::disk(path, "no reader"));
        };
        let mut bytes = vec![0u8; RECORD_HEADER as usize + loc.len as usize];
        file.seek(SeekFrom::Start(loc.offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| Error::disk(path, e))?;
        let Some((_, kind, entries)) = parse_record(&bytes, 0) else {
            return Err(Error::disk(
                path,
                format!(
                    "record at offset {} failed its checksum; skipped",
                    loc.offset
                ),
            ));
        };
        let body = bytes.split_off(RECORD_HEADER as usize + PAYLOAD_HEADER);
        Ok(Batch {
            kind,
            entries,
            body: body.into(),
        })
    }

    /// Forgets the oldest batch: moves the cursor past it and deletes its
    /// segment once nothing in it is pending.
    pub(crate) fn pop_front(&mut self) -> Result<()> {
        self.in_flight = false;
        let Some(loc) = self.records.pop_front() else {
            return Ok(());
        };
        let record_size = RECORD_HEADER + u64::from(loc.len);
        self.pending_bytes -= record_size;
        self.pending_entries -= u64::from(loc.entries);
        self.write_cursor(loc.segment, loc.offset + record_size)?;
        let still_used = self
            .records
            .front()
            .is_some_and(|r| r.segment == loc.segment)
            || self
                .writer
                .as_ref()
                .is_some_and(|(id, _, _)| *id == loc.segment);
        if !still_used {
            self.remove_segment(loc.segment)?;
        }
        Ok(())
    }

    fn remove_segment(&mut self, id: u64) -> Result<()> {
        if self.reader.as_ref().is_some_and(|(r, _)| *r == id) {
            self.reader = None;
        }
        self.segments.retain(|s| *s != id);
        let path = segment_path(&self.dir, id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::disk(path, e)),
        }
    }

    fn write_cursor(&self, segment: u64, offset: u64) -> Result<()> {
        let mut bytes = Vec::with_capacity(CURSOR_LEN);
        bytes.extend_from_slice(CURSOR_MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&segment.to_le_bytes());
        bytes.extend_from_slice(&offset.to_le_bytes());
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let tmp = self.dir.join("cursor.tmp");
        let path = self.dir.join("cursor");
        fs::write(&tmp, &bytes).map_err(|e| Error::disk(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::disk(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DiskQueueConfig;

    fn batch(n: u32) -> Batch {
        Batch {
            kind: BodyKind::Json,
            entries: n,
            body: format!("body-{n}").into_bytes().into(),
        }
    }

    fn config(dir: &Path) -> DiskQueueConfig {
        DiskQueueConfig {
            segment_bytes: 64,
            fsync: false,
            ..DiskQueueConfig::new(dir)
        }
    }

    fn drain(queue: &mut DiskQueue) -> Vec<u32> {
        let mut seen = Vec::new();
        while let Some(b) = queue.front().unwrap() {
            seen.push(b.entries);
            queue.pop_front().unwrap();
        }
        seen
    }

    #[test]
    fn batches_come_back_in_order_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(&config(dir.path())).unwrap();
        for n in 1..=10 {
            q.append(&batch(n)).unwrap();
        }
        assert_eq!(q.front().unwrap(), Some(batch(1)));
        q.pop_front().unwrap();
        q.pop_front().unwrap();
        drop(q);
        let (mut q, recovery) = DiskQueue::open(&config(dir.path())).unwrap();
        assert!(recovery.warnings.is_empty());
        assert_eq!(q.pending_entries(), (3..=10).sum::<u32>() as u64);
        q.append(&batch(11)).unwrap();
        assert_eq!(drain(&mut q), (3..=11).collect::<Vec<_>>());
        drop(q);
        let segments = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count();
        assert!(
            segments <= 1,
            "delivered segments are deleted, {segments} left"
        );
        let (mut q, _) = DiskQueue::open(&config(dir.path())).unwrap();
        assert_eq!(drain(&mut q), Vec::<u32>::new());
    }

    #[test]
    fn a_torn_tail_is_truncated_and_later_appends_survive() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DiskQueueConfig {
            segment_bytes: 1 << 20,
            ..config(dir.path())
        };
        let (mut q, _) = DiskQueue::open(&cfg).unwrap();
        q.append(&batch(1)).unwrap();
        q.append(&batch(2)).unwrap();
        drop(q);
        let seg = segment_path(dir.path(), 1);
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (mut q, recovery) = DiskQueue::open(&cfg).unwrap();
        assert!(recovery.warnings.is_empty());
        q.append(&batch(3)).unwrap();
        drop(q);
        let (mut q, _) = DiskQueue::open(&cfg).unwrap();
        assert_eq!(drain(&mut q), vec![1, 3]);
    }

    #[test]
    fn damage_in_an_older_segment_is_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(&config(dir.path())).unwrap();
        for n in 1..=6 {
            q.append(&batch(n)).unwrap();
        }
        drop(q);
        let seg = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&seg).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&seg, bytes).unwrap();
        let (mut q, recovery) = DiskQueue::open(&config(dir.path())).unwrap();
        assert_eq!(recovery.warnings.len(), 1);
        let got = drain(&mut q);
        assert!(!got.is_empty() && got.len() < 6, "{got:?}");
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }

    fn segment_files(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count()
    }

    /// Records of `batch(n)` are 19 bytes; with 64-byte segments two fit in
    /// one, and 100 bytes hold five.
    fn small(dir: &Path) -> DiskQueueConfig {
        DiskQueueConfig {
            max_bytes: 100,
            ..config(dir)
        }
    }

    #[test]
    fn a_full_queue_sheds_whole_segments_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(&small(dir.path())).unwrap();
        for n in 1..=5 {
            assert!(q.has_room(&batch(n)));
            q.append(&batch(n)).unwrap();
        }
        assert!(!q.has_room(&batch(6)));
        assert_eq!(segment_files(dir.path()), 3);
        // The first segment (batches 1 and 2: three entries) goes.
        assert_eq!(q.shed_oldest(&batch(6)).unwrap(), 3);
        assert!(q.has_room(&batch(6)));
        assert_eq!(segment_files(dir.path()), 2);
        assert_eq!(q.pending_entries(), 3 + 4 + 5);
        q.append(&batch(6)).unwrap();
        // Room already: nothing more is shed.
        assert_eq!(q.shed_oldest(&batch(1)).unwrap(), 0);
        drop(q);
        let (mut q, recovery) = DiskQueue::open(&small(dir.path())).unwrap();
        assert!(recovery.warnings.is_empty());
        assert_eq!(drain(&mut q), vec![3, 4, 5, 6]);
    }

    #[test]
    fn shedding_keeps_the_batch_being_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(&small(dir.path())).unwrap();
        for n in 1..=5 {
            q.append(&batch(n)).unwrap();
        }
        assert_eq!(q.front().unwrap(), Some(batch(1)));
        // Batch 1 is with the sender: its segment (1 and 2) stays, the
        // next (3 and 4) goes.
        assert_eq!(q.shed_oldest(&batch(6)).unwrap(), 7);
        q.append(&batch(6)).unwrap();
        assert_eq!(q.front().unwrap(), Some(batch(1)));
        q.pop_front().unwrap();
        drop(q);
        let (mut q, _) = DiskQueue::open(&small(dir.path())).unwrap();
        assert_eq!(drain(&mut q), vec![2, 5, 6]);
    }

    #[test]
    fn shedding_everything_leaves_a_usable_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(&small(dir.path())).unwrap();
        let big = Batch {
            kind: BodyKind::Json,
            entries: 7,
            body: vec![b'x'; 70].into(),
        };
        q.append(&batch(1)).unwrap();
        q.append(&batch(2)).unwrap();
        assert_eq!(q.shed_oldest(&big).unwrap(), 3);
        assert_eq!(q.pending_entries(), 0);
        q.append(&big).unwrap();
        drop(q);
        let (mut q, _) = DiskQueue::open(&small(dir.path())).unwrap();
        assert_eq!(drain(&mut q), vec![7]);
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_is_open_in_one_queue_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (mut first, _) = DiskQueue::open(&config(dir.path())).unwrap();
        let second = DiskQueue::open(&config(dir.path())).err().unwrap();
        let message = second.to_string();
        assert!(message.contains("already in use"), "{message}");
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "{message}"
        );
        first.release();
        let (again, _) = DiskQueue::open(&config(dir.path())).unwrap();
        drop(again);
        drop(first);
        DiskQueue::open(&config(dir.path())).unwrap();
    }

    #[test]
    fn a_newer_version_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut header = SEGMENT_MAGIC.to_vec();
        header.extend_from_slice(&2u32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        fs::write(segment_path(dir.path(), 1), header).unwrap();
        let err = DiskQueue::open(&config(dir.path())).err().unwrap();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    /// Writes `tests/fixtures/disk-queue-v1`: batches of 1, 2 and 3 entries,
    /// the first delivered. Run once per format version, then commit.
    #[test]
    #[ignore]
    fn write_v1_fixture() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/disk-queue-v1");
        let _ = fs::remove_dir_all(&fixture);
        let (mut q, _) = DiskQueue::open(&config(&fixture)).unwrap();
        for n in 1..=3 {
            q.append(&batch(n)).unwrap();
        }
        q.pop_front().unwrap();
    }

    #[test]
    fn the_committed_v1_fixture_opens() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/disk-queue-v1");
        let dir = tempfile::tempdir().unwrap();
        for item in fs::read_dir(&fixture).unwrap() {
            let item = item.unwrap();
            fs::copy(item.path(), dir.path().join(item.file_name())).unwrap();
        }
        let (mut q, recovery) = DiskQueue::open(&config(dir.path())).unwrap();
        assert!(recovery.warnings.is_empty());
        assert_eq!(drain(&mut q), vec![2, 3]);
    }
}
