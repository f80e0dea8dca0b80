//! Log queries: selected, filtered entries, limited, in time order.

use crate::QueryError;
use rayon::prelude::*;
use skald_model::{Entry, LabelSet, Matcher, TenantId, Timestamp};
use skald_pipeline::LineFilterChain;
use skald_store::{Source, Store};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    Backward,
}

/// A log query, parsed and resolved.
#[derive(Debug)]
pub struct LogQuery<'a> {
    pub tenant: &'a TenantId,
    pub selector: &'a [Matcher],
    pub filters: &'a LineFilterChain,
    /// Inclusive.
    pub start: Timestamp,
    /// Exclusive.
    pub end: Timestamp,
    pub limit: usize,
    pub direction: Direction,
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
    pub fn total_bytes(&self) -> u64 {
        self.decompressed_bytes + self.head_bytes
    }

    pub fn total_lines(&self) -> u64 {
        self.decompressed_lines + self.head_lines
    }
}

#[derive(Debug, Clone)]
pub struct ResultStream {
    pub labels: LabelSet,
    /// In the query's direction.
    pub entries: Vec<Entry>,
}

#[derive(Debug, Default)]
pub struct LogResult {
    pub streams: Vec<ResultStream>,
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
    let started = Instant::now();
    let mut result = LogResult::default();
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
    let required = q.filters.required();
    sources.retain(|(_, src)| {
        let Source::Chunk(c) = src else { return true };
        let keep = required.iter().all(|alternatives| {
            alternatives
                .iter()
                .any(|lit| c.segment.may_contain(c.at, lit.as_bytes()))
        });
        if !keep {
            stats.chunks_skipped += 1;
        }
        keep
    });

    // The heap keeps the `limit` best entries; its top is the worst of
    // them. Backward wants the newest, so the worst is the oldest.
    let mut heap: BinaryHeap<Held> = BinaryHeap::with_capacity(q.limit + 1);
    let mut seq = 0u32;
    let mut read_errors = Vec::new();
    let mut i = 0;
    while i < sources.len() {
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
            .map(|(stream, src)| (*stream, read_filtered(src, q)))
            .collect();
        for (stream, out) in outputs {
            let out = match out {
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
            for entry in out.entries {
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
                    heap.pop();
                }
                heap.push(Held { key, stream, entry });
            }
        }
    }
    result.warnings.extend(read_errors);

    // Group by stream, order, and drop exact duplicates (an entry pushed
    // twice, or present in both the WAL replay and a segment).
    let mut held: Vec<Held> = heap.into_vec();
    held.sort_by(|a, b| a.stream.cmp(&b.stream).then(a.key.cmp(&b.key)));
    let mut streams: Vec<ResultStream> = Vec::new();
    let mut current: Option<u32> = None;
    for h in held {
        if current != Some(h.stream) {
            current = Some(h.stream);
            streams.push(ResultStream {
                labels: snap.streams[h.stream as usize].labels.clone(),
                entries: Vec::new(),
            });
        }
        let entries = &mut streams.last_mut().expect("pushed above").entries;
        let dup = entries
            .iter()
            .rev()
            .take_while(|e| e.ts == h.entry.ts)
            .any(|e| e.line == h.entry.line && e.metadata == h.entry.metadata);
        if dup {
            result.stats.duplicates += 1;
            continue;
        }
        entries.push(h.entry);
    }
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
    entries: Vec<Entry>,
    lines: u64,
    bytes: u64,
    compressed_bytes: u64,
}

/// Reads one source and keeps the entries in range that pass the filters.
fn read_filtered(src: &Source, q: &LogQuery<'_>) -> Result<SourceOutput, String> {
    let (kind, compressed_bytes) = match src {
        Source::Head(_) => (Kind::Head, 0),
        Source::Chunk(c) => (Kind::Chunk, c.segment.chunk(c.at).len as u64),
    };
    let all = Store::read_source(src).map_err(|e| match src {
        Source::Chunk(c) => format!("unreadable chunk in {}: {e}", c.segment.path.display()),
        Source::Head(_) => e.to_string(),
    })?;
    let lines = all.len() as u64;
    let bytes = all.iter().map(|e| e.line.len() as u64).sum();
    let entries = all
        .into_iter()
        .filter(|e| e.ts >= q.start && e.ts < q.end && q.filters.matches(e.line.as_bytes()))
        .collect();
    Ok(SourceOutput {
        kind,
        entries,
        lines,
        bytes,
        compressed_bytes,
    })
}
