//! The head: the entries not yet in a segment, per stream, in memory.
//!
//! Each stream appends to an open [`HeadBlock`]; once it holds
//! [`HEAD_BLOCK_BYTES`] it is sorted and frozen behind an `Arc`, so a query
//! can hold on to it without copying and without blocking ingest. A flush
//! takes every block of every stream at once (see `flush.rs`), which is what
//! lets the WAL be truncated after it.
//!
//! Not here: durability (the WAL), compression (segments).

use skald_chunk::filter::{
    BlockFilter, DigitFilter, FilterBuilder, FilterParams, FilterProbe, TrigramFilter,
};
use skald_model::{Entry, Label, LabelSet, StreamId, TenantId, Timestamp};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

/// Raw bytes after which an open block is frozen. Small enough that copying
/// the open block for a query is cheap; large enough that the per-block
/// overhead is negligible.
pub const HEAD_BLOCK_BYTES: usize = 64 * 1024;

/// Entries of one stream in memory, stored compactly: one buffer of lines
/// and parallel arrays rather than an allocation per entry.
#[derive(Debug, Clone, Default)]
pub struct HeadBlock {
    ts: Vec<i64>,
    /// End offset in `data` of each line.
    ends: Vec<u32>,
    data: String,
    /// (entry index, metadata) for the entries that carry any.
    meta: Vec<(u32, Vec<Label>)>,
    min_ts: i64,
    max_ts: i64,
    /// Indexes of the entries whose timestamp is `max_ts`.
    newest: Vec<u32>,
    sorted: bool,
    /// Set once the block can no longer change (frozen, or taken for a
    /// flush): only then is a filter worth building and keeping.
    immutable: bool,
    /// The block's trigram and digit-gram filters, in the segment format
    /// ([`skald_chunk::filter`]), built in the background once the block is
    /// frozen (see [`request_filters`]): a needle search in the head skips
    /// blocks as it does in segments, at no cost to the commit path.
    filter: OnceLock<(Vec<u8>, Vec<u8>)>,
}

thread_local! {
    /// Builders keep a 2 MiB table between blocks: one per thread that
    /// builds.
    static FILTER_BUILDER: RefCell<Option<FilterBuilder>> = const { RefCell::new(None) };
}

/// Frozen blocks waiting for their filters; more are left for a query to
/// ask again.
const FILTER_QUEUE: usize = 16_384;

/// Asks for `block`'s filters to be built by the one background thread
/// that builds them, at the lowest CPU priority: ingest, flushes and
/// queries come first, and a block flushed (dropped) before its turn is
/// skipped. Never blocks.
pub fn request_filters(block: &Arc<HeadBlock>) {
    static QUEUE: OnceLock<Option<std::sync::mpsc::SyncSender<Weak<HeadBlock>>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Weak<HeadBlock>>(FILTER_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("skald-head-filters".into())
            .spawn(move || {
                crate::compact::lower_priority(19);
                for block in rx {
                    if let Some(b) = block.upgrade() {
                        b.filter.get_or_init(|| b.build_filter());
                    }
                }
            });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "could not start the head filter thread; head blocks are scanned whole");
                None
            }
        }
    });
    if let Some(tx) = queue
        && block.immutable
        && block.filter.get().is_none()
    {
        let _ = tx.try_send(Arc::downgrade(block));
    }
}

impl HeadBlock {
    pub fn new() -> Self {
        HeadBlock {
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            sorted: true,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Bytes of lines and metadata held.
    pub fn raw_bytes(&self) -> usize {
        self.data.len()
            + self
                .meta
                .iter()
                .map(|(_, m)| {
                    m.iter()
                        .map(|l| l.name.len() + l.value.len())
                        .sum::<usize>()
                })
                .sum::<usize>()
    }

    pub fn min_ts(&self) -> Timestamp {
        Timestamp(self.min_ts)
    }

    pub fn max_ts(&self) -> Timestamp {
        Timestamp(self.max_ts)
    }

    pub fn push(&mut self, e: &Entry) {
        self.push_parts(e.ts, &e.line, &e.metadata);
    }

    /// Appends one entry given by its parts (copies of another block's
    /// entries need no `Entry` of their own).
    fn push_parts(&mut self, ts: Timestamp, line: &str, metadata: &[Label]) {
        if self.ts.last().is_some_and(|&last| ts.0 < last) {
            self.sorted = false;
        }
        self.min_ts = self.min_ts.min(ts.0);
        if ts.0 > self.max_ts {
            self.max_ts = ts.0;
            self.newest.clear();
        }
        if ts.0 == self.max_ts {
            self.newest.push(self.ts.len() as u32);
        }
        if !metadata.is_empty() {
            self.meta.push((self.ts.len() as u32, metadata.to_vec()));
        }
        self.ts.push(ts.0);
        self.data.push_str(line);
        self.ends.push(self.data.len() as u32);
    }

    /// Appends entry `i` of `other`.
    fn push_from(&mut self, other: &HeadBlock, i: usize) {
        self.push_parts(other.ts(i), other.line(i), other.metadata(i));
    }

    pub fn ts(&self, i: usize) -> Timestamp {
        Timestamp(self.ts[i])
    }

    pub fn line(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.data[start..self.ends[i] as usize]
    }

    pub fn metadata(&self, i: usize) -> &[Label] {
        match self.meta.binary_search_by_key(&(i as u32), |(j, _)| *j) {
            Ok(k) => &self.meta[k].1,
            Err(_) => &[],
        }
    }

    pub fn entry(&self, i: usize) -> Entry {
        Entry {
            ts: self.ts(i),
            line: self.line(i).to_string(),
            metadata: self.metadata(i).to_vec(),
        }
    }

    /// Whether an entry with this timestamp and line is among the entries
    /// with the newest timestamp (what a client retrying its last batch
    /// re-sends). Older duplicates are removed when reading.
    pub fn has_newest_duplicate(&self, ts: Timestamp, line: &str) -> bool {
        ts.0 == self.max_ts && self.newest.iter().any(|&i| self.line(i as usize) == line)
    }

    /// The same entries in timestamp order (stable: equal timestamps keep
    /// their arrival order).
    pub fn sorted(&self) -> HeadBlock {
        if self.sorted {
            return self.clone();
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| self.ts[i]);
        let mut out = HeadBlock::new();
        out.data.reserve(self.data.len());
        for i in order {
            out.push_from(self, i);
        }
        out
    }

    /// This block, sorted and marked as never changing again (so it keeps
    /// a filter once one is built).
    pub fn freeze(&self) -> HeadBlock {
        let mut out = self.sorted();
        out.immutable = true;
        out
    }

    /// Whether a line of this block may contain `probe`'s needle (ASCII
    /// case-insensitively, as segment filters answer); `false` is certain.
    /// Blocks that may still change, and frozen blocks whose filters are
    /// not built yet, answer `true`: scanning a block once costs less than
    /// building its filter, so a query never waits for one (it asks for it
    /// again, in case the queue was full).
    pub fn may_match(self: &Arc<Self>, probe: &FilterProbe) -> bool {
        if !self.immutable || !probe.is_selective() {
            return true;
        }
        let Some((trigrams, digits)) = self.filter.get() else {
            request_filters(self);
            return true;
        };
        match (
            TrigramFilter::from_bytes(trigrams),
            DigitFilter::from_bytes(digits),
        ) {
            (Ok(trigrams), Ok(digits)) => BlockFilter {
                trigrams,
                digits: Some(digits),
            }
            .may_match(probe),
            _ => true,
        }
    }

    fn build_filter(&self) -> (Vec<u8>, Vec<u8>) {
        FILTER_BUILDER.with(|cell| {
            let mut cell = cell.borrow_mut();
            let builder = cell.get_or_insert_with(|| {
                FilterBuilder::new(FilterParams::default())
                    .expect("the default parameters are valid")
            });
            for i in 0..self.len() {
                builder.add_line(self.line(i).as_bytes());
            }
            let (mut trigrams, mut digits) = (Vec::new(), Vec::new());
            builder.finish_both(&mut trigrams, &mut digits);
            (trigrams, digits)
        })
    }

    /// Entries of a time range `[start, end)`, as a sorted copy.
    pub fn slice(&self, start: Timestamp, end: Timestamp) -> HeadBlock {
        let mut out = HeadBlock::new();
        for i in 0..self.len() {
            if self.ts[i] >= start.0 && self.ts[i] < end.0 {
                out.push_from(self, i);
            }
        }
        out.sorted()
    }

    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        (0..self.len()).map(|i| self.entry(i))
    }
}

/// One stream's head.
#[derive(Debug)]
pub struct StreamHead {
    pub labels: LabelSet,
    /// Sorted, immutable blocks, oldest first.
    pub frozen: Vec<Arc<HeadBlock>>,
    pub open: HeadBlock,
}

impl StreamHead {
    fn new(labels: LabelSet) -> Self {
        StreamHead {
            labels,
            frozen: Vec::new(),
            open: HeadBlock::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.frozen.is_empty() && self.open.is_empty()
    }

    /// Adds an entry; freezes the open block when full. Returns the bytes
    /// added, or `None` for an exact duplicate of a newest entry.
    pub fn push(&mut self, e: &Entry) -> Option<usize> {
        if self.open.has_newest_duplicate(e.ts, &e.line) {
            return None;
        }
        let size = e.size();
        self.open.push(e);
        if self.open.raw_bytes() >= HEAD_BLOCK_BYTES {
            let full = std::mem::replace(&mut self.open, HeadBlock::new());
            let frozen = Arc::new(full.freeze());
            request_filters(&frozen);
            self.frozen.push(frozen);
        }
        Some(size)
    }

    /// Every block, the open one as a sorted copy, overlapping `[start, end)`.
    pub fn blocks_in(&self, start: Timestamp, end: Timestamp) -> Vec<Arc<HeadBlock>> {
        let mut out: Vec<Arc<HeadBlock>> = self
            .frozen
            .iter()
            .filter(|b| b.min_ts() < end && b.max_ts() >= start)
            .cloned()
            .collect();
        if !self.open.is_empty() && self.open.min_ts() < end && self.open.max_ts() >= start {
            out.push(Arc::new(self.open.slice(start, end)));
        }
        out
    }

    /// All entries as sorted blocks, emptying the head of this stream.
    pub fn take_blocks(&mut self) -> Vec<Arc<HeadBlock>> {
        let mut out = std::mem::take(&mut self.frozen);
        let open = std::mem::replace(&mut self.open, HeadBlock::new());
        if !open.is_empty() {
            out.push(Arc::new(open.freeze()));
        }
        out
    }
}

/// The heads of every stream of every tenant.
#[derive(Debug, Default)]
pub struct Head {
    pub tenants: HashMap<TenantId, HashMap<StreamId, StreamHead>>,
    /// Raw bytes held, for the flush trigger and backpressure.
    pub bytes: usize,
    pub entries: u64,
}

impl Head {
    pub fn stream_mut(
        &mut self,
        tenant: &TenantId,
        labels: &LabelSet,
        id: StreamId,
    ) -> &mut StreamHead {
        if !self.tenants.contains_key(tenant) {
            self.tenants.insert(tenant.clone(), HashMap::new());
        }
        let streams = self.tenants.get_mut(tenant).expect("tenant inserted above");
        streams
            .entry(id)
            .or_insert_with(|| StreamHead::new(labels.clone()))
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

/// One tenant's streams in a flushing head: labels and frozen blocks.
pub type FlushingStreams = HashMap<StreamId, (LabelSet, Vec<Arc<HeadBlock>>)>;

/// A head taken out for flushing: immutable, still visible to queries
/// until its segments are in the catalog.
#[derive(Debug, Default)]
pub struct FlushingHead {
    pub tenants: HashMap<TenantId, FlushingStreams>,
    pub bytes: usize,
}

impl FlushingHead {
    pub fn take(head: &mut Head) -> FlushingHead {
        let mut out = FlushingHead {
            bytes: head.bytes,
            ..Default::default()
        };
        for (tenant, streams) in head.tenants.iter_mut() {
            let mut taken = HashMap::new();
            for (id, s) in streams.iter_mut() {
                if s.is_empty() {
                    continue;
                }
                taken.insert(*id, (s.labels.clone(), s.take_blocks()));
            }
            if !taken.is_empty() {
                out.tenants.insert(tenant.clone(), taken);
            }
        }
        // Streams stay known to the head (their newest timestamp is kept
        // separately for the out-of-order window); their blocks are gone.
        head.tenants
            .values_mut()
            .for_each(|s| s.retain(|_, s| !s.is_empty()));
        head.bytes = 0;
        head.entries = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ts: i64, line: &str) -> Entry {
        Entry::new(Timestamp(ts), line)
    }

    #[test]
    fn block_sorts_stably_and_slices() {
        let mut b = HeadBlock::new();
        for (ts, l) in [(5, "e"), (1, "a"), (3, "c1"), (3, "c2"), (2, "b")] {
            b.push(&e(ts, l));
        }
        let s = b.sorted();
        let lines: Vec<_> = (0..s.len()).map(|i| s.line(i)).collect();
        assert_eq!(lines, ["a", "b", "c1", "c2", "e"]);
        let sl = b.slice(Timestamp(2), Timestamp(5));
        assert_eq!(sl.len(), 3);
        assert_eq!((sl.min_ts(), sl.max_ts()), (Timestamp(2), Timestamp(3)));
    }

    #[test]
    fn newest_duplicates_are_dropped() {
        let ls = LabelSet::parse(r#"{a="1"}"#).unwrap();
        let mut s = StreamHead::new(ls);
        assert!(s.push(&e(1, "x")).is_some());
        assert!(s.push(&e(1, "x")).is_none());
        assert!(s.push(&e(1, "y")).is_some());
        assert!(s.push(&e(1, "x")).is_none());
    }

    #[test]
    fn metadata_is_kept_per_entry() {
        let mut b = HeadBlock::new();
        b.push(&e(1, "a"));
        b.push(&Entry {
            ts: Timestamp(2),
            line: "b".into(),
            metadata: vec![Label::new("trace_id", "t1")],
        });
        assert!(b.metadata(0).is_empty());
        assert_eq!(b.metadata(1)[0].value, "t1");
    }

    #[test]
    fn frozen_blocks_skip_needles_by_trigrams_and_digit_grams() {
        let mut b = HeadBlock::new();
        for (ts, l) in [
            (1, "order 42424 user 124241"),
            (2, "took 2424 ms shard 242"),
        ] {
            b.push(&e(ts, l));
        }
        let probe = |s: &str| FilterProbe::new(s.as_bytes());
        // A block that may still grow lets everything through.
        assert!(Arc::new(b.clone()).may_match(&probe("424242")));
        let f = Arc::new(b.freeze());
        // Asking builds the filters in the background; until then the
        // block is read whole.
        let _ = f.may_match(&probe("424242"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while f.filter.get().is_none() {
            assert!(std::time::Instant::now() < deadline, "no filter built");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!f.may_match(&probe("424242")));
        assert!(!f.may_match(&probe("zebra")));
        for present in ["124241", "user 124241", "42424", "2424 MS"] {
            assert!(f.may_match(&probe(present)), "{present}");
        }
    }
}
