//! Log entries and stream labels, validated once when built.
//!
//! [`Labels`] is shared (`Arc`) and carries its selector text (`{a="b"}`),
//! printed once, so that sending an entry costs a reference-count bump
//! rather than a label copy, and batching groups entries by a ready string.

use crate::error::{Error, Result};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A stream's label set: sorted by name, names unique and valid.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Labels(Arc<LabelsInner>);

#[derive(PartialEq, Eq, Hash)]
struct LabelsInner {
    pairs: Vec<(String, String)>,
    selector: Arc<str>,
}

/// Whether `name` is a valid Loki label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Turns any text into a valid label name: invalid characters become `_`,
/// a leading digit gets a `_` before it. `request.id` becomes `request_id`.
pub fn sanitize_label_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        out.push('_');
    }
    for c in name.chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
    out
}

/// Writes `value` as a double-quoted string with Go's escapes, as Loki's
/// selector and LogQL parsers read it.
pub(crate) fn write_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Labels {
    /// Builds a label set; fails on an invalid or repeated name, or when
    /// there are no labels (Loki refuses streams without labels).
    pub fn new<I, K, V>(pairs: I) -> Result<Labels>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        if pairs.is_empty() {
            return Err(Error::InvalidLabel(
                "a stream needs at least one label".into(),
            ));
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !is_valid_label_name(name) {
                return Err(Error::InvalidLabel(format!(
                    "{name:?} is not a valid label name"
                )));
            }
            if i > 0 && pairs[i - 1].0 == *name {
                return Err(Error::InvalidLabel(format!("label {name:?} appears twice")));
            }
        }
        let mut selector = String::with_capacity(2 + pairs.len() * 16);
        selector.push('{');
        for (i, (name, value)) in pairs.iter().enumerate() {
            if i > 0 {
                selector.push_str(", ");
            }
            selector.push_str(name);
            selector.push('=');
            write_quoted(&mut selector, value);
        }
        selector.push('}');
        Ok(Labels(Arc::new(LabelsInner {
            pairs,
            selector: selector.into(),
        })))
    }

    /// The pairs, sorted by name.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0.pairs
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Selector text, e.g. `{app="api", env="prod"}`.
    pub fn selector(&self) -> &str {
        &self.0.selector
    }

    pub(crate) fn selector_arc(&self) -> &Arc<str> {
        &self.0.selector
    }
}

impl std::fmt::Debug for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.selector())
    }
}

impl std::fmt::Display for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.selector())
    }
}

/// Nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Timestamp {
        match time.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }
}

/// One log line of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub labels: Labels,
    pub timestamp: Timestamp,
    pub line: String,
    /// Loki's structured metadata: name/value pairs stored beside the line,
    /// not part of the stream's identity.
    pub metadata: Vec<(String, String)>,
}

/// Bytes an entry costs beyond its strings (timestamp, framing), used in
/// the byte limits of batches and queues.
const ENTRY_OVERHEAD: usize = 16;

impl Entry {
    /// An entry stamped with the current time.
    pub fn new(labels: &Labels, line: impl Into<String>) -> Entry {
        Entry {
            labels: labels.clone(),
            timestamp: Timestamp::now(),
            line: line.into(),
            metadata: Vec::new(),
        }
    }

    /// Sets the timestamp.
    pub fn at(mut self, timestamp: impl Into<Timestamp>) -> Entry {
        self.timestamp = timestamp.into();
        self
    }

    /// Adds one structured-metadata pair.
    pub fn with_metadata(mut self, name: impl Into<String>, value: impl Into<String>) -> Entry {
        self.metadata.push((name.into(), value.into()));
        self
    }

    /// The size counted against byte limits: line, metadata, and a small
    /// fixed overhead (labels are shared, so they are not counted).
    pub fn size(&self) -> usize {
        let metadata: usize = self.metadata.iter().map(|(n, v)| n.len() + v.len()).sum();
        self.line.len() + metadata + ENTRY_OVERHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_printed_as_a_selector() {
        let labels = Labels::new([("b", "x\"y"), ("a", "1\\2\n")]).unwrap();
        assert_eq!(labels.selector(), r#"{a="1\\2\n", b="x\"y"}"#);
        assert_eq!(labels.get("b"), Some("x\"y"));
    }

    #[test]
    fn bad_labels_are_refused() {
        assert!(Labels::new([("1a", "x")]).is_err());
        assert!(Labels::new([("a", "x"), ("a", "y")]).is_err());
        assert!(Labels::new(Vec::<(String, String)>::new()).is_err());
        assert!(Labels::new([("a.b", "x")]).is_err());
    }

    #[test]
    fn sanitizing_makes_valid_names() {
        assert_eq!(sanitize_label_name("request.id"), "request_id");
        assert_eq!(sanitize_label_name("9lives"), "_9lives");
        assert!(is_valid_label_name(&sanitize_label_name("")));
    }

    #[test]
    fn timestamps_before_the_epoch_are_negative() {
        let t = UNIX_EPOCH - std::time::Duration::from_nanos(5);
        assert_eq!(Timestamp::from(t), Timestamp(-5));
    }
}
