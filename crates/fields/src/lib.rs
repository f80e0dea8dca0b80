//! The fields of structured log lines, read exactly as Loki's parsers read
//! them: a JSON scanner and the flattening of an object into named fields
//! ([`json`]), the logfmt pair scanner ([`logfmt`]), Loki's rule for
//! turning a key into a label name ([`sanitize_label_name`]), and its
//! conversions of values to numbers, durations and byte sizes
//! ([`units`]).
//!
//! Two crates read lines this way and must agree to the byte: the LogQL
//! pipeline (`skald-pipeline`, whose `json` and `logfmt` stages are built on
//! these scanners) and the segment writer (`skald-chunk`), which stores the
//! fields of each block as columns that queries use to skip blocks. One
//! implementation keeps a column from ever describing a line differently
//! than the parser would.
//!
//! Not here: labels, errors as labels, projections and parameters of the
//! parser stages (the pipeline), or the column format (the chunk crate).

pub mod json;
pub mod logfmt;
mod names;
pub mod units;

pub use names::sanitize_label_name;
