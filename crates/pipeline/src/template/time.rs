//! Go time layouts (`2006-01-02T15:04:05Z07:00`) for the template functions
//! `date`, `toDate` and for printing times. Times are shown in UTC: a query
//! server has no meaningful local zone.

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

const NS_PER_SEC: i64 = 1_000_000_000;

pub use skald_model::{civil_from_days, days_from_civil};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    /// `-0700` style offsets; `z` true for the `Z07:00` forms; the text.
    Offset {
        z: bool,
        colon: bool,
        seconds: bool,
        hours_only: bool,
    },
    /// Fractional seconds: digits, and whether trailing zeros are trimmed.
    Frac(usize, bool),
}

/// Splits a layout into literal text and elements, as Go recognises them.
fn chunks(layout: &str) -> Vec<Result<Std, &str>> {
    const TABLE: &[(&str, Std)] = &[
        ("January", Std::LongMonth),
        ("Jan", Std::Month),
        ("Monday", Std::LongWeekDay),
        ("Mon", Std::WeekDay),
        ("MST", Std::TZ),
        ("002", Std::ZeroYearDay),
        ("01", Std::ZeroMonth),
        ("02", Std::ZeroDay),
        ("03", Std::ZeroHour12),
        ("04", Std::ZeroMinute),
        ("05", Std::ZeroSecond),
        ("06", Std::Year),
        ("15", Std::Hour),
        ("2006", Std::LongYear),
        ("1", Std::NumMonth),
        ("2", Std::Day),
        ("_2", Std::UnderDay),
        ("3", Std::Hour12),
        ("4", Std::Minute),
        ("5", Std::Second),
        ("PM", Std::PM),
        ("pm", Std::Pm),
        (
            "Z07:00:00",
            Std::Offset {
                z: true,
                colon: true,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "Z070000",
            Std::Offset {
                z: true,
                colon: false,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "Z07:00",
            Std::Offset {
                z: true,
                colon: true,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "Z0700",
            Std::Offset {
                z: true,
                colon: false,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "Z07",
            Std::Offset {
                z: true,
                colon: false,
                seconds: false,
                hours_only: true,
            },
        ),
        (
            "-07:00:00",
            Std::Offset {
                z: false,
                colon: true,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "-070000",
            Std::Offset {
                z: false,
                colon: false,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "-07:00",
            Std::Offset {
                z: false,
                colon: true,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "-0700",
            Std::Offset {
                z: false,
                colon: false,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "-07",
            Std::Offset {
                z: false,
                colon: false,
                seconds: false,
                hours_only: true,
            },
        ),
    ];
    let mut out = Vec::new();
    let mut lit_start = 0;
    let mut i = 0;
    let b = layout.as_bytes();
    while i < b.len() {
        if matches!(b[i], b'.' | b',') && matches!(b.get(i + 1), Some(b'0' | b'9')) {
            let ch = b[i + 1];
            let mut j = i + 1;
            while j < b.len() && b[j] == ch {
                j += 1;
            }
            if !b.get(j).is_some_and(u8::is_ascii_digit) {
                if lit_start < i {
                    out.push(Err(&layout[lit_start..i]));
                }
                out.push(Ok(Std::Frac(j - i - 1, ch == b'9')));
                i = j;
                lit_start = i;
                continue;
            }
        }
        let rest = &layout[i..];
        if let Some((tok, std)) = TABLE.iter().find(|(t, _)| rest.starts_with(t)) {
            // "Jan" must not be followed by a lowercase letter ("January" is
            // matched first); likewise "Mon".
            let next_lower = rest[tok.len()..].starts_with(|c: char| c.is_ascii_lowercase());
            if !(matches!(std, Std::Month | Std::WeekDay) && next_lower) {
                if lit_start < i {
                    out.push(Err(&layout[lit_start..i]));
                }
                out.push(Ok(*std));
                i += tok.len();
                lit_start = i;
                continue;
            }
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    if lit_start < layout.len() {
        out.push(Err(&layout[lit_start..]));
    }
    out
}

/// Formats a UTC time with a Go layout.
pub fn format(ns: i64, layout: &str) -> String {
    let secs = ns.div_euclid(NS_PER_SEC);
    let nanos = ns.rem_euclid(NS_PER_SEC);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s) = (sod / 3600, (sod / 60) % 60, sod % 60);
    let weekday = (days + 4).rem_euclid(7) as usize;
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    let mut out = String::new();
    for chunk in chunks(layout) {
        match chunk {
            Err(lit) => out.push_str(lit),
            Ok(std) => match std {
                Std::LongMonth => out.push_str(MONTHS[mo as usize - 1]),
                Std::Month => out.push_str(&MONTHS[mo as usize - 1][..3]),
                Std::NumMonth => out.push_str(&mo.to_string()),
                Std::ZeroMonth => out.push_str(&format!("{mo:02}")),
                Std::LongWeekDay => out.push_str(DAYS[weekday]),
                Std::WeekDay => out.push_str(&DAYS[weekday][..3]),
                Std::Day => out.push_str(&d.to_string()),
                Std::UnderDay => out.push_str(&format!("{d:>2}")),
                Std::ZeroDay => out.push_str(&format!("{d:02}")),
                Std::ZeroYearDay => out.push_str(&format!("{yday:03}")),
                Std::Hour => out.push_str(&format!("{h:02}")),
                Std::Hour12 => out.push_str(&h12.to_string()),
                Std::ZeroHour12 => out.push_str(&format!("{h12:02}")),
                Std::Minute => out.push_str(&mi.to_string()),
                Std::ZeroMinute => out.push_str(&format!("{mi:02}")),
                Std::Second => out.push_str(&s.to_string()),
                Std::ZeroSecond => out.push_str(&format!("{s:02}")),
                Std::LongYear => out.push_str(&format!("{y:04}")),
                Std::Year => out.push_str(&format!("{:02}", y.rem_euclid(100))),
                Std::PM => out.push_str(if h >= 12 { "PM" } else { "AM" }),
                Std::Pm => out.push_str(if h >= 12 { "pm" } else { "am" }),
                Std::TZ => out.push_str("UTC"),
                Std::Offset {
                    z,
                    colon,
                    seconds,
                    hours_only,
                } => {
                    if z {
                        out.push('Z');
                    } else {
                        out.push_str("+00");
                        if !hours_only {
                            out.push_str(if colon { ":00" } else { "00" });
                        }
                        if seconds {
                            out.push_str(if colon { ":00" } else { "00" });
                        }
                    }
                }
                Std::Frac(n, trim) => {
                    let digits = format!("{nanos:09}");
                    let mut digits = &digits[..n.min(9)];
                    if trim {
                        digits = digits.trim_end_matches('0');
                        if digits.is_empty() {
                            continue;
                        }
                    }
                    out.push('.');
                    out.push_str(digits);
                }
            },
        }
    }
    out
}

/// How Go prints a `time.Time`: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub fn format_default(ns: i64) -> String {
    format(ns, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// Parses text with a Go layout; times without a zone are UTC.
pub fn parse(layout: &str, value: &str) -> Result<i64, String> {
    let bad = || format!("parsing time {value:?} as {layout:?}: cannot parse");
    let mut rest = value;
    let (mut y, mut mo, mut d) = (1i64, 1u32, 1u32);
    let (mut h, mut mi, mut s, mut nanos) = (0i64, 0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    let mut offset = 0i64;
    let num = |rest: &mut &str, min: usize, max: usize| -> Result<i64, String> {
        let len = rest
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        if len < min {
            return Err(bad());
        }
        let v = rest[..len].parse().map_err(|_| bad())?;
        *rest = &rest[len..];
        Ok(v)
    };
    for chunk in chunks(layout) {
        match chunk {
            Err(lit) => rest = rest.strip_prefix(lit).ok_or_else(bad)?,
            Ok(std) => match std {
                Std::LongMonth | Std::Month => {
                    let idx = MONTHS
                        .iter()
                        .position(|m| {
                            let name = if std == Std::Month { &m[..3] } else { m };
                            rest.get(..name.len())
                                .is_some_and(|r| r.eq_ignore_ascii_case(name))
                        })
                        .ok_or_else(bad)?;
                    let len = if std == Std::Month {
                        3
                    } else {
                        MONTHS[idx].len()
                    };
                    rest = &rest[len..];
                    mo = idx as u32 + 1;
                }
                Std::LongWeekDay | Std::WeekDay => {
                    let idx = DAYS
                        .iter()
                        .position(|m| {
                            let name = if std == Std::WeekDay { &m[..3] } else { m };
                            rest.get(..name.len())
                                .is_some_and(|r| r.eq_ignore_ascii_case(name))
                        })
                        .ok_or_else(bad)?;
                    let len = if std == Std::WeekDay {
                        3
                    } else {
                        DAYS[idx].len()
                    };
                    rest = &rest[len..];
                }
                Std::NumMonth => mo = num(&mut rest, 1, 2)? as u32,
                Std::ZeroMonth => mo = num(&mut rest, 2, 2)? as u32,
                Std::Day => d = num(&mut rest, 1, 2)? as u32,
                Std::UnderDay => {
                    rest = rest.strip_prefix(' ').unwrap_or(rest);
                    d = num(&mut rest, 1, 2)? as u32;
                }
                Std::ZeroDay => d = num(&mut rest, 2, 2)? as u32,
                Std::ZeroYearDay => {
                    num(&mut rest, 3, 3)?;
                }
                Std::Hour => h = num(&mut rest, 2, 2)?,
                Std::Hour12 => h = num(&mut rest, 1, 2)?,
                Std::ZeroHour12 => h = num(&mut rest, 2, 2)?,
                Std::Minute => mi = num(&mut rest, 1, 2)?,
                Std::ZeroMinute => mi = num(&mut rest, 2, 2)?,
                Std::Second => s = num(&mut rest, 1, 2)?,
                Std::ZeroSecond => {
                    s = num(&mut rest, 2, 2)?;
                    // Go accepts a fraction after seconds even if the
                    // layout has none.
                    if rest.starts_with(['.', ','])
                        && rest[1..].starts_with(|c: char| c.is_ascii_digit())
                    {
                        let digits = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
                        let frac = &rest[1..1 + digits];
                        let padded = format!("{:0<9}", &frac[..frac.len().min(9)]);
                        nanos = padded.parse().map_err(|_| bad())?;
                        rest = &rest[1 + digits..];
                    }
                }
                Std::LongYear => y = num(&mut rest, 4, 4)?,
                Std::Year => {
                    let v = num(&mut rest, 2, 2)?;
                    y = if v >= 69 { 1900 + v } else { 2000 + v };
                }
                Std::PM | Std::Pm => {
                    let word = rest.get(..2).ok_or_else(bad)?.to_ascii_uppercase();
                    pm = Some(match word.as_str() {
                        "PM" => true,
                        "AM" => false,
                        _ => return Err(bad()),
                    });
                    rest = &rest[2..];
                }
                Std::TZ => {
                    let len = rest.bytes().take_while(u8::is_ascii_uppercase).count();
                    if len < 3 && !rest.starts_with('Z') {
                        return Err(bad());
                    }
                    rest = &rest[len.max(1)..];
                }
                Std::Offset { z, .. } => {
                    if z && rest.starts_with('Z') {
                        rest = &rest[1..];
                        continue;
                    }
                    let sign = match rest.as_bytes().first() {
                        Some(b'+') => 1,
                        Some(b'-') => -1,
                        _ => return Err(bad()),
                    };
                    rest = &rest[1..];
                    let oh = num(&mut rest, 2, 2)?;
                    rest = rest.strip_prefix(':').unwrap_or(rest);
                    let om = num(&mut rest, 0, 2).unwrap_or(0);
                    offset = sign * (oh * 3600 + om * 60);
                }
                Std::Frac(..) => {
                    if let Some(r) = rest.strip_prefix(['.', ',']) {
                        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
                        let frac = &r[..digits];
                        let padded = format!("{:0<9}", &frac[..frac.len().min(9)]);
                        nanos = padded.parse().map_err(|_| bad())?;
                        rest = &r[digits..];
                    }
                }
            },
        }
    }
    if !rest.is_empty() {
        return Err(format!("parsing time {value:?}: extra text: {rest:?}"));
    }
    match pm {
        Some(true) if h < 12 => h += 12,
        Some(false) if h == 12 => h = 0,
        _ => {}
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return Err(format!("parsing time {value:?}: value out of range"));
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset;
    secs.checked_mul(NS_PER_SEC)
        .and_then(|v| v.checked_add(nanos))
        .ok_or_else(|| format!("parsing time {value:?}: value out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2021-02-03T04:05:06.789Z, a Wednesday.
    const T: i64 = 1_612_325_106_789_000_000;

    #[test]
    fn formats_layouts() {
        assert_eq!(
            format(T, "2006-01-02T15:04:05.000Z07:00"),
            "2021-02-03T04:05:06.789Z"
        );
        assert_eq!(
            format(T, "Mon Jan _2 3:4:5 PM 2006"),
            "Wed Feb  3 4:5:6 AM 2021"
        );
        assert_eq!(
            format(T, "Monday, January 2 06 .999999999 -0700 MST"),
            "Wednesday, February 3 21 .789 +0000 UTC"
        );
        assert_eq!(format(0, "2006-01-02 15:04:05.999"), "1970-01-01 00:00:00");
        assert_eq!(format_default(T), "2021-02-03 04:05:06.789 +0000 UTC");
        assert_eq!(format(T, "002"), "034");
    }

    #[test]
    fn parses_layouts() {
        assert_eq!(
            parse("2006-01-02T15:04:05.000Z07:00", "2021-02-03T04:05:06.789Z"),
            Ok(T)
        );
        assert_eq!(
            parse("2006-01-02T15:04:05Z07:00", "2021-02-03T06:05:06.789+02:00"),
            Ok(T)
        );
        assert_eq!(
            parse("2006-01-02", "2021-02-03"),
            Ok(1_612_310_400_000_000_000)
        );
        assert_eq!(
            parse("02 Jan 06 3:04PM", "03 Feb 21 4:05AM"),
            Ok(1_612_325_100_000_000_000)
        );
        assert!(parse("2006-01-02", "2021-13-03").is_err());
        assert!(parse("2006-01-02", "nope").is_err());
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 18_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
