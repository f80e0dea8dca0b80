//! The parser stages: `json`, `logfmt`, `regexp`, `pattern` and `unpack`.
//! Each reads the current line and adds labels to the line's
//! [`LabelsBuilder`], following Loki's naming rules (sanitised names,
//! `_extracted` on a clash with a stream label).

pub mod json;
pub mod logfmt;

use crate::labels::LabelsBuilder;
use crate::pattern::Pattern;
use regex::Regex;

/// The labels a query can still observe after a parser: when known, the
/// parser sets only these (it still reads the whole line, so its errors
/// are the same). A name `x_extracted` also admits `x`, which becomes
/// `x_extracted` when the stream has a label `x`.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    names: Vec<String>,
}

impl Projection {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Projection {
        let mut out: Vec<String> = Vec::new();
        for n in names {
            out.push(n.to_string());
            if let Some(base) = n.strip_suffix("_extracted") {
                out.push(base.to_string());
            }
        }
        out.sort();
        out.dedup();
        Projection { names: out }
    }

    /// Whether a label of this (sanitised) name may be observed.
    pub fn wants(&self, name: &str) -> bool {
        // `__error__` and friends in a line still set the error.
        name.starts_with("__") || self.names.iter().any(|n| n == name)
    }

    /// Whether some wanted name starts with `prefix` (for nested JSON).
    pub fn wants_prefix(&self, prefix: &str) -> bool {
        self.names.iter().any(|n| n.starts_with(prefix))
    }
}

/// `| regexp "(?P<name>...)"`: each named group becomes a label when the
/// regex matches; a group that takes no part in the match gives an empty
/// label, as in Loki.
#[derive(Debug)]
pub struct RegexpParser {
    regex: Regex,
    /// Label name for each capture group (sanitised: Rust allows `.`,
    /// `[` and `]` in group names); `None` for unnamed groups.
    names: Vec<Option<String>>,
}

impl RegexpParser {
    pub fn new(pattern: &str) -> Result<RegexpParser, String> {
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(skald_logql::REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("invalid regexp {pattern:?}: {e}"))?;
        if regex.capture_names().flatten().next().is_none() {
            return Err(format!(
                "invalid regexp {pattern:?}: at least one named group like (?P<name>...) is required"
            ));
        }
        let names = regex
            .capture_names()
            .map(|n| {
                n.map(|n| {
                    let mut name = String::new();
                    crate::labels::sanitize_label_name(n, &mut name);
                    name
                })
            })
            .collect();
        Ok(RegexpParser { regex, names })
    }

    pub fn process(&self, line: &str, labels: &mut LabelsBuilder) {
        let Some(caps) = self.regex.captures(line) else {
            return;
        };
        for (i, name) in self.names.iter().enumerate() {
            if let Some(name) = name {
                labels.set_parsed(name, caps.get(i).map_or("", |m| m.as_str()));
            }
        }
    }
}

/// `| pattern "<ip> - <_> <status>"`: see [`crate::pattern`].
#[derive(Debug)]
pub struct PatternParser {
    pattern: Pattern,
}

impl PatternParser {
    pub fn new(pattern: &str) -> Result<PatternParser, String> {
        let pattern = Pattern::parse(pattern)?;
        if pattern.names().next().is_none() {
            return Err(
                "invalid pattern: at least one named capture like <name> is required".into(),
            );
        }
        Ok(PatternParser { pattern })
    }

    pub fn process(&self, line: &str, labels: &mut LabelsBuilder) {
        self.pattern
            .extract(line, |name, value| labels.set_parsed(name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::Label;

    #[test]
    fn regexp_docs_example() {
        let p = RegexpParser::new(
            r#"(?P<ip>\S+) (?P<identd>\S+) (?P<user>\S+) \[(?P<timestamp>[\w:/]+\s[+\-]\d{4})\] "(?P<action>\S+)\s?(?P<path>\S+)?\s?(?P<protocol>\S+)?" (?P<status>\d{3}|-) (?P<size>\d+|-)\s?"?(?P<referer>[^"]*)"?\s?"?(?P<useragent>[^"]*)?"?"#,
        )
        .unwrap();
        let mut b = LabelsBuilder::default();
        b.reset(&[Label::new("app", "web")], &[]);
        p.process(r#"POST /api/prom/api/v1/query_range (200) 1.5s"#, &mut b);
        assert_eq!(b.get("ip"), None, "no match, no labels");
        p.process(
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "-" "curl""#,
            &mut b,
        );
        assert_eq!(b.get("ip"), Some("127.0.0.1"));
        assert_eq!(b.get("user"), Some("frank"));
        assert_eq!(b.get("timestamp"), Some("10/Oct/2000:13:55:36 -0700"));
        assert_eq!(b.get("path"), Some("/apache_pb.gif"));
        assert_eq!(b.get("status"), Some("200"));
        assert_eq!(b.get("useragent"), Some("curl"));
        assert!(RegexpParser::new("(a)").is_err());
        assert!(RegexpParser::new("(?P<a>").is_err());
    }

    #[test]
    fn regexp_docs_example_with_clash() {
        let p = RegexpParser::new(
            r"(?P<method>\w+) (?P<path>[\w|/]+) \((?P<status>\d+?)\) (?P<duration>.*)",
        )
        .unwrap();
        let mut b = LabelsBuilder::default();
        b.reset(&[Label::new("status", "x")], &[]);
        p.process("POST /api/prom/api/v1/query_range (200) 1.5s", &mut b);
        assert_eq!(b.get("method"), Some("POST"));
        assert_eq!(b.get("path"), Some("/api/prom/api/v1/query_range"));
        assert_eq!(b.get("status"), Some("x"));
        assert_eq!(b.get("status_extracted"), Some("200"));
        assert_eq!(b.get("duration"), Some("1.5s"));
    }

    #[test]
    fn pattern_parser() {
        let p = PatternParser::new("<_> <method> <path> <_>").unwrap();
        let mut b = LabelsBuilder::default();
        b.reset(&[Label::new("app", "web")], &[]);
        p.process("1.2.3.4 GET /x 200", &mut b);
        assert_eq!(b.get("method"), Some("GET"));
        assert_eq!(b.get("path"), Some("/x"));
        assert!(PatternParser::new("<_> x").is_err());
    }
}
