//! The WAL record of one accepted push: which tenant, which streams, which
//! entries. The WAL frames and checksums records; this module gives them
//! meaning.
//!
//! # Record format (version 1)
//!
//! ```text
//! u8        version (1)
//! str       tenant
//! uvarint   stream count
//! per stream:
//!   uvarint   label count, then per label: str name, str value
//!   uvarint   entry count
//!   per entry:
//!     svarint   timestamp minus the previous entry's (the first: minus 0)
//!     str       line
//!     uvarint   metadata count, then per pair: str name, str value
//! str = uvarint byte length, then UTF-8 bytes
//! ```
//!
//! Decoding trusts nothing: the WAL's checksum catches disk corruption, but
//! a record from a newer version or a bug must still give an error, never a
//! panic or a huge allocation.

use skald_model::{Entry, Label, LabelSet, TenantId, Timestamp};

const VERSION: u8 = 1;

/// One stream's entries in a push, labels already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamBatch {
    pub labels: LabelSet,
    pub entries: Vec<Entry>,
}

pub fn encode(tenant: &TenantId, streams: &[StreamBatch], out: &mut Vec<u8>) {
    out.push(VERSION);
    put_str(out, tenant.as_str());
    put_uvarint(out, streams.len() as u64);
    for s in streams {
        put_uvarint(out, s.labels.len() as u64);
        for l in s.labels.labels() {
            put_str(out, &l.name);
            put_str(out, &l.value);
        }
        put_uvarint(out, s.entries.len() as u64);
        let mut prev = 0i64;
        for e in &s.entries {
            put_svarint(out, e.ts.0.wrapping_sub(prev));
            prev = e.ts.0;
            put_str(out, &e.line);
            put_uvarint(out, e.metadata.len() as u64);
            for m in &e.metadata {
                put_str(out, &m.name);
                put_str(out, &m.value);
            }
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("wal record is malformed at byte {pos}: {what}")]
pub struct RecordError {
    pub pos: usize,
    pub what: &'static str,
}

pub fn decode(buf: &[u8]) -> Result<(TenantId, Vec<StreamBatch>), RecordError> {
    let mut r = Reader { buf, pos: 0 };
    if r.byte()? != VERSION {
        return Err(r.err("unknown record version"));
    }
    let tenant = TenantId::new(r.str()?).map_err(|_| r.err("invalid tenant"))?;
    let n_streams = r.count()?;
    let mut streams = Vec::with_capacity(n_streams);
    for _ in 0..n_streams {
        let n_labels = r.count()?;
        let mut labels = Vec::with_capacity(n_labels);
        for _ in 0..n_labels {
            let name = r.str()?.to_string();
            let value = r.str()?.to_string();
            labels.push(Label { name, value });
        }
        let labels = LabelSet::new(labels).map_err(|_| r.err("invalid label set"))?;
        let n_entries = r.count()?;
        let mut entries = Vec::with_capacity(n_entries);
        let mut prev = 0i64;
        for _ in 0..n_entries {
            let ts = prev.wrapping_add(r.svarint()?);
            prev = ts;
            let line = r.str()?.to_string();
            let n_meta = r.count()?;
            let mut metadata = Vec::with_capacity(n_meta);
            for _ in 0..n_meta {
                let name = r.str()?.to_string();
                let value = r.str()?.to_string();
                metadata.push(Label { name, value });
            }
            entries.push(Entry {
                ts: Timestamp(ts),
                line,
                metadata,
            });
        }
        streams.push(StreamBatch { labels, entries });
    }
    if r.pos != buf.len() {
        return Err(r.err("trailing bytes"));
    }
    Ok((tenant, streams))
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_svarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, what: &'static str) -> RecordError {
        RecordError {
            pos: self.pos,
            what,
        }
    }

    fn byte(&mut self) -> Result<u8, RecordError> {
        let b = *self.buf.get(self.pos).ok_or(self.err("unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }

    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }

    fn svarint(&mut self) -> Result<i64, RecordError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A count of items that each take at least one byte: bounded by the
    /// bytes left, so a corrupt count cannot allocate more than the record.
    fn count(&mut self) -> Result<usize, RecordError> {
        let n = self.uvarint()?;
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(self.err("count exceeds record size"));
        }
        Ok(n as usize)
    }

    fn str(&mut self) -> Result<&'a str, RecordError> {
        let n = self.count()?;
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        std::str::from_utf8(bytes).map_err(|_| self.err("invalid utf-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            any::<i64>(),
            "\\PC{0,40}",
            proptest::collection::vec(("[a-z_]{1,6}", "\\PC{0,8}"), 0..3),
        )
            .prop_map(|(ts, line, meta)| Entry {
                ts: Timestamp(ts),
                line,
                metadata: meta.into_iter().map(|(n, v)| Label::new(n, v)).collect(),
            })
    }

    fn arb_stream() -> impl Strategy<Value = StreamBatch> {
        (
            proptest::collection::btree_map("[a-z_][a-z0-9_]{0,6}", "\\PC{0,10}", 1..4),
            proptest::collection::vec(arb_entry(), 0..8),
        )
            .prop_map(|(labels, entries)| StreamBatch {
                labels: LabelSet::new(labels.into_iter().map(|(n, v)| Label::new(n, v)).collect())
                    .unwrap(),
                entries,
            })
    }

    proptest! {
        #[test]
        fn round_trip(streams in proptest::collection::vec(arb_stream(), 0..4)) {
            let tenant = TenantId::new("team-1").unwrap();
            let mut buf = Vec::new();
            encode(&tenant, &streams, &mut buf);
            let (t, back) = decode(&buf).unwrap();
            prop_assert_eq!(t, tenant);
            prop_assert_eq!(back, streams);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
        }
    }
}
