//! Converting label values the way Loki's Go code does: numbers
//! (`strconv.ParseFloat`), durations (`time.ParseDuration`) and byte sizes
//! (`humanize.ParseBytes`). Label filters, `unwrap` and template functions
//! share these, so a value converts the same way everywhere.
//!
//! Errors are strings worded like Go's, because they end up in
//! `__error_details__` where users compare them with Loki's.

/// `strconv.ParseFloat(s, 64)`: decimal or exponent notation, `Inf`,
/// `NaN`; no surrounding spaces.
pub fn parse_float(s: &str) -> Result<f64, String> {
    let invalid = || format!("strconv.ParseFloat: parsing {s:?}: invalid syntax");
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return Err(invalid());
    }
    let body = s.trim_start_matches(['+', '-']);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return s.parse::<f64>().map_err(|_| invalid());
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return Err(invalid());
    }
    s.parse::<f64>().map_err(|_| invalid())
}

const DURATION_UNITS: &[(&str, f64)] = &[
    ("ns", 1.0),
    ("us", 1e3),
    ("µs", 1e3),
    ("μs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
];

/// `time.ParseDuration`: `300ms`, `-1.5h`, `2h45m`, `0`; nanoseconds.
/// Units are ns, us (µs), ms, s, m, h; days are not accepted, as in Go.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {s:?}"));
        }
        let (_, scale) = DURATION_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .ok_or_else(|| format!("time: unknown unit {unit:?} in duration {s:?}"))?;
        rest = &rest[unit_len..];
        let value: f64 = num.parse().map_err(|_| invalid())?;
        total += value * scale;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let nanos = total.round() as i64;
    Ok(if neg { -nanos } else { nanos })
}

const BYTE_UNITS: &[(&str, f64)] = &[
    ("", 1.0),
    ("b", 1.0),
    ("k", 1e3),
    ("kb", 1e3),
    ("ki", 1024.0),
    ("kib", 1024.0),
    ("m", 1e6),
    ("mb", 1e6),
    ("mi", 1048576.0),
    ("mib", 1048576.0),
    ("g", 1e9),
    ("gb", 1e9),
    ("gi", 1073741824.0),
    ("gib", 1073741824.0),
    ("t", 1e12),
    ("tb", 1e12),
    ("ti", 1099511627776.0),
    ("tib", 1099511627776.0),
    ("p", 1e15),
    ("pb", 1e15),
    ("pi", 1125899906842624.0),
    ("pib", 1125899906842624.0),
    ("e", 1e18),
    ("eb", 1e18),
    ("ei", 1152921504606846976.0),
    ("eib", 1152921504606846976.0),
];

/// `humanize.ParseBytes`: `42`, `42 MB`, `1.5KiB`, `1,024 B`; case
/// insensitive, a missing unit means bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(s.len());
    let num: String = s[..num_end].chars().filter(|&c| c != ',').collect();
    let unit = s[num_end..].trim().to_ascii_lowercase();
    let value: f64 = num
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing {num:?}: invalid syntax"))?;
    let (_, mult) = BYTE_UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .ok_or_else(|| format!("unhandled size name: {unit}"))?;
    let bytes = value * mult;
    if bytes >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats() {
        assert_eq!(parse_float("1.5"), Ok(1.5));
        assert_eq!(parse_float("-2e3"), Ok(-2000.0));
        assert!(parse_float("+Inf").unwrap().is_infinite());
        assert!(parse_float("NaN").unwrap().is_nan());
        assert!(parse_float(" 1").is_err());
        assert_eq!(
            parse_float("abc"),
            Err("strconv.ParseFloat: parsing \"abc\": invalid syntax".to_string())
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_duration("-1.5h"), Ok(-5_400_000_000_000));
        assert_eq!(parse_duration("2h45m"), Ok(9_900_000_000_000));
        assert_eq!(parse_duration("1µs"), Ok(1_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("12").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(
            parse_duration("abc"),
            Err("time: invalid duration \"abc\"".to_string())
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("42"), Ok(42));
        assert_eq!(parse_bytes("42 MB"), Ok(42_000_000));
        assert_eq!(parse_bytes("42mib"), Ok(44_040_192));
        assert_eq!(parse_bytes("1.5KiB"), Ok(1536));
        assert_eq!(parse_bytes("1,024 B"), Ok(1024));
        assert!(parse_bytes("12 XB").is_err());
        assert!(parse_bytes("x").is_err());
    }
}
