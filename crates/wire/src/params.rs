//! Query parameters as Loki reads them: points in time (`start`, `end`,
//! `time`) and durations (`step`, `since`, `interval`).
//!
//! Times ([`parse_time`]), per Loki's API docs:
//! - an integer is Unix nanoseconds, except that one of 10 characters or
//!   fewer is Unix seconds (so `1700000000` works as well as
//!   `1700000000000000000`);
//! - a number with a fraction (or an exponent) is Unix seconds:
//!   `1700000000.5`; decimal fractions are read exactly, to the nanosecond;
//! - otherwise RFC 3339, with or without fractional seconds, with `Z` or a
//!   numeric offset: `2023-11-14T22:13:20.5+01:00`.
//!
//! Durations ([`parse_duration`], [`parse_step`]): a number of seconds
//! (`15`, `0.25`) or a Prometheus/Go duration: a sequence of
//! number-and-unit pairs with units `ns us µs ms s m h d w y` (`5m`,
//! `1h30m`, `250ms`, `1.5h`, `1d`, `1w`; a year is 365 days, as in
//! Prometheus). Negative durations are refused; all durations fit in an
//! `i64` of nanoseconds, so adding one to a [`Timestamp`] cannot overflow
//! silently when done with `saturating_add`.
//!
//! Not here: defaults (`start` one hour before `end`, ...) and how a
//! parameter is looked up; those belong to the server's handlers.

use crate::WireError;
use skald_model::{Timestamp, days_from_civil};
use std::time::Duration;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Parses a point in time as Loki's query endpoints accept it (see the
/// module docs).
pub fn parse_time(input: &str) -> Result<Timestamp, WireError> {
    let err = |reason: &str| WireError::Time {
        input: WireError::quote(input),
        reason: reason.to_string(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if is_integer(s) {
        let value: i64 = s
            .parse()
            .map_err(|_| err("out of range for unix nanoseconds"))?;
        // Loki's rule: short integers are seconds.
        if s.len() <= 10 {
            return value
                .checked_mul(NANOS_PER_SEC)
                .map(Timestamp)
                .ok_or_else(|| err("out of range"));
        }
        return Ok(Timestamp(value));
    }
    if is_numeric(s) {
        return parse_seconds(s)
            .map(Timestamp)
            .map_err(|reason| err(&reason));
    }
    parse_rfc3339(s).map(Timestamp).map_err(|reason| {
        err(&format!(
            "expected unix nanoseconds, unix seconds or an RFC 3339 time: {reason}"
        ))
    })
}

/// Parses a duration: float seconds or a Prometheus/Go duration string
/// (see the module docs). Zero is allowed.
pub fn parse_duration(input: &str) -> Result<Duration, WireError> {
    let err = |reason: &str| WireError::Duration {
        input: WireError::quote(input),
        reason: reason.to_string(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    let nanos = if is_numeric(s) {
        parse_seconds(s).map_err(|reason| err(&reason))?
    } else {
        parse_units(s).map_err(|reason| err(&reason))?
    };
    if nanos < 0 {
        return Err(err("must not be negative"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Parses a range query's `step`: like [`parse_duration`] (Grafana sends
/// both `15` and `15000ms`), but it must be positive.
pub fn parse_step(input: &str) -> Result<Duration, WireError> {
    let step = parse_duration(input)?;
    if step.is_zero() {
        return Err(WireError::Duration {
            input: WireError::quote(input),
            reason: "step must be positive".to_string(),
        });
    }
    Ok(step)
}

/// `[+-]?[0-9]+`
fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Looks like a plain number (`1.5`, `-2`, `.5`, `1e9`), not a duration or
/// a date: only digits, signs, a dot and an exponent, starting with a digit
/// or a dot after an optional sign.
fn is_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let starts_like_a_number = body.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    let only_number_chars = body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    starts_like_a_number && only_number_chars && body.bytes().any(|b| b.is_ascii_digit())
}

/// Parses a decimal number of seconds into nanoseconds. Plain decimals are
/// read exactly (digits past the ninth decimal are dropped); exponents go
/// through `f64` and are rounded to the nanosecond.
fn parse_seconds(s: &str) -> Result<i64, String> {
    if s.contains(['e', 'E']) {
        let secs: f64 = s.parse().map_err(|_| "not a number".to_string())?;
        let nanos = (secs * 1e9).round();
        // i64::MAX as f64 rounds up to 2^63, so `<` keeps us in range.
        if !nanos.is_finite() || nanos < i64::MIN as f64 || nanos >= i64::MAX as f64 {
            return Err("out of range".to_string());
        }
        return Ok(nanos as i64);
    }
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err("not a number".to_string());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| "out of range".to_string())?
    };
    let nanos = fraction_nanos(fraction);
    let total = whole
        .checked_mul(NANOS_PER_SEC)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(|| "out of range".to_string())?;
    Ok(if negative { -total } else { total })
}

/// The first nine digits of a decimal fraction as nanoseconds.
fn fraction_nanos(digits: &str) -> i64 {
    let mut nanos = 0i64;
    for i in 0..9 {
        let digit = digits.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        nanos = nanos * 10 + digit;
    }
    nanos
}

/// Parses a Prometheus or Go duration such as `1h30m` or `1.5s` into
/// nanoseconds.
fn parse_units(s: &str) -> Result<i64, String> {
    let mut rest = match s.as_bytes().first() {
        Some(b'-') => return Err("must not be negative".to_string()),
        Some(b'+') => &s[1..],
        _ => s,
    };
    if rest.is_empty() {
        return Err("empty".to_string());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(format!(
                "expected a number before {:?}",
                WireError::quote(rest)
            ));
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_nanos: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            "w" => 7 * 86_400 * 1_000_000_000,
            "y" => 365 * 86_400 * 1_000_000_000,
            "" => return Err("missing unit (ns, us, ms, s, m, h, d, w or y)".to_string()),
            other => {
                return Err(format!(
                    "unknown unit {:?}: expected ns, us, ms, s, m, h, d, w or y",
                    WireError::quote(other)
                ));
            }
        };
        // Whole part: at most 19 digits fits i128 arithmetic with any unit
        // below; anything longer is out of range anyway.
        let whole = whole.trim_start_matches('0');
        if whole.len() > 19 {
            return Err("too long".to_string());
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| "too long".to_string())?
        };
        let fraction = i128::from(fraction_nanos(fraction));
        total += whole * unit_nanos + fraction * unit_nanos / 1_000_000_000;
        if total > i128::from(i64::MAX) {
            return Err("too long".to_string());
        }
    }
    Ok(total as i64)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into Unix nanoseconds.
pub(crate) fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let bad = || "not an RFC 3339 time like 2006-01-02T15:04:05Z".to_string();
    if b.len() < 20 {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let part = &b[range];
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err("day or month out of range".to_string());
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("hour, minute or second out of range".to_string());
    }
    let mut rest = &s[19..];
    let mut nanos = 0i64;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_dot.len());
        if digits == 0 {
            return Err(bad());
        }
        nanos = fraction_nanos(&after_dot[..digits]);
        rest = &after_dot[digits..];
    }
    let offset_secs: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if hours > 23 || minutes > 59 {
                return Err("offset out of range".to_string());
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
        - offset_secs;
    secs.checked_mul(NANOS_PER_SEC)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(|| "outside the years 1678 to 2262".to_string())
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use skald_model::format_rfc3339_nanos;

    fn t(s: &str) -> i64 {
        parse_time(s).unwrap().0
    }

    fn d(s: &str) -> Duration {
        parse_duration(s).unwrap()
    }

    #[test]
    fn integers_are_nanos_unless_short() {
        assert_eq!(t("1700000000000000000"), 1_700_000_000_000_000_000);
        assert_eq!(t("1700000000"), 1_700_000_000_000_000_000);
        assert_eq!(t("0"), 0);
        assert_eq!(t("17000000000"), 17_000_000_000);
        assert_eq!(t("-1"), -NANOS_PER_SEC);
        assert!(parse_time("99999999999999999999").is_err());
    }

    #[test]
    fn fractions_are_seconds() {
        assert_eq!(t("1700000000.5"), 1_700_000_000_500_000_000);
        assert_eq!(t("1700000000.123456789"), 1_700_000_000_123_456_789);
        assert_eq!(t("1700000000.1234567891"), 1_700_000_000_123_456_789);
        assert_eq!(t(".5"), 500_000_000);
        assert_eq!(t("1."), NANOS_PER_SEC);
        assert_eq!(t("-1.5"), -1_500_000_000);
        assert_eq!(t("1.7e9"), 1_700_000_000_000_000_000);
        assert!(parse_time("1e300").is_err());
        assert!(parse_time(".").is_err());
    }

    #[test]
    fn rfc3339_with_offsets() {
        assert_eq!(t("2023-11-14T22:13:20Z"), 1_700_000_000_000_000_000);
        assert_eq!(
            t("2023-11-14T22:13:20.123456789Z"),
            1_700_000_000_123_456_789
        );
        assert_eq!(t("2023-11-14T23:13:20.5+01:00"), 1_700_000_000_500_000_000);
        assert_eq!(t("2023-11-14T21:13:20-01:00"), 1_700_000_000_000_000_000);
        assert_eq!(t("1970-01-01t00:00:00z"), 0);
        assert_eq!(t("2024-02-29T00:00:00Z"), 1_709_164_800_000_000_000);
        for bad in [
            "2023-02-29T00:00:00Z",
            "2023-11-14 22:13:20Z",
            "2023-11-14T22:13:20",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0100",
            "now",
            "",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_errors_quote_the_input() {
        let e = parse_time("yesterday").unwrap_err();
        assert!(
            e.to_string().starts_with(r#"invalid time "yesterday": "#),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(d("5m"), Duration::from_secs(300));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("250ms"), Duration::from_millis(250));
        assert_eq!(d("1d"), Duration::from_secs(86_400));
        assert_eq!(d("1w"), Duration::from_secs(7 * 86_400));
        assert_eq!(d("1y"), Duration::from_secs(365 * 86_400));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("1us"), Duration::from_micros(1));
        assert_eq!(d("1µs"), Duration::from_micros(1));
        assert_eq!(d("15"), Duration::from_secs(15));
        assert_eq!(d("0.25"), Duration::from_millis(250));
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d("15000ms"), Duration::from_secs(15));
        assert_eq!(d("1m1m"), Duration::from_secs(120));
        for bad in [
            "", "-5m", "-1", "5x", "m", "1.2.3s", "1000y", "1e300", "inf", "NaN",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn steps_must_be_positive() {
        assert_eq!(parse_step("15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_step("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_step("0").is_err());
        assert!(parse_step("0s").is_err());
        assert!(parse_step("-15").is_err());
    }

    /// Formats like Go's `time.Duration.String` (`1h2m3.5s`), which is also
    /// what a client such as Grafana or logcli may send.
    fn go_duration(nanos: u64) -> String {
        if nanos == 0 {
            return "0s".to_string();
        }
        let (h, rest) = (nanos / 3_600_000_000_000, nanos % 3_600_000_000_000);
        let (m, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        if rest > 0 {
            let fraction = format!("{:09}", rest % 1_000_000_000);
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                out.push_str(&format!("{}s", rest / 1_000_000_000));
            } else {
                out.push_str(&format!("{}.{fraction}s", rest / 1_000_000_000));
            }
        }
        out
    }

    proptest! {
        #[test]
        fn rfc3339_round_trip(nanos in -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000) {
            let text = format_rfc3339_nanos(Timestamp(nanos));
            prop_assert_eq!(parse_time(&text).unwrap(), Timestamp(nanos));
        }

        #[test]
        fn offset_times_agree_with_utc(
            secs in 0i64..4_000_000_000,
            offset_min in -1439i64..=1439,
        ) {
            let local = Timestamp((secs + offset_min * 60) * NANOS_PER_SEC);
            let text = format_rfc3339_nanos(local);
            let sign = if offset_min < 0 { '-' } else { '+' };
            let abs = offset_min.abs();
            let with_offset = format!("{}{sign}{:02}:{:02}", &text[..text.len() - 1], abs / 60, abs % 60);
            prop_assert_eq!(parse_time(&with_offset).unwrap(), Timestamp(secs * NANOS_PER_SEC));
        }

        #[test]
        fn integer_nanos_round_trip(nanos in 10_000_000_000i64..i64::MAX) {
            prop_assert_eq!(parse_time(&nanos.to_string()).unwrap(), Timestamp(nanos));
        }

        #[test]
        fn integer_seconds_round_trip(secs in -999_999_999i64..9_223_372_036) {
            prop_assert_eq!(parse_time(&secs.to_string()).unwrap(), Timestamp(secs * NANOS_PER_SEC));
        }

        #[test]
        fn fractional_seconds_round_trip(secs in 0i64..9_000_000_000, nanos in 0i64..NANOS_PER_SEC) {
            let text = format!("{secs}.{nanos:09}");
            prop_assert_eq!(parse_time(&text).unwrap(), Timestamp(secs * NANOS_PER_SEC + nanos));
        }

        #[test]
        fn go_durations_round_trip(nanos in 0u64..(i64::MAX as u64)) {
            let text = go_duration(nanos);
            prop_assert_eq!(parse_duration(&text).unwrap(), Duration::from_nanos(nanos));
        }

        #[test]
        fn prometheus_durations_round_trip(
            w in 0u64..100, d in 0u64..7, h in 0u64..24, m in 0u64..60, s in 0u64..60, ms in 0u64..1000,
        ) {
            let mut text = String::new();
            for (n, unit) in [(w, "w"), (d, "d"), (h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
                if n > 0 {
                    text.push_str(&format!("{n}{unit}"));
                }
            }
            prop_assume!(!text.is_empty());
            let expected = ((((w * 7 + d) * 24 + h) * 60 + m) * 60 + s) * 1000 + ms;
            prop_assert_eq!(parse_duration(&text).unwrap(), Duration::from_millis(expected));
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_time(&s);
            let _ = parse_duration(&s);
        }
    }
}
