//! Variable-length integers (LEB128 and zigzag) and a bounds-checked cursor
//! over untrusted bytes: the primitives every format in this crate is built
//! from.
//!
//! Not here: any knowledge of what the numbers mean. A [`Cursor`] reports
//! *where* and *what kind* of problem it met as a [`Malformed`]; the format
//! code turns that into a [`crate::ChunkError`] naming the file and offset.

use std::fmt;

/// Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
#[inline]
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Maps signed to unsigned so that small magnitudes stay small.
#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// What a decoder found wrong, and at which byte of the buffer it was
/// decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub at: usize,
    pub what: String,
}

impl Malformed {
    pub(crate) fn new(at: usize, what: impl Into<String>) -> Self {
        Malformed {
            at,
            what: what.into(),
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.what, self.at)
    }
}

/// Reads from a byte slice, never past its end.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// An error at the current position.
    pub(crate) fn malformed(&self, what: impl Into<String>) -> Malformed {
        Malformed::new(self.pos, what)
    }

    /// Reads an unsigned LEB128 varint; `field` names it in errors.
    #[inline]
    pub(crate) fn uvarint(&mut self, field: &str) -> Result<u64, Malformed> {
        // Fast path: most varints in our formats are one byte.
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        let start = self.pos;
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(Malformed::new(start, format!("truncated {field}")));
            };
            self.pos += 1;
            // The tenth byte may only contribute the top bit.
            if shift == 63 && b > 1 {
                return Err(Malformed::new(start, format!("{field} overflows 64 bits")));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// Reads a varint that must be at most `max`.
    #[inline]
    pub(crate) fn uvarint_max(&mut self, field: &str, max: u64) -> Result<u64, Malformed> {
        let start = self.pos;
        let v = self.uvarint(field)?;
        if v > max {
            return Err(Malformed::new(
                start,
                format!("{field} {v} exceeds the maximum of {max}"),
            ));
        }
        Ok(v)
    }

    /// Reads a zigzag-encoded signed varint.
    #[inline]
    pub(crate) fn ivarint(&mut self, field: &str) -> Result<i64, Malformed> {
        self.uvarint(field).map(unzigzag)
    }

    pub(crate) fn bytes(&mut self, n: usize, field: &str) -> Result<&'a [u8], Malformed> {
        if n > self.remaining() {
            return Err(self.malformed(format!(
                "truncated {field}: needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], Malformed> {
        let bytes = self.bytes(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &str) -> Result<u8, Malformed> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16_le(&mut self, field: &str) -> Result<u16, Malformed> {
        self.array(field).map(u16::from_le_bytes)
    }

    pub(crate) fn u32_le(&mut self, field: &str) -> Result<u32, Malformed> {
        self.array(field).map(u32::from_le_bytes)
    }

    pub(crate) fn u64_le(&mut self, field: &str) -> Result<u64, Malformed> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// Reads a varint length followed by that many bytes of UTF-8.
    pub(crate) fn string(&mut self, field: &str) -> Result<&'a str, Malformed> {
        let len = self.uvarint(field)?;
        let start = self.pos;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let bytes = self.bytes(len, field)?;
        std::str::from_utf8(bytes)
            .map_err(|_| Malformed::new(start, format!("{field} is not valid utf-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_truncated_and_overlong_varints() {
        assert!(Cursor::new(&[0x80]).uvarint("x").is_err());
        let eleven = [0xff; 11];
        assert!(Cursor::new(&eleven).uvarint("x").is_err());
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(Cursor::new(&max).uvarint("x"), Ok(u64::MAX));
        max[9] = 0x02;
        assert!(Cursor::new(&max).uvarint("x").is_err());
    }

    proptest! {
        #[test]
        fn uvarint_round_trip(vals in proptest::collection::vec(any::<u64>(), 0..50)) {
            let mut buf = Vec::new();
            for &v in &vals {
                put_uvarint(&mut buf, v);
            }
            let mut c = Cursor::new(&buf);
            for &v in &vals {
                prop_assert_eq!(c.uvarint("v").unwrap(), v);
            }
            prop_assert!(c.is_at_end());
        }

        #[test]
        fn zigzag_round_trip(v in any::<i64>()) {
            prop_assert_eq!(unzigzag(zigzag(v)), v);
        }

        #[test]
        fn cursor_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut c = Cursor::new(&bytes);
            while !c.is_at_end() {
                if c.string("s").is_err() && c.uvarint("v").is_err() && c.u32_le("u").is_err() {
                    break;
                }
            }
        }
    }
}
