//! The crate's one error type, [`WireError`], and its coarse [`WireErrorKind`].
//!
//! Each variant says what is wrong and where (stream and entry index, the
//! offending value), in lowercase without a trailing period so it reads well
//! after a prefix such as `push rejected: `. The kind is what the server maps
//! to an HTTP status: [`WireErrorKind::TooLarge`] to 413,
//! [`WireErrorKind::Unsupported`] to 415, [`WireErrorKind::Malformed`] to 400.
//!
//! Not here: the HTTP status mapping itself (that lives in the server, in one
//! place for every crate's errors).

use skald_model::ModelError;
use thiserror::Error;

/// What can go wrong reading Loki's wire formats.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WireError {
    #[error("unsupported content type {0:?}: expected application/json or application/x-protobuf")]
    UnsupportedContentType(String),

    #[error("unsupported content encoding {0:?}: expected gzip, deflate, snappy or none")]
    UnsupportedContentEncoding(String),

    /// The body inflates beyond `DecodeLimits::max_decompressed_bytes`.
    #[error(
        "push body is larger than the limit of {limit} bytes once decompressed (max_push_decompressed_bytes)"
    )]
    TooLarge { limit: usize },

    /// Decompressing the body would pass the budget shared by all pushes in
    /// flight, and no room came free in time.
    #[error(
        "the server is decompressing {limit} bytes of other pushes (max_inflight_decompressed_bytes); retry shortly"
    )]
    Busy { limit: usize },

    /// The body holds more streams, entries and metadata pairs together than
    /// `DecodeLimits::max_items`.
    #[error("push body holds more than the limit of {limit} streams, entries and metadata pairs")]
    TooManyItems { limit: usize },

    /// The compressed body is corrupt.
    #[error("invalid {encoding} body: {reason}")]
    Decompress {
        encoding: &'static str,
        reason: String,
    },

    /// The JSON is not well formed or not shaped like a push request, and the
    /// problem could not be pinned to one stream or entry.
    #[error("invalid json push body: {reason}")]
    Json { reason: String },

    /// The protobuf message is not well formed, outside any stream.
    #[error("invalid protobuf push body: {reason}")]
    Protobuf { reason: String },

    /// Something is wrong with a stream as a whole (its labels, its shape).
    #[error("stream {stream}: {reason}")]
    Stream { stream: usize, reason: String },

    /// Something is wrong with one entry of a stream.
    #[error("stream {stream} entry {entry}: {reason}")]
    Entry {
        stream: usize,
        entry: usize,
        reason: String,
    },

    /// A stream's labels do not parse or validate (from
    /// [`PushStream::label_set`](crate::PushStream::label_set) callers).
    #[error("stream {stream}: {source}")]
    Labels {
        stream: usize,
        #[source]
        source: ModelError,
    },

    /// A query parameter meant as a point in time.
    #[error("invalid time {input:?}: {reason}")]
    Time { input: String, reason: String },

    /// A query parameter meant as a duration (`step`, `since`, `interval`).
    #[error("invalid duration {input:?}: {reason}")]
    Duration { input: String, reason: String },
}

/// The coarse class of a [`WireError`], for status codes and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireErrorKind {
    /// The request is well formed but exceeds a size limit (HTTP 413).
    TooLarge,
    /// The content type or encoding is not one we speak (HTTP 415).
    Unsupported,
    /// The request is malformed (HTTP 400).
    Malformed,
    /// The server is busy decompressing other pushes: retry (HTTP 503).
    Busy,
}

impl WireError {
    pub fn kind(&self) -> WireErrorKind {
        match self {
            WireError::TooLarge { .. } | WireError::TooManyItems { .. } => WireErrorKind::TooLarge,
            WireError::Busy { .. } => WireErrorKind::Busy,
            WireError::UnsupportedContentType(_) | WireError::UnsupportedContentEncoding(_) => {
                WireErrorKind::Unsupported
            }
            _ => WireErrorKind::Malformed,
        }
    }

    /// Whether the request was refused for its size (HTTP 413) rather than
    /// its content.
    pub fn is_too_large(&self) -> bool {
        self.kind() == WireErrorKind::TooLarge
    }

    /// Shortens `input` for quoting in an error: clients can send megabytes.
    pub(crate) fn quote(input: &str) -> String {
        const MAX: usize = 100;
        if input.len() <= MAX {
            return input.to_string();
        }
        let mut end = MAX;
        while !input.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &input[..end])
    }
}
