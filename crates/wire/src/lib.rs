//! Loki's HTTP wire formats, so every Loki client and Grafana work with Skald
//! unchanged.
//!
//! - [`push`]: decoding `POST /loki/api/v1/push` bodies (JSON or
//!   snappy protobuf, optionally gzip/deflate/snappy encoded) into a
//!   [`PushRequest`], within [`DecodeLimits`].
//! - [`params`]: the query parameters Loki users rely on: times
//!   ([`parse_time`]), durations ([`parse_duration`]) and steps
//!   ([`parse_step`]).
//! - [`response`]: the JSON bodies of the query endpoints (streams, vectors,
//!   matrices, labels, series, errors), including Loki 3's
//!   `categorize-labels` encoding.
//!
//! Not here: HTTP itself (routing, headers, status codes; see
//! `skald-server`), label validation and ingest limits (`skald-model` and
//! the server), and LogQL (`skald-logql`). This crate only turns bytes into
//! typed values and back.

pub mod budget;
mod error;
pub mod params;
pub mod push;
pub mod response;

pub use budget::{DecompressBudget, Reservation};
pub use error::{WireError, WireErrorKind};
pub use params::{parse_duration, parse_step, parse_time};
pub use push::{
    DecodeLimits, PushFormat, PushRequest, PushStream, StreamLabels, decode_content_encoding,
    decode_push, decode_push_within,
};
