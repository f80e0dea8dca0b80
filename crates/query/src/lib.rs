//! LogQL evaluation over a [`skald_store::Store`].
//!
//! Log queries ([`run_log_query`], module `log`): a query selects streams
//! on the label index, takes every head block and segment chunk that may
//! hold entries in its time range, skips chunks whose filters rule out a
//! required literal or whose field columns rule out its label filters
//! (`columns`), and runs the log pipeline over the rest in waves, in
//! parallel, newest first for `backward` (oldest first for `forward`),
//! keeping only the best `limit` entries. Because sources are visited in
//! time order, it stops as soon as no unread source can beat the entries
//! it holds: memory is bounded by the limit and the number of sources, not
//! by the bytes scanned.
//!
//! Metric queries ([`run_metric_query`], module `metric`): each range
//! aggregation streams its lines once, in parallel, into per-series,
//! per-interval accumulators (`range`); the expression above it is then
//! evaluated over all steps at once (`eval`), with Loki's step alignment,
//! windows, error and series-limit rules.
//!
//! Not here: parsing (`skald-logql`), per-line stages (`skald-pipeline`),
//! response encoding (`skald-server`).

mod cancel;
mod columns;
mod cost;
mod eval;
mod log;
mod metric;
mod range;

pub use cancel::{CancelOnDrop, CancelToken};
pub use columns::{field_columns, set_field_columns};
pub use cost::{bytes_to_read, check_bytes_to_read, log_bytes_to_read};
pub use eval::{Grid, SeriesVals};
pub use log::{
    AnswerBudget, Direction, HeldBytes, LogQuery, LogResult, QueryStats, ResultEntry, ResultStream,
    run_log_query, run_log_query_held, run_log_query_within,
};
pub use metric::{MetricLimits, MetricOutput, MetricQuery, MetricResult, Series, run_metric_query};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Pipeline(#[from] skald_pipeline::PipelineError),
    #[error("{0}")]
    Unsupported(String),
    /// A limit (series, points) was exceeded.
    #[error("{0}")]
    Limit(String),
    /// A range aggregation held more series over the evaluated range than
    /// it may; metric queries then evaluate shorter sub-ranges, and report
    /// a [`QueryError::Limit`] when a single step is still too much.
    #[error("{0}")]
    HeldSeries(String),
    /// The query cannot be evaluated as written (a pipeline error in a
    /// series, many-to-many matching, ...).
    #[error("{0}")]
    Eval(String),
    /// The query's [`CancelToken`] was cancelled (its client went away).
    #[error("the query was cancelled")]
    Cancelled,
    /// The query ran past its deadline (`query_timeout`).
    #[error("{0}")]
    Timeout(String),
    /// A budget the server shares among queries is spent for now (503:
    /// try again).
    #[error("{0}")]
    Busy(String),
}

#[cfg(test)]
mod tests;
