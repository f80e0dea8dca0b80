//! Range aggregations (`count_over_time({..}[5m])`, `rate`, the unwrapped
//! `*_over_time`) evaluated at every step of a query in one pass over the
//! lines.
//!
//! Memory stays bounded by series and steps, not by lines: every window
//! boundary (`t - offset - range` and `t - offset` for each step `t`) cuts
//! time into elementary intervals; each line falls into exactly one, and
//! each series keeps one small accumulator ([`Cell`]) per interval it has
//! lines in. A step's window `(t - offset - range, t - offset]` is a run of
//! consecutive intervals, so its value merges the cells of that run. Only
//! `quantile_over_time` and `rate_counter`, which need every value of a
//! window, keep the samples themselves.
//!
//! Workers (one per rayon task) each have their own pipeline processor and
//! accumulators and are merged at the end; a stream's sources that overlap
//! in time are read together so exact duplicates are dropped once.

use crate::QueryError;
use crate::eval::{Grid, SeriesVals};
use crate::log::QueryStats;
use hashbrown::HashTable;
use rayon::prelude::*;
use skald_chunk::columns::FieldFormat;
use skald_logql::{Grouping, RangeAggregation, RangeOp};
use skald_model::{Entry, Label, Matcher, TenantId, Timestamp};
use skald_pipeline::fields::FieldParser;
use skald_pipeline::labels::{ERROR_DETAILS_LABEL, ERROR_LABEL};
use skald_pipeline::{LineProcessor, Pipeline, Unwrapper};
use skald_store::{RequiredLiterals, Source, Store};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The time cuts of a query: sorted, unique window boundaries, and for
/// each step the run of intervals `[lo, hi)` its window covers. Interval
/// `i` is `(bounds[i], bounds[i + 1]]`.
#[derive(Debug)]
pub(crate) struct Cuts {
    bounds: Vec<i64>,
    windows: Vec<(u32, u32)>,
    /// The window length in seconds, for the `rate`s.
    range_secs: f64,
    range: i64,
    offset: i64,
}

impl Cuts {
    pub(crate) fn new(grid: &Grid, range: i64, offset: i64) -> Cuts {
        let ends: Vec<i64> = grid.times().map(|t| t - offset).collect();
        let mut bounds: Vec<i64> = ends.iter().flat_map(|&e| [e - range, e]).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let index = |v: i64| bounds.partition_point(|&b| b < v) as u32;
        let windows = ends.iter().map(|&e| (index(e - range), index(e))).collect();
        Cuts {
            bounds,
            windows,
            range_secs: range as f64 / 1e9,
            range,
            offset,
        }
    }

    /// The interval holding `ts`, if any window covers it.
    fn interval(&self, ts: i64) -> Option<u32> {
        let below = self.bounds.partition_point(|&b| b < ts);
        (below >= 1 && below < self.bounds.len()).then(|| below as u32 - 1)
    }

    /// Data the windows read: `(first, last]`.
    fn span(&self) -> (i64, i64) {
        (
            self.bounds.first().copied().unwrap_or(0),
            self.bounds.last().copied().unwrap_or(0),
        )
    }
}

/// One series' summary of the samples in one interval. What the fields
/// hold depends on the operation (see [`Cell::add`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cell {
    n: u64,
    a: f64,
    b: f64,
    t: i64,
}

fn keeps_samples(op: RangeOp) -> bool {
    matches!(op, RangeOp::QuantileOverTime | RangeOp::RateCounter)
}

impl Cell {
    /// Counting ops: `a` sums values. Min, max: `a` is the extreme.
    /// Variance: `a` is the mean, `b` the sum of squared deviations
    /// (Welford). First, last: `t` and `a` are the chosen sample.
    fn add(&mut self, op: RangeOp, ts: i64, v: f64) {
        self.merge(
            op,
            &Cell {
                n: 1,
                a: v,
                b: 0.0,
                t: ts,
            },
        );
    }

    fn merge(&mut self, op: RangeOp, o: &Cell) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        match op {
            RangeOp::MinOverTime => {
                if o.a < self.a || self.a.is_nan() {
                    self.a = o.a;
                }
            }
            RangeOp::MaxOverTime => {
                if o.a > self.a || self.a.is_nan() {
                    self.a = o.a;
                }
            }
            RangeOp::StdvarOverTime | RangeOp::StddevOverTime => {
                // Chan et al.'s parallel combination of two partial variances.
                let n = (self.n + o.n) as f64;
                let delta = o.a - self.a;
                let mean = self.a + delta * o.n as f64 / n;
                self.b += o.b + delta * delta * self.n as f64 * o.n as f64 / n;
                self.a = mean;
            }
            RangeOp::FirstOverTime => {
                if o.t < self.t {
                    self.t = o.t;
                    self.a = o.a;
                }
            }
            RangeOp::LastOverTime => {
                if o.t >= self.t {
                    self.t = o.t;
                    self.a = o.a;
                }
            }
            _ => self.a += o.a,
        }
        self.n += o.n;
    }
}

/// What the range aggregation is, compiled.
pub(crate) struct RangePlan<'a> {
    pub op: RangeOp,
    pub param: Option<f64>,
    pub selector: &'a [Matcher],
    pub pipeline: Pipeline,
    pub unwrap: Option<Unwrapper>,
    /// The labels series are keyed by: the aggregation's own `by`/
    /// `without`, or one pushed down from an enclosing `sum`.
    pub grouping: Option<Grouping>,
    pub cuts: Cuts,
    pub grid: Grid,
    /// Most series the aggregation may produce at one step.
    pub max_series: usize,
    /// Bytes the accumulators may hold while reading (see
    /// [`ACCUMULATOR_BUDGET`]).
    pub budget: usize,
    /// Hashes series keys; one seed for every worker of the query, so
    /// that their tables merge without hashing keys again.
    hasher: foldhash::fast::RandomState,
    /// When set, a count by these fields of this parser's output, which
    /// chunks with field columns answer without parsing
    /// (`Worker::add_from_columns`).
    column_grouping: Option<(skald_chunk::columns::FieldFormat, Vec<String>)>,
}

/// Values a range aggregation may hand to the expression above it at
/// once (series × steps; 64 MB): over a long range with many steps, fewer
/// series are handed over, so that the query is evaluated in shorter
/// sub-ranges (see `metric`).
const HELD_VALUES_BUDGET: usize = 4_000_000;

/// How many times the per-step series limit a range aggregation may hand
/// over for a range of steps: series come and go (a path per request id),
/// so more exist over hours than at any one step, but memory stays bounded.
const HELD_SERIES_FACTOR: usize = 4;

/// Bytes the accumulators of one range aggregation may hold while reading
/// its lines: series keys and per-interval cells (about 40 bytes per line
/// of a new series, less for lines of a known one). Beyond it the query is
/// evaluated as shorter sub-ranges, each read on its own.
pub(crate) const ACCUMULATOR_BUDGET: usize = 256 << 20;

/// Most series handed over for `steps` steps.
fn max_held_series(max_series: usize, steps: usize) -> usize {
    let most = max_series.saturating_mul(HELD_SERIES_FACTOR);
    (HELD_VALUES_BUDGET / steps.max(1)).clamp(max_series.min(most), most)
}

impl<'a> RangePlan<'a> {
    pub(crate) fn new(
        agg: &'a RangeAggregation,
        grid: &Grid,
        pushdown: Option<&Grouping>,
        max_series: usize,
    ) -> Result<RangePlan<'a>, QueryError> {
        let mut pipeline = Pipeline::new(&agg.range.log.pipeline)?;
        let unwrap = agg.range.unwrap.as_ref().map(Unwrapper::new).transpose()?;
        let grouping = agg.grouping.clone().or_else(|| pushdown.cloned());
        // Series keep only the grouping's labels: parsers need set no
        // others (but those the unwrap reads).
        if let Some(g) = grouping.as_ref().filter(|g| !g.without) {
            let mut outputs = g.labels.clone();
            if let Some(u) = &unwrap {
                outputs.extend(u.referenced_labels());
            }
            pipeline.project(&outputs);
        }
        let column_grouping = match (&grouping, &unwrap, pipeline.sole_field_parser()) {
            (Some(g), None, Some(parser))
                if !g.without
                    && matches!(agg.op, RangeOp::CountOverTime | RangeOp::Rate)
                    && crate::columns::field_columns() =>
            {
                let format = match parser {
                    FieldParser::Json => FieldFormat::Json,
                    FieldParser::Logfmt => FieldFormat::Logfmt,
                };
                Some((format, g.labels.clone()))
            }
            _ => None,
        };
        Ok(RangePlan {
            column_grouping,
            op: agg.op,
            param: agg.param,
            selector: &agg.range.log.selector,
            pipeline,
            unwrap,
            grouping,
            cuts: Cuts::new(grid, agg.range.range, agg.range.offset),
            grid: *grid,
            max_series,
            budget: ACCUMULATOR_BUDGET,
            hasher: foldhash::fast::RandomState::default(),
        })
    }
}

/// A series of one worker: its key in the arena and its latest cell.
#[derive(Debug, Clone, Copy)]
struct SeriesMeta {
    hash: u64,
    key_at: u32,
    key_len: u32,
    /// Index of its latest cell in `Acc::cells`, or [`NO_CELL`].
    last: u32,
}

const NO_CELL: u32 = u32::MAX;

/// Accumulated series: keys interned in one arena (no allocation per
/// series), cells and samples in flat vectors tagged with the series id.
/// A path with a request id makes a series per line: this keeps such a
/// series at a few dozen bytes.
#[derive(Default)]
struct Acc {
    table: HashTable<u32>,
    arena: Vec<u8>,
    series: Vec<SeriesMeta>,
    /// (series, interval, cell); one per series and interval once sorted.
    cells: Vec<(u32, u32, Cell)>,
    /// (series, ts, value), for the ops that need every value.
    samples: Vec<(u32, i64, f64)>,
}

impl Acc {
    fn key(&self, id: u32) -> &[u8] {
        let s = &self.series[id as usize];
        &self.arena[s.key_at as usize..][..s.key_len as usize]
    }

    /// The id of the series with this key (see [`encode_key`]), added if
    /// new; and whether it was.
    fn intern(&mut self, hash: u64, key: &[u8]) -> (u32, bool) {
        let Acc {
            table,
            arena,
            series,
            ..
        } = self;
        let entry = table.entry(
            hash,
            |&i| {
                let s = &series[i as usize];
                &arena[s.key_at as usize..][..s.key_len as usize] == key
            },
            |&i| series[i as usize].hash,
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(e) => (*e.get(), false),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let id = series.len() as u32;
                series.push(SeriesMeta {
                    hash,
                    key_at: arena.len() as u32,
                    key_len: key.len() as u32,
                    last: NO_CELL,
                });
                arena.extend_from_slice(key);
                v.insert(id);
                (id, true)
            }
        }
    }

    /// Takes in another worker's series, cells and samples.
    fn absorb(&mut self, other: Acc) {
        let Acc { table, series, .. } = self;
        table.reserve(other.series.len(), |&i| series[i as usize].hash);
        let ids: Vec<u32> = (0..other.series.len() as u32)
            .map(|i| self.intern(other.series[i as usize].hash, other.key(i)).0)
            .collect();
        self.cells.extend(
            other
                .cells
                .into_iter()
                .map(|(s, i, c)| (ids[s as usize], i, c)),
        );
        self.samples.extend(
            other
                .samples
                .into_iter()
                .map(|(s, t, v)| (ids[s as usize], t, v)),
        );
    }
}

/// A series key: each kept label as its name and value, each preceded by
/// its length (so that the labels can be read back, whatever bytes values
/// hold).
fn encode_key<'l>(key: &mut Vec<u8>, labels: impl Iterator<Item = &'l Label>) {
    key.clear();
    for l in labels {
        for part in [&l.name, &l.value] {
            key.extend_from_slice(&(part.len() as u32).to_le_bytes());
            key.extend_from_slice(part.as_bytes());
        }
    }
}

fn decode_key(mut key: &[u8]) -> Vec<Label> {
    let mut labels = Vec::new();
    let take = |key: &mut &[u8]| {
        let len = u32::from_le_bytes([key[0], key[1], key[2], key[3]]) as usize;
        let part = String::from_utf8_lossy(&key[4..4 + len]).into_owned();
        *key = &key[4 + len..];
        part
    };
    while !key.is_empty() {
        let name = take(&mut key);
        let value = take(&mut key);
        labels.push(Label::new(name, value));
    }
    labels
}

/// One worker's state.
struct Worker<'p> {
    plan: &'p RangePlan<'p>,
    processor: LineProcessor<'p>,
    acc: Acc,
    key: Vec<u8>,
    /// Bytes added to `acc` not yet counted in `held`.
    grown: usize,
    /// Bytes every worker of the query holds.
    held: &'p AtomicUsize,
    stats: QueryStats,
    warnings: Vec<String>,
    error: Option<QueryError>,
}

fn held_series_limit_error(limit: usize) -> QueryError {
    QueryError::HeldSeries(format!(
        "maximum of series ({limit}) held over the query range reached; shorten the range, narrow the stream selector or filter, or group by fewer labels"
    ))
}

fn held_bytes_limit_error(budget: usize) -> QueryError {
    let size = if budget >= 1 << 20 {
        format!("{} MiB", budget >> 20)
    } else {
        format!("{budget} bytes")
    };
    QueryError::HeldSeries(format!(
        "the query needs more than {size} of memory for the series it holds (max_query_memory); shorten the range, narrow the stream selector or filter, or group by fewer labels"
    ))
}

/// Loki's limit is on the series of one evaluation step.
fn check_series_per_step(series: &[SeriesVals], n: usize, limit: usize) -> Result<(), QueryError> {
    if series.len() <= limit {
        return Ok(());
    }
    let mut counts = vec![0usize; n];
    for s in series {
        for (count, v) in counts.iter_mut().zip(&s.values) {
            *count += usize::from(v.is_some());
        }
    }
    if counts.iter().any(|&c| c > limit) {
        return Err(series_limit_error(limit));
    }
    Ok(())
}

fn series_limit_error(limit: usize) -> QueryError {
    QueryError::Limit(format!(
        "maximum of series ({limit}) reached for a single query (max_query_series); narrow the stream selector, filter, or aggregate with `sum by (...)`"
    ))
}

impl<'p> Worker<'p> {
    fn new(plan: &'p RangePlan<'p>, held: &'p AtomicUsize) -> Worker<'p> {
        Worker {
            plan,
            processor: plan.pipeline.processor(),
            acc: Acc::default(),
            key: Vec::new(),
            grown: 0,
            held,
            stats: QueryStats::default(),
            warnings: Vec::new(),
            error: None,
        }
    }

    /// Counts `bytes` more held; past the budget, the worker stops.
    fn grow(&mut self, bytes: usize) {
        self.grown += bytes;
        let budget = self.plan.budget;
        if self.grown >= (budget / 16).clamp(1, 1 << 20) {
            let total = self.held.fetch_add(self.grown, Ordering::Relaxed) + self.grown;
            self.grown = 0;
            if total > budget {
                self.error
                    .get_or_insert_with(|| held_bytes_limit_error(budget));
            }
        }
    }

    /// Feeds one entry of a stream.
    fn add(&mut self, stream: &[Label], ts: i64, line: &str, metadata: &[Label]) {
        let plan = self.plan;
        let Some(interval) = plan.cuts.interval(ts) else {
            return;
        };
        let (value, labels) = match &plan.unwrap {
            None => {
                let Some(out) = self.processor.process(ts, line, stream, metadata) else {
                    return;
                };
                let v = match plan.op {
                    RangeOp::BytesRate | RangeOp::BytesOverTime => out.line.len() as f64,
                    _ => 1.0,
                };
                (v, out.labels)
            }
            Some(u) => {
                let Some(s) = self.processor.process_sample(ts, line, stream, metadata, u) else {
                    return;
                };
                (s.value, s.labels)
            }
        };
        self.stats.entries_returned += 1;
        let keep = |l: &&Label| match &plan.grouping {
            None => true,
            Some(_) if l.name == ERROR_LABEL || l.name == ERROR_DETAILS_LABEL => true,
            Some(g) => g.labels.contains(&l.name) != g.without,
        };
        encode_key(&mut self.key, labels.iter().filter(keep));
        self.add_keyed(ts, interval, value);
    }

    /// Adds a sample to the series whose key is in `self.key`.
    fn add_keyed(&mut self, ts: i64, interval: u32, value: f64) {
        let plan = self.plan;
        let hash = plan.hasher.hash_one(self.key.as_slice());
        let (id, new) = self.acc.intern(hash, &self.key);
        let mut grown = if new {
            self.key.len() + 2 * std::mem::size_of::<SeriesMeta>()
        } else {
            0
        };
        if keeps_samples(plan.op) {
            self.acc.samples.push((id, ts, value));
            grown += std::mem::size_of::<(u32, i64, f64)>();
        } else {
            let acc = &mut self.acc;
            let last = acc.series[id as usize].last;
            match acc.cells.get_mut(last as usize) {
                Some((_, i, cell)) if *i == interval => cell.add(plan.op, ts, value),
                _ => {
                    let mut cell = Cell::default();
                    cell.add(plan.op, ts, value);
                    acc.series[id as usize].last = acc.cells.len() as u32;
                    acc.cells.push((id, interval, cell));
                    grown += std::mem::size_of::<(u32, u32, Cell)>();
                }
            }
        }
        if grown > 0 {
            self.grow(grown);
        }
    }

    /// Reads a group of overlapping sources of one stream.
    fn read_unit(&mut self, stream: &[Label], unit: &[&Source]) {
        if self.error.is_some() {
            return;
        }
        if let [src] = unit {
            return self.read_single(stream, src);
        }
        let mut entries: Vec<Entry> = Vec::new();
        for src in unit {
            match Store::read_source(src) {
                Ok(mut read) => {
                    let bytes: u64 = read.iter().map(|e| e.line.len() as u64).sum();
                    self.count_read(src, read.len(), bytes);
                    entries.append(&mut read);
                }
                Err(e) => self.unreadable(src, &e),
            }
        }
        // Overlapping sources may hold the same entry twice (a retried
        // push, a WAL replay beside its segment): count it once.
        entries.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.line.cmp(&b.line)));
        let before = entries.len();
        entries.dedup_by(|a, b| a.ts == b.ts && a.line == b.line && a.metadata == b.metadata);
        self.stats.duplicates += (before - entries.len()) as u64;
        for e in &entries {
            self.add(stream, e.ts.0, &e.line, &e.metadata);
        }
    }

    /// Reads a source that overlaps no other, borrowing its lines: no
    /// owned copy of each entry as [`Worker::read_unit`] makes to merge.
    fn read_single(&mut self, stream: &[Label], src: &Source) {
        match src {
            Source::Chunk(c) => {
                let block = match c.segment.read_decoded(c.at) {
                    Ok(b) => b,
                    Err(e) => return self.unreadable(src, &e),
                };
                if self.add_from_columns(stream, src, &block) {
                    let bytes = block.iter().map(|e| e.line.len() as u64).sum();
                    return self.count_read(src, block.len(), bytes);
                }
                let mut metadata: Vec<Label> = Vec::new();
                let mut bytes = 0u64;
                for e in block.iter() {
                    bytes += e.line.len() as u64;
                    metadata.clear();
                    metadata.extend(e.metadata().map(|(n, v)| Label::new(n, v)));
                    self.add(stream, e.ts.0, e.line, &metadata);
                }
                self.count_read(src, block.len(), bytes);
            }
            Source::Head(b) => {
                let mut bytes = 0u64;
                for i in 0..b.len() {
                    let line = b.line(i);
                    bytes += line.len() as u64;
                    self.add(stream, b.ts(i).0, line, b.metadata(i));
                }
                self.count_read(src, b.len(), bytes);
            }
        }
    }

    /// Counts every line of a chunk from its field columns, when the
    /// query is a count by fields that the columns give exactly (see
    /// [`crate::columns::grouped_rows`]): no line is parsed. Returns false,
    /// having done nothing, when they cannot.
    fn add_from_columns(
        &mut self,
        stream: &[Label],
        src: &Source,
        block: &skald_chunk::DecodedBlock,
    ) -> bool {
        let plan = self.plan;
        let Some((format, names)) = &plan.column_grouping else {
            return false;
        };
        let Some(cols) = src.columns(skald_chunk::columns::ColumnDetail::Codes) else {
            return false;
        };
        if cols.rows as usize != block.len() {
            return false;
        }
        let Some(grouped) = crate::columns::grouped_rows(&cols, *format, stream, names) else {
            return false;
        };
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(grouped.keys.len());
        for labels in &grouped.keys {
            encode_key(&mut self.key, labels.iter());
            keys.push(self.key.clone());
        }
        for (&ts, &k) in block.timestamps().iter().zip(&grouped.rows) {
            let Some(interval) = plan.cuts.interval(ts.0) else {
                continue;
            };
            self.stats.entries_returned += 1;
            self.key.clear();
            self.key.extend_from_slice(&keys[k as usize]);
            self.add_keyed(ts.0, interval, 1.0);
        }
        true
    }

    /// Counts a source read in the query's statistics.
    fn count_read(&mut self, src: &Source, lines: usize, bytes: u64) {
        match src {
            Source::Chunk(c) => {
                self.stats.chunks_read += 1;
                self.stats.compressed_bytes += c.segment.chunk(c.at).len as u64;
                self.stats.decompressed_bytes += bytes;
                self.stats.decompressed_lines += lines as u64;
            }
            Source::Head(_) => {
                self.stats.head_blocks_read += 1;
                self.stats.head_bytes += bytes;
                self.stats.head_lines += lines as u64;
            }
        }
    }

    /// A source that could not be read becomes a warning, not a failure.
    fn unreadable(&mut self, src: &Source, e: &dyn std::fmt::Display) {
        self.warnings.push(match src {
            Source::Chunk(c) => format!("unreadable chunk in {}: {e}", c.segment.path.display()),
            Source::Head(_) => e.to_string(),
        });
    }

    fn merge(mut self, mut other: Worker<'p>) -> Worker<'p> {
        self.stats.add(&other.stats);
        self.warnings.append(&mut other.warnings);
        if self.error.is_none() {
            self.error = other.error.take();
        }
        if self.error.is_some() {
            return self;
        }
        // Into the larger table: fewer keys to look up.
        if other.acc.series.len() > self.acc.series.len() {
            std::mem::swap(&mut self.acc, &mut other.acc);
        }
        self.acc.absorb(other.acc);
        self
    }

    /// The accumulated series, sorted and coalesced for evaluation; the
    /// statistics and warnings go to the query's.
    fn finish(
        self,
        stats: &mut QueryStats,
        warnings: &mut Vec<String>,
    ) -> Result<Accumulated, QueryError> {
        stats.add(&self.stats);
        warnings.extend(self.warnings);
        if let Some(e) = self.error {
            return Err(e);
        }
        let plan = self.plan;
        let Acc {
            arena,
            series,
            mut cells,
            mut samples,
            ..
        } = self.acc;
        let mut starts = vec![0u32; series.len() + 1];
        if keeps_samples(plan.op) {
            samples.par_sort_by_key(|&(s, t, _)| (s, t));
            for &(s, _, _) in &samples {
                starts[s as usize + 1] += 1;
            }
        } else {
            cells.par_sort_unstable_by_key(|&(s, i, _)| (s, i));
            // Cells of one interval from several workers or streams.
            cells.dedup_by(|next, kept| {
                let same = next.0 == kept.0 && next.1 == kept.1;
                if same {
                    kept.2.merge(plan.op, &next.2);
                }
                same
            });
            for &(s, _, _) in &cells {
                starts[s as usize + 1] += 1;
            }
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let span = |i: usize| starts[i] as usize..starts[i + 1] as usize;
        let extents = (0..series.len())
            .map(|i| {
                let span = span(i);
                if span.is_empty() {
                    (i64::MAX, i64::MIN)
                } else if keeps_samples(plan.op) {
                    (samples[span.start].1, samples[span.end - 1].1)
                } else {
                    (cells[span.start].1 as i64, cells[span.end - 1].1 as i64)
                }
            })
            .collect();
        Ok(Accumulated {
            op: plan.op,
            param: plan.param,
            cuts: Cuts {
                bounds: Vec::new(),
                windows: plan.cuts.windows.clone(),
                range_secs: plan.cuts.range_secs,
                range: plan.cuts.range,
                offset: plan.cuts.offset,
            },
            grid: plan.grid,
            max_series: plan.max_series,
            keys: series.iter().map(|s| (s.key_at, s.key_len)).collect(),
            extents,
            arena,
            starts,
            cells: cells.into_iter().map(|(_, i, c)| (i, c)).collect(),
            samples: samples.into_iter().map(|(_, t, v)| (t, v)).collect(),
        })
    }
}

/// A range aggregation's lines, read once and accumulated per series and
/// interval over a grid of steps: the values at any run of those steps
/// can be computed from it without reading again.
pub(crate) struct Accumulated {
    op: RangeOp,
    param: Option<f64>,
    /// The windows of `grid`'s steps (no bounds: nothing is added).
    cuts: Cuts,
    grid: Grid,
    max_series: usize,
    arena: Vec<u8>,
    /// Each series' key in `arena`.
    keys: Vec<(u32, u32)>,
    /// Each series' first and last interval (or sample time).
    extents: Vec<(i64, i64)>,
    /// Series `i` has `cells[starts[i]..starts[i + 1]]` (or samples).
    starts: Vec<u32>,
    /// (interval, cell), by series then interval.
    cells: Vec<(u32, Cell)>,
    /// (ts, value), by series then time.
    samples: Vec<(i64, f64)>,
}

impl Accumulated {
    /// Whether `grid`'s steps are some of those accumulated.
    pub(crate) fn covers(&self, grid: &Grid) -> bool {
        let whole = &self.grid;
        grid.step == whole.step
            && grid.start >= whole.start
            && (grid.start - whole.start) % whole.step == 0
            && ((grid.start - whole.start) / whole.step) as usize + grid.n <= whole.n
    }

    /// The series' values at the steps of `grid` (which must be covered):
    /// refused with [`QueryError::HeldSeries`] when more series have
    /// values there than may be handed over at once.
    pub(crate) fn values(&self, grid: &Grid) -> Result<Vec<SeriesVals>, QueryError> {
        if grid.n == 0 {
            return Ok(Vec::new());
        }
        let first = ((grid.start - self.grid.start) / self.grid.step) as usize;
        let windows = &self.cuts.windows[first..first + grid.n];
        let (lo, hi) = (windows[0].0, windows[grid.n - 1].1);
        let last_t = grid.start + (grid.n as i64 - 1) * grid.step;
        let (from, to) = (
            grid.start - self.cuts.offset - self.cuts.range,
            last_t - self.cuts.offset,
        );
        let samples = keeps_samples(self.op);
        let span = |i: usize| self.starts[i] as usize..self.starts[i + 1] as usize;
        let present = |i: usize| {
            let (first, last) = self.extents[i];
            let overlaps = if samples {
                first <= to && last > from
            } else {
                first < hi as i64 && last >= lo as i64
            };
            if !overlaps {
                return false;
            }
            if samples {
                let s = &self.samples[span(i)];
                let p = s.partition_point(|&(t, _)| t <= from);
                p < s.len() && s[p].0 <= to
            } else {
                let c = &self.cells[span(i)];
                let p = c.partition_point(|&(iv, _)| iv < lo);
                p < c.len() && c[p].0 < hi
            }
        };
        let ids: Vec<usize> = (0..self.keys.len())
            .into_par_iter()
            .filter(|&i| present(i))
            .collect();
        let limit = max_held_series(self.max_series, grid.n);
        if ids.len() > limit {
            return Err(held_series_limit_error(limit));
        }
        let out: Vec<SeriesVals> = ids
            .into_par_iter()
            .map_init(Vec::new, |scratch, i| {
                let (at, len) = self.keys[i];
                let labels = decode_key(&self.arena[at as usize..][..len as usize]);
                let values = if samples {
                    self.sample_values(&self.samples[span(i)], grid, scratch)
                } else {
                    self.cell_values(&self.cells[span(i)], windows)
                };
                SeriesVals { labels, values }
            })
            .collect();
        check_series_per_step(&out, grid.n, self.max_series)?;
        check_errors(&out)?;
        Ok(out)
    }

    fn sample_values(
        &self,
        samples: &[(i64, f64)],
        grid: &Grid,
        scratch: &mut Vec<f64>,
    ) -> Vec<Option<f64>> {
        let cuts = &self.cuts;
        let mut values = vec![None; grid.n];
        let mut lo = 0;
        for (k, t) in grid.times().enumerate() {
            let end = t - cuts.offset;
            let start = end - cuts.range;
            while lo < samples.len() && samples[lo].0 <= start {
                lo += 1;
            }
            let hi = samples[lo..].partition_point(|&(ts, _)| ts <= end) + lo;
            let window = &samples[lo..hi];
            values[k] = match self.op {
                RangeOp::QuantileOverTime => {
                    scratch.clear();
                    scratch.extend(window.iter().map(|&(_, v)| v));
                    quantile(self.param.unwrap_or(0.5), scratch)
                }
                _ => counter_rate(window, start, end, cuts.range_secs),
            };
        }
        values
    }

    fn cell_values(&self, cells: &[(u32, Cell)], windows: &[(u32, u32)]) -> Vec<Option<f64>> {
        let mut values = vec![None; windows.len()];
        let mut p = 0;
        for (k, &(lo, hi)) in windows.iter().enumerate() {
            while p < cells.len() && cells[p].0 < lo {
                p += 1;
            }
            let mut acc = Cell::default();
            for (_, c) in cells[p..].iter().take_while(|(i, _)| *i < hi) {
                acc.merge(self.op, c);
            }
            values[k] = finalize(self.op, &acc, self.cuts.range_secs);
        }
        values
    }
}

/// Range aggregations of one query already read, so that evaluating the
/// query's steps in parts reads each once.
#[derive(Default)]
pub(crate) struct RangeCache {
    /// (aggregation's address in the query, pushed-down grouping,
    /// series limit, what was read). One per aggregation: a newer read
    /// (of a shorter range) replaces an older one.
    entries: Vec<(usize, Option<Grouping>, usize, Accumulated)>,
}

impl RangeCache {
    pub(crate) fn get(
        &self,
        agg: &RangeAggregation,
        pushdown: Option<&Grouping>,
        max_series: usize,
        grid: &Grid,
    ) -> Option<&Accumulated> {
        let at = std::ptr::from_ref(agg) as usize;
        self.entries
            .iter()
            .find(|(a, g, m, acc)| {
                *a == at && g.as_ref() == pushdown && *m == max_series && acc.covers(grid)
            })
            .map(|(_, _, _, acc)| acc)
    }

    pub(crate) fn insert(
        &mut self,
        agg: &RangeAggregation,
        pushdown: Option<&Grouping>,
        max_series: usize,
        acc: Accumulated,
    ) -> &Accumulated {
        let at = std::ptr::from_ref(agg) as usize;
        self.entries
            .retain(|(a, g, m, _)| !(*a == at && g.as_ref() == pushdown && *m == max_series));
        self.entries.push((at, pushdown.cloned(), max_series, acc));
        &self.entries[self.entries.len() - 1].3
    }
}

/// Reads a range aggregation's lines from the store and accumulates them
/// for every step of its plan's grid.
pub(crate) fn read_range(
    store: &Store,
    tenant: &TenantId,
    plan: &RangePlan<'_>,
    stats: &mut QueryStats,
    warnings: &mut Vec<String>,
) -> Result<Accumulated, QueryError> {
    let (first, last) = plan.cuts.span();
    let snap = store.snapshot(
        tenant,
        plan.selector,
        Timestamp(first.saturating_add(1)),
        Timestamp(last.saturating_add(1)),
    );
    for c in &snap.corrupt {
        warnings.push(format!("unreadable file {}: {}", c.path.display(), c.error));
    }
    stats.streams += snap.streams.len() as u64;
    let required = RequiredLiterals::new(plan.pipeline.required());
    if !required.is_empty() {
        // Head blocks build their filters on first use: in parallel.
        snap.streams
            .par_iter()
            .flat_map(|s| s.sources.par_iter())
            .for_each(|src| {
                src.may_hold(&required);
            });
    }
    let pruner = crate::columns::ColumnPruner::new(&plan.pipeline);
    let mut units: Vec<(&[Label], Vec<&Source>)> = Vec::new();
    for s in &snap.streams {
        let mut sources: Vec<&Source> = Vec::new();
        for src in &s.sources {
            stats.chunks_ref += 1;
            if !src.may_hold(&required)
                || pruner.as_ref().is_some_and(|p| !p.may_pass(src, &s.labels))
            {
                stats.chunks_skipped += 1;
            } else {
                sources.push(src);
            }
        }
        sources.sort_by_key(|s| s.min_ts());
        let mut unit: Vec<&Source> = Vec::new();
        let mut unit_end = Timestamp::MIN;
        for src in sources {
            if !unit.is_empty() && src.min_ts() > unit_end {
                units.push((s.labels.labels(), std::mem::take(&mut unit)));
            }
            unit_end = if unit.is_empty() {
                src.max_ts()
            } else {
                unit_end.max(src.max_ts())
            };
            unit.push(src);
        }
        if !unit.is_empty() {
            units.push((s.labels.labels(), unit));
        }
    }
    let held = AtomicUsize::new(0);
    // Checked before each group of sources, on every worker: a cancelled
    // query stops within one group's reading.
    let cancel = crate::CancelToken::current();
    cancel.check()?;
    units
        .par_iter()
        .fold(
            || Worker::new(plan, &held),
            |mut w, (stream, unit)| {
                match cancel.check() {
                    Ok(()) => w.read_unit(stream, unit),
                    Err(e) => {
                        w.error.get_or_insert(e);
                    }
                }
                w
            },
        )
        .reduce(|| Worker::new(plan, &held), Worker::merge)
        .finish(stats, warnings)
}

/// Loki fails a metric query whose series carry a pipeline error, unless
/// the query filters the error out.
pub(crate) fn check_errors(series: &[SeriesVals]) -> Result<(), QueryError> {
    for s in series {
        let Some(err) = s.labels.iter().find(|l| l.name == ERROR_LABEL) else {
            continue;
        };
        if s.values.iter().all(Option::is_none) {
            continue;
        }
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|l| format!("{}={:?}", l.name, l.value))
            .collect();
        return Err(QueryError::Eval(format!(
            "pipeline error: '{}' for series: '{{{}}}'. Use a label filter to intentionally skip this error (e.g | __error__!=\"{}\"); to skip all potential errors, keep only lines without errors (e.g | __error__=\"\"), which also works after unwrap (e.g | unwrap latency | __error__=\"\")",
            err.value,
            labels.join(", "),
            err.value
        )));
    }
    Ok(())
}

fn finalize(op: RangeOp, c: &Cell, range_secs: f64) -> Option<f64> {
    if c.n == 0 {
        return None;
    }
    let n = c.n as f64;
    Some(match op {
        RangeOp::Rate | RangeOp::BytesRate => c.a / range_secs,
        RangeOp::CountOverTime | RangeOp::AbsentOverTime => n,
        RangeOp::AvgOverTime => c.a / n,
        RangeOp::StdvarOverTime => c.b / n,
        RangeOp::StddevOverTime => (c.b / n).sqrt(),
        _ => c.a,
    })
}

/// Prometheus' quantile: linear interpolation between the closest ranks.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    if q.is_nan() {
        return Some(f64::NAN);
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = q * (values.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    Some(values[lower] * (1.0 - weight) + values[upper] * weight)
}

/// `rate_counter`: the per-second increase of a counter over the window,
/// corrected for resets and extrapolated to the window's edges the way
/// Prometheus' `rate()` is.
fn counter_rate(samples: &[(i64, f64)], start: i64, end: i64, range_secs: f64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (first_t, first_v) = samples[0];
    let (last_t, last_v) = samples[samples.len() - 1];
    let mut increase = last_v - first_v;
    for w in samples.windows(2) {
        if w[1].1 < w[0].1 {
            increase += w[0].1;
        }
    }
    let secs = |ns: i64| ns as f64 / 1e9;
    let sampled = secs(last_t - first_t);
    if sampled <= 0.0 {
        return None;
    }
    let mut to_start = secs(first_t - start);
    let to_end = secs(end - last_t);
    let average_gap = sampled / (samples.len() - 1) as f64;
    if increase > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / increase);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average_gap * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average_gap / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average_gap / 2.0
    };
    Some(increase * (interval / sampled) / range_secs)
}

/// Runs a range aggregation over entries held in memory: the same
/// evaluation as over the store, for tests.
#[cfg(test)]
pub(crate) fn run_in_memory(
    plan: &RangePlan<'_>,
    grid: &Grid,
    streams: &[(Vec<Label>, Vec<Entry>)],
) -> Result<Vec<SeriesVals>, QueryError> {
    let held = AtomicUsize::new(0);
    let mut w = Worker::new(plan, &held);
    for (labels, entries) in streams {
        for e in entries {
            w.add(labels, e.ts.0, &e.line, &e.metadata);
        }
    }
    w.finish(&mut QueryStats::default(), &mut Vec::new())?
        .values(grid)
}
