//! Durations and byte sizes as LogQL writes them, parsed and printed.
//!
//! Durations accept the union of Prometheus' form (`1y2w3d4h5m6s7ms`, used
//! for ranges and offsets) and Go's `time.ParseDuration` (fractions and
//! `ns`/`us`/`µs`, used in label filters). They are kept as whole
//! nanoseconds in an `i64`. A year is 365 days, a week 7 days.
//!
//! Byte sizes follow the `humanize` package Loki uses: a number and a
//! case-insensitive unit, decimal (`kB`, `MB`, also `k`, `M`) or binary
//! (`KiB`, `Mi`). They are kept as a `u64` count of bytes.
//!
//! Printing picks the shortest exact form, so printing and parsing again
//! gives the same value.

const NS: i64 = 1;
const US: i64 = 1_000;
const MS: i64 = 1_000_000;
const S: i64 = 1_000_000_000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;
const D: i64 = 24 * H;
const W: i64 = 7 * D;
const Y: i64 = 365 * D;

/// Units in the order they are tried while parsing: longer spellings first.
const DURATION_UNITS: &[(&str, i64)] = &[
    ("ns", NS),
    ("us", US),
    ("µs", US),
    ("μs", US),
    ("ms", MS),
    ("s", S),
    ("m", M),
    ("h", H),
    ("d", D),
    ("w", W),
    ("y", Y),
];

/// Parses `1h30m`, `1.5s`, `250ms`, `7d`; `None` unless the whole text is a
/// duration that fits in an `i64` of nanoseconds.
pub(crate) fn parse_duration(text: &str) -> Option<i64> {
    let mut rest = text;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(r) = rest.strip_prefix('.') {
            let frac_len = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            frac_part = &r[..frac_len];
            rest = &r[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let (unit, scale) = DURATION_UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u))
            .copied()?;
        rest = &rest[unit.len()..];
        let whole: i64 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut part = whole.checked_mul(scale)?;
        // Fractions are truncated to whole nanoseconds, as Go does.
        let frac_digits = &frac_part[..frac_part.len().min(18)];
        if !frac_digits.is_empty() {
            let numerator: i128 = frac_digits.parse().ok()?;
            let denominator = 10i128.pow(frac_digits.len() as u32);
            let frac = numerator * i128::from(scale) / denominator;
            part = part.checked_add(i64::try_from(frac).ok()?)?;
        }
        total = total.checked_add(part)?;
    }
    Some(total)
}

/// Prints nanoseconds as the shortest exact duration: `1h30m`, `250ms`,
/// `0s`, `-5m`.
pub(crate) fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    if nanos < 0 {
        out.push('-');
    }
    let mut rest = nanos.unsigned_abs();
    for (unit, scale) in [
        ("y", Y),
        ("w", W),
        ("d", D),
        ("h", H),
        ("m", M),
        ("s", S),
        ("ms", MS),
        ("us", US),
        ("ns", NS),
    ] {
        let scale = scale as u64;
        let n = rest / scale;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
            rest -= n * scale;
        }
    }
    out
}

/// Byte units, lowercase, with their multipliers.
const BYTE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("ki", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("mi", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("gi", 1 << 30),
    ("gib", 1 << 30),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("ti", 1 << 40),
    ("tib", 1 << 40),
    ("p", 1_000_000_000_000_000),
    ("pb", 1_000_000_000_000_000),
    ("pi", 1 << 50),
    ("pib", 1 << 50),
    ("e", 1_000_000_000_000_000_000),
    ("eb", 1_000_000_000_000_000_000),
    ("ei", 1 << 60),
    ("eib", 1 << 60),
];

/// Parses `10KB`, `1.5MiB`, `20b`; `None` unless the whole text is a size
/// with a unit that fits in a `u64`.
pub(crate) fn parse_bytes(text: &str) -> Option<u64> {
    let num_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(num_len);
    if num.is_empty() || unit.is_empty() {
        return None;
    }
    let unit = unit.to_ascii_lowercase();
    let (_, mult) = BYTE_UNITS.iter().find(|(u, _)| *u == unit)?;
    if !num.contains('.') {
        return num.parse::<u64>().ok()?.checked_mul(*mult);
    }
    let value: f64 = num.parse().ok()?;
    let bytes = value * *mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return None;
    }
    Some(bytes as u64)
}

/// Prints a byte count with the largest unit that divides it exactly:
/// `1MiB`, `20KB`, `1500B`.
pub(crate) fn format_bytes(bytes: u64) -> String {
    if bytes == 0 {
        return "0B".to_string();
    }
    const UNITS: &[(&str, u64)] = &[
        ("EiB", 1 << 60),
        ("EB", 1_000_000_000_000_000_000),
        ("PiB", 1 << 50),
        ("PB", 1_000_000_000_000_000),
        ("TiB", 1 << 40),
        ("TB", 1_000_000_000_000),
        ("GiB", 1 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("KB", 1_000),
    ];
    for (unit, mult) in UNITS {
        if bytes.is_multiple_of(*mult) {
            return format!("{}{unit}", bytes / mult);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Some(90 * M));
        assert_eq!(parse_duration("1.5s"), Some(1_500 * MS));
        assert_eq!(parse_duration("250ms"), Some(250 * MS));
        assert_eq!(parse_duration("5µs"), Some(5 * US));
        assert_eq!(parse_duration("7d"), Some(7 * D));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("99999999999y"), None);
        assert_eq!(format_duration(90 * M), "1h30m");
        assert_eq!(format_duration(Y + W + 1), "1y1w1ns");
        assert_eq!(format_duration(-5 * M), "-5m");
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("10KB"), Some(10_000));
        assert_eq!(parse_bytes("1.5MiB"), Some(1_572_864));
        assert_eq!(parse_bytes("20b"), Some(20));
        assert_eq!(parse_bytes("20"), None);
        assert_eq!(parse_bytes("20xb"), None);
        assert_eq!(format_bytes(1 << 20), "1MiB");
        assert_eq!(format_bytes(20_000), "20KB");
        assert_eq!(format_bytes(1500), "1500B");
    }

    proptest! {
        #[test]
        fn duration_round_trip(n in any::<i64>().prop_filter("not min", |n| *n != i64::MIN)) {
            let text = format_duration(n.abs());
            prop_assert_eq!(parse_duration(&text), Some(n.abs()));
        }

        #[test]
        fn bytes_round_trip(n in any::<u64>()) {
            prop_assert_eq!(parse_bytes(&format_bytes(n)), Some(n));
        }
    }
}
