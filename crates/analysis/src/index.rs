//! Patterns at ingest: every accepted line of every tenant's stream gets a
//! pattern, and counts per pattern and time bucket are kept on disk, so
//! `/loki/api/v1/patterns` answers for any past range and after restarts.
//!
//! The store's commit thread hands each durable group to [`PatternIndex::offer`],
//! which only tries to queue it on a bounded channel: when the miner
//! thread is behind, the group is shed and counted
//! ([`IndexCounters::shed_lines`]), never waited for. The miner thread keeps
//! one [`Miner`] per stream (bounded patterns each) and adds the lines'
//! counts to pending buckets, written out every `flush_secs` and before a
//! query reads.
//!
//! # Files
//!
//! `<dir>/<tenant>/patterns-<day>.v2.tsv`, one per UTC day (`day` = days
//! since the epoch) of the buckets it holds. The first line is the header
//! `skald-patterns<TAB>2`; another version is refused (the file is skipped
//! with a warning). A record names its key by an id that a definition
//! line earlier in the same file gives, so labels and pattern are written
//! once per file, not once per 10 s:
//!
//! ```text
//! =<id> TAB <level> TAB <stream labels> TAB <pattern> LF
//! <bucket start, unix s> TAB <count> TAB <id> LF
//! ```
//!
//! Labels are printed as Loki prints them (tabs escaped); patterns are
//! tab-free (tokens are split on whitespace).
//!
//! Error lines (`crate::errors::classify`) are also counted per error
//! group, in `<dir>/<tenant>/errors-<day>.v2.tsv`, header
//! `skald-errors<TAB>2`:
//!
//! ```text
//! =<id> TAB <category> TAB <exception> TAB <frame> TAB <stream labels> TAB <pattern> LF
//! <bucket> TAB <count> TAB <id> TAB <example line, or empty> LF
//! ```
//!
//! `exception` and `frame` are empty when the line has none; the example
//! (the first line of the key in that write) has tabs and line breaks
//! replaced by spaces, is cut at [`EXAMPLE_BYTES`], and is kept on a key's
//! first [`EXAMPLES_PER_KEY`] records of the file only. Counts are
//! additive: a key may appear in many records (one per write) and readers
//! sum them. A line without its final LF (a write cut by a crash) is
//! ignored, and so is a record whose definition was. The files are derived
//! data: lines acknowledged but not yet written when the process dies (at
//! most `flush_secs` of them) are missing from patterns, never from the
//! logs.
//!
//! Version 1 files (`patterns-<day>.tsv`, `errors-<day>.tsv`, header
//! version 1) held the whole key on every record; they are still read,
//! never written.
//!
//! Not here: HTTP shapes (`skald-server`), retention (the files are small
//! and kept).

use crate::anomaly::{PatternWindows, StreamWindows};
use crate::errors::{self, ErrorShape};
use crate::level::{self, Level};
use crate::miner::{Miner, MinerConfig, PatternId};
use foldhash::{HashMap, HashMapExt};
use parking_lot::Mutex;
use skald_model::{Entry, LabelSet, Matcher, TenantId};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

const HEADER: &str = "skald-patterns\t1";
const ERRORS_HEADER: &str = "skald-errors\t1";
const HEADER_V2: &str = "skald-patterns\t2";
const ERRORS_HEADER_V2: &str = "skald-errors\t2";
/// Records of one key in one errors file that carry an example line.
const EXAMPLES_PER_KEY: u8 = 3;
/// Longest example line kept per error record.
pub const EXAMPLE_BYTES: usize = 512;
const SECS_PER_DAY: i64 = 86_400;
/// A day's files are rolled up once the day has been over this long and
/// the file has not been written to for as long (a backfill of an old
/// day is rolled up an hour after its last lines).
const ROLLUP_DELAY_SECS: i64 = 3_600;
/// The second line of a rolled-up file: `#rollup TAB <bucket width> TAB
/// <file length then>`; a file longer than that took lines since, and is
/// rolled up again once quiet.
const ROLLUP_MARK: &str = "#rollup";
/// How often the miner thread looks for days to roll up.
const ROLLUP_SCAN: Duration = Duration::from_secs(600);

/// Tuning of the pattern index (`[analysis]` in the configuration file).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Mine patterns at ingest.
    pub enabled: bool,
    /// Width of a count bucket, in seconds (Loki's pattern samples: 10).
    pub bucket_secs: u64,
    /// Patterns kept per stream; past it the rarest are evicted.
    pub max_patterns_per_stream: usize,
    /// Durable groups queued for the miner thread before groups are shed.
    pub queue_groups: usize,
    /// Bytes of lines queued for the miner thread before groups are shed
    /// (the queue holds the pushed lines themselves until mined).
    pub queue_bytes: usize,
    /// How often pending counts are written, in seconds.
    pub flush_secs: u64,
    /// Scheduling priority (nice) of the miner thread, 0–19: it mines
    /// with the CPU that ingest and queries leave. When it falls behind,
    /// it mines a sample of the lines, each standing for the lines skipped
    /// beside it, rather than slowing ingest. 0 competes as an equal.
    pub miner_nice: i32,
    /// While the rest of the server keeps at least half the machine's
    /// cores busy (ingest running flat out), the miner thread's CPU is
    /// kept near this share of the rest's by mining a sample of the
    /// lines: on a busy machine nice alone does not make its CPU free.
    /// 0 turns the budget off.
    pub miner_cpu_share: f64,
    /// How far back an error group's earlier lines are looked for before
    /// it is called new, in days.
    pub error_lookback_days: u64,
    /// Most lines one analysis report (`skald analyze`) reads.
    pub report_max_lines: usize,
    /// Width, in seconds, of the buckets a day's files are rewritten at
    /// once the day has been over for an hour (0: never): anomaly
    /// baselines and error look-backs then read a few records per key
    /// and minute instead of one per write and 10 s. Must divide 60 (every
    /// anomaly window is a multiple of it) and be a multiple of
    /// `bucket_secs`; otherwise days are not rolled up.
    pub rollup_secs: u64,
    /// The anomaly detector (`[http.analysis.anomalies]`).
    pub anomalies: crate::anomaly::DetectConfig,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bucket_secs: 10,
            max_patterns_per_stream: 500,
            queue_groups: 256,
            queue_bytes: 16 << 20,
            flush_secs: 5,
            miner_nice: 10,
            miner_cpu_share: 0.1,
            error_lookback_days: 7,
            report_max_lines: 100_000,
            rollup_secs: 60,
            anomalies: Default::default(),
        }
    }
}

/// What the index has done, for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexCounters {
    pub mined_lines: u64,
    /// Lines counted through a mined neighbour of theirs while the miner
    /// was behind.
    pub sampled_lines: u64,
    /// Lines not mined because the miner thread was behind.
    pub shed_lines: u64,
    pub patterns_evicted: u64,
    pub records_written: u64,
    /// Records skipped when reading (cut lines, unreadable fields).
    pub records_skipped: u64,
}

/// Streams of one durable group, as the store committed them.
pub type Group = Vec<(LabelSet, Vec<Entry>)>;

enum Message {
    /// A group, the bytes it holds in the queue, and whether every line
    /// must be mined (never sampled).
    Group(TenantId, Group, usize, bool),
    /// Answered once everything queued before it is mined.
    Sync(SyncSender<()>),
}

/// One pattern's counts over a range, in steps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PatternSeries {
    pub pattern: String,
    pub level: String,
    /// `(step start, unix s; count)`, ascending, zero steps omitted.
    pub samples: Vec<(i64, u64)>,
}

impl PatternSeries {
    pub fn total(&self) -> u64 {
        self.samples.iter().map(|s| s.1).sum()
    }
}

/// Patterns of a tenant's streams over a range: what a query asks.
pub struct PatternQuery<'a> {
    pub tenant: &'a TenantId,
    pub matchers: &'a [Matcher],
    /// Unix seconds, inclusive start, exclusive end.
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

struct StreamState {
    tenant: TenantId,
    labels: String,
    miner: Miner,
}

#[derive(Default)]
struct MinerState {
    streams: Vec<StreamState>,
    by_key: HashMap<TenantId, HashMap<LabelSet, usize>>,
    /// (stream, pattern, level, bucket start) -> lines
    pending: HashMap<(usize, PatternId, Level, i64), u64>,
    /// (stream, pattern, shape, bucket start) -> (lines, first example)
    pending_errors: HashMap<(usize, PatternId, ErrorShape, i64), (u64, String)>,
    last_write: Option<Instant>,
    sampler: Sampler,
    budget: CpuBudget,
    /// Keys defined in the day files appended to, by (tenant, day, errors?).
    files: HashMap<(TenantId, i64, bool), FileKeys>,
    /// When day files were last looked at for a rollup, and the files
    /// found due (rolled one per write, so mining never pauses long).
    rollup_scan: Option<Instant>,
    rollup_due: Vec<(TenantId, i64, bool)>,
}

/// The keys a version-2 day file defines: key text -> id, and how many
/// of each key's records carry an example.
#[derive(Default)]
struct FileKeys {
    ids: HashMap<String, u32>,
    examples: HashMap<u32, u8>,
    next: u32,
}

impl FileKeys {
    /// Reads the definitions of an existing file (none when missing).
    fn load(path: &Path, header: &str) -> std::io::Result<FileKeys> {
        let mut keys = FileKeys::default();
        read_lines(path, header, |line| {
            if let Some((id, key)) = parse_definition(line) {
                keys.ids.insert(key.to_owned(), id);
                keys.next = keys.next.max(id + 1);
            } else {
                let mut fields = line.splitn(4, '\t').skip(2);
                if let (Some(id), Some(example)) = (fields.next(), fields.next())
                    && let Ok(id) = id.parse::<u32>()
                    && !example.is_empty()
                {
                    *keys.examples.entry(id).or_default() += 1;
                }
            }
            true
        })?;
        Ok(keys)
    }
}

/// `=<id> TAB <key>`: a key definition of a version-2 file.
fn parse_definition(line: &str) -> Option<(u32, &str)> {
    let (id, key) = line.strip_prefix('=')?.split_once('\t')?;
    Some((id.parse().ok()?, key))
}

struct Inner {
    dir: PathBuf,
    config: IndexConfig,
    state: Mutex<MinerState>,
    mined: AtomicU64,
    sampled: AtomicU64,
    shed: AtomicU64,
    /// Bytes of the groups in the queue.
    queued: AtomicUsize,
    evicted: AtomicU64,
    written: AtomicU64,
    skipped: AtomicU64,
}

/// The pattern index of a data directory.
pub struct PatternIndex {
    inner: Arc<Inner>,
    sender: Mutex<Option<SyncSender<Message>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl PatternIndex {
    /// Opens the index in `dir` (created when missing) and starts its
    /// miner thread.
    pub fn open(dir: impl Into<PathBuf>, config: IndexConfig) -> std::io::Result<PatternIndex> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let inner = Arc::new(Inner {
            dir,
            config: config.clone(),
            state: Mutex::new(MinerState::default()),
            mined: AtomicU64::new(0),
            sampled: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
            written: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        });
        let (sender, receiver) = std::sync::mpsc::sync_channel(config.queue_groups.max(1));
        let thread = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("skald-patterns".into())
                .spawn(move || run(&inner, receiver))?
        };
        Ok(PatternIndex {
            inner,
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a durable group for mining; never blocks. Returns false when
    /// the group was shed.
    pub fn offer(&self, tenant: TenantId, group: Group) -> bool {
        let sender = self.sender.lock();
        let Some(sender) = sender.as_ref() else {
            return false;
        };
        let lines: usize = group.iter().map(|(_, e)| e.len()).sum();
        let bytes = group_bytes(&group);
        let queued = self.inner.queued.fetch_add(bytes, Ordering::Relaxed);
        let room = queued == 0 || queued + bytes <= self.inner.config.queue_bytes;
        let sent = room
            && sender
                .try_send(Message::Group(tenant, group, bytes, false))
                .is_ok();
        if !sent {
            self.inner.queued.fetch_sub(bytes, Ordering::Relaxed);
            self.inner.shed.fetch_add(lines as u64, Ordering::Relaxed);
        }
        sent
    }

    /// Queues a group, waiting for room, to be mined line by line whatever
    /// the CPU share: for evaluations and tests that must mine every line
    /// (ingest uses [`PatternIndex::offer`]).
    pub fn offer_waiting(&self, tenant: TenantId, group: Group) {
        let sender = self.sender.lock().clone();
        if let Some(sender) = sender {
            let bytes = group_bytes(&group);
            self.inner.queued.fetch_add(bytes, Ordering::Relaxed);
            if sender
                .send(Message::Group(tenant, group, bytes, true))
                .is_err()
            {
                self.inner.queued.fetch_sub(bytes, Ordering::Relaxed);
            }
        }
    }

    pub fn counters(&self) -> IndexCounters {
        let i = &self.inner;
        IndexCounters {
            mined_lines: i.mined.load(Ordering::Relaxed),
            sampled_lines: i.sampled.load(Ordering::Relaxed),
            shed_lines: i.shed.load(Ordering::Relaxed),
            patterns_evicted: i.evicted.load(Ordering::Relaxed),
            records_written: i.written.load(Ordering::Relaxed),
            records_skipped: i.skipped.load(Ordering::Relaxed),
        }
    }

    /// Waits until every group queued so far is mined and written (tests,
    /// shutdown).
    pub fn sync(&self) -> std::io::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        {
            let sender = self.sender.lock();
            if let Some(sender) = sender.as_ref() {
                let _ = sender.send(Message::Sync(tx));
            }
        }
        let _ = rx.recv_timeout(Duration::from_secs(60));
        write_pending(&self.inner, &mut self.inner.state.lock())
    }

    /// Stops the miner thread after it has mined what is queued, and writes
    /// the pending counts.
    pub fn close(&self) -> std::io::Result<()> {
        self.sender.lock().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
        write_pending(&self.inner, &mut self.inner.state.lock())
    }

    /// Rolls up every day file of a day over for an hour at `now` (unix
    /// seconds) that is not rolled up yet, however recently written. The
    /// miner thread does the same on its own, a file at a time and only
    /// for files an hour quiet; this does them all at once (tests,
    /// tools). Returns how many files were rewritten.
    pub fn roll_up(&self, now: i64) -> std::io::Result<usize> {
        self.sync()?;
        let Some(width) = rollup_width(&self.inner.config) else {
            return Ok(0);
        };
        let mut state = self.inner.state.lock();
        let due = due_rollups(&self.inner.dir, now, false)?;
        for file in &due {
            roll_up_file(&self.inner, &mut state, file, width)?;
        }
        Ok(due.len())
    }

    /// Pattern series over a range, most frequent first.
    pub fn query(&self, q: &PatternQuery<'_>) -> std::io::Result<Vec<PatternSeries>> {
        // Read what was pushed before the query: everything queued is
        // mined and written first.
        self.sync()?;
        let step = q.step.max(1);
        let mut series: BTreeMap<(String, String), BTreeMap<i64, u64>> = BTreeMap::new();
        self.each_pattern_record(q.tenant, q.matchers, q.start, q.end, |r| {
            let at = q.start + (r.bucket - q.start).div_euclid(step) * step;
            *series
                .entry((r.pattern.to_owned(), r.level.to_owned()))
                .or_default()
                .entry(at)
                .or_default() += r.count;
        })?;
        let mut out: Vec<PatternSeries> = series
            .into_iter()
            .map(|((pattern, level), samples)| PatternSeries {
                pattern,
                level,
                samples: samples.into_iter().collect(),
            })
            .collect();
        fold_subsumed(&mut out);
        out.sort_by(|a, b| {
            b.total()
                .cmp(&a.total())
                .then_with(|| a.pattern.cmp(&b.pattern))
        });
        Ok(out)
    }

    /// Lines per stream, pattern and window over `range` and the history
    /// its baselines need: the input of `crate::anomaly::detect`.
    pub fn window_counts(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: crate::anomaly::Range,
        config: &crate::anomaly::DetectConfig,
    ) -> std::io::Result<Vec<StreamWindows>> {
        self.sync()?;
        let w = range.window_secs.max(1);
        let from = range.start - range.history_windows(config) * w;
        let to = range.start + range.windows * w;
        // stream -> (pattern, level) -> window -> lines
        type Counts = BTreeMap<(String, String), BTreeMap<i64, u64>>;
        let mut streams: BTreeMap<String, Counts> = BTreeMap::new();
        self.each_pattern_record(tenant, matchers, from, to, |r| {
            *streams
                .entry(r.labels.to_owned())
                .or_default()
                .entry((r.pattern.to_owned(), r.level.to_owned()))
                .or_default()
                .entry(range.window_of(r.bucket))
                .or_default() += r.count;
        })?;
        let mut errors: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
        self.each_error_record(tenant, matchers, from, to, |r| {
            *errors
                .entry(r.labels.to_owned())
                .or_default()
                .entry(range.window_of(r.bucket))
                .or_default() += r.count;
        })?;
        Ok(streams
            .into_iter()
            .map(|(labels, patterns)| {
                let mut patterns: Vec<PatternWindows> = patterns
                    .into_iter()
                    .map(|((pattern, level), counts)| PatternWindows {
                        pattern,
                        level,
                        counts,
                    })
                    .collect();
                let targets = subsumers(
                    &patterns
                        .iter()
                        .map(|p| p.pattern.as_str())
                        .collect::<Vec<_>>(),
                    |i, j| patterns[i].level == patterns[j].level,
                );
                for (i, to) in targets.into_iter().enumerate() {
                    if to != i {
                        let moved = std::mem::take(&mut patterns[i].counts);
                        for (k, c) in moved {
                            *patterns[to].counts.entry(k).or_default() += c;
                        }
                    }
                }
                patterns.retain(|p| !p.counts.is_empty());
                StreamWindows {
                    errors: errors.remove(&labels).unwrap_or_default(),
                    labels,
                    patterns,
                }
            })
            .collect())
    }

    /// Calls `each` for the error records of the tenant's streams matching
    /// `matchers`, with buckets in `[start, end)`.
    pub(crate) fn each_error_record(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        mut each: impl FnMut(ErrorRecord<'_>),
    ) -> std::io::Result<()> {
        self.sync()?;
        let mut matches = StreamFilter::new(matchers);
        self.each_day(tenant, "errors", start, end, ERRORS_HEADER, |line| {
            let Some(r) = ErrorRecord::parse(line) else {
                return false;
            };
            if r.bucket >= start && r.bucket < end && matches.check(r.labels) {
                each(r);
            }
            true
        })
    }

    fn each_pattern_record(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        mut each: impl FnMut(Record<'_>),
    ) -> std::io::Result<()> {
        let mut matches = StreamFilter::new(matchers);
        self.each_day(tenant, "patterns", start, end, HEADER, |line| {
            let Some(r) = Record::parse(line) else {
                return false;
            };
            if r.bucket >= start && r.bucket < end && matches.check(r.labels) {
                each(r);
            }
            true
        })
    }

    /// Reads the records of the tenant's day files of `kind` covering
    /// `[start, end)` — version 1 (`<kind>-<day>.tsv`, whole records) and
    /// version 2 (`<kind>-<day>.v2.tsv`, records by key id, handed to
    /// `each` in version 1's shape) — counting what cannot be read.
    fn each_day(
        &self,
        tenant: &TenantId,
        kind: &str,
        start: i64,
        end: i64,
        header: &str,
        mut each: impl FnMut(&str) -> bool,
    ) -> std::io::Result<()> {
        let tenant_dir = self.inner.dir.join(tenant.as_str());
        let first_day = start.div_euclid(SECS_PER_DAY);
        let last_day = (end - 1).div_euclid(SECS_PER_DAY);
        let errors = kind == "errors";
        for day in first_day..=last_day.max(first_day) {
            let path = tenant_dir.join(format!("{kind}-{day}.tsv"));
            let mut skipped = read_lines(&path, header, &mut each)?;
            let (path, header_v2) = day_file(&tenant_dir, day, errors);
            skipped += read_v2(&path, header_v2, errors, &mut each)?;
            self.inner.skipped.fetch_add(skipped, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Reads a version-2 file, handing each record to `each` as the version-1
/// line it stands for; a record of an undefined key is skipped.
fn read_v2(
    path: &Path,
    header: &str,
    errors: bool,
    mut each: impl FnMut(&str) -> bool,
) -> std::io::Result<u64> {
    // By id: a write numbers its keys from 0, and a file holds the
    // definitions of several writes, with gaps; a map, so that a damaged
    // id (found by fuzzing: `=702130000`) costs one entry, not gigabytes.
    let mut keys: HashMap<u32, String> = HashMap::new();
    let mut whole = String::new();
    read_lines(path, header, |line| {
        if line.starts_with(ROLLUP_MARK) {
            return true;
        }
        if let Some((id, key)) = parse_definition(line) {
            keys.insert(id, key.to_owned());
            return true;
        }
        let mut fields = line.splitn(4, '\t');
        let (Some(at), Some(count), Some(id)) = (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        let Some(key) = id.parse::<u32>().ok().and_then(|id| keys.get(&id)) else {
            return false;
        };
        whole.clear();
        for part in [at, "\t", count, "\t", key] {
            whole.push_str(part);
        }
        if errors {
            whole.push('\t');
            whole.push_str(fields.next().unwrap_or(""));
        }
        each(&whole)
    })
}

/// Whether a record's stream matches the query's matchers, remembered per
/// label text.
struct StreamFilter<'a> {
    matchers: &'a [Matcher],
    seen: HashMap<String, bool>,
}

impl<'a> StreamFilter<'a> {
    fn new(matchers: &'a [Matcher]) -> Self {
        StreamFilter {
            matchers,
            seen: HashMap::new(),
        }
    }

    fn check(&mut self, labels: &str) -> bool {
        if let Some(&m) = self.seen.get(labels) {
            return m;
        }
        let m = LabelSet::parse(labels).is_ok_and(|l| self.matchers.iter().all(|m| m.matches(&l)));
        self.seen.insert(labels.to_owned(), m);
        m
    }
}

impl Drop for PatternIndex {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// How many lines the miner thread mines: all of them while its queue
/// is short, one in `step` while it is behind (the step doubles while the
/// queue is over half full and halves once it is under an eighth).
#[derive(Debug)]
struct Sampler {
    step: u64,
    /// The least step the CPU budget allows (see [`CpuBudget`]).
    floor: u64,
    /// Lines seen since the last mined one, across groups.
    phase: u64,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            step: 1,
            floor: 1,
            phase: 0,
        }
    }
}

/// The sample step never exceeds this: a line stands for at most 64.
const MAX_STEP: u64 = 64;

impl Sampler {
    /// Sets the step for the next group from the queue's fill (0–1).
    fn adjust(&mut self, backlog: f64) {
        if backlog > 0.5 {
            self.step = (self.step * 2).min(MAX_STEP);
        } else if backlog < 0.125 {
            self.step = (self.step / 2).max(1);
        }
    }

    /// The step lines are sampled at: the backlog's or the budget's.
    fn effective(&self) -> u64 {
        self.step.max(self.floor)
    }

    /// Whether the next line is mined; it then stands for
    /// [`Sampler::effective`] lines.
    fn take(&mut self) -> bool {
        self.phase += 1;
        if self.phase >= self.effective() {
            self.phase = 0;
            true
        } else {
            false
        }
    }
}

/// Keeps the miner thread's CPU near a share of what the rest of the
/// process uses, while the rest is busy. Every [`BUDGET_CHECK`] it reads
/// both CPU clocks (the thread's and the process'), and over the last
/// [`BUDGET_WINDOW`] of readings compares the miner's CPU with the share
/// of the rest's; the step it asks for is the one that would have kept
/// the miner at its share over that window ([`budget_step`]). Judging
/// "busy" over the whole window rather than the last reading keeps a
/// short lull from resetting the step, and reading four times a window
/// finds a burst within a quarter second. With the rest of the process
/// under half the machine's cores, it asks for no sampling: ordinary
/// rates are mined line by line.
#[derive(Debug, Default)]
struct CpuBudget {
    /// Readings of the window, oldest first: when, thread and process CPU
    /// seconds, and the step asked for from then on.
    readings: std::collections::VecDeque<(Instant, f64, f64, u64)>,
}

/// How often the CPU budget reads the clocks.
const BUDGET_CHECK: Duration = Duration::from_millis(250);
/// How far back the CPU budget looks.
const BUDGET_WINDOW: Duration = Duration::from_secs(1);

impl CpuBudget {
    /// The least sample step from now on, when a check is due.
    fn check(&mut self, share: f64) -> Option<u64> {
        if share <= 0.0 {
            return None;
        }
        let now = Instant::now();
        if let Some(&(last, ..)) = self.readings.back() {
            let since = now.duration_since(last);
            if since < BUDGET_CHECK {
                return None;
            }
            if since > BUDGET_WINDOW * 2 {
                // A lull without groups: the old readings say nothing of
                // what comes next.
                self.readings.clear();
            }
        }
        let (thread, process) = (cpu_secs(CpuClock::Thread), cpu_secs(CpuClock::Process));
        let window: Vec<(f64, f64, f64, u64)> = self
            .readings
            .iter()
            .map(|&(at, t, p, step)| (now.duration_since(at).as_secs_f64(), t, p, step))
            .collect();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let step = budget_step(&window, (thread, process), cores, share);
        self.readings.push_back((now, thread, process, step));
        while self
            .readings
            .front()
            .is_some_and(|&(at, ..)| now.duration_since(at) > BUDGET_WINDOW)
        {
            self.readings.pop_front();
        }
        Some(step)
    }
}

/// The sample step after a window of readings: `window` holds, oldest
/// first, (seconds ago, thread CPU, process CPU, step asked from then
/// on), and `now` the clocks now. While the rest of the process used at
/// least half the cores over the window, the step is the one that would
/// have held the miner to `share` of the rest's CPU: the miner's CPU is
/// proportional to the lines it mines, one in each step, so the step
/// scales by how far over its share it was, against the harmonic mean of
/// the steps in effect. Otherwise, or with no reading to compare with,
/// no sampling (1).
fn budget_step(window: &[(f64, f64, f64, u64)], now: (f64, f64), cores: f64, share: f64) -> u64 {
    let first = window.first().filter(|w| w.0 > 0.0);
    let Some(&(ago, thread_then, process_then, _)) = first else {
        return 1;
    };
    let miner = (now.0 - thread_then).max(0.0);
    let rest = (now.1 - process_then - miner).max(0.0);
    if rest < ago * (cores / 2.0).max(1.0) {
        return 1;
    }
    // Each reading's step held until the next reading (or now).
    let mut mined_rate = 0.0;
    for (i, &(from, _, _, step)) in window.iter().enumerate() {
        let to = window.get(i + 1).map_or(0.0, |next| next.0);
        mined_rate += (from - to).max(0.0) / step.max(1) as f64;
    }
    let mean_inverse = (mined_rate / ago).max(1.0 / MAX_STEP as f64);
    let over = miner / (share * rest).max(1e-9);
    (over / mean_inverse).round().clamp(1.0, MAX_STEP as f64) as u64
}

enum CpuClock {
    Thread,
    Process,
}

/// CPU seconds of the calling thread or of the whole process.
fn cpu_secs(clock: CpuClock) -> f64 {
    let id = match clock {
        CpuClock::Thread => libc::CLOCK_THREAD_CPUTIME_ID,
        CpuClock::Process => libc::CLOCK_PROCESS_CPUTIME_ID,
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Lowers the calling thread's scheduling priority to `nice` (Linux
/// threads have their own); elsewhere, or when refused, it stays.
fn lower_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority on our own
        // thread id only changes this thread's nice value.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice.min(19))
        };
        if result != 0 {
            tracing::debug!(nice, "could not lower the miner thread's priority");
        }
    }
}

fn run(inner: &Inner, receiver: Receiver<Message>) {
    lower_priority(inner.config.miner_nice);
    let every = Duration::from_secs(inner.config.flush_secs.max(1));
    loop {
        match receiver.recv_timeout(every) {
            Ok(Message::Sync(reply)) => {
                let _ = reply.try_send(());
            }
            Ok(Message::Group(tenant, group, bytes, exact)) => {
                let mut state = inner.state.lock();
                mine_group(inner, &mut state, tenant, group, exact);
                let queued = inner.queued.fetch_sub(bytes, Ordering::Relaxed) - bytes;
                let limit = inner.config.queue_bytes.max(1) as f64;
                state.sampler.adjust(queued as f64 / limit);
                if let Some(floor) = state.budget.check(inner.config.miner_cpu_share) {
                    state.sampler.floor = floor;
                }
                let due = state.last_write.is_none_or(|t| t.elapsed() >= every);
                if due {
                    if let Err(e) = write_pending(inner, &mut state) {
                        tracing::warn!(error = %e, "cannot write pattern counts");
                    }
                    roll_up_next(inner, &mut state);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let mut state = inner.state.lock();
                if let Err(e) = write_pending(inner, &mut state) {
                    tracing::warn!(error = %e, "cannot write pattern counts");
                }
                roll_up_next(inner, &mut state);
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn mine_group(inner: &Inner, state: &mut MinerState, tenant: TenantId, group: Group, exact: bool) {
    let bucket = inner.config.bucket_secs.max(1) as i64;
    let (mut lines, mut sampled) = (0u64, 0u64);
    let step = if exact { 1 } else { state.sampler.effective() };
    for (labels, entries) in group {
        let index = match state.by_key.get(&tenant).and_then(|m| m.get(&labels)) {
            Some(&i) => i,
            None => {
                let i = state.streams.len();
                state.streams.push(StreamState {
                    tenant: tenant.clone(),
                    labels: labels.to_string(),
                    miner: Miner::new(MinerConfig {
                        max_patterns: inner.config.max_patterns_per_stream,
                        track_merges: true,
                        ..MinerConfig::default()
                    }),
                });
                state
                    .by_key
                    .entry(tenant.clone())
                    .or_default()
                    .insert(labels, i);
                i
            }
        };
        let stream = &mut state.streams[index];
        let evicted_before = stream.miner.stats().patterns_evicted;
        for entry in &entries {
            if step > 1 && !state.sampler.take() {
                continue;
            }
            let id = stream.miner.add(&entry.line);
            let level = level::detect(
                &entry.line,
                entry
                    .metadata
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str())),
            );
            let at = (entry.ts.0 / 1_000_000_000).div_euclid(bucket) * bucket;
            *state.pending.entry((index, id, level, at)).or_default() += step;
            if let Some(shape) = errors::classify(&entry.line, level) {
                state
                    .pending_errors
                    .entry((index, id, shape, at))
                    .or_insert_with(|| (0, example(&entry.line)))
                    .0 += step;
            }
            lines += 1;
            sampled += step - 1;
        }
        let evicted = stream.miner.stats().patterns_evicted - evicted_before;
        inner.evicted.fetch_add(evicted, Ordering::Relaxed);
    }
    inner.mined.fetch_add(lines, Ordering::Relaxed);
    inner.sampled.fetch_add(sampled, Ordering::Relaxed);
}

/// What a group holds in the queue: its lines and their allocations.
fn group_bytes(group: &Group) -> usize {
    group
        .iter()
        .flat_map(|(_, entries)| entries)
        .map(|e| e.line.len() + std::mem::size_of::<Entry>() + 16)
        .sum()
}

/// Appends pending counts to the day files, then forgets them (and the
/// merge history their pattern ids needed).
///
/// Work here is per distinct key, not per record: a pattern's text, a
/// key's line and its id in a file are looked up once per write, and
/// records refer to keys by number. A run of `skald bench` (two hours of
/// timestamps pushed in seconds) writes about one record per line, and
/// building the key text per record cost as much as mining the line.
fn write_pending(inner: &Inner, state: &mut MinerState) -> std::io::Result<()> {
    state.last_write = Some(Instant::now());
    if state.pending.is_empty() && state.pending_errors.is_empty() {
        return Ok(());
    }
    let streams = &state.streams;
    let mut texts = PatternTexts::default();
    // Keys of this write: (tenant, errors file?, key line).
    let mut keys: Vec<(&TenantId, bool, String)> = Vec::new();
    // (text, level) or (text, shape) -> key
    let mut pattern_keys: HashMap<(u32, Level), u32> = HashMap::new();
    let mut error_keys: HashMap<(u32, &ErrorShape), u32> = HashMap::new();
    // Records, merged per key and bucket: (key, bucket) -> (count, example)
    let mut merged: HashMap<(u32, i64), (u64, Option<&str>)> = HashMap::new();
    // A pattern evicted before its counts were written loses them
    // (counted in `patterns_evicted`).
    for (&(stream, id, level, at), &count) in &state.pending {
        let Some(text) = texts.of(streams, stream, id) else {
            continue;
        };
        let key = *pattern_keys.entry((text, level)).or_insert_with(|| {
            let s = &streams[stream];
            let line = format!("{}\t{}\t{}", level.as_str(), s.labels, texts.text(text));
            keys.push((&s.tenant, false, line));
            keys.len() as u32 - 1
        });
        merged.entry((key, at)).or_insert((0, None)).0 += count;
    }
    for ((stream, id, shape, at), (count, example)) in &state.pending_errors {
        let Some(text) = texts.of(streams, *stream, *id) else {
            continue;
        };
        let key = *error_keys.entry((text, shape)).or_insert_with(|| {
            let s = &streams[*stream];
            let line = format!(
                "{}\t{}\t{}\t{}\t{}",
                shape.category.as_str(),
                field(shape.exception.as_deref()),
                field(shape.frame.as_deref()),
                s.labels,
                texts.text(text)
            );
            keys.push((&s.tenant, true, line));
            keys.len() as u32 - 1
        });
        merged.entry((key, *at)).or_insert((0, Some(example))).0 += count;
    }
    // Records are written in (bucket, key line) order; the rank of each
    // key line stands for it.
    let mut by_line: Vec<u32> = (0..keys.len() as u32).collect();
    by_line.sort_by(|&a, &b| keys[a as usize].2.cmp(&keys[b as usize].2));
    let mut rank = vec![0u32; keys.len()];
    for (r, &k) in by_line.iter().enumerate() {
        rank[k as usize] = r as u32;
    }
    let mut by_file: BTreeMap<(TenantId, i64, bool), Vec<Row<'_>>> = BTreeMap::new();
    let records = merged.len() as u64;
    for ((key, at), (count, example)) in merged {
        let (tenant, errors, _) = &keys[key as usize];
        by_file
            .entry(((*tenant).clone(), at.div_euclid(SECS_PER_DAY), *errors))
            .or_default()
            .push(Row {
                at,
                count,
                key,
                example,
            });
    }
    let newest_day = by_file.keys().map(|k| k.1).max();
    let mut result = Ok(());
    for ((tenant, day, is_errors), mut rows) in by_file {
        let dir = inner.dir.join(tenant.as_str());
        if let Err(e) = std::fs::create_dir_all(&dir) {
            result = Err(e);
            break;
        }
        let (path, header) = day_file(&dir, day, is_errors);
        let file_key = (tenant, day, is_errors);
        let file = match state.files.entry(file_key.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => match FileKeys::load(&path, header) {
                Ok(k) => e.insert(k),
                Err(err) => {
                    result = Err(err);
                    break;
                }
            },
        };
        rows.sort_unstable_by_key(|r| (r.at, rank[r.key as usize], r.key));
        let text = encode_rows(file, &keys, rows);
        if let Err(e) = append(&path, header, &text) {
            // What reached the file is read back on the next write.
            state.files.remove(&file_key);
            result = Err(e);
            break;
        }
    }
    state.pending.clear();
    state.pending_errors.clear();
    for s in &mut state.streams {
        s.miner.clear_merge_history();
    }
    result?;
    // Days before the newest one written are rarely appended to again.
    if let Some(newest) = newest_day {
        state.files.retain(|k, _| k.1 + 1 >= newest);
    }
    inner.written.fetch_add(records, Ordering::Relaxed);
    Ok(())
}

/// One record to write: a key of the write (see [`write_pending`]).
struct Row<'a> {
    at: i64,
    count: u64,
    key: u32,
    /// Errors files only: the record's example line.
    example: Option<&'a str>,
}

/// The text of each (stream, pattern id) counted in a write, looked up
/// once: ids naming the same text in one stream (a pattern and one merged
/// into it) share a number.
#[derive(Default)]
struct PatternTexts {
    of_id: HashMap<(usize, PatternId), Option<u32>>,
    numbers: HashMap<(usize, String), u32>,
    texts: Vec<String>,
}

impl PatternTexts {
    fn of(&mut self, streams: &[StreamState], stream: usize, id: PatternId) -> Option<u32> {
        if let Some(&n) = self.of_id.get(&(stream, id)) {
            return n;
        }
        let n = streams[stream].miner.get(id).map(|p| {
            let text = p.text();
            let next = self.texts.len() as u32;
            *self
                .numbers
                .entry((stream, text))
                .or_insert_with_key(|(_, text)| {
                    self.texts.push(text.clone());
                    next
                })
        });
        self.of_id.insert((stream, id), n);
        n
    }

    fn text(&self, n: u32) -> &str {
        &self.texts[n as usize]
    }
}

/// The version-2 day file of a kind, and its header.
fn day_file(dir: &Path, day: i64, errors: bool) -> (PathBuf, &'static str) {
    match errors {
        false => (dir.join(format!("patterns-{day}.v2.tsv")), HEADER_V2),
        true => (dir.join(format!("errors-{day}.v2.tsv")), ERRORS_HEADER_V2),
    }
}

/// The lines appended to a version-2 file: a definition for each key the
/// file does not have yet, then `<bucket> TAB <count> TAB <id>` (and, in
/// errors files, `TAB <example>`, empty once a key has enough).
fn encode_rows(
    file: &mut FileKeys,
    keys: &[(&TenantId, bool, String)],
    rows: Vec<Row<'_>>,
) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    // The file's id of each key of the write, looked up once.
    let mut ids: HashMap<u32, u32> = HashMap::new();
    for row in rows {
        let id = *ids.entry(row.key).or_insert_with(|| {
            let line = &keys[row.key as usize].2;
            match file.ids.get(line) {
                Some(&id) => id,
                None => {
                    let id = file.next;
                    file.next += 1;
                    let _ = writeln!(text, "={id}\t{line}");
                    file.ids.insert(line.clone(), id);
                    id
                }
            }
        });
        let _ = write!(text, "{}\t{}\t{id}", row.at, row.count);
        if let Some(example) = row.example {
            let shown = file.examples.entry(id).or_default();
            text.push('\t');
            if *shown < EXAMPLES_PER_KEY {
                *shown += 1;
                text.push_str(example);
            }
        }
        text.push('\n');
    }
    text
}

/// The bucket width days are rolled up to, when rolling up is on and the
/// width is one anomaly windows and buckets agree with.
fn rollup_width(config: &IndexConfig) -> Option<i64> {
    let width = config.rollup_secs;
    let bucket = config.bucket_secs.max(1);
    (width > bucket && 60 % width == 0 && width.is_multiple_of(bucket)).then_some(width as i64)
}

/// Rolls up the next due day file, looking for them every
/// [`ROLLUP_SCAN`]; failures are logged and the file tried again later.
fn roll_up_next(inner: &Inner, state: &mut MinerState) {
    let Some(width) = rollup_width(&inner.config) else {
        return;
    };
    if state.rollup_scan.is_none_or(|t| t.elapsed() >= ROLLUP_SCAN) {
        state.rollup_scan = Some(Instant::now());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        match due_rollups(&inner.dir, now, true) {
            Ok(due) => state.rollup_due = due,
            Err(e) => tracing::warn!(error = %e, "cannot list analysis files to roll up"),
        }
    }
    if let Some(file) = state.rollup_due.pop()
        && let Err(e) = roll_up_file(inner, state, &file, width)
    {
        tracing::warn!(error = %e, tenant = %file.0, day = file.1, "cannot roll up analysis file");
    }
}

/// Version-2 day files under `dir` whose day has been over for
/// [`ROLLUP_DELAY_SECS`] at `now` and that took lines since their last
/// rollup, if any; with `quiet`, only those not written to for as long.
fn due_rollups(dir: &Path, now: i64, quiet: bool) -> std::io::Result<Vec<(TenantId, i64, bool)>> {
    let mut due = Vec::new();
    for tenant in std::fs::read_dir(dir)? {
        let tenant = tenant?;
        let Some(id) = tenant
            .file_name()
            .to_str()
            .and_then(|t| TenantId::new(t).ok())
        else {
            continue;
        };
        if !tenant.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(tenant.path())? {
            let file = file?;
            let name = file.file_name();
            let Some(name) = name.to_str() else { continue };
            let (errors, rest) =
                match (name.strip_prefix("patterns-"), name.strip_prefix("errors-")) {
                    (Some(rest), _) => (false, rest),
                    (_, Some(rest)) => (true, rest),
                    _ => continue,
                };
            let Some(day) = rest
                .strip_suffix(".v2.tsv")
                .and_then(|d| d.parse::<i64>().ok())
            else {
                continue;
            };
            if (day + 1) * SECS_PER_DAY + ROLLUP_DELAY_SECS > now {
                continue;
            }
            let meta = file.metadata()?;
            let written = meta
                .modified()?
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            if quiet && written + ROLLUP_DELAY_SECS > now {
                continue;
            }
            if rolled_up(&file.path())? != Some(meta.len()) {
                due.push((id.clone(), day, errors));
            }
        }
    }
    due.sort();
    // Popped from the end: oldest day last, newest (most read) first.
    Ok(due)
}

/// The length a day file had when it was last rolled up, from its second
/// line; `None` when it never was.
fn rolled_up(path: &Path) -> std::io::Result<Option<u64>> {
    use std::io::Read;
    let mut start = [0u8; 64];
    let mut file = std::fs::File::open(path)?;
    let mut len = 0;
    while len < start.len() {
        let n = file.read(&mut start[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let text = String::from_utf8_lossy(&start[..len]);
    let mark = text
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix(ROLLUP_MARK));
    Ok(mark.and_then(|m| m.rsplit('\t').next()?.parse().ok()))
}

/// Rewrites one day file with buckets of `width` seconds: one record per
/// key and bucket, counts summed, an error key's first examples kept on
/// its first records. The new file replaces the old one by a rename, so
/// a reader sees one or the other whole, and a crash leaves the old one.
fn roll_up_file(
    inner: &Inner,
    state: &mut MinerState,
    (tenant, day, errors): &(TenantId, i64, bool),
    width: i64,
) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let dir = inner.dir.join(tenant.as_str());
    let (path, header) = day_file(&dir, *day, *errors);
    // key -> bucket -> count, and an error key's examples in file order.
    let mut counts: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
    let mut examples: HashMap<String, Vec<String>> = HashMap::new();
    let skipped = read_v2(&path, header, *errors, |line| {
        let mut fields = line.splitn(3, '\t');
        let (Some(at), Some(count), Some(rest)) = (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        let (Ok(at), Ok(count)) = (at.parse::<i64>(), count.parse::<u64>()) else {
            return false;
        };
        let (key, example) = match errors {
            false => (rest, ""),
            true => rest.rsplit_once('\t').unwrap_or((rest, "")),
        };
        let buckets = match counts.get_mut(key) {
            Some(b) => b,
            None => counts.entry(key.to_owned()).or_default(),
        };
        *buckets.entry(at.div_euclid(width) * width).or_default() += count;
        if !example.is_empty() {
            let kept = examples.entry(key.to_owned()).or_default();
            if kept.len() < usize::from(EXAMPLES_PER_KEY) && !kept.iter().any(|e| e == example) {
                kept.push(example.to_owned());
            }
        }
        true
    })?;
    inner.skipped.fetch_add(skipped, Ordering::Relaxed);
    let mut text = String::new();
    for (id, (key, buckets)) in counts.iter().enumerate() {
        let _ = writeln!(text, "={id}\t{key}");
        let mut shown = examples.remove(key).unwrap_or_default().into_iter();
        for (at, count) in buckets {
            let _ = write!(text, "{at}\t{count}\t{id}");
            if *errors {
                text.push('\t');
                text.push_str(&shown.next().unwrap_or_default());
            }
            text.push('\n');
        }
    }
    // The mark records the file's length, itself included: digits of a
    // fixed width keep that length from depending on itself.
    let head = |len: usize| format!("{header}\n{ROLLUP_MARK}\t{width}\t{len:020}\n");
    let len = head(0).len() + text.len();
    let staged = path.with_extension("tsv.rollup");
    {
        let mut file = std::fs::File::create(&staged)?;
        file.write_all(head(len).as_bytes())?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&staged, &path)?;
    std::fs::File::open(&dir)?.sync_all()?;
    // Ids changed: the next append reads the new definitions.
    state.files.remove(&(tenant.clone(), *day, *errors));
    Ok(())
}

/// A field of a record: tab- and line-free.
pub(crate) fn field(text: Option<&str>) -> String {
    text.unwrap_or("").replace(['\t', '\n', '\r'], " ")
}

/// The example kept for an error record: one line, at most
/// [`EXAMPLE_BYTES`].
fn example(line: &str) -> String {
    let mut cut = line.len().min(EXAMPLE_BYTES);
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    field(Some(&line[..cut]))
}

fn append(path: &Path, header: &str, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    // A line cut by a crash is dropped first: ended, it could read as a
    // shorter valid record; left, it would swallow the first line now.
    let len = file.metadata()?.len();
    let whole = whole_lines_len(&file, len)?;
    if whole < len {
        file.set_len(whole)?;
    }
    if whole == 0 {
        file.write_all(header.as_bytes())?;
        file.write_all(b"\n")?;
    }
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// The length of a file's whole lines: up to and including its last LF.
fn whole_lines_len(file: &std::fs::File, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut end = len;
    let mut buf = vec![0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(lf) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + lf as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

struct Record<'a> {
    bucket: i64,
    count: u64,
    level: &'a str,
    labels: &'a str,
    pattern: &'a str,
}

impl<'a> Record<'a> {
    fn parse(line: &'a str) -> Option<Record<'a>> {
        let mut fields = line.splitn(5, '\t');
        Some(Record {
            bucket: fields.next()?.parse().ok()?,
            count: fields.next()?.parse().ok()?,
            level: fields.next()?,
            labels: fields.next()?,
            pattern: fields.next()?,
        })
    }
}

/// One record of an errors file.
pub(crate) struct ErrorRecord<'a> {
    pub bucket: i64,
    pub count: u64,
    pub category: &'a str,
    pub exception: &'a str,
    pub frame: &'a str,
    pub labels: &'a str,
    pub pattern: &'a str,
    pub example: &'a str,
}

impl<'a> ErrorRecord<'a> {
    fn parse(line: &'a str) -> Option<ErrorRecord<'a>> {
        let mut fields = line.splitn(8, '\t');
        Some(ErrorRecord {
            bucket: fields.next()?.parse().ok()?,
            count: fields.next()?.parse().ok()?,
            category: fields.next()?,
            exception: fields.next()?,
            frame: fields.next()?,
            labels: fields.next()?,
            pattern: fields.next()?,
            example: fields.next()?,
        })
    }
}

/// Calls `each` for every whole line after the header of `path` (a
/// missing file has none); `each` answers whether the line parsed.
/// Returns how many lines were skipped.
fn read_lines(
    path: &Path,
    header: &str,
    mut each: impl FnMut(&str) -> bool,
) -> std::io::Result<u64> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    let mut skipped = 0;
    let mut first = true;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(skipped);
        }
        let Some(record) = line.strip_suffix('\n') else {
            skipped += 1; // cut by a crash
            continue;
        };
        if first {
            first = false;
            if record != header {
                tracing::warn!(file = %path.display(), "unknown analysis file version; skipped");
                return Ok(skipped + 1);
            }
            continue;
        }
        if !each(record) {
            skipped += 1;
        }
    }
}

/// Calls `each` for every whole record of a patterns file.
#[cfg(test)]
fn read_records(path: &Path, mut each: impl FnMut(Record<'_>)) -> std::io::Result<u64> {
    read_lines(path, HEADER, |line| {
        Record::parse(line).map(&mut each).is_some()
    })
}

/// For each of `patterns`, the most general other pattern of its class
/// (`same_class(i, j)`) that subsumes it — same length, a wildcard
/// wherever they differ — following chains; itself when none does. A
/// pattern written before its stream's miner generalised it (`user bob
/// logged in`) then counts for the general one (`user <_> logged in`).
pub(crate) fn subsumers(
    patterns: &[&str],
    same_class: impl Fn(usize, usize) -> bool,
) -> Vec<usize> {
    const MAX: usize = 2_000;
    let n = patterns.len();
    if n > MAX {
        return (0..n).collect(); // quadratic below; a huge answer stays as it is
    }
    let tokens: Vec<Vec<&str>> = patterns.iter().map(|p| p.split(' ').collect()).collect();
    let wildcards: Vec<usize> = tokens
        .iter()
        .map(|t| t.iter().filter(|&&x| x == crate::WILDCARD).count())
        .collect();
    let mut target: Vec<Option<usize>> = vec![None; n];
    for (i, a) in tokens.iter().enumerate() {
        let best = tokens
            .iter()
            .enumerate()
            .filter(|&(j, b)| {
                j != i
                    && b.len() == a.len()
                    && wildcards[j] > wildcards[i]
                    && same_class(i, j)
                    && b.iter()
                        .zip(a)
                        .all(|(x, y)| *x == crate::WILDCARD || x == y)
            })
            .max_by_key(|&(j, _)| std::cmp::Reverse(wildcards[j]));
        target[i] = best.map(|(j, _)| j);
    }
    (0..n)
        .map(|i| {
            let mut to = i;
            let mut hops = 0;
            while let Some(next) = target[to] {
                to = next;
                hops += 1;
                if hops > n {
                    break;
                }
            }
            to
        })
        .collect()
}

/// Moves the samples of subsumed patterns to the pattern subsuming them.
fn fold_subsumed(series: &mut Vec<PatternSeries>) {
    let targets = subsumers(
        &series
            .iter()
            .map(|s| s.pattern.as_str())
            .collect::<Vec<_>>(),
        |i, j| series[i].level == series[j].level,
    );
    let mut moved: Vec<Vec<(i64, u64)>> = vec![Vec::new(); series.len()];
    for (i, to) in targets.into_iter().enumerate() {
        if to != i {
            moved[to].append(&mut series[i].samples);
        }
    }
    for (s, extra) in series.iter_mut().zip(moved) {
        if extra.is_empty() {
            continue;
        }
        let mut all: BTreeMap<i64, u64> = s.samples.drain(..).collect();
        for (t, c) in extra {
            *all.entry(t).or_default() += c;
        }
        s.samples = all.into_iter().collect();
    }
    series.retain(|s| !s.samples.is_empty());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_cpu_budget_scales_the_step_to_the_share_of_a_busy_window() {
        // Window of one second, step 1 throughout; the rest used 2 s of
        // CPU on 2 cores (busy), the miner 0.4 s: twice its 10 % share
        // of 2 s, so one line in two.
        let window = [(1.0, 10.0, 100.0, 1)];
        assert_eq!(budget_step(&window, (10.4, 102.4), 2.0, 0.1), 2);
        // At step 4 for the whole window and still twice over: 8.
        let window = [(1.0, 10.0, 100.0, 4)];
        assert_eq!(budget_step(&window, (10.4, 102.4), 2.0, 0.1), 8);
        // Half the window at step 1, half at step 4: the mean mining
        // rate is (0.5 + 0.125) per line; twice over its share, the miner
        // must mine half of that: a step of 1 / 0.3125, rounded to 3.
        let window = [(1.0, 10.0, 100.0, 1), (0.5, 10.2, 101.2, 4)];
        assert_eq!(budget_step(&window, (10.4, 102.4), 2.0, 0.1), 3);
        // Under its share: the step comes down, never under 1.
        let window = [(1.0, 10.0, 100.0, 8)];
        assert_eq!(budget_step(&window, (10.1, 102.1), 2.0, 0.1), 4);
        let window = [(1.0, 10.0, 100.0, 1)];
        assert_eq!(budget_step(&window, (10.0, 102.0), 2.0, 0.1), 1);
        // Far over: at most MAX_STEP.
        assert_eq!(budget_step(&window, (11.0, 103.0), 2.0, 0.001), MAX_STEP);
        // The rest under half the cores over the window, or no window
        // yet: no sampling.
        let window = [(1.0, 10.0, 100.0, 8)];
        assert_eq!(budget_step(&window, (10.4, 100.9), 2.0, 0.1), 1);
        assert_eq!(budget_step(&[], (0.0, 0.0), 2.0, 0.1), 1);
    }
    use skald_model::Timestamp;

    /// One stream's lines at `(unix s, line)`.
    pub(crate) fn group(labels: &str, lines: &[(i64, &str)]) -> Group {
        vec![(
            LabelSet::parse(labels).unwrap(),
            lines
                .iter()
                .map(|&(s, l)| Entry::new(Timestamp(s * 1_000_000_000), l))
                .collect(),
        )]
    }

    fn query(index: &PatternIndex, tenant: &TenantId, app: &str) -> Vec<PatternSeries> {
        let matchers = [Matcher::new("app", skald_model::MatchOp::Eq, app).unwrap()];
        index
            .query(&PatternQuery {
                tenant,
                matchers: &matchers,
                start: 0,
                end: 1_000,
                step: 100,
            })
            .unwrap()
    }

    #[test]
    fn counts_survive_reopening_and_tenants_are_apart() {
        let dir = tempfile::tempdir().unwrap();
        let a = TenantId::new("a").unwrap();
        let b = TenantId::new("b").unwrap();
        {
            let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
            let lines: Vec<(i64, String)> = (0..30)
                .map(|i| (i * 10, format!("GET /x/{i} took {i}ms")))
                .collect();
            let lines: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
            assert!(index.offer(a.clone(), group(r#"{app="web"}"#, &lines)));
            assert!(index.offer(
                b.clone(),
                group(r#"{app="web"}"#, &[(5, "level=error boom 1")])
            ));
            index.close().unwrap();
        }
        let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
        let got = query(&index, &a, "web");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].pattern, "GET <_> took <_>");
        assert_eq!(got[0].samples, [(0, 10), (100, 10), (200, 10)]);
        let got = query(&index, &b, "web");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].level, "error");
        assert!(query(&index, &a, "db").is_empty());
        assert_eq!(index.counters().records_skipped, 0);
    }

    #[test]
    fn a_busy_miner_sheds_groups_and_counts_them_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let config = IndexConfig {
            queue_groups: 1,
            ..IndexConfig::default()
        };
        let index = PatternIndex::open(dir.path(), config).unwrap();
        let tenant = TenantId::new("a").unwrap();
        let lines = [(1, "x 1"), (2, "x 2")];
        let offered = {
            // The miner thread cannot take its state: at most one group in
            // its hands and one in the queue; the rest must be shed.
            let _busy = index.inner.state.lock();
            (0..5)
                .filter(|_| index.offer(tenant.clone(), group(r#"{app="w"}"#, &lines)))
                .count()
        };
        assert!(offered <= 2, "{offered} groups queued");
        index.sync().unwrap();
        let c = index.counters();
        assert_eq!(c.shed_lines, (5 - offered as u64) * 2);
        assert_eq!(c.mined_lines + c.shed_lines, 10);
    }

    #[test]
    fn a_miner_behind_samples_lines_and_keeps_the_totals() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<(i64, String)> = (0..500)
            .map(|i| (i % 10, format!("GET /x/{i} took {i}ms")))
            .collect();
        let lines: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
        // Room for twenty groups: the first ones mined find the queue
        // over half full and sample.
        let config = IndexConfig {
            queue_bytes: group_bytes(&group(r#"{app="web"}"#, &lines)) * 20,
            ..IndexConfig::default()
        };
        let index = PatternIndex::open(dir.path(), config).unwrap();
        let tenant = TenantId::new("a").unwrap();
        {
            let _busy = index.inner.state.lock();
            for _ in 0..20 {
                assert!(index.offer(tenant.clone(), group(r#"{app="web"}"#, &lines)));
            }
        }
        index.sync().unwrap();
        let c = index.counters();
        assert_eq!(c.shed_lines, 0, "{c:?}");
        assert!(c.sampled_lines > 0, "{c:?}");
        assert!(c.mined_lines < 10_000 / 2, "{c:?}");
        let got = query(&index, &tenant, "web");
        assert_eq!(got.len(), 1, "{got:?}");
        let total = got[0].total();
        // Each mined line stands for the lines skipped before it: the
        // total is off by less than one sample step.
        assert!(total.abs_diff(10_000) < MAX_STEP, "{total}");
        // Groups that must be exact are mined line by line all the same.
        let mined = c.mined_lines;
        index.offer_waiting(tenant.clone(), group(r#"{app="web"}"#, &lines));
        index.sync().unwrap();
        assert_eq!(index.counters().mined_lines, mined + 500);
    }

    #[test]
    fn the_sample_step_follows_the_backlog() {
        let mut sampler = Sampler::default();
        sampler.adjust(0.3);
        assert_eq!(sampler.step, 1);
        sampler.adjust(0.6);
        sampler.adjust(0.9);
        assert_eq!(sampler.step, 4);
        for _ in 0..10 {
            sampler.adjust(1.0);
        }
        assert_eq!(sampler.step, MAX_STEP);
        sampler.adjust(0.3);
        assert_eq!(sampler.step, MAX_STEP);
        sampler.adjust(0.0);
        assert_eq!(sampler.step, MAX_STEP / 2);
        let mined = (0..640).filter(|_| sampler.take()).count();
        assert_eq!(mined, 20);
    }

    #[test]
    fn early_specific_patterns_fold_into_later_general_ones() {
        let mut series = vec![
            PatternSeries {
                pattern: "user bob in".into(),
                level: "info".into(),
                samples: vec![(0, 2)],
            },
            PatternSeries {
                pattern: "user <_> in".into(),
                level: "info".into(),
                samples: vec![(0, 1), (10, 5)],
            },
        ];
        fold_subsumed(&mut series);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].samples, [(0, 3), (10, 5)]);
    }

    #[test]
    fn day_files_define_each_key_once_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let a = TenantId::new("a").unwrap();
        let lines = [(1, "GET /x took 1ms"), (2, "GET /y took 2ms")];
        for _ in 0..3 {
            let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
            for _ in 0..2 {
                index.offer_waiting(a.clone(), group(r#"{app="web"}"#, &lines));
                index.sync().unwrap();
            }
            index.close().unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("a").join("patterns-0.v2.tsv")).unwrap();
        let definitions = text.lines().filter(|l| l.starts_with('=')).count();
        assert_eq!(definitions, 1, "{text}");
        assert_eq!(text.lines().count(), 1 + 1 + 6, "{text}");
        let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
        let got = query(&index, &a, "web");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].samples, [(0, 12)]);
    }

    #[test]
    fn a_day_rolls_up_to_minutes_and_takes_late_lines_after() {
        let dir = tempfile::tempdir().unwrap();
        let a = TenantId::new("a").unwrap();
        let lines: Vec<(i64, String)> = (0..60)
            .map(|i| (i * 5, format!("GET /x/{i} took {i}ms")))
            .collect();
        let lines: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
        let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
        // Written in three appends, as the miner thread would.
        for part in lines.chunks(20) {
            index.offer_waiting(a.clone(), group(r#"{app="web"}"#, part));
            index.sync().unwrap();
        }
        let before = query(&index, &a, "web");
        // Not yet due: the day has not been over for an hour.
        assert_eq!(index.roll_up(SECS_PER_DAY + 60).unwrap(), 0);
        assert_eq!(index.roll_up(SECS_PER_DAY + 3_600).unwrap(), 1);
        let path = dir.path().join("a").join("patterns-0.v2.tsv");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("skald-patterns\t2"));
        let mark = lines.next().unwrap();
        assert_eq!(mark, format!("#rollup\t60\t{:020}", text.len()));
        assert_eq!(
            lines.collect::<Vec<_>>(),
            [
                "=0\tunknown\t{app=\"web\"}\tGET <_> took <_>",
                "0\t12\t0",
                "60\t12\t0",
                "120\t12\t0",
                "180\t12\t0",
                "240\t12\t0"
            ]
        );
        // Rolled up once: not rewritten again while nothing is added.
        assert_eq!(index.roll_up(10 * SECS_PER_DAY).unwrap(), 0);
        // Same lines, in minutes now: steps of 100 s see 60 s buckets.
        assert_eq!(before[0].samples, [(0, 20), (100, 20), (200, 20)]);
        assert_eq!(
            query(&index, &a, "web")[0].samples,
            [(0, 24), (100, 24), (200, 12)]
        );
        // A late line of the rolled day is appended to the rolled file.
        index.offer_waiting(
            a.clone(),
            group(r#"{app="web"}"#, &[(7, "GET /y took 1ms")]),
        );
        index.sync().unwrap();
        drop(index);
        let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
        let got = query(&index, &a, "web");
        assert_eq!(got[0].samples, [(0, 25), (100, 24), (200, 12)]);
        assert_eq!(index.counters().records_skipped, 0);
        // The file took a line since: it is rolled up again.
        assert_eq!(index.roll_up(10 * SECS_PER_DAY).unwrap(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\n0\t13\t0\n60\t12\t0\n"), "{text}");
        assert_eq!(query(&index, &a, "web"), got);
    }

    #[test]
    fn a_version_2_record_of_a_lost_definition_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.v2.tsv");
        std::fs::write(
            &path,
            format!("{HEADER_V2}\n=0\tinfo\t{{a=\"1\"}}\tx <_>\n0\t3\t0\n10\t4\t1\n=1\tinfo\t{{a="),
        )
        .unwrap();
        let mut seen = 0;
        let skipped = read_v2(&path, HEADER_V2, false, |line| {
            Record::parse(line).map(|r| seen += r.count).is_some()
        })
        .unwrap();
        assert_eq!((seen, skipped), (3, 2));
    }

    #[test]
    fn a_line_cut_by_a_crash_does_not_swallow_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let a = TenantId::new("a").unwrap();
        let path = dir.path().join("a").join("patterns-0.v2.tsv");
        {
            let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
            index.offer_waiting(
                a.clone(),
                group(r#"{app="web"}"#, &[(1, "GET /x took 1ms")]),
            );
            index.close().unwrap();
        }
        // A crash in the middle of the next write.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("10\t5");
        std::fs::write(&path, text).unwrap();
        let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
        index.offer_waiting(a.clone(), group(r#"{app="db"}"#, &[(20, "slow query 5ms")]));
        index.sync().unwrap();
        let got = query(&index, &a, "db");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].total(), 1);
        assert_eq!(query(&index, &a, "web")[0].total(), 1);
    }

    #[test]
    fn a_cut_record_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.tsv");
        std::fs::write(
            &path,
            format!("{HEADER}\n0\t3\tinfo\t{{a=\"1\"}}\tx <_>\n10\t4\tinfo\t{{a="),
        )
        .unwrap();
        let mut seen = 0;
        let skipped = read_records(&path, |r| seen += r.count).unwrap();
        assert_eq!((seen, skipped), (3, 1));
    }
}
