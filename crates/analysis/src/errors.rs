//! Error shapes: whether a line reports an error, of which category, and
//! the parts of its fingerprint (pattern + exception type + top frame).
//!
//! A line is an error when its level is error or worse, or when it has an
//! error shape: an exception or panic head (Java `x.y.FooException:`,
//! Python `Traceback`/`FooError:`, Go `panic:`, JavaScript `TypeError:`,
//! Rust `panicked at`), a stack frame (`at x.y(Foo.java:1)`, `File "x.py",
//! line 1`), or a well-known failure phrase (timeout, connection refused,
//! out of memory / OOM-killed, permission denied, not found, HTTP 5xx).
//!
//! Not for: grouping over time (that is the caller's, keyed by
//! [`ErrorShape::fingerprint`]), nor stitching multi-line stack traces
//! (each line is judged alone; a frame line carries its own top frame).

use crate::level::Level;

/// What kind of failure a line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Exception,
    Timeout,
    ConnectionRefused,
    OutOfMemory,
    PermissionDenied,
    NotFound,
    Http5xx,
    /// Logged at error level, with no more specific shape.
    Error,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Exception => "exception",
            Category::Timeout => "timeout",
            Category::ConnectionRefused => "connection_refused",
            Category::OutOfMemory => "out_of_memory",
            Category::PermissionDenied => "permission_denied",
            Category::NotFound => "not_found",
            Category::Http5xx => "http_5xx",
            Category::Error => "error",
        }
    }
}

/// An error line's shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorShape {
    pub category: Category,
    /// `java.lang.NullPointerException`, `KeyError`, `panic`, …
    pub exception: Option<String>,
    /// The first stack frame on the line (`com.x.Handler.handle`,
    /// `app.py:handle`), when there is one.
    pub frame: Option<String>,
}

impl ErrorShape {
    /// The group key of an error line with pattern `pattern`.
    pub fn fingerprint(&self, pattern: &str) -> String {
        format!(
            "{}|{}|{}",
            pattern,
            self.exception.as_deref().unwrap_or(""),
            self.frame.as_deref().unwrap_or("")
        )
    }
}

/// Phrases, lower-cased, and the category they mean; first match wins.
const PHRASES: [(&str, Category); 14] = [
    ("out of memory", Category::OutOfMemory),
    ("oomkilled", Category::OutOfMemory),
    ("oom-kill", Category::OutOfMemory),
    ("outofmemoryerror", Category::OutOfMemory),
    ("connection refused", Category::ConnectionRefused),
    ("econnrefused", Category::ConnectionRefused),
    ("timed out", Category::Timeout),
    ("timeout", Category::Timeout),
    ("deadline exceeded", Category::Timeout),
    ("permission denied", Category::PermissionDenied),
    ("access denied", Category::PermissionDenied),
    ("eacces", Category::PermissionDenied),
    ("not found", Category::NotFound),
    ("no such file", Category::NotFound),
];

/// What one pass over a line finds: the first failure phrase (in
/// [`PHRASES`] order) and whether the slower shape checks can match.
struct Scan {
    phrase: Option<Category>,
    /// `Exception` or `Error` occurs (case-insensitively): a type name may.
    type_word: bool,
    panicked: bool,
}

/// Markers the automaton looks for after the phrases, by index past
/// `PHRASES.len()`: type names may follow the first two, Rust's panic
/// message is the last two.
const SCAN_MARKERS: [&str; 4] = ["exception", "error", "' panicked at", "panicked at '"];

/// Three letters of each phrase and marker, lower case: a line holding
/// none of them can match none of them. Chosen among the rarer trigrams
/// of log text, so most lines skip the automaton.
const ANCHORS: [&[u8; 3]; 15] = [
    b"f m", // out of memory
    b"omk", // oomkilled
    b"m-k", // oom-kill
    b"ofm", // outofmemoryerror
    b"efu", // connection refused, econnrefused
    b"med", // timed out
    b"eou", // timeout
    b"xce", // deadline exceeded, exception
    b"rmi", // permission denied
    b"cce", // access denied, eacces
    b"t f", // not found
    b"h f", // no such file
    b"rro", // error
    b"' p", // ' panicked at
    b"t '", // panicked at '
];

/// Whether `line` holds one of the [`ANCHORS`], ASCII case-insensitively.
/// A byte `| 0x20` is its lower case for letters and leaves the anchors'
/// other bytes (space, `'`, `-`) as they are, so no match is missed; a
/// bitmap of the anchors' folded trigrams rules out most positions with
/// one lookup.
fn may_match(line: &[u8]) -> bool {
    const fn key(a: u8, b: u8, c: u8) -> usize {
        ((a as usize) << 7 ^ (b as usize) << 3 ^ (c as usize)) & 4095
    }
    static BITMAP: [u64; 64] = {
        let mut bits = [0u64; 64];
        let mut i = 0;
        while i < ANCHORS.len() {
            let [a, b, c] = *ANCHORS[i];
            let k = key(a | 0x20, b | 0x20, c | 0x20);
            bits[k / 64] |= 1 << (k % 64);
            i += 1;
        }
        bits
    };
    line.windows(3).any(|w| {
        let folded = [w[0] | 0x20, w[1] | 0x20, w[2] | 0x20];
        let k = key(folded[0], folded[1], folded[2]);
        BITMAP[k / 64] & (1 << (k % 64)) != 0 && ANCHORS.iter().any(|a| **a == folded)
    })
}

/// One automaton for every phrase and marker, ASCII case-insensitive:
/// a line costs one pass however many phrases there are, and lines
/// without any anchor trigram skip it.
fn scan(line: &str) -> Scan {
    if !may_match(line.as_bytes()) {
        return Scan {
            phrase: None,
            type_word: false,
            panicked: false,
        };
    }
    scan_all(line)
}

/// The automaton's pass over a whole line.
fn scan_all(line: &str) -> Scan {
    use aho_corasick::AhoCorasick;
    use std::sync::LazyLock;
    const MARKERS: [&str; 4] = SCAN_MARKERS;
    static AUTOMATON: LazyLock<AhoCorasick> = LazyLock::new(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(PHRASES.iter().map(|(p, _)| *p).chain(MARKERS))
            .expect("fixed phrases build an automaton")
    });
    let mut out = Scan {
        phrase: None,
        type_word: false,
        panicked: false,
    };
    let mut first = usize::MAX;
    for m in AUTOMATON.find_overlapping_iter(line) {
        let i = m.pattern().as_usize();
        match i.checked_sub(PHRASES.len()) {
            None => first = first.min(i),
            Some(0 | 1) => out.type_word = true,
            Some(_) => {
                // Case matters for Rust's panic message.
                let text = &line[m.start()..m.end()];
                out.panicked |= text == MARKERS[2] || text == MARKERS[3];
            }
        }
    }
    out.phrase = PHRASES.get(first).map(|&(_, c)| c);
    out
}

/// The error shape of `line` logged at `level`, or `None` for a line that
/// is not an error.
pub fn classify(line: &str, level: Level) -> Option<ErrorShape> {
    let scan = scan(line);
    let exception = exception_type(line, &scan);
    let frame = top_frame(line);
    let category = match (scan.phrase, &exception, &frame) {
        // An OOM error is out of memory even when it is an exception.
        (Some(Category::OutOfMemory), _, _) => Category::OutOfMemory,
        (_, Some(_), _) | (_, _, Some(_)) => Category::Exception,
        (Some(c), _, _) => c,
        _ if http_5xx(line) => Category::Http5xx,
        _ if level.is_error() => Category::Error,
        _ => return None,
    };
    // A phrase alone in an info line ("cache entry not found, loading")
    // is not an error; shapes that only errors have (exceptions, frames,
    // 5xx, OOM, refused connections) are.
    let strong = !matches!(
        category,
        Category::Timeout | Category::NotFound | Category::PermissionDenied
    );
    if !strong && !level.is_error() && level != Level::Unknown {
        return None;
    }
    Some(ErrorShape {
        category,
        exception,
        frame,
    })
}

/// `java.lang.IllegalStateException:`, `KeyError:`, `TypeError:`,
/// `Traceback (most recent call last):`, `panic:`, `thread 'x' panicked at`.
fn exception_type(line: &str, scan: &Scan) -> Option<String> {
    let trimmed = line.trim_start();
    if trimmed.starts_with("Traceback (most recent call last)") {
        return Some("Traceback".into());
    }
    if trimmed.starts_with("panic:") || trimmed.starts_with("fatal error:") {
        return Some("panic".into());
    }
    if scan.panicked {
        return Some("panic".into());
    }
    if !scan.type_word {
        return None;
    }
    for token in line.split_ascii_whitespace() {
        let word = token.trim_end_matches(':');
        let name = word.rsplit('.').next().unwrap_or(word);
        let is_type = (name.ends_with("Exception") || name.ends_with("Error"))
            && name.len() > 5
            && name.starts_with(|c: char| c.is_ascii_uppercase())
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '$');
        if is_type {
            return Some(word.to_owned());
        }
    }
    None
}

/// `at com.x.Handler.handle(Handler.java:42)` → `com.x.Handler.handle`;
/// `File "app.py", line 3, in handle` → `app.py:handle`;
/// `at handle (/srv/app.js:10:5)` → `handle`; Go's `main.run(...)` lines
/// are too ambiguous alone and are left out.
fn top_frame(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix("at ") {
        let name = rest.split(['(', ' ']).next()?.trim();
        if !name.is_empty() && rest.contains('(') {
            return Some(name.to_owned());
        }
    }
    if let Some(rest) = trimmed.strip_prefix("File \"") {
        let file = rest.split('"').next()?;
        let file = file.rsplit('/').next().unwrap_or(file);
        let function = rest.rsplit(", in ").next().filter(|f| *f != rest);
        return Some(match function {
            Some(f) => format!("{file}:{}", f.trim()),
            None => file.to_owned(),
        });
    }
    None
}

/// An HTTP status 500–599 in a request line (`" 503 `, `status=502`,
/// `HTTP 500`).
fn http_5xx(line: &str) -> bool {
    let bytes = line.as_bytes();
    for i in memchr::memchr_iter(b'5', bytes) {
        if i + 3 > bytes.len() {
            break;
        }
        let window = &bytes[i..i + 3];
        let before = if i == 0 { b' ' } else { bytes[i - 1] };
        let after = bytes.get(i + 3).copied().unwrap_or(b' ');
        let bounded = !before.is_ascii_alphanumeric()
            && before != b'.'
            && !after.is_ascii_alphanumeric()
            && after != b'.';
        if bounded && window[1..].iter().all(u8::is_ascii_digit) {
            let tail = line[..i].trim_end_matches([' ', '=', ':', '"']).as_bytes();
            let ends_with = |word: &str| {
                tail.len() >= word.len()
                    && tail[tail.len() - word.len()..].eq_ignore_ascii_case(word.as_bytes())
            };
            if ["http/1.1", "http/1.0", "http/2", "http", "status", "code"]
                .into_iter()
                .any(ends_with)
            {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(line: &str, level: Level) -> Option<Category> {
        classify(line, level).map(|s| s.category)
    }

    #[test]
    fn exceptions_and_frames_of_several_languages() {
        let java = classify(
            "java.lang.NullPointerException: Cannot invoke \"x\"",
            Level::Unknown,
        )
        .unwrap();
        assert_eq!(java.category, Category::Exception);
        assert_eq!(
            java.exception.as_deref(),
            Some("java.lang.NullPointerException")
        );
        let frame = classify("\tat com.x.Handler.handle(Handler.java:42)", Level::Unknown).unwrap();
        assert_eq!(frame.frame.as_deref(), Some("com.x.Handler.handle"));
        let py = classify("  File \"/srv/app.py\", line 3, in handle", Level::Unknown).unwrap();
        assert_eq!(py.frame.as_deref(), Some("app.py:handle"));
        assert_eq!(
            classify("KeyError: 'user'", Level::Unknown)
                .unwrap()
                .exception
                .as_deref(),
            Some("KeyError")
        );
        assert_eq!(
            cat("Traceback (most recent call last):", Level::Unknown),
            Some(Category::Exception)
        );
        assert_eq!(
            cat("panic: runtime error: index out of range", Level::Unknown),
            Some(Category::Exception)
        );
        assert_eq!(
            cat("thread 'main' panicked at src/main.rs:3:5:", Level::Unknown),
            Some(Category::Exception)
        );
        assert_eq!(
            cat("TypeError: x is undefined", Level::Unknown),
            Some(Category::Exception)
        );
    }

    #[test]
    fn failure_phrases_and_http_5xx() {
        assert_eq!(
            cat(
                "dial tcp 10.0.0.1:5432: connect: connection refused",
                Level::Unknown
            ),
            Some(Category::ConnectionRefused)
        );
        assert_eq!(
            cat(
                "Memory cgroup out of memory: Killed process 1",
                Level::Unknown
            ),
            Some(Category::OutOfMemory)
        );
        assert_eq!(
            cat("java.lang.OutOfMemoryError: heap", Level::Unknown),
            Some(Category::OutOfMemory)
        );
        assert_eq!(
            cat("request timed out after 5s", Level::Error),
            Some(Category::Timeout)
        );
        assert_eq!(
            cat("open /x: permission denied", Level::Unknown),
            Some(Category::PermissionDenied)
        );
        assert_eq!(
            cat("10.0.0.1 \"GET /a HTTP/1.1\" 503 12", Level::Unknown),
            Some(Category::Http5xx)
        );
        assert_eq!(
            cat("status=502 path=/x", Level::Unknown),
            Some(Category::Http5xx)
        );
        assert_eq!(
            cat("level=error msg=boom", Level::Error),
            Some(Category::Error)
        );
    }

    #[test]
    fn ordinary_lines_are_not_errors() {
        assert_eq!(
            cat("10.0.0.1 \"GET /a HTTP/1.1\" 200 503", Level::Unknown),
            None
        );
        assert_eq!(cat("user logged in", Level::Info), None);
        assert_eq!(cat("cache entry not found, loading", Level::Info), None);
        assert_eq!(cat("took 503 ms", Level::Unknown), None);
        assert_eq!(cat("ErrorPage rendered", Level::Unknown), None);
    }

    #[test]
    fn every_phrase_and_marker_holds_an_anchor() {
        for phrase in PHRASES.iter().map(|p| p.0).chain(SCAN_MARKERS) {
            assert!(may_match(phrase.as_bytes()), "{phrase}");
            assert!(may_match(phrase.to_uppercase().as_bytes()), "{phrase}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Skipping the automaton on lines without an anchor changes no
        /// answer: lines made of the phrases' pieces, in any case.
        #[test]
        fn the_anchor_filter_never_hides_a_match(
            parts in proptest::collection::vec(proptest::prop_oneof![
                proptest::string::string_regex("(out|of|memory|oom|kill(ed)?|-|connection|refused|econn|timed|time|out|deadline|exceeded|permission|access|denied|eacces|not|found|no|such|file|exception|error|'|panicked|at|Error|Exception)").unwrap(),
                proptest::string::string_regex("[ a-zA-Z':.-]{1,3}").unwrap(),
            ], 0..16),
            upper in proptest::collection::vec(proptest::bool::ANY, 64),
        ) {
            let line: String = parts
                .concat()
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c })
                .collect();
            let fast = scan(&line);
            let all = scan_all(&line);
            proptest::prop_assert_eq!(
                (fast.phrase, fast.type_word, fast.panicked),
                (all.phrase, all.type_word, all.panicked),
                "{:?}", line
            );
        }
    }

    #[test]
    fn fingerprints_separate_types_and_frames() {
        let a = classify("java.lang.IllegalStateException: x", Level::Error).unwrap();
        let b = classify("java.lang.IllegalArgumentException: x", Level::Error).unwrap();
        assert_ne!(a.fingerprint("<_> x"), b.fingerprint("<_> x"));
        assert_eq!(a.fingerprint("<_> x"), a.clone().fingerprint("<_> x"));
    }
}
