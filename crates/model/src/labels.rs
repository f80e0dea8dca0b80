//! Label sets and the stream identity derived from them.

use crate::ModelError;
use std::fmt;
use xxhash_rust::xxh3::Xxh3;

/// One name/value pair: a stream label or an entry's structured metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`, Loki's (and
/// Prometheus') rule for label names.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The labels of a stream: sorted by name, names unique and well formed,
/// never empty. Construct with [`LabelSet::new`] or [`LabelSet::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelSet(Vec<Label>);

/// A stream's identity inside its tenant: a 64-bit hash of its sorted labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl LabelSet {
    /// Validates and sorts `labels`.
    pub fn new(mut labels: Vec<Label>) -> Result<Self, ModelError> {
        if labels.is_empty() {
            return Err(ModelError::EmptyLabelSet);
        }
        for l in &labels {
            if !is_valid_label_name(&l.name) {
                return Err(ModelError::InvalidLabelName {
                    name: l.name.clone(),
                });
            }
        }
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ModelError::DuplicateLabelName {
                name: w[0].name.clone(),
            });
        }
        Ok(LabelSet(labels))
    }

    /// Builds a set from labels already known to be valid, sorted and
    /// unique (read back from our own files).
    pub fn from_trusted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        LabelSet(labels)
    }

    /// Parses the Prometheus-style form `{name="value", other="v"}` that
    /// Loki's protobuf push carries for each stream. Values use Go string
    /// escapes (`\"`, `\\`, `\n`, `\t`, `\r`, `\xNN`, `\uNNNN`).
    pub fn parse(input: &str) -> Result<Self, ModelError> {
        let err = |reason: &str| ModelError::InvalidLabelSyntax {
            input: input.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        let inner = s
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .ok_or_else(|| err("expected labels in braces, like {app=\"api\"}"))?;
        let mut labels = Vec::new();
        let mut rest = inner.trim_start();
        while !rest.is_empty() {
            let name_end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..name_end];
            if name.is_empty() {
                return Err(err("expected a label name"));
            }
            rest = rest[name_end..].trim_start();
            rest = rest
                .strip_prefix('=')
                .ok_or_else(|| err("expected '=' after label name"))?
                .trim_start();
            let (value, after) = parse_quoted(rest).map_err(|r| err(&r))?;
            labels.push(Label::new(name, value));
            rest = after.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
            } else if !rest.is_empty() {
                return Err(err("expected ',' or '}' after a label value"));
            }
        }
        LabelSet::new(labels)
    }

    pub fn labels(&self) -> &[Label] {
        &self.0
    }

    pub fn into_labels(self) -> Vec<Label> {
        self.0
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The stream's identity: xxh3 over `name 0xff value 0xff` for each label
    /// in order. Stable across versions: it names streams on disk.
    pub fn stream_id(&self) -> StreamId {
        let mut h = Xxh3::new();
        for l in &self.0 {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        StreamId(h.digest())
    }
}

impl fmt::Display for LabelSet {
    /// `{a="1", b="x\"y"}`, the form Loki prints and parses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=", l.name)?;
            write_quoted(f, &l.value)?;
        }
        f.write_str("}")
    }
}

/// Writes `value` as a double-quoted string with Go escapes.
pub(crate) fn write_quoted(f: &mut impl fmt::Write, value: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Parses a double-quoted string (or a back-quoted raw string) at the start
/// of `s`; returns the value and the rest.
pub(crate) fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    if let Some(raw) = s.strip_prefix('`') {
        let end = raw.find('`').ok_or("unterminated raw string")?;
        return Ok((raw[..end].to_string(), &raw[end + 1..]));
    }
    let body = s.strip_prefix('"').ok_or("expected a quoted value")?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated escape")?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' | '"' | '\'' => out.push(e),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = 0u32;
                        for _ in 0..n {
                            let (_, h) = chars.next().ok_or("short hex escape")?;
                            code = code * 16 + h.to_digit(16).ok_or("bad hex escape")?;
                        }
                        out.push(char::from_u32(code).ok_or("invalid code point")?);
                    }
                    _ => return Err(format!("unknown escape \\{e}")),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_sorts_and_prints() {
        let ls = LabelSet::parse(r#"{job="api", app="x\"y", env = "prod"}"#).unwrap();
        assert_eq!(ls.to_string(), r#"{app="x\"y", env="prod", job="api"}"#);
        assert_eq!(ls.get("env"), Some("prod"));
        assert_eq!(ls.get("nope"), None);
    }

    #[test]
    fn rejects_bad_sets() {
        assert_eq!(LabelSet::parse("{}"), Err(ModelError::EmptyLabelSet));
        assert!(matches!(
            LabelSet::parse(r#"{a="1",a="2"}"#),
            Err(ModelError::DuplicateLabelName { .. })
        ));
        assert!(LabelSet::parse(r#"{1a="x"}"#).is_err());
        assert!(LabelSet::parse(r#"{a="x"#).is_err());
        assert!(LabelSet::parse(r#"a="x""#).is_err());
    }

    #[test]
    fn stream_id_ignores_input_order() {
        let a = LabelSet::parse(r#"{a="1", b="2"}"#).unwrap();
        let b = LabelSet::parse(r#"{b="2", a="1"}"#).unwrap();
        assert_eq!(a.stream_id(), b.stream_id());
        let c = LabelSet::parse(r#"{a="12", b=""}"#).unwrap();
        assert_ne!(a.stream_id(), c.stream_id());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(pairs in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", "\\PC{0,12}", 1..6)) {
            let ls = LabelSet::new(pairs.into_iter().map(|(k, v)| Label::new(k, v)).collect()).unwrap();
            let back = LabelSet::parse(&ls.to_string()).unwrap();
            prop_assert_eq!(back, ls);
        }
    }
}
