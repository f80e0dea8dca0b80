//! Decoding `POST /loki/api/v1/push` bodies into a [`PushRequest`].
//!
//! A body goes through two steps. First the HTTP `Content-Encoding` is
//! undone ([`encoding`]), never inflating more than
//! [`DecodeLimits::max_decompressed_bytes`]. Then the `Content-Type` picks
//! the parser: [`json`] for `application/json`, [`proto`] for Loki's
//! snappy-compressed protobuf (`application/x-protobuf`, and Loki's default
//! when the header is missing).
//!
//! | Content-Type        | Content-Encoding     | body                              |
//! |---------------------|----------------------|-----------------------------------|
//! | json                | none                 | JSON                              |
//! | json                | gzip/deflate/snappy  | compressed JSON                   |
//! | protobuf or missing | none or snappy       | snappy block of protobuf (Loki's) |
//! | protobuf or missing | gzip/deflate         | compressed snappy block of protobuf |
//!
//! `Content-Encoding: snappy` with protobuf (what `tracing-loki` sends)
//! names the snappy layer Loki expects anyway, so it is not undone twice.
//!
//! Not here: label validation and ingest limits (line size, label counts,
//! sample age). The decoder keeps each stream's labels as sent
//! ([`StreamLabels`]) so the server can validate them with
//! [`PushStream::label_set`] and name the offending stream in its answer.

mod encoding;
mod json;
pub mod proto;

use crate::WireError;
use crate::budget::Reservation;
use skald_model::{Entry, Label, LabelSet, ModelError};
use std::fmt;

/// A decoded push: streams in the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushRequest {
    pub streams: Vec<PushStream>,
}

impl PushRequest {
    /// Number of entries over all streams.
    pub fn entry_count(&self) -> usize {
        self.streams.iter().map(|s| s.entries.len()).sum()
    }
}

/// One stream of a push: its labels as sent and its entries in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushStream {
    pub labels: StreamLabels,
    pub entries: Vec<Entry>,
}

/// A stream's labels in the form the client sent them, not yet validated.
///
/// Protobuf carries a Prometheus-style selector string (`{app="api"}`); JSON
/// carries an object, which we keep as name/value pairs in the order sent
/// rather than print as a selector only to parse it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamLabels {
    /// `{name="value", ...}` text, from protobuf.
    Selector(String),
    /// Name/value pairs in the order sent, from JSON; may hold duplicates
    /// and invalid names, which [`StreamLabels::to_label_set`] rejects.
    Pairs(Vec<Label>),
}

impl StreamLabels {
    /// Parses and validates the labels into a [`LabelSet`].
    pub fn to_label_set(&self) -> Result<LabelSet, ModelError> {
        match self {
            StreamLabels::Selector(text) => LabelSet::parse(text),
            StreamLabels::Pairs(pairs) => LabelSet::new(pairs.clone()),
        }
    }

    /// Like [`StreamLabels::to_label_set`], without copying JSON pairs.
    pub fn into_label_set(self) -> Result<LabelSet, ModelError> {
        match self {
            StreamLabels::Selector(text) => LabelSet::parse(&text),
            StreamLabels::Pairs(pairs) => LabelSet::new(pairs),
        }
    }
}

impl fmt::Display for StreamLabels {
    /// The selector text as sent, or the pairs printed as a selector that
    /// `LabelSet::parse` reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamLabels::Selector(text) => f.write_str(text),
            StreamLabels::Pairs(pairs) => {
                f.write_str("{")?;
                for (i, l) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}=", l.name)?;
                    write_go_quoted(f, &l.value)?;
                }
                f.write_str("}")
            }
        }
    }
}

/// `"value"` with the escapes `LabelSet::parse` reads back.
fn write_go_quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    use fmt::Write;
    f.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl PushStream {
    /// The stream's validated labels; the error names the stream by its
    /// index in the request.
    pub fn label_set(&self, stream_index: usize) -> Result<LabelSet, WireError> {
        self.labels
            .to_label_set()
            .map_err(|source| WireError::Labels {
                stream: stream_index,
                source,
            })
    }
}

/// Bounds on what one push body may cost us to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest body after undoing every compression layer, in bytes;
    /// enforced while inflating (default 100 MiB, Loki's
    /// `distributor.max_recv_msg_size`).
    pub max_decompressed_bytes: usize,
    /// Most streams, entries and structured-metadata pairs together (default
    /// 2 million). Each costs about 50 bytes of memory beyond its text, while
    /// an empty protobuf entry is two bytes on the wire: without this bound a
    /// 100 MiB body could become gigabytes.
    pub max_items: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_decompressed_bytes: 100 << 20,
            max_items: 2_000_000,
        }
    }
}

/// The two body formats of Loki's push endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushFormat {
    Json,
    /// A snappy block holding a `PushRequest` protobuf message.
    Protobuf,
}

impl PushFormat {
    /// Picks the format from a `Content-Type` header. Media-type parameters
    /// (`; charset=utf-8`) and case are ignored; a missing or empty header
    /// means protobuf, as in Loki. Other types are refused rather than
    /// guessed at, so a client that forgot its header learns why.
    pub fn from_content_type(content_type: Option<&str>) -> Result<PushFormat, WireError> {
        let Some(raw) = content_type else {
            return Ok(PushFormat::Protobuf);
        };
        let media_type = raw.split(';').next().unwrap_or("").trim();
        if media_type.is_empty() {
            return Ok(PushFormat::Protobuf);
        }
        if media_type.eq_ignore_ascii_case("application/json") {
            return Ok(PushFormat::Json);
        }
        const PROTOBUF: [&str; 3] = [
            "application/x-protobuf",
            "application/protobuf",
            "application/vnd.google.protobuf",
        ];
        if PROTOBUF.iter().any(|p| media_type.eq_ignore_ascii_case(p)) {
            return Ok(PushFormat::Protobuf);
        }
        Err(WireError::UnsupportedContentType(WireError::quote(raw)))
    }
}

/// Decodes a push body given its `Content-Type` and `Content-Encoding`
/// headers.
///
/// Errors are [`WireErrorKind::TooLarge`](crate::WireErrorKind::TooLarge)
/// when a limit is exceeded, `Unsupported` for unknown headers and
/// `Malformed` otherwise, naming the stream and entry at fault when there is
/// one.
pub fn decode_push(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: &DecodeLimits,
) -> Result<PushRequest, WireError> {
    decode_push_within(
        content_type,
        content_encoding,
        body,
        limits,
        &mut Reservation::default(),
    )
}

/// [`decode_push`], reserving the decompressed bytes in `held` (a
/// reservation of the server's [`crate::DecompressBudget`]) as they are
/// inflated; the caller drops it once the push is done with.
pub fn decode_push_within(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: &DecodeLimits,
    held: &mut Reservation,
) -> Result<PushRequest, WireError> {
    let format = PushFormat::from_content_type(content_type)?;
    let encoding = encoding::ContentEncoding::from_header(content_encoding)?;
    let max = limits.max_decompressed_bytes;
    match format {
        PushFormat::Json => {
            let plain = encoding.decode(body, max, held)?;
            // Decoding copies each line out of the body: at most its size.
            held.cover(held.held().saturating_add(plain.len()))?;
            json::decode(&plain, limits)
        }
        PushFormat::Protobuf => {
            // The snappy layer is part of the format; a `snappy` encoding
            // header names that same layer.
            let outer = match encoding {
                encoding::ContentEncoding::Snappy => encoding::ContentEncoding::Identity,
                other => other,
            };
            let snappy = outer.decode(body, max, held)?;
            let message = encoding::ContentEncoding::Snappy.decode(&snappy, max, held)?;
            held.cover(held.held().saturating_add(message.len()))?;
            proto::decode(&message, limits)
        }
    }
}

/// Undoes an HTTP `Content-Encoding` (none, gzip, deflate, snappy) within
/// `max_decompressed_bytes`, for bodies other than Loki's push (OTLP).
/// What it inflates is reserved in `held`, as for Loki's push.
pub fn decode_content_encoding<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    max_decompressed_bytes: usize,
    held: &mut Reservation,
) -> Result<std::borrow::Cow<'a, [u8]>, WireError> {
    encoding::ContentEncoding::from_header(content_encoding)?.decode(
        body,
        max_decompressed_bytes,
        held,
    )
}

/// Counts decoded items against [`DecodeLimits::max_items`].
pub(crate) struct ItemBudget {
    left: usize,
    limit: usize,
}

impl ItemBudget {
    pub(crate) fn new(limits: &DecodeLimits) -> Self {
        ItemBudget {
            left: limits.max_items,
            limit: limits.max_items,
        }
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<(), WireError> {
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(WireError::TooManyItems { limit: self.limit }),
        }
    }
}
