//! Prometheus durations (`30s`, `1h30m`, `2d`, `500ms`) as rule files
//! write them: whole units from largest to smallest, no fractions.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration read from or written to a rule file, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct PromDuration(pub Duration);

const UNITS: &[(&str, u64)] = &[
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

impl PromDuration {
    pub fn parse(text: &str) -> Result<PromDuration, String> {
        let bad = || format!("not a valid duration string: {text:?}");
        if text == "0" {
            return Ok(PromDuration(Duration::ZERO));
        }
        if text.is_empty() {
            return Err(bad());
        }
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut total: u64 = 0;
        // Units must come in decreasing order, each at most once.
        let mut last_unit = 0usize;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(bad());
            }
            let n: u64 = text[start..i].parse().map_err(|_| bad())?;
            let unit_start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit = &text[unit_start..i];
            let pos = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
            if pos < last_unit {
                return Err(bad());
            }
            last_unit = pos + 1;
            total = n
                .checked_mul(UNITS[pos].1)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(bad)?;
        }
        Ok(PromDuration(Duration::from_millis(total)))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl fmt::Display for PromDuration {
    /// Prometheus' canonical form: `1h30m`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            // Prometheus prints weeks only when they divide evenly, like
            // years; days, hours, minutes, seconds, ms always.
            if (*unit == "y" || *unit == "w") && !ms.is_multiple_of(*size) {
                continue;
            }
            if ms >= *size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PromDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers for `Duration` fields of configuration, written as
/// Prometheus durations (`"1m"`).
pub mod serde_duration {
    use super::PromDuration;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        PromDuration(*d).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(PromDuration::deserialize(d)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_prometheus_durations() {
        for (text, ms, canonical) in [
            ("30s", 30_000, "30s"),
            ("1h30m", 5_400_000, "1h30m"),
            ("90m", 5_400_000, "1h30m"),
            ("500ms", 500, "500ms"),
            ("1d", 86_400_000, "1d"),
            ("2w", 14 * 86_400_000, "2w"),
            ("0s", 0, "0s"),
            ("0", 0, "0s"),
        ] {
            let d = PromDuration::parse(text).unwrap();
            assert_eq!(d.0.as_millis() as u64, ms, "{text}");
            assert_eq!(d.to_string(), canonical, "{text}");
        }
        for bad in ["", "5", "1.5m", "m", "5x", "1m1h", "1s1s", "-1m"] {
            assert!(PromDuration::parse(bad).is_err(), "{bad}");
        }
    }
}
