//! Level, timestamp and message of a captured line, from JSON, logfmt or
//! common text formats (`2024-01-02T03:04:05Z ERROR ...`, `[WARN] ...`,
//! `level=info`, Python's `ERROR:root:...`), and the lines that start a
//! crash report in any of them (`panic:`, `Traceback`, `FATAL`,
//! `...Exception`), which are errors whatever else they say.

use serde_json::Value;

/// What a line says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// Normalised as Loki's `detected_level`: trace, debug, info, warn,
    /// error, critical, fatal; or `None`.
    pub level: Option<&'static str>,
    /// Unix nanoseconds, when the line carries a parseable time.
    pub ts: Option<i64>,
    /// The message to show (the `msg` of JSON and logfmt lines), or `None`
    /// to show the line as it is.
    pub message: Option<String>,
}

/// A format hint from the pipeline file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatHint {
    Json,
    Logfmt,
    Text,
}

pub fn normalise_level(word: &str) -> Option<&'static str> {
    Some(match word.to_ascii_lowercase().as_str() {
        "trace" | "trc" => "trace",
        "debug" | "dbg" | "d" => "debug",
        "info" | "inf" | "information" | "notice" | "i" => "info",
        "warn" | "warning" | "wrn" | "w" => "warn",
        "error" | "err" | "e" => "error",
        // Loki's detected_level keeps these two apart.
        "fatal" | "panic" | "f" => "fatal",
        "critical" | "crit" | "emerg" | "alert" => "critical",
        _ => return None,
    })
}

pub fn detect(line: &str, hint: Option<FormatHint>) -> Detected {
    let trimmed = line.trim_start();
    if hint != Some(FormatHint::Text)
        && trimmed.starts_with('{')
        && let Some(d) = detect_json(trimmed)
    {
        return d;
    }
    if hint != Some(FormatHint::Text)
        && hint != Some(FormatHint::Json)
        && let Some(d) = detect_logfmt(trimmed)
    {
        return d;
    }
    detect_text(trimmed)
}

fn detect_json(line: &str) -> Option<Detected> {
    let v: Value = serde_json::from_str(line).ok()?;
    let obj = v.as_object()?;
    let field = |names: &[&str]| names.iter().find_map(|n| obj.get(*n));
    let level = field(&["level", "lvl", "severity", "levelname", "log.level"])
        .and_then(Value::as_str)
        .and_then(normalise_level);
    let ts = field(&["ts", "time", "timestamp", "@timestamp", "asctime"]).and_then(|t| match t {
        Value::String(s) => parse_time(s),
        Value::Number(n) => n.as_f64().map(epoch_number_to_ns),
        _ => None,
    });
    let message = field(&["msg", "message", "event"])
        .and_then(Value::as_str)
        .map(str::to_string);
    Some(Detected { level, ts, message })
}

/// `level=info ts=... msg="..."`: at least two `key=value` pairs with one of
/// the known keys.
fn detect_logfmt(line: &str) -> Option<Detected> {
    let pairs = logfmt_pairs(line);
    if pairs.len() < 2 {
        return None;
    }
    let get = |names: &[&str]| {
        pairs
            .iter()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    };
    let level = get(&["level", "lvl", "severity"]).and_then(normalise_level);
    let ts = get(&["ts", "time", "timestamp"]).and_then(parse_time);
    let message = get(&["msg", "message"]).map(str::to_string);
    if level.is_none() && ts.is_none() && message.is_none() {
        return None;
    }
    Some(Detected { level, ts, message })
}

fn logfmt_pairs(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' || i == start {
            // A bare word: not logfmt past this point.
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            continue;
        }
        let key = line[start..i].to_string();
        i += 1;
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = line[i..].chars().next().unwrap_or(' ');
                v.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
            v
        } else {
            let vs = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            line[vs..i].to_string()
        };
        out.push((key, value));
    }
    out
}

fn detect_text(line: &str) -> Detected {
    // A leading timestamp, then a level word, bracketed or not.
    let mut rest = line;
    let mut ts = None;
    if let Some(end) = line.find(' ') {
        let first = &line[..end];
        if let Some(t) = parse_time(first) {
            ts = Some(t);
            rest = line[end..].trim_start();
        } else if let Some(second_end) = line[end + 1..].find(' ') {
            // "2024-01-02 03:04:05,123 ERROR ..."
            let both = &line[..end + 1 + second_end];
            if let Some(t) = parse_time(&both.replace(' ', "T").replace(',', ".")) {
                ts = Some(t);
                rest = line[end + 1 + second_end..].trim_start();
            }
        }
    }
    if let Some(level) = crash_level(rest) {
        return Detected {
            level: Some(level),
            ts,
            message: None,
        };
    }
    let mut level = None;
    for word in rest
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .take(3)
    {
        // Only upper-case or bracketed level words count in free text:
        // "error" inside a sentence is not a level.
        if word.len() >= 4
            && word.chars().all(|c| c.is_ascii_uppercase())
            && let Some(l) = normalise_level(word)
        {
            level = Some(l);
            break;
        }
    }
    Detected {
        level,
        ts,
        message: None,
    }
}

/// The first line of a crash report, which carries no level word of its
/// own: Go's `panic: ...`, Rust's `thread 'main' panicked at ...`, Python's
/// `Traceback (most recent call last):`, Java's `Exception in thread ...`
/// and `java.lang.IllegalStateException: ...`. (`FATAL` is a level word
/// and found as one: level `fatal`.)
fn crash_level(line: &str) -> Option<&'static str> {
    if line.starts_with("panic:")
        || line.starts_with("Traceback (most recent call last)")
        || line.starts_with("Exception in thread ")
        || (line.starts_with("thread '") && line.contains("' panicked at "))
    {
        return Some("error");
    }
    // `pkg.SomeException: why` or `SomeException` alone; not a sentence
    // that merely mentions an exception.
    let first = line.split([' ', ':']).next().unwrap_or_default();
    let class = first.rsplit('.').next().unwrap_or_default();
    let after = &line[first.len()..];
    let is_class = class.ends_with("Exception")
        && class.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (is_class && (after.is_empty() || after.starts_with(':'))).then_some("error")
}

/// Seconds, milliseconds, microseconds or nanoseconds since the epoch, told
/// apart by magnitude.
fn epoch_number_to_ns(n: f64) -> i64 {
    let a = n.abs();
    if a < 1e11 {
        (n * 1e9) as i64
    } else if a < 1e14 {
        (n * 1e6) as i64
    } else if a < 1e17 {
        (n * 1e3) as i64
    } else {
        n as i64
    }
}

/// RFC 3339 (with `T` or a space), or a number of epoch units.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() >= 19 && s.as_bytes()[4] == b'-' {
        let fixed = if s.as_bytes()[10] == b' ' {
            format!("{}T{}", &s[..10], &s[11..])
        } else {
            s.to_string()
        };
        let with_zone = if fixed.ends_with('Z') || fixed[19..].contains(['+', '-']) {
            fixed
        } else {
            format!("{fixed}Z")
        };
        return skald_wire::parse_time(&with_zone).ok().map(|t| t.0);
    }
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return s.parse::<f64>().ok().map(epoch_number_to_ns);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines() {
        let d = detect(
            r#"{"level":"WARNING","ts":"2026-12-02T12:40:00Z","msg":"disk 91%"}"#,
            None,
        );
        assert_eq!(d.level, Some("warn"));
        assert_eq!(d.ts, Some(1_796_215_200_000_000_000));
        assert_eq!(d.message.as_deref(), Some("disk 91%"));
        let d = detect(r#"{"severity":"err","time":1796215200.5}"#, None);
        assert_eq!(d.level, Some("error"));
        assert_eq!(d.ts, Some(1_796_215_200_500_000_000));
    }

    #[test]
    fn logfmt_lines() {
        let d = detect(
            r#"ts=2026-12-02T12:40:00.250Z level=debug msg="cache \"hit\"" key=a"#,
            None,
        );
        assert_eq!(d.level, Some("debug"));
        assert_eq!(d.ts, Some(1_796_215_200_250_000_000));
        assert_eq!(d.message.as_deref(), Some(r#"cache "hit""#));
    }

    #[test]
    fn text_lines() {
        let d = detect("2026-12-02 12:40:00,100 ERROR worker crashed", None);
        assert_eq!(d.level, Some("error"));
        assert_eq!(d.ts, Some(1_796_215_200_100_000_000));
        assert_eq!(detect("[WARN] low memory", None).level, Some("warn"));
        assert_eq!(detect("ERROR:root:boom", None).level, Some("error"));
        assert_eq!(detect("an error happened", None).level, None);
        assert_eq!(
            detect("plain words", None),
            Detected {
                level: None,
                ts: None,
                message: None
            }
        );
        // Crash reports are errors without a level word.
        for line in [
            "panic: runtime error: index out of range [3] with length 3",
            "thread 'main' panicked at src/main.rs:4:5:",
            "Traceback (most recent call last):",
            "Exception in thread \"main\" java.lang.NullPointerException",
            "java.lang.IllegalStateException: queue closed",
            "Exception: boom",
            "2026-12-02T12:40:00Z panic: nil map",
        ] {
            assert_eq!(detect(line, None).level, Some("error"), "{line}");
        }
        assert_eq!(
            detect("2026-12-02T12:40:00Z panic: nil map", None).ts,
            Some(1_796_215_200_000_000_000)
        );
        for line in [
            "FATAL: cannot bind :80",
            "2026/12/06 12:00:00 [FATAL] out of disk",
        ] {
            assert_eq!(detect(line, None).level, Some("fatal"), "{line}");
        }
        // As Loki's detected_level: critical is not fatal, nor either error.
        assert_eq!(detect("CRITICAL: disk gone", None).level, Some("critical"));
        assert_eq!(detect("level=crit msg=x", None).level, Some("critical"));
        assert_eq!(
            detect(r#"{"level":"FATAL","msg":"x"}"#, None).level,
            Some("fatal")
        );
        for line in [
            "no panic: all good",
            "caught an Exception while retrying",
            "Exceptional results today",
            "the traceback was printed above",
            "fatal is lower-case here",
        ] {
            assert_eq!(detect(line, None).level, None, "{line}");
        }
        // A hint keeps JSON-looking text as text.
        assert_eq!(
            detect(r#"{"level":"error"}"#, Some(FormatHint::Text)).level,
            None
        );
    }
}
