//! The level of a log line, as Grafana shows it beside a pattern: from
//! structured metadata (`detected_level`, `level`, `severity`, `lvl`) when
//! present, else from the line (`level=error`, `"level":"warn"`, `ERROR`,
//! `[warn]`, `W0102` …) among its first tokens.
//!
//! Not for: Loki's `detected_level` metadata discovery at ingest (that is
//! the push path's business); this is a cheap read for analysis.

/// Levels, in Loki's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
    Unknown,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
            Level::Unknown => "unknown",
        }
    }

    pub fn parse(word: &str) -> Option<Level> {
        let mut buf = [0u8; 12];
        Some(match lower(word, &mut buf)? {
            "trace" | "trc" => Level::Trace,
            "debug" | "dbg" => Level::Debug,
            "info" | "inf" | "information" | "notice" => Level::Info,
            "warn" | "warning" | "wrn" => Level::Warn,
            "error" | "err" | "eror" => Level::Error,
            "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert" => Level::Critical,
            "unknown" => Level::Unknown,
            _ => return None,
        })
    }

    /// Error or worse.
    pub fn is_error(self) -> bool {
        matches!(self, Level::Error | Level::Critical)
    }
}

/// `word` in lower case, in `buf`; `None` when longer than any level or
/// key this module knows (so nothing is allocated per token).
fn lower<'b>(word: &str, buf: &'b mut [u8; 12]) -> Option<&'b str> {
    let out = buf.get_mut(..word.len())?;
    out.copy_from_slice(word.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

/// How many leading tokens of a line may carry its level.
const LEVEL_TOKENS: usize = 8;

/// The level of a line with its structured metadata (name/value pairs).
pub fn detect<'a>(line: &str, metadata: impl IntoIterator<Item = (&'a str, &'a str)>) -> Level {
    for (name, value) in metadata {
        if matches!(name, "detected_level" | "level" | "severity" | "lvl")
            && let Some(level) = Level::parse(value)
        {
            return level;
        }
    }
    if line.starts_with('{')
        && let Some(level) = json_level(line)
    {
        return level;
    }
    for token in line.split_ascii_whitespace().take(LEVEL_TOKENS) {
        if let Some(level) = token_level(token) {
            return level;
        }
    }
    Level::Unknown
}

/// `"level": "warn"` (or `lvl`, `severity`) in a JSON line.
fn json_level(line: &str) -> Option<Level> {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    // Searchers built once: building one per line cost more than the
    // search itself.
    static KEYS: LazyLock<[Finder<'static>; 3]> = LazyLock::new(|| {
        [
            Finder::new("\"level\""),
            Finder::new("\"lvl\""),
            Finder::new("\"severity\""),
        ]
    });
    for key in KEYS.iter() {
        let Some(at) = key.find(line.as_bytes()) else {
            continue;
        };
        let rest = line[at + key.needle().len()..]
            .trim_start()
            .strip_prefix(':')?;
        let rest = rest.trim_start().strip_prefix('"')?;
        let end = memchr::memchr(b'"', rest.as_bytes())?;
        return Level::parse(&rest[..end]);
    }
    None
}

/// `s` without the brackets, quotes and separators around a level.
/// Byte-wise: every trimmed character is ASCII, which UTF-8 never uses
/// inside a longer character.
fn trim(s: &str) -> &str {
    let edge = |b: &u8| {
        matches!(
            b,
            b'[' | b']' | b'(' | b')' | b'<' | b'>' | b':' | b',' | b'"' | b'\'' | b'{' | b'}'
        )
    };
    let bytes = s.as_bytes();
    let Some(start) = bytes.iter().position(|b| !edge(b)) else {
        return "";
    };
    let end = bytes
        .iter()
        .rposition(|b| !edge(b))
        .map_or(start, |e| e + 1);
    &s[start..end]
}

fn token_level(token: &str) -> Option<Level> {
    // `level=error`, `"level":"error"`, `severity:warn`
    if let Some(at) = memchr::memchr2(b'=', b':', token.as_bytes()) {
        let mut buf = [0u8; 12];
        if matches!(
            lower(trim(&token[..at]), &mut buf),
            Some("level" | "lvl" | "severity" | "loglevel")
        ) {
            return Level::parse(trim(&token[at + 1..]));
        }
    }
    let word = trim(token);
    // Whole-word levels in capitals (`ERROR`, `[WARN]`), or bracketed
    // lower case (`[error]`): a bare lower-case `error` is prose.
    if word.len() >= 3 && (word.bytes().all(|b| b.is_ascii_uppercase()) || word.len() < token.len())
    {
        return Level::parse(word).filter(|&l| l != Level::Unknown);
    }
    // klog: `E0102 15:04:05.000000 …`
    let bytes = token.as_bytes();
    if bytes.len() == 5 && bytes[1..].iter().all(u8::is_ascii_digit) {
        return match bytes[0] {
            b'I' => Some(Level::Info),
            b'W' => Some(Level::Warn),
            b'E' => Some(Level::Error),
            b'F' => Some(Level::Critical),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_from_lines_and_metadata() {
        let none = std::iter::empty();
        assert_eq!(detect("level=error msg=x", none), Level::Error);
        assert_eq!(
            detect(r#"{"level":"warn","msg":"x"}"#, std::iter::empty()),
            Level::Warn
        );
        assert_eq!(
            detect("2024-01-01 12:00:00 ERROR boom", std::iter::empty()),
            Level::Error
        );
        assert_eq!(detect("[info] started", std::iter::empty()), Level::Info);
        assert_eq!(
            detect("E0102 15:04:05.000 1 x.go:1] bad", std::iter::empty()),
            Level::Error
        );
        assert_eq!(detect("no error here", std::iter::empty()), Level::Unknown);
        assert_eq!(detect("boom", [("level", "fatal")]), Level::Critical);
    }
}
