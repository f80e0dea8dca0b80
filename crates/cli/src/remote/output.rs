//! Printing query results: log entries in several formats, metric results
//! as tables; colours per stream, level highlighting, local or UTC time.

use super::{ColorChoice, OutputFormat};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};

/// How to print: colours on or off, and the time zone.
pub struct Style {
    pub color: bool,
    pub utc: bool,
}

impl Style {
    pub fn new(choice: ColorChoice, utc: bool) -> Style {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        };
        Style { color, utc }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Colours readable on dark and light backgrounds (the 256-colour
/// palette's mid-brightness hues).
const STREAM_COLORS: [&str; 12] = [
    "38;5;33", "38;5;35", "38;5;130", "38;5;127", "38;5;31", "38;5;64", "38;5;166", "38;5;97",
    "38;5;30", "38;5;136", "38;5;62", "38;5;168",
];

/// A stable colour for a stream (or component): the same labels always get
/// the same colour, across runs and machines.
pub fn stream_color(key: &str) -> &'static str {
    let h = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
    STREAM_COLORS[(h % STREAM_COLORS.len() as u64) as usize]
}

/// The colour for a level word in a line, if it has one.
fn level_color(line: &str) -> Option<(&'static str, &'static str)> {
    let head = &line[..line.len().min(200)];
    let lower = head.to_ascii_lowercase();
    for (words, code) in [
        (&["fatal", "panic", "critical", "crit"][..], "1;31"),
        (&["error", "err"][..], "31"),
        (&["warning", "warn"][..], "33"),
    ] {
        for w in words {
            if let Some(i) = lower.find(w) {
                let before = lower[..i].chars().last();
                let after = lower[i + w.len()..].chars().next();
                let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
                if boundary(before) && boundary(after) {
                    return Some((w, code));
                }
            }
        }
    }
    None
}

/// `{a="b", c="d"}` from a JSON object of labels.
pub fn labels_text(labels: &Value) -> String {
    let mut pairs: Vec<(String, String)> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    pairs.sort();
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Formats nanoseconds as RFC 3339 with milliseconds, in UTC or local time.
pub fn format_time(ns: i64, utc: bool) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let offset = if utc { 0 } else { local_offset(secs) };
    let shifted = secs + offset;
    let days = shifted.div_euclid(86_400);
    let sod = shifted.rem_euclid(86_400);
    let (y, m, d) = skald_model::civil_from_days(days);
    let millis = ns.rem_euclid(1_000_000_000) / 1_000_000;
    let zone = if offset == 0 {
        "Z".to_string()
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let a = offset.abs();
        format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}{zone}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Seconds east of UTC of the local time zone at `secs` (the `TZ`
/// variable and /etc/localtime, through the C library).
fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives on our stack.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok { tm.tm_gmtoff } else { 0 }
}

struct LogEntry<'a> {
    ns: i64,
    labels: &'a Value,
    line: &'a str,
}

pub fn print_result(
    out: &mut impl Write,
    v: &Value,
    format: OutputFormat,
    style: &Style,
    quiet: bool,
    forward: bool,
) -> anyhow::Result<()> {
    let data = &v["data"];
    match data["resultType"].as_str().unwrap_or_default() {
        "streams" => {
            let mut entries: Vec<LogEntry> = Vec::new();
            for s in data["result"].as_array().into_iter().flatten() {
                for e in s["values"].as_array().into_iter().flatten() {
                    entries.push(LogEntry {
                        ns: e[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0),
                        labels: &s["stream"],
                        line: e[1].as_str().unwrap_or_default(),
                    });
                }
            }
            entries.sort_by_key(|e| e.ns);
            if !forward {
                entries.reverse();
            }
            print_entries(out, &entries, format, style)?;
            if !quiet && format == OutputFormat::Default {
                eprintln!("{} entries", entries.len());
            }
        }
        "matrix" => print_matrix(out, &data["result"], format, style)?,
        "vector" => print_vector(out, &data["result"], format)?,
        "scalar" => {
            let value = data["result"][1].as_str().unwrap_or_default();
            writeln!(out, "{value}")?;
        }
        other => anyhow::bail!("the server answered an unknown result type {other:?}"),
    }
    Ok(())
}

fn print_entries(
    out: &mut impl Write,
    entries: &[LogEntry],
    format: OutputFormat,
    style: &Style,
) -> anyhow::Result<()> {
    let as_json = |e: &LogEntry| {
        json!({
            "timestamp": format_time(e.ns, true).replace(".000Z", "Z"),
            "ts_ns": e.ns.to_string(),
            "labels": e.labels,
            "line": e.line,
        })
    };
    match format {
        OutputFormat::Raw => {
            for e in entries {
                writeln!(out, "{}", e.line)?;
            }
        }
        OutputFormat::Jsonl => {
            for e in entries {
                writeln!(out, "{}", as_json(e))?;
            }
        }
        OutputFormat::Json => {
            let all: Vec<Value> = entries.iter().map(as_json).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
        }
        OutputFormat::Csv => {
            writeln!(out, "timestamp,labels,line")?;
            for e in entries {
                writeln!(
                    out,
                    "{},{},{}",
                    format_time(e.ns, true),
                    csv_field(&labels_text(e.labels)),
                    csv_field(e.line)
                )?;
            }
        }
        OutputFormat::Default => {
            for e in entries {
                let labels = labels_text(e.labels);
                let time = style.paint("2", &format_time(e.ns, style.utc));
                let stream = style.paint(stream_color(&labels), &labels);
                let line = match (style.color, level_color(e.line)) {
                    (true, Some((word, code))) => highlight(e.line, word, code),
                    _ => e.line.to_string(),
                };
                writeln!(out, "{time} {stream} {line}")?;
            }
        }
    }
    Ok(())
}

/// Paints the first whole-word, case-insensitive occurrence of `word`.
fn highlight(line: &str, word: &str, code: &str) -> String {
    let lower = line.to_ascii_lowercase();
    match lower.find(word) {
        Some(i) if line.is_char_boundary(i) && line.is_char_boundary(i + word.len()) => format!(
            "{}\x1b[{code}m{}\x1b[0m{}",
            &line[..i],
            &line[i..i + word.len()],
            &line[i + word.len()..]
        ),
        _ => line.to_string(),
    }
}

pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn print_matrix(
    out: &mut impl Write,
    result: &Value,
    format: OutputFormat,
    style: &Style,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(result)?)?,
        OutputFormat::Jsonl => {
            for s in result.as_array().into_iter().flatten() {
                writeln!(out, "{s}")?;
            }
        }
        _ => {
            let csv = format == OutputFormat::Csv;
            if csv {
                writeln!(out, "series,timestamp,value")?;
            }
            for s in result.as_array().into_iter().flatten() {
                let labels = labels_text(&s["metric"]);
                for p in s["values"].as_array().into_iter().flatten() {
                    let secs = p[0].as_f64().unwrap_or(0.0);
                    let ts = format_time((secs * 1e9) as i64, style.utc || csv);
                    let value = p[1].as_str().unwrap_or_default();
                    if csv {
                        writeln!(out, "{},{ts},{value}", csv_field(&labels))?;
                    } else {
                        writeln!(out, "{labels}\t{ts}\t{value}")?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn print_vector(out: &mut impl Write, result: &Value, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(result)?)?,
        OutputFormat::Jsonl => {
            for s in result.as_array().into_iter().flatten() {
                writeln!(out, "{s}")?;
            }
        }
        _ => {
            let csv = format == OutputFormat::Csv;
            if csv {
                writeln!(out, "series,value")?;
            }
            for s in result.as_array().into_iter().flatten() {
                let labels = labels_text(&s["metric"]);
                let value = s["value"][1].as_str().unwrap_or_default();
                if csv {
                    writeln!(out, "{},{value}", csv_field(&labels))?;
                } else {
                    writeln!(out, "{labels}\t{value}")?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_and_dates() {
        assert_eq!(format_time(0, true), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_time(1_796_215_200_123_456_789, true),
            "2026-12-02T12:40:00.123Z"
        );
        assert_eq!(
            format_time(951_782_400_000_000_000, true),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(format_time(-1_000_000, true), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn colors_are_stable_and_levels_found_as_words() {
        assert_eq!(stream_color(r#"{app="a"}"#), stream_color(r#"{app="a"}"#));
        assert_eq!(level_color("level=error msg=x").map(|l| l.0), Some("error"));
        assert_eq!(level_color("WARN disk").map(|l| l.0), Some("warn"));
        assert_eq!(level_color("terrorism"), None);
        assert_eq!(level_color("all fine"), None);
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field(r#"{a="b", c="d"}"#), r#""{a=""b"", c=""d""}""#);
        assert_eq!(csv_field("x\ny"), "\"x\ny\"");
    }
}
