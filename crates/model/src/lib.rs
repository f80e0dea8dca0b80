//! The data model every other Skald crate speaks: tenants, label sets,
//! matchers, stream identities, entries, timestamps and ingest limits.
//!
//! Values are parsed and validated once, at the edge, into these types and
//! trusted afterwards: a [`LabelSet`] is always sorted by name with unique,
//! well-formed names; a [`TenantId`] is always a legal tenant name.
//!
//! Not here: any I/O, any encoding to bytes (see `skald-wal` and
//! `skald-chunk`), any query language (see `skald-logql`).

mod error;
mod labels;
mod limits;
mod matcher;
mod tenant;
mod time;

pub use error::ModelError;
pub use labels::{Label, LabelSet, StreamId, is_valid_label_name};
pub use limits::{
    BYTES_IN_MB, Limits, StreamRetention, format_byte_size, format_duration, parse_byte_size,
    parse_duration,
};
pub use matcher::{MatchOp, Matcher};
pub use tenant::DEFAULT_TENANT;
pub use tenant::TenantId;
pub use time::{Timestamp, civil_from_days, days_from_civil, format_rfc3339_nanos};

/// One log entry of a stream: when, what, and the structured metadata that
/// travels with it without being indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ts: Timestamp,
    pub line: String,
    /// Name/value pairs kept beside the line (Loki's structured metadata).
    pub metadata: Vec<Label>,
}

impl Entry {
    pub fn new(ts: Timestamp, line: impl Into<String>) -> Self {
        Entry {
            ts,
            line: line.into(),
            metadata: Vec::new(),
        }
    }

    /// Bytes this entry accounts for in limits and statistics: the line plus
    /// the names and values of its metadata.
    pub fn size(&self) -> usize {
        self.line.len()
            + self
                .metadata
                .iter()
                .map(|l| l.name.len() + l.value.len())
                .sum::<usize>()
    }
}
