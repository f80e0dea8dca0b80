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
use foldhash::HashMap;
use rayon::prelude::*;
use skald_logql::{Grouping, RangeAggregation, RangeOp};
use skald_model::{Entry, Label, Matcher, TenantId, Timestamp};
use skald_pipeline::labels::{ERROR_DETAILS_LABEL, ERROR_LABEL};
use skald_pipeline::{LineProcessor, Pipeline, Unwrapper};
use skald_store::{Source, Store};

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

/// Accumulated samples of one series.
#[derive(Debug, Default)]
struct SeriesAcc {
    key: String,
    labels: Vec<Label>,
    /// (interval, cell); sorted and coalesced before use.
    cells: Vec<(u32, Cell)>,
    /// (ts, value), for the ops that need every value.
    samples: Vec<(i64, f64)>,
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
    /// Most series the aggregation may produce at one step.
    pub max_series: usize,
}

/// Values a range aggregation may hold at once (series × steps; 64 MB):
/// over a long range with many steps, fewer series are held, so that the
/// query is evaluated in shorter sub-ranges (see `metric`).
const HELD_VALUES_BUDGET: usize = 4_000_000;

impl RangePlan<'_> {
    fn max_held_series(&self) -> usize {
        let most = self.max_series.saturating_mul(HELD_SERIES_FACTOR);
        (HELD_VALUES_BUDGET / self.cuts.windows.len().max(1)).clamp(self.max_series.min(most), most)
    }
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
        Ok(RangePlan {
            op: agg.op,
            param: agg.param,
            selector: &agg.range.log.selector,
            pipeline,
            unwrap,
            grouping,
            cuts: Cuts::new(grid, agg.range.range, agg.range.offset),
            max_series,
        })
    }
}

/// One worker's state.
struct Worker<'p> {
    plan: &'p RangePlan<'p>,
    processor: LineProcessor<'p>,
    index: HashMap<String, u32>,
    series: Vec<SeriesAcc>,
    key: String,
    stats: QueryStats,
    warnings: Vec<String>,
    error: Option<QueryError>,
}

/// How many times the per-step series limit a range aggregation may hold
/// over the whole query range: series come and go (a path per request id),
/// so more exist over hours than at any one step, but memory stays bounded.
const HELD_SERIES_FACTOR: usize = 4;

fn held_series_limit_error(limit: usize) -> QueryError {
    QueryError::HeldSeries(format!(
        "maximum of series ({limit}) held over the query range reached; shorten the range, narrow the stream selector or filter, or group by fewer labels"
    ))
}

/// Loki's limit is on the series of one evaluation step.
fn check_series_per_step(series: &[SeriesVals], n: usize, limit: usize) -> Result<(), QueryError> {
    for k in 0..n {
        if series.iter().filter(|s| s.values[k].is_some()).count() > limit {
            return Err(series_limit_error(limit));
        }
    }
    Ok(())
}

fn series_limit_error(limit: usize) -> QueryError {
    QueryError::Limit(format!(
        "maximum of series ({limit}) reached for a single query; narrow the stream selector, filter, or aggregate with `sum by (...)`"
    ))
}

impl<'p> Worker<'p> {
    fn new(plan: &'p RangePlan<'p>) -> Worker<'p> {
        Worker {
            plan,
            processor: plan.pipeline.processor(),
            index: HashMap::default(),
            series: Vec::new(),
            key: String::new(),
            stats: QueryStats::default(),
            warnings: Vec::new(),
            error: None,
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
        let keep = |l: &Label| match &plan.grouping {
            None => true,
            Some(_) if l.name == ERROR_LABEL || l.name == ERROR_DETAILS_LABEL => true,
            Some(g) => g.labels.contains(&l.name) != g.without,
        };
        self.key.clear();
        for l in labels.iter().filter(|l| keep(l)) {
            self.key.push_str(&l.name);
            self.key.push('\u{ff}');
            self.key.push_str(&l.value);
            self.key.push('\u{ff}');
        }
        let at = match self.index.get(self.key.as_str()) {
            Some(&i) => i as usize,
            None => {
                if self.series.len() >= plan.max_held_series() {
                    self.error
                        .get_or_insert_with(|| held_series_limit_error(plan.max_held_series()));
                    return;
                }
                self.index
                    .insert(self.key.clone(), self.series.len() as u32);
                self.series.push(SeriesAcc {
                    key: self.key.clone(),
                    labels: labels.iter().filter(|l| keep(l)).cloned().collect(),
                    ..SeriesAcc::default()
                });
                self.series.len() - 1
            }
        };
        let s = &mut self.series[at];
        if keeps_samples(plan.op) {
            s.samples.push((ts, value));
            return;
        }
        match s.cells.last_mut() {
            Some((i, cell)) if *i == interval => cell.add(plan.op, ts, value),
            _ => {
                let mut cell = Cell::default();
                cell.add(plan.op, ts, value);
                s.cells.push((interval, cell));
            }
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

    fn merge(mut self, other: Worker<'p>) -> Worker<'p> {
        self.stats.add(&other.stats);
        self.warnings.extend(other.warnings);
        if self.error.is_none() {
            self.error = other.error;
        }
        for s in other.series {
            match self.index.get(&s.key) {
                Some(&i) => {
                    let mine = &mut self.series[i as usize];
                    mine.cells.extend(s.cells);
                    mine.samples.extend(s.samples);
                }
                None => {
                    if self.series.len() >= self.plan.max_held_series() {
                        self.error.get_or_insert_with(|| {
                            held_series_limit_error(self.plan.max_held_series())
                        });
                        continue;
                    }
                    self.index.insert(s.key.clone(), self.series.len() as u32);
                    self.series.push(s);
                }
            }
        }
        self
    }
}

/// Evaluates a range aggregation over the store at every step of `grid`.
pub(crate) fn run_range(
    store: &Store,
    tenant: &TenantId,
    plan: &RangePlan<'_>,
    grid: &Grid,
    stats: &mut QueryStats,
    warnings: &mut Vec<String>,
) -> Result<Vec<SeriesVals>, QueryError> {
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
    let required = plan.pipeline.required();
    let mut units: Vec<(&[Label], Vec<&Source>)> = Vec::new();
    for s in &snap.streams {
        let mut sources: Vec<&Source> = Vec::new();
        for src in &s.sources {
            stats.chunks_ref += 1;
            let skip = match src {
                Source::Chunk(c) => !required.iter().all(|alternatives| {
                    alternatives
                        .iter()
                        .any(|lit| c.segment.may_contain(c.at, lit.as_bytes()))
                }),
                Source::Head(_) => false,
            };
            if skip {
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
    let worker = units
        .par_iter()
        .fold(
            || Worker::new(plan),
            |mut w, (stream, unit)| {
                w.read_unit(stream, unit);
                w
            },
        )
        .reduce(|| Worker::new(plan), Worker::merge);
    stats.add(&worker.stats);
    warnings.extend(worker.warnings);
    if let Some(e) = worker.error {
        return Err(e);
    }
    let out = finish(plan, grid, worker.series);
    check_series_per_step(&out, grid.n, plan.max_series)?;
    check_errors(&out)?;
    Ok(out)
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

/// Turns accumulated cells into values at every step.
fn finish(plan: &RangePlan<'_>, grid: &Grid, series: Vec<SeriesAcc>) -> Vec<SeriesVals> {
    let cuts = &plan.cuts;
    let mut out = Vec::with_capacity(series.len());
    let mut scratch: Vec<f64> = Vec::new();
    for mut s in series {
        let mut values = vec![None; grid.n];
        if keeps_samples(plan.op) {
            s.samples.sort_by_key(|&(ts, _)| ts);
            let mut lo = 0;
            for (k, t) in grid.times().enumerate() {
                let end = t - cuts.offset;
                let start = end - cuts.range;
                while lo < s.samples.len() && s.samples[lo].0 <= start {
                    lo += 1;
                }
                let hi = s.samples[lo..].partition_point(|&(ts, _)| ts <= end) + lo;
                let window = &s.samples[lo..hi];
                values[k] = match plan.op {
                    RangeOp::QuantileOverTime => {
                        scratch.clear();
                        scratch.extend(window.iter().map(|&(_, v)| v));
                        quantile(plan.param.unwrap_or(0.5), &mut scratch)
                    }
                    _ => counter_rate(window, start, end, cuts.range_secs),
                };
            }
        } else {
            s.cells.sort_by_key(|&(i, _)| i);
            // Coalesce cells of one interval (from several workers).
            let mut cells: Vec<(u32, Cell)> = Vec::with_capacity(s.cells.len());
            for (i, c) in s.cells {
                match cells.last_mut() {
                    Some((j, last)) if *j == i => last.merge(plan.op, &c),
                    _ => cells.push((i, c)),
                }
            }
            let mut p = 0;
            for (k, &(lo, hi)) in cuts.windows.iter().enumerate() {
                while p < cells.len() && cells[p].0 < lo {
                    p += 1;
                }
                let mut acc = Cell::default();
                for (_, c) in cells[p..].iter().take_while(|(i, _)| *i < hi) {
                    acc.merge(plan.op, c);
                }
                values[k] = finalize(plan.op, &acc, cuts.range_secs);
            }
        }
        out.push(SeriesVals {
            labels: s.labels,
            values,
        });
    }
    out
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
    let mut w = Worker::new(plan);
    for (labels, entries) in streams {
        for e in entries {
            w.add(labels, e.ts.0, &e.line, &e.metadata);
        }
    }
    if let Some(e) = w.error {
        return Err(e);
    }
    let out = finish(plan, grid, w.series);
    check_series_per_step(&out, grid.n, plan.max_series)?;
    check_errors(&out)?;
    Ok(out)
}
