//! Log queries: selected entries run through the log pipeline, limited, in
//! time order, grouped by the labels the pipeline leaves on each line.
//!
//! As in Loki, a stream whose lines get different labels from the
//! pipeline (`| json` extracting `level`) splits into several result
//! streams, and lines of different streams that end with the same labels
//! (`| drop pod`) merge into one. Structured metadata counts as labels of
//! the line; [`ResultEntry`] keeps it, and the parsed labels, apart for
//! Loki 3's `categorize-labels` encoding.

use crate::QueryError;
use rayon::prelude::*;
use skald_model::{Entry, Label, LabelSet, Matcher, TenantId, Timestamp};
use skald_pipeline::Pipeline;
use skald_store::{RequiredLiterals, Source, Store};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    #[default]
    Backward,
}

/// A log query, parsed and resolved.
#[derive(Debug)]
pub struct LogQuery<'a> {
    pub tenant: &'a TenantId,
    pub selector: &'a [Matcher],
    pub pipeline: &'a Pipeline,
    /// Inclusive.
    pub start: Timestamp,
    /// Exclusive.
    pub end: Timestamp,
    pub limit: usize,
    pub direction: Direction,
    /// Loki's `interval` (nanoseconds, 0: every entry): going through the
    /// entries in the query's direction, across streams, an entry is kept
    /// only at least this long after (backward: before) the last one kept;
    /// the limit counts kept entries.
    pub interval: i64,
}

/// What a query did, in the terms of Loki's `stats`.
#[derive(Debug, Clone, Default)]
pub struct QueryStats {
    pub exec_time_secs: f64,
    pub streams: u64,
    /// Chunks (and head blocks) that could hold entries of the range.
    pub chunks_ref: u64,
    /// Chunks the filters ruled out without reading.
    pub chunks_skipped: u64,
    /// Chunks left unread because enough entries were found.
    pub chunks_not_needed: u64,
    pub chunks_read: u64,
    pub head_blocks_read: u64,
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    pub decompressed_lines: u64,
    pub head_bytes: u64,
    pub head_lines: u64,
    pub duplicates: u64,
    pub entries_returned: u64,
}

impl QueryStats {
    /// Adds another part's figures (not the execution time).
    pub fn add(&mut self, o: &QueryStats) {
        self.streams += o.streams;
        self.chunks_ref += o.chunks_ref;
        self.chunks_skipped += o.chunks_skipped;
        self.chunks_not_needed += o.chunks_not_needed;
        self.chunks_read += o.chunks_read;
        self.head_blocks_read += o.head_blocks_read;
        self.compressed_bytes += o.compressed_bytes;
        self.decompressed_bytes += o.decompressed_bytes;
        self.decompressed_lines += o.decompressed_lines;
        self.head_bytes += o.head_bytes;
        self.head_lines += o.head_lines;
        self.duplicates += o.duplicates;
        self.entries_returned += o.entries_returned;
    }

    pub fn total_bytes(&self) -> u64 {
        self.decompressed_bytes + self.head_bytes
    }

    pub fn total_lines(&self) -> u64 {
        self.decompressed_lines + self.head_lines
    }
}

/// One result stream: the labels the pipeline left on its lines (stream
/// labels, structured metadata and parsed labels together).
#[derive(Debug, Clone)]
pub struct ResultStream {
    pub labels: LabelSet,
    /// In the query's direction.
    pub entries: Vec<ResultEntry>,
}

/// One line of a result, with its labels sorted into Loki 3's categories.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultEntry {
    pub ts: Timestamp,
    /// The line as the pipeline left it.
    pub line: String,
    /// The labels of the stream the line was stored in, as they are in
    /// the output.
    pub stream: Vec<Label>,
    /// The entry's structured metadata, as it is in the output.
    pub metadata: Vec<Label>,
    /// Every other output label: extracted by parsers, `label_format`,
    /// `__error__`.
    pub parsed: Vec<Label>,
}

#[derive(Debug, Default)]
pub struct LogResult {
    pub streams: Vec<ResultStream>,
    /// The order of each stream's entries.
    pub direction: Direction,
    pub stats: QueryStats,
    /// Problems that did not stop the query (unreadable files), for the
    /// response's `warnings`.
    pub warnings: Vec<String>,
}

/// One entry held in the result heap, ordered so the heap's top is the
/// entry that would be dropped first.
struct Held {
    key: (i64, u32),
    stream: u32,
    /// Index into the query's interned output label sets.
    labels: u32,
    entry: Entry,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key.cmp(&o.key)
    }
}

/// Sources read in parallel at once: enough to keep every core busy,
/// few enough that an early stop wastes little.
fn wave_size() -> usize {
    rayon::current_num_threads().max(1) * 2
}

pub fn run_log_query(store: &Store, q: &LogQuery<'_>) -> Result<LogResult, QueryError> {
    run_log_query_within(store, q, usize::MAX)
}

/// The bound on the bytes a log query holds, and the setting a query that
/// passes it is told about; and the budget all queries' answers share.
#[derive(Debug, Clone)]
pub struct HeldBytes {
    pub max: usize,
    pub setting: &'static str,
    pub shared: Option<Arc<AnswerBudget>>,
}

/// Bytes of entries all log queries hold at once, past each part's first
/// [`AnswerBudget::FREE`] bytes (`max_inflight_response_bytes`): each
/// query is bounded on its own (`max_response_bytes`), and this bounds
/// them together, so many queries formatting huge lines at once cannot
/// take the server's memory. A query that finds it spent fails at once
/// with [`QueryError::Busy`] (503: try again); one that holds little
/// (a few hundred lines) never draws on it.
#[derive(Debug)]
pub struct AnswerBudget {
    limit: usize,
    used: AtomicUsize,
}

impl AnswerBudget {
    /// What each part of a query (the result, each source being read)
    /// holds before it draws on the budget.
    pub const FREE: usize = 256 << 10;
    /// Granularity of reservations.
    const STEP: usize = 1 << 20;

    pub fn new(limit: usize) -> Arc<AnswerBudget> {
        Arc::new(AnswerBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(AtomicOrdering::Relaxed)
    }
}

/// What one part of a query holds of the [`AnswerBudget`]; given back
/// when dropped.
#[derive(Debug, Default)]
struct Hold {
    budget: Option<Arc<AnswerBudget>>,
    held: usize,
}

impl Hold {
    fn new(held: &HeldBytes) -> Hold {
        Hold {
            budget: held.shared.clone(),
            held: 0,
        }
    }

    /// Makes sure `bytes` (past the free part) are reserved.
    fn cover(&mut self, bytes: usize) -> Result<(), QueryError> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        let want = bytes.saturating_sub(AnswerBudget::FREE);
        if want <= self.held {
            return Ok(());
        }
        let more = (want - self.held).next_multiple_of(AnswerBudget::STEP);
        let mut used = budget.used.load(AtomicOrdering::Relaxed);
        loop {
            if used + more > budget.limit {
                return Err(QueryError::Busy(format!(
                    "the server holds its limit of {} bytes of query answers at once (max_inflight_response_bytes); try again, or ask for fewer entries (limit) or shorter lines",
                    budget.limit
                )));
            }
            match budget.used.compare_exchange_weak(
                used,
                used + more,
                AtomicOrdering::Relaxed,
                AtomicOrdering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => used = now,
            }
        }
        self.held += more;
        Ok(())
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.used.fetch_sub(self.held, AtomicOrdering::Relaxed);
        }
    }
}

/// As [`run_log_query`], failing with [`QueryError::Limit`] (naming
/// `max_response_bytes`) once the entries it holds, as formatted by the
/// pipeline, pass `max_bytes` — in the result, or in what one source
/// yields of its best `limit` entries — so a `line_format` that makes
/// every line large cannot grow memory past the bound.
pub fn run_log_query_within(
    store: &Store,
    q: &LogQuery<'_>,
    max_bytes: usize,
) -> Result<LogResult, QueryError> {
    run_log_query_held(
        store,
        q,
        HeldBytes {
            max: max_bytes,
            setting: "max_response_bytes",
            shared: None,
        },
    )
}

/// As [`run_log_query_within`], naming `held.setting` in the error.
pub fn run_log_query_held(
    store: &Store,
    q: &LogQuery<'_>,
    held: HeldBytes,
) -> Result<LogResult, QueryError> {
    if q.interval > 0 {
        return run_with_interval(store, q, held);
    }
    run_limited(store, q, held)
}

/// Bytes an entry holds in a result: its line and structured metadata.
fn entry_bytes(e: &Entry) -> usize {
    line_bytes(&e.line, &e.metadata)
}

fn line_bytes(line: &str, metadata: &[Label]) -> usize {
    line.len()
        + metadata
            .iter()
            .map(|l| l.name.len() + l.value.len())
            .sum::<usize>()
}

fn too_large(held: &HeldBytes) -> QueryError {
    QueryError::Limit(format!(
        "the query's entries, as its pipeline formats them, pass the limit of {} bytes ({}); ask for fewer entries (limit) or shorter lines",
        held.max, held.setting
    ))
}

/// Most entries one part of an `interval` query reads.
const INTERVAL_BATCH_MAX: usize = 100_000;

/// A log query with an `interval`, as Loki answers it: entries are taken
/// in the query's direction and kept when far enough from the last kept
/// one, until `limit` are kept. Read in parts: each starts where the next
/// kept entry may be, and asks for as many entries as the parts so far
/// needed per kept one.
fn run_with_interval(
    store: &Store,
    q: &LogQuery<'_>,
    held: HeldBytes,
) -> Result<LogResult, QueryError> {
    let started = Instant::now();
    let backward = q.direction == Direction::Backward;
    let mut result = LogResult {
        direction: q.direction,
        ..LogResult::default()
    };
    let (mut start, mut end) = (q.start, q.end);
    let mut last_kept: Option<i64> = None;
    let mut kept: Vec<(LabelSet, ResultEntry)> = Vec::new();
    let mut kept_bytes = 0usize;
    let mut kept_hold = Hold::new(&held);
    let mut batch = q.limit;
    while kept.len() < q.limit && start < end {
        let part = run_limited(
            store,
            &LogQuery {
                start,
                end,
                limit: batch,
                interval: 0,
                ..*q
            },
            held.clone(),
        )?;
        result.stats.add(&part.stats);
        result.warnings.extend(part.warnings);
        let mut entries: Vec<(&LabelSet, ResultEntry)> = Vec::new();
        for s in &part.streams {
            entries.extend(s.entries.iter().map(|e| (&s.labels, e.clone())));
        }
        // Streams come in label order: a stable sort keeps it among equal
        // timestamps.
        if backward {
            entries.sort_by_key(|(_, e)| Reverse(e.ts));
        } else {
            entries.sort_by_key(|(_, e)| e.ts);
        }
        let read = entries.len() + part.stats.duplicates as usize;
        let before = kept.len();
        let mut last_read = None;
        for (labels, e) in entries {
            last_read = Some(e.ts.0);
            let far = last_kept.is_none_or(|l| {
                if backward {
                    e.ts.0 <= l.saturating_sub(q.interval)
                } else {
                    e.ts.0 >= l.saturating_add(q.interval)
                }
            });
            if far && kept.len() < q.limit {
                last_kept = Some(e.ts.0);
                kept_bytes += entry_bytes_of(&e);
                if kept_bytes > held.max {
                    return Err(too_large(&held));
                }
                kept_hold.cover(kept_bytes)?;
                kept.push((labels.clone(), e));
            }
        }
        let (Some(seen), Some(last)) = (last_read, last_kept) else {
            break;
        };
        if read < batch {
            break;
        }
        // Entries not read yet lie past `seen`; one kept next lies at least
        // `interval` past `last`. (Others at `seen` itself, cut off by the
        // part's limit, are too close to the last kept one.)
        if backward {
            end = Timestamp(seen.min(last.saturating_sub(q.interval).saturating_add(1)));
        } else {
            start = Timestamp(seen.saturating_add(1).max(last.saturating_add(q.interval)));
        }
        let per_kept = read.div_ceil((kept.len() - before).max(1));
        batch = (q.limit - kept.len())
            .saturating_mul(per_kept)
            .clamp(1, INTERVAL_BATCH_MAX);
    }
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    for (labels, e) in kept {
        match result.streams.last_mut() {
            Some(s) if s.labels == labels => s.entries.push(e),
            _ => result.streams.push(ResultStream {
                labels,
                entries: vec![e],
            }),
        }
    }
    result.stats.entries_returned = result.streams.iter().map(|s| s.entries.len() as u64).sum();
    result.stats.exec_time_secs = started.elapsed().as_secs_f64();
    Ok(result)
}

/// Bytes a result entry holds: its line and structured metadata.
fn entry_bytes_of(e: &ResultEntry) -> usize {
    line_bytes(&e.line, &e.metadata)
}

/// A log query without `interval`.
fn run_limited(store: &Store, q: &LogQuery<'_>, held: HeldBytes) -> Result<LogResult, QueryError> {
    let started = Instant::now();
    let mut result = LogResult {
        direction: q.direction,
        ..LogResult::default()
    };
    let stats = &mut result.stats;
    if q.limit == 0 || q.start >= q.end {
        return Ok(result);
    }
    let snap = store.snapshot(q.tenant, q.selector, q.start, q.end);
    for c in &snap.corrupt {
        result
            .warnings
            .push(format!("unreadable file {}: {}", c.path.display(), c.error));
    }
    stats.streams = snap.streams.len() as u64;

    let mut sources: Vec<(u32, &Source)> = snap
        .streams
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.sources.iter().map(move |src| (i as u32, src)))
        .collect();
    stats.chunks_ref = sources.len() as u64;
    let backward = q.direction == Direction::Backward;
    if backward {
        sources.sort_by_key(|(_, s)| Reverse(s.max_ts()));
    } else {
        sources.sort_by_key(|(_, s)| s.min_ts());
    }

    // Skip chunks whose filters rule out a required literal.
    let required = RequiredLiterals::new(q.pipeline.required());
    if !required.is_empty() {
        // Head blocks build their filters on first use: in parallel.
        sources.par_iter().for_each(|(_, src)| {
            src.may_hold(&required);
        });
    }
    let pruner = crate::columns::ColumnPruner::new(q.pipeline);
    sources.retain(|(stream, src)| {
        let keep = src.may_hold(&required)
            && pruner
                .as_ref()
                .is_none_or(|p| p.may_pass(src, &snap.streams[*stream as usize].labels));
        if !keep {
            stats.chunks_skipped += 1;
        }
        keep
    });

    // The heap keeps the `limit` best entries; its top is the worst of
    // them. Backward wants the newest, so the worst is the oldest.
    let mut heap: BinaryHeap<Held> = BinaryHeap::with_capacity(q.limit.min(1 << 16) + 1);
    let mut heap_bytes = 0usize;
    let mut heap_hold = Hold::new(&held);
    let mut seq = 0u32;
    let mut label_ids: HashMap<Vec<Label>, u32> = HashMap::new();
    let mut label_sets: Vec<Vec<Label>> = Vec::new();
    let mut read_errors = Vec::new();
    let cancel = crate::CancelToken::current();
    let mut i = 0;
    while i < sources.len() {
        cancel.check()?;
        if heap.len() >= q.limit {
            let worst = heap.peek().map(|h| h.key.0).unwrap_or_default();
            let next = sources[i].1;
            let hopeless = if backward {
                next.max_ts().0 < -worst
            } else {
                next.min_ts().0 > worst
            };
            if hopeless {
                stats.chunks_not_needed += (sources.len() - i) as u64;
                break;
            }
        }
        let wave = &sources[i..(i + wave_size()).min(sources.len())];
        i += wave.len();
        let outputs: Vec<_> = wave
            .par_iter()
            .map(|(stream, src)| {
                let labels = snap.streams[*stream as usize].labels.labels();
                (*stream, read_filtered(src, q, labels, &held))
            })
            .collect();
        for (stream, out) in outputs {
            let out = match out? {
                Ok(o) => o,
                Err(e) => {
                    read_errors.push(e);
                    continue;
                }
            };
            match out.kind {
                Kind::Chunk => {
                    stats.chunks_read += 1;
                    stats.compressed_bytes += out.compressed_bytes;
                    stats.decompressed_bytes += out.bytes;
                    stats.decompressed_lines += out.lines;
                }
                Kind::Head => {
                    stats.head_blocks_read += 1;
                    stats.head_bytes += out.bytes;
                    stats.head_lines += out.lines;
                }
            }
            for (local, entry) in out.entries {
                // Within equal timestamps, earlier-read entries win ties.
                seq += 1;
                let key = if backward {
                    (-entry.ts.0, seq)
                } else {
                    (entry.ts.0, seq)
                };
                if heap.len() >= q.limit {
                    if heap.peek().is_some_and(|w| key >= w.key) {
                        continue;
                    }
                    if let Some(out) = heap.pop() {
                        heap_bytes -= entry_bytes(&out.entry);
                    }
                }
                heap_bytes += entry_bytes(&entry);
                if heap_bytes > held.max {
                    return Err(too_large(&held));
                }
                heap_hold.cover(heap_bytes)?;
                let set = &out.label_sets[local as usize];
                let labels = match label_ids.get(set.as_slice()) {
                    Some(&id) => id,
                    None => {
                        let id = label_sets.len() as u32;
                        label_sets.push(set.clone());
                        label_ids.insert(set.clone(), id);
                        id
                    }
                };
                heap.push(Held {
                    key,
                    stream,
                    labels,
                    entry,
                });
            }
        }
    }
    result.warnings.extend(read_errors);

    // Group by output labels, order, and drop exact duplicates (an entry
    // pushed twice, or present in both the WAL replay and a segment).
    let mut held: Vec<Held> = heap.into_vec();
    held.sort_by(|a, b| {
        label_sets[a.labels as usize]
            .cmp(&label_sets[b.labels as usize])
            .then(a.key.cmp(&b.key))
    });
    let mut streams: Vec<ResultStream> = Vec::new();
    let mut current: Option<u32> = None;
    for h in held {
        let output = &label_sets[h.labels as usize];
        if current != Some(h.labels) {
            current = Some(h.labels);
            streams.push(ResultStream {
                labels: LabelSet::from_trusted(output.clone()),
                entries: Vec::new(),
            });
        }
        let entries = &mut streams.last_mut().expect("pushed above").entries;
        let entry = categorize(
            h.entry,
            snap.streams[h.stream as usize].labels.labels(),
            output,
        );
        let dup = entries
            .iter()
            .rev()
            .take_while(|e| e.ts == entry.ts)
            .any(|e| e.line == entry.line && e.metadata == entry.metadata);
        if dup {
            result.stats.duplicates += 1;
            continue;
        }
        entries.push(entry);
    }
    streams.retain(|s| !s.entries.is_empty());
    result.stats.entries_returned = streams.iter().map(|s| s.entries.len() as u64).sum();
    result.streams = streams;
    result.stats.exec_time_secs = started.elapsed().as_secs_f64();
    Ok(result)
}

enum Kind {
    Chunk,
    Head,
}

struct SourceOutput {
    kind: Kind,
    /// Entries that passed, each with an index into `label_sets`.
    entries: Vec<(u32, Entry)>,
    /// The distinct output label sets of this source's entries.
    label_sets: Vec<Vec<Label>>,
    lines: u64,
    bytes: u64,
    compressed_bytes: u64,
    /// The entries' share of the answer budget, until they are merged.
    _hold: Hold,
}

/// Reads one source and runs the pipeline over the entries in range,
/// borrowing each line from the decoded block or the head block (only the
/// entries the pipeline keeps are copied out), and keeping the best
/// `limit` of what passes (the limit applies after the pipeline formatted
/// the lines). The outer error is a limit that ends the query; the inner
/// one a source that cannot be read (a warning).
fn read_filtered(
    src: &Source,
    q: &LogQuery<'_>,
    stream: &[Label],
    held: &HeldBytes,
) -> Result<Result<SourceOutput, String>, QueryError> {
    let mut kept = Kept::new(q, stream, held);
    match src {
        Source::Chunk(c) => {
            let block = match c.segment.read_decoded(c.at) {
                Ok(b) => b,
                Err(e) => {
                    return Ok(Err(format!(
                        "unreadable chunk in {}: {e}",
                        c.segment.path.display()
                    )));
                }
            };
            let mut metadata: Vec<Label> = Vec::new();
            for e in block.iter() {
                metadata.clear();
                metadata.extend(e.metadata().map(|(n, v)| Label::new(n, v)));
                kept.offer(e.ts, e.line, &metadata)?;
            }
            Ok(Ok(
                kept.finish(Kind::Chunk, c.segment.chunk(c.at).len as u64)
            ))
        }
        Source::Head(b) => {
            for i in 0..b.len() {
                kept.offer(b.ts(i), b.line(i), b.metadata(i))?;
            }
            Ok(Ok(kept.finish(Kind::Head, 0)))
        }
    }
}

/// What one source's entries leave after the pipeline.
struct Kept<'q> {
    q: &'q LogQuery<'q>,
    stream: &'q [Label],
    processor: skald_pipeline::LineProcessor<'q>,
    ids: HashMap<Vec<Label>, u32>,
    label_sets: Vec<Vec<Label>>,
    entries: Vec<(u32, Entry)>,
    lines: u64,
    bytes: u64,
    /// Bytes the kept entries hold, the most they may, and their share
    /// of the answer budget.
    held_bytes: usize,
    held: &'q HeldBytes,
    hold: Hold,
}

impl<'q> Kept<'q> {
    fn new(q: &'q LogQuery<'q>, stream: &'q [Label], held: &'q HeldBytes) -> Self {
        Kept {
            q,
            stream,
            processor: q.pipeline.processor(),
            ids: HashMap::new(),
            label_sets: Vec::new(),
            entries: Vec::new(),
            lines: 0,
            bytes: 0,
            held_bytes: 0,
            held,
            hold: Hold::new(held),
        }
    }

    fn offer(&mut self, ts: Timestamp, line: &str, metadata: &[Label]) -> Result<(), QueryError> {
        self.lines += 1;
        self.bytes += line.len() as u64;
        if ts < self.q.start || ts >= self.q.end {
            return Ok(());
        }
        let Some(out) = self.processor.process(ts.0, line, self.stream, metadata) else {
            return Ok(());
        };
        let id = match self.ids.get(out.labels) {
            Some(&id) => id,
            None => {
                let id = self.label_sets.len() as u32;
                self.label_sets.push(out.labels.to_vec());
                self.ids.insert(out.labels.to_vec(), id);
                id
            }
        };
        let line = if out.line_changed { out.line } else { line };
        let entry = Entry {
            ts,
            line: line.to_string(),
            metadata: metadata.to_vec(),
        };
        self.held_bytes += entry_bytes(&entry);
        self.entries.push((id, entry));
        if self.entries.len() >= self.q.limit.saturating_mul(2) || self.held_bytes > self.held.max {
            self.held_bytes = keep_best(&mut self.entries, self.q.limit, self.q.direction);
            if self.held_bytes > self.held.max {
                return Err(too_large(self.held));
            }
        }
        self.hold.cover(self.held_bytes)
    }

    fn finish(self, kind: Kind, compressed_bytes: u64) -> SourceOutput {
        SourceOutput {
            kind,
            entries: self.entries,
            label_sets: self.label_sets,
            lines: self.lines,
            bytes: self.bytes,
            compressed_bytes,
            _hold: self.hold,
        }
    }
}

/// Keeps the best `limit` entries (the newest for backward, the oldest for
/// forward; earlier-read ones win ties, as in the result heap) in read
/// order; returns the bytes they hold.
fn keep_best(entries: &mut Vec<(u32, Entry)>, limit: usize, direction: Direction) -> usize {
    if entries.len() > limit {
        let mut order: Vec<usize> = (0..entries.len()).collect();
        match direction {
            Direction::Backward => order.sort_by_key(|&i| (Reverse(entries[i].1.ts), i)),
            Direction::Forward => order.sort_by_key(|&i| (entries[i].1.ts, i)),
        }
        let mut keep = vec![false; entries.len()];
        for &i in &order[..limit] {
            keep[i] = true;
        }
        let mut i = 0;
        entries.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }
    entries.iter().map(|(_, e)| entry_bytes(e)).sum()
}

/// Sorts an entry's output labels into Loki 3's categories: a label is a
/// stream label when the stream had it with that value, structured
/// metadata when the entry carried it (under its name, or with the
/// `_extracted` suffix a clash with a stream label gives it), and parsed
/// otherwise.
fn categorize(entry: Entry, stream: &[Label], output: &[Label]) -> ResultEntry {
    let mut out = ResultEntry {
        ts: entry.ts,
        line: entry.line,
        stream: Vec::new(),
        metadata: Vec::new(),
        parsed: Vec::new(),
    };
    for l in output {
        let in_stream = stream
            .iter()
            .any(|s| s.name == l.name && s.value == l.value);
        let in_metadata = entry.metadata.iter().any(|m| {
            m.value == l.value
                && (m.name == l.name
                    || l.name
                        .strip_suffix("_extracted")
                        .is_some_and(|base| base == m.name))
        });
        if in_stream {
            out.stream.push(l.clone());
        } else if in_metadata {
            out.metadata.push(l.clone());
        } else {
            out.parsed.push(l.clone());
        }
    }
    out
}
