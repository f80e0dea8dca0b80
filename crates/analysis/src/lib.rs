//! Log analysis for Skald: patterns, error groups and anomalies.
//!
//! Purpose: turn a stream of log lines into things a person can read at a
//! glance. [`miner`] assigns every line a pattern (a template such as
//! `user <_> logged in from <_>`) online, with bounded memory per stream,
//! after [`mask`] has hidden the values that obviously vary. [`eval`]
//! measures how well lines are grouped (grouping accuracy, as the log
//! parsing literature defines it). [`index`] mines every stored line at
//! ingest and keeps counts per pattern and per error group on disk;
//! [`groups`] reads error groups back, [`anomaly`] finds anomalies in the
//! counts, and [`report`] summarises a set of lines (`skald analyze`).
//!
//! Non-goals: storage and time (the store persists what this crate
//! computes), query parsing (LogQL is `skald-logql`), and field extraction
//! (the pipeline's `json`/`logfmt`). Everything here is synchronous, pure
//! computation over lines, so it can run on any thread and be measured
//! alone.

pub mod anomaly;
pub mod errors;
pub mod eval;
pub mod groups;
pub mod index;
pub mod inject;
pub mod level;
pub mod mask;
pub mod miner;
pub mod report;

pub use mask::WILDCARD;
pub use miner::{Miner, MinerConfig, MinerStats, Pattern, PatternId};
