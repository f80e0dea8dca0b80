//! LogQL evaluation over a [`skald_store::Store`].
//!
//! A log query selects streams on the label index, takes every head block
//! and segment chunk that may hold entries in its time range, skips chunks
//! whose filters rule out a required literal, and reads the rest in waves,
//! in parallel, newest first for `backward` (oldest first for `forward`),
//! keeping only the best `limit` entries. Because sources are visited in
//! time order, it stops as soon as no unread source can beat the entries
//! it holds: memory is bounded by the limit and the number of sources, not
//! by the bytes scanned.
//!
//! Not here: parsing (`skald-logql`), per-line stages (`skald-pipeline`),
//! response encoding (`skald-server`).

mod log;

pub use log::{Direction, LogQuery, LogResult, QueryStats, ResultStream, run_log_query};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Pipeline(#[from] skald_pipeline::PipelineError),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Limit(String),
}
