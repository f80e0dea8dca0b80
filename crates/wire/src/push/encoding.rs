//! Undoing HTTP `Content-Encoding` (gzip, deflate, snappy) within a size
//! bound.
//!
//! Every decoder stops as soon as the output would pass the limit, so a
//! small "zip bomb" never becomes a large allocation: gzip and deflate are
//! read through `Read::take(limit + 1)`; a snappy block declares its length
//! up front, which is checked before anything is allocated.
//!
//! Snappy comes in two shapes: the block format Loki uses for protobuf
//! bodies, and the framing format some HTTP clients mean by
//! `Content-Encoding: snappy`. The framing format starts with a fixed stream
//! identifier chunk, so we recognise it and accept both.
//!
//! Not here: choosing which layers a body has (see the parent module).

use crate::WireError;
use crate::budget::{Reservation, STEP};
use std::borrow::Cow;
use std::io::Read;

/// The compressions a push body may arrive in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentEncoding {
    Identity,
    Gzip,
    Deflate,
    Snappy,
}

/// First chunk of every snappy framing-format stream: chunk type 0xff,
/// length 6, then "sNaPpY".
const SNAPPY_FRAME_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

impl ContentEncoding {
    /// Reads a `Content-Encoding` header; a missing or empty header and
    /// `identity` mean no compression.
    pub(crate) fn from_header(header: Option<&str>) -> Result<Self, WireError> {
        let value = header.unwrap_or("").trim();
        let encoding = if value.is_empty() || value.eq_ignore_ascii_case("identity") {
            ContentEncoding::Identity
        } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
            ContentEncoding::Gzip
        } else if value.eq_ignore_ascii_case("deflate") {
            ContentEncoding::Deflate
        } else if value.eq_ignore_ascii_case("snappy") {
            ContentEncoding::Snappy
        } else {
            return Err(WireError::UnsupportedContentEncoding(WireError::quote(
                value,
            )));
        };
        Ok(encoding)
    }

    fn name(self) -> &'static str {
        match self {
            ContentEncoding::Identity => "uncompressed",
            ContentEncoding::Gzip => "gzip",
            ContentEncoding::Deflate => "deflate",
            ContentEncoding::Snappy => "snappy",
        }
    }

    /// Decompresses `body`, failing with [`WireError::TooLarge`] as soon as
    /// the output would exceed `max` bytes.
    pub(crate) fn decode<'b>(
        self,
        body: &'b [u8],
        max: usize,
        held: &mut Reservation,
    ) -> Result<Cow<'b, [u8]>, WireError> {
        match self {
            ContentEncoding::Identity => {
                if body.len() > max {
                    return Err(WireError::TooLarge { limit: max });
                }
                Ok(Cow::Borrowed(body))
            }
            ContentEncoding::Gzip => {
                // Multi-member, like Go's gzip reader: some clients
                // concatenate members.
                read_bounded(
                    self,
                    flate2::read::MultiGzDecoder::new(body),
                    body.len(),
                    max,
                    held,
                )
            }
            ContentEncoding::Deflate => {
                // HTTP's "deflate" is zlib-wrapped, but some clients send raw
                // deflate; a zlib header is recognisable (RFC 1950: method 8,
                // header checksum divisible by 31).
                if is_zlib_header(body) {
                    read_bounded(
                        self,
                        flate2::read::ZlibDecoder::new(body),
                        body.len(),
                        max,
                        held,
                    )
                } else {
                    read_bounded(
                        self,
                        flate2::read::DeflateDecoder::new(body),
                        body.len(),
                        max,
                        held,
                    )
                }
            }
            ContentEncoding::Snappy if body.starts_with(SNAPPY_FRAME_MAGIC) => read_bounded(
                self,
                snap::read::FrameDecoder::new(body),
                body.len(),
                max,
                held,
            ),
            ContentEncoding::Snappy => {
                let declared = match snap::raw::decompress_len(body) {
                    Ok(len) => len,
                    // Claims more than snap will ever inflate (4 GiB).
                    Err(snap::Error::TooBig { .. }) => usize::MAX,
                    Err(e) => return Err(self.corrupt(e)),
                };
                if declared > max {
                    return Err(WireError::TooLarge { limit: max });
                }
                held.cover(held.held().saturating_add(declared))?;
                let plain = snap::raw::Decoder::new()
                    .decompress_vec(body)
                    .map_err(|e| self.corrupt(e))?;
                Ok(Cow::Owned(plain))
            }
        }
    }

    fn corrupt(self, e: impl std::fmt::Display) -> WireError {
        WireError::Decompress {
            encoding: self.name(),
            reason: e.to_string(),
        }
    }
}

fn is_zlib_header(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// Reads `reader` to the end, refusing more than `max` bytes, reserving
/// what it inflates in `held` step by step (see [`crate::budget`]).
fn read_bounded(
    encoding: ContentEncoding,
    reader: impl Read,
    compressed_len: usize,
    max: usize,
    held: &mut Reservation,
) -> Result<Cow<'static, [u8]>, WireError> {
    // Text compresses about 4-10x; start there and let the vector grow,
    // rather than trusting anything the body says about itself.
    let start = compressed_len.saturating_mul(4).min(max);
    // Outer layers of the same push keep what they hold.
    let base = held.held();
    held.cover(base + start.max(STEP))?;
    let mut plain = Vec::with_capacity(start);
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut reader = reader.take(limit);
    loop {
        // Room for the next step before it is inflated.
        held.cover(base + plain.len() + STEP)?;
        let before = plain.len();
        (&mut reader)
            .take(STEP as u64)
            .read_to_end(&mut plain)
            .map_err(|e| encoding.corrupt(e))?;
        if plain.len() == before {
            break;
        }
    }
    if plain.len() > max {
        return Err(WireError::TooLarge { limit: max });
    }
    Ok(Cow::Owned(plain))
}
