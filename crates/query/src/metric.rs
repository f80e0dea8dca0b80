//! Metric queries over the store: the entry point that ties range
//! aggregations over stored lines (`range`) to the expression evaluator
//! (`eval`), and applies the result limits.

use crate::QueryError;
use crate::eval::{Evaluator, Grid, SeriesVals, Value, result_order};
use crate::log::QueryStats;
use crate::range::{RangeCache, RangePlan, read_range};
use foldhash::HashMap;
use skald_logql::Expr;
use skald_model::{Label, TenantId, Timestamp};
use skald_store::Store;
use std::time::Instant;

/// How much a metric query may return and hold.
#[derive(Debug, Clone, Copy)]
pub struct MetricLimits {
    /// Series in the result (Loki's `max_query_series`, 500 by default).
    pub max_series: usize,
    /// Series a range aggregation inside the query may build before a
    /// vector aggregation reduces them; bounds memory.
    pub max_inner_series: usize,
    /// Bytes a range aggregation may hold while reading its lines (series
    /// keys and per-interval sums; the server's `max_query_memory`); past
    /// it, the query's range is read in shorter parts, and a single step
    /// that still does not fit fails the query naming the limit.
    pub max_range_bytes: usize,
}

impl Default for MetricLimits {
    fn default() -> Self {
        MetricLimits {
            max_series: 500,
            max_inner_series: 50_000,
            max_range_bytes: crate::range::ACCUMULATOR_BUDGET,
        }
    }
}

/// A metric query: evaluated at `start`, `start + step`, ... `<= end`
/// (an instant query has `start == end`).
#[derive(Debug)]
pub struct MetricQuery<'a> {
    pub tenant: &'a TenantId,
    pub expr: &'a Expr,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Nanoseconds, positive.
    pub step: i64,
    pub limits: MetricLimits,
}

/// One result series: labels and `(timestamp ns, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<Label>,
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetricOutput {
    /// One value per step.
    Scalar(Vec<(i64, f64)>),
    /// Sorted by labels, or for an instant `topk`, `bottomk`, `sort`,
    /// `sort_desc` in the order they define.
    Matrix(Vec<Series>),
}

#[derive(Debug)]
pub struct MetricResult {
    pub output: MetricOutput,
    pub stats: QueryStats,
    pub warnings: Vec<String>,
}

pub fn run_metric_query(store: &Store, q: &MetricQuery<'_>) -> Result<MetricResult, QueryError> {
    let started = Instant::now();
    if q.step <= 0 {
        return Err(QueryError::Eval("step must be positive".into()));
    }
    if q.end < q.start {
        return Err(QueryError::Eval(
            "end timestamp must not be before start time".into(),
        ));
    }
    let grid = Grid::new(q.start.0, q.end.0, q.step);
    let mut stats = QueryStats::default();
    let mut warnings = Vec::new();
    let mut too_big = usize::MAX;
    let mut cache = RangeCache::default();
    let value = eval_sliced(
        store,
        q,
        grid,
        &mut too_big,
        &mut cache,
        &mut stats,
        &mut warnings,
    )?;
    let output = to_output(value, &grid, q.expr, q.limits.max_series)?;
    stats.exec_time_secs = started.elapsed().as_secs_f64();
    Ok(MetricResult {
        output,
        stats,
        warnings,
    })
}

/// Evaluates the query at the steps of `grid`. Every operator of a metric
/// query works step by step, so a range whose aggregations would hold too
/// many series at once (paths with ids over hours) is evaluated as two
/// halves, recursively, and the halves' steps put side by side: memory
/// stays bounded by what a shorter range holds. A range aggregation read
/// whole is kept in `cache` and hands each part its steps without reading
/// again; one too big to read whole is read part by part. `too_big` is the
/// fewest steps found too many so far: ranges that long are split untried.
fn eval_sliced(
    store: &Store,
    q: &MetricQuery<'_>,
    grid: Grid,
    too_big: &mut usize,
    cache: &mut RangeCache,
    stats: &mut QueryStats,
    warnings: &mut Vec<String>,
) -> Result<Value, QueryError> {
    let split = |grid: Grid| {
        let first = Grid {
            n: grid.n / 2,
            ..grid
        };
        let second = Grid {
            start: grid.start + first.n as i64 * grid.step,
            n: grid.n - first.n,
            ..grid
        };
        (first, second)
    };
    if grid.n > 1 && grid.n >= *too_big {
        let (first, second) = split(grid);
        let a = eval_sliced(store, q, first, too_big, cache, stats, warnings)?;
        let b = eval_sliced(store, q, second, too_big, cache, stats, warnings)?;
        return Ok(concat(a, b, first.n, second.n));
    }
    let mut range = |agg: &skald_logql::RangeAggregation,
                     pushdown: Option<&skald_logql::Grouping>,
                     max_series: usize| {
        if let Some(read) = cache.get(agg, pushdown, max_series, &grid) {
            return read.values(&grid);
        }
        let mut plan = RangePlan::new(agg, &grid, pushdown, max_series)?;
        plan.budget = q.limits.max_range_bytes;
        let read = read_range(store, q.tenant, &plan, stats, warnings)?;
        cache.insert(agg, pushdown, max_series, read).values(&grid)
    };
    let value = Evaluator {
        grid,
        range: &mut range,
        max_inner_series: q.limits.max_inner_series.max(q.limits.max_series),
    }
    .eval(q.expr, q.limits.max_series);
    match value {
        Err(QueryError::HeldSeries(_)) if grid.n > 1 => {
            *too_big = grid.n;
            eval_sliced(store, q, grid, too_big, cache, stats, warnings)
        }
        Err(QueryError::HeldSeries(m)) => Err(QueryError::Limit(m)),
        other => other,
    }
}

/// The steps of `a` (`na` of them) followed by those of `b`.
fn concat(a: Value, b: Value, na: usize, nb: usize) -> Value {
    match (a, b) {
        (Value::Scalar(mut a), Value::Scalar(b)) => {
            a.extend(b);
            Value::Scalar(a)
        }
        (Value::Vector(a), Value::Vector(b)) => {
            let mut out: Vec<SeriesVals> = Vec::with_capacity(a.len().max(b.len()));
            let mut index: HashMap<Vec<Label>, usize> = HashMap::default();
            for mut s in a {
                s.values.resize(na + nb, None);
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            for s in b {
                match index.get(&s.labels) {
                    Some(&i) => out[i].values[na..].copy_from_slice(&s.values),
                    None => {
                        let mut values = vec![None; na];
                        values.extend(s.values);
                        out.push(SeriesVals {
                            labels: s.labels,
                            values,
                        });
                    }
                }
            }
            Value::Vector(out)
        }
        // The same expression gives the same kind of value on any range.
        (a, _) => a,
    }
}

/// Points from step values, with the series limit and Loki's ordering.
pub(crate) fn to_output(
    value: Value,
    grid: &Grid,
    expr: &Expr,
    max_series: usize,
) -> Result<MetricOutput, QueryError> {
    let times: Vec<i64> = grid.times().collect();
    let series = match value {
        Value::Scalar(v) => {
            return Ok(MetricOutput::Scalar(times.into_iter().zip(v).collect()));
        }
        Value::Vector(series) => series,
    };
    let mut out: Vec<Series> = series
        .into_iter()
        .filter_map(|SeriesVals { labels, values }| {
            let points: Vec<(i64, f64)> = times
                .iter()
                .zip(values)
                .filter_map(|(&t, v)| Some((t, v?)))
                .collect();
            (!points.is_empty()).then_some(Series { labels, points })
        })
        .collect();
    if out.len() > max_series {
        return Err(QueryError::Limit(format!(
            "maximum of series ({max_series}) reached for a single query (max_query_series); narrow the stream selector, filter, or aggregate with `sum by (...)`"
        )));
    }
    match result_order(expr) {
        Some(desc) if grid.n == 1 => out.sort_by(|a, b| {
            let order = a.points[0].1.total_cmp(&b.points[0].1);
            if desc { order.reverse() } else { order }
        }),
        _ => out.sort_by(|a, b| a.labels.cmp(&b.labels)),
    }
    Ok(MetricOutput::Matrix(out))
}
